// Command dashboard-check checks the chart's Grafana dashboard against Grafana's published
// dashboard schema and lists what its queries (and the alert rules' expressions) select, so a
// test can hold them against the metrics the components really export.
//
// The schema is the one in the Apache-licensed Grafana Foundation SDK, generated from Grafana's
// own schema: the dashboard is decoded strictly (unknown fields, wrong types and missing
// required fields fail, panel options and field config checked against each panel plugin's
// schema) and then validated (value constraints such as non-empty panel types).
//
// usage:
//
//	dashboard-check dashboard FILE.json   validate, then list each panel's queries
//	dashboard-check promql < exprs.json   list what each PromQL expression in a JSON array selects
//
// Both print JSON. A query's "metrics" maps each metric name it selects to the label names its
// matchers use; "labels" holds the label names it groups or matches by (by, without, on,
// ignoring, group_left/right) and, for dashboards, those its legend refers to.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

func main() {
	var out any
	var err error
	switch {
	case len(os.Args) == 3 && os.Args[1] == "dashboard":
		out, err = checkDashboard(os.Args[2])
	case len(os.Args) == 2 && os.Args[1] == "promql":
		out, err = inspectExprs(os.Stdin)
	default:
		fmt.Fprintln(os.Stderr, "usage: dashboard-check dashboard FILE.json | dashboard-check promql < exprs.json")
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dashboard-check:", err)
		os.Exit(1)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "dashboard-check:", err)
		os.Exit(1)
	}
}

func inspectExprs(r io.Reader) ([]Query, error) {
	var exprs []string
	if err := json.NewDecoder(r).Decode(&exprs); err != nil {
		return nil, fmt.Errorf("reading the expressions: %w", err)
	}
	queries := make([]Query, 0, len(exprs))
	for _, expr := range exprs {
		q, err := inspect(expr)
		if err != nil {
			return nil, err
		}
		queries = append(queries, q)
	}
	return queries, nil
}
