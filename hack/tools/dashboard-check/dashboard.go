package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// Panel is one panel of the dashboard and its queries.
type Panel struct {
	Title   string  `json:"title"`
	Type    string  `json:"type"`
	Queries []Query `json:"queries"`
}

// rawPanel is the part of a panel the query listing reads; rows hold panels of their own.
type rawPanel struct {
	Title   string     `json:"title"`
	Type    string     `json:"type"`
	Panels  []rawPanel `json:"panels"`
	Targets []struct {
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
	} `json:"targets"`
}

func checkDashboard(path string) ([]Panel, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	plugins.RegisterDefaultPlugins()
	var board dashboard.Dashboard
	if err := found(board.UnmarshalJSONStrict(raw)); err != nil {
		return nil, fmt.Errorf("%s does not match Grafana's dashboard schema: %w", path, err)
	}
	if err := found(board.Validate()); err != nil {
		return nil, fmt.Errorf("%s breaks a constraint of Grafana's dashboard schema: %w", path, err)
	}
	var doc struct {
		Panels []rawPanel `json:"panels"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	return listPanels(doc.Panels)
}

// found drops the empty error list the SDK returns when it found nothing (a nil
// cog.BuildErrors wrapped in a non-nil error).
func found(err error) error {
	var list cog.BuildErrors
	if errors.As(err, &list) && len(list) == 0 {
		return nil
	}
	return err
}

func listPanels(raws []rawPanel) ([]Panel, error) {
	var panels []Panel
	for _, rp := range raws {
		if rp.Type == "row" {
			nested, err := listPanels(rp.Panels)
			if err != nil {
				return nil, err
			}
			panels = append(panels, nested...)
			continue
		}
		panel := Panel{Title: rp.Title, Type: rp.Type, Queries: []Query{}}
		for _, target := range rp.Targets {
			q, err := inspect(target.Expr)
			if err != nil {
				return nil, fmt.Errorf("panel %q: %w", rp.Title, err)
			}
			q.addLabels(legendLabels(target.LegendFormat)...)
			panel.Queries = append(panel.Queries, q)
		}
		panels = append(panels, panel)
	}
	return panels, nil
}
