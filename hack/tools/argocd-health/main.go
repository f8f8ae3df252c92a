// Command argocd-health runs an Argo CD resource health script the way Argo CD's application
// controller does, so the chart's scripts are tested in Argo CD's engine rather than in a
// different Lua. The real `argocd admin settings resource-overrides health` cannot be built from
// the Go module proxy (Argo CD's gitops-engine module does not resolve), so this mirrors what
// Argo CD's util/lua package sets up for a health script without open libraries:
//
//   - gopher-lua (Lua 5.1 semantics) with only the package, base and table libraries opened;
//   - a "safe" os library holding only time and date: opened into the table library (as Argo CD
//     does) and loadable with require("os"), but with no global os;
//   - a one-second execution deadline;
//   - the live object as the global obj (JSON maps and arrays as tables, numbers as numbers);
//   - the returned table read back through JSON into {status, message}: an empty table or nil is
//     an empty health, a status outside Argo CD's six is Unknown with Argo CD's message, and any
//     other return value is an error.
//
// usage: argocd-health SCRIPT.lua < objects.json
//
// objects.json is a JSON array of objects; the output is a JSON array with one
// {"status", "message"} or {"error"} entry per object, in order.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: argocd-health SCRIPT.lua < objects.json")
		os.Exit(2)
	}
	script, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail(err)
	}
	raw, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	objects, err := decodeObjects(raw)
	if err != nil {
		fail(fmt.Errorf("reading the objects: %w", err))
	}
	results := make([]result, 0, len(objects))
	for _, obj := range objects {
		health, err := runHealth(string(script), obj)
		if err != nil {
			results = append(results, result{Error: err.Error()})
			continue
		}
		results = append(results, result{Status: health.Status, Message: health.Message})
	}
	out := json.NewEncoder(os.Stdout)
	out.SetIndent("", "  ")
	if err := out.Encode(results); err != nil {
		fail(err)
	}
}

type result struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "argocd-health:", err)
	os.Exit(1)
}
