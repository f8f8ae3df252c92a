package main

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// Query is one PromQL expression and what it selects.
type Query struct {
	Expr    string              `json:"expr"`
	Metrics map[string][]string `json:"metrics"`
	Labels  []string            `json:"labels"`
}

// Grafana's interval variables, which PromQL does not know; any fixed range parses the same.
var grafanaRanges = regexp.MustCompile(`\$__(rate_interval|interval|range)\b`)

func inspect(expr string) (Query, error) {
	q := Query{Expr: expr, Metrics: map[string][]string{}, Labels: []string{}}
	parsed, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaRanges.ReplaceAllString(expr, "5m"))
	if err != nil {
		return q, fmt.Errorf("parsing %q: %w", expr, err)
	}
	parser.Inspect(parsed, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.VectorSelector:
			q.addSelector(n)
		case *parser.AggregateExpr:
			q.addLabels(n.Grouping...)
		case *parser.BinaryExpr:
			if n.VectorMatching != nil {
				q.addLabels(n.VectorMatching.MatchingLabels...)
				q.addLabels(n.VectorMatching.Include...)
			}
		}
		return nil
	})
	return q, nil
}

func (q *Query) addSelector(vs *parser.VectorSelector) {
	name := vs.Name
	var used []string
	for _, m := range vs.LabelMatchers {
		if m.Name == labels.MetricName {
			if name == "" && m.Type == labels.MatchEqual {
				name = m.Value
			}
			continue
		}
		used = append(used, m.Name)
	}
	q.Metrics[name] = sortedUnion(q.Metrics[name], used)
}

func (q *Query) addLabels(names ...string) {
	q.Labels = sortedUnion(q.Labels, names)
}

func sortedUnion(a, b []string) []string {
	out := append(append(make([]string, 0, len(a)+len(b)), a...), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// legendLabels are the label names a Grafana legend format such as "{{provider}} {{ code }}"
// refers to.
func legendLabels(format string) []string {
	var names []string
	for _, m := range legendRef.FindAllStringSubmatch(format, -1) {
		names = append(names, strings.TrimSpace(m[1]))
	}
	return names
}

var legendRef = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)
