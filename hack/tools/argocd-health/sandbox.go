package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// Health is what Argo CD keeps of a health script's answer.
type Health struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
}

// The statuses Argo CD accepts from a script; anything else becomes Unknown.
var validStatuses = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true,
	"Suspended": true, "Missing": true, "Unknown": true,
}

const invalidStatusMessage = "Lua returned an invalid health status"

// decodeObjects reads a JSON array of objects keeping integers exact, as the Kubernetes
// unstructured decoder does (it yields int64 for integers and float64 for the rest).
func decodeObjects(raw []byte) ([]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var objects []any
	if err := dec.Decode(&objects); err != nil {
		return nil, err
	}
	return objects, nil
}

func newSandbox() (*lua.LState, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	libs := []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, openSafeOs},
	}
	for _, lib := range libs {
		err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name))
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("opening the %q library: %w", lib.name, err)
		}
	}
	l.PreloadModule(lua.OsLibName, loadSafeOs)
	return l, nil
}

func runHealth(script string, obj any) (Health, error) {
	l, err := newSandbox()
	if err != nil {
		return Health{}, err
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	fn, err := l.LoadString(script)
	if err != nil {
		return Health{}, err
	}
	l.Push(fn)
	if err := l.PCall(0, lua.MultRet, nil); err != nil {
		return Health{}, err
	}
	return readHealth(l.Get(-1))
}

func readHealth(value lua.LValue) (Health, error) {
	switch value.Type() {
	case lua.LTNil:
		return Health{}, nil
	case lua.LTTable:
	default:
		return Health{}, fmt.Errorf("expect table output from Lua script, not %s", value.Type())
	}
	encoded, err := json.Marshal(fromLua(value))
	if err != nil {
		return Health{}, err
	}
	if bytes.Equal(encoded, []byte("[]")) {
		return Health{}, nil // an empty table reads as an empty array: an empty health
	}
	var health Health
	if err := json.Unmarshal(encoded, &health); err != nil {
		return Health{}, err
	}
	if !validStatuses[health.Status] {
		return Health{Status: "Unknown", Message: invalidStatusMessage}, nil
	}
	return health, nil
}

// toLua turns decoded JSON into Lua values: maps and arrays become tables, numbers numbers.
func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case json.Number:
		if i, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return lua.LNumber(i)
		}
		f, _ := v.Float64()
		return lua.LNumber(f)
	case []any:
		arr := l.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(toLua(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(v))
		for key, item := range v {
			tbl.RawSetH(lua.LString(key), toLua(l, item))
		}
		return tbl
	}
	return lua.LNil
}

// fromLua turns a returned Lua value into JSON-ready data: a table with only the keys
// 1..n is an array (an empty table too), any other table an object keyed by strings.
func fromLua(value lua.LValue) any {
	switch v := value.(type) {
	case lua.LBool:
		return bool(v)
	case lua.LNumber:
		return float64(v)
	case lua.LString:
		return string(v)
	case *lua.LTable:
		if n := v.MaxN(); n == countKeys(v) {
			arr := make([]any, 0, n)
			for i := 1; i <= n; i++ {
				arr = append(arr, fromLua(v.RawGetInt(i)))
			}
			return arr
		}
		obj := map[string]any{}
		v.ForEach(func(key, item lua.LValue) {
			obj[lua.LVAsString(key)] = fromLua(item)
		})
		return obj
	}
	return nil
}

func countKeys(t *lua.LTable) int {
	n := 0
	t.ForEach(func(lua.LValue, lua.LValue) { n++ })
	return n
}
