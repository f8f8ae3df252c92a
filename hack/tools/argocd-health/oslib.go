package main

import (
	"time"

	lua "github.com/yuin/gopher-lua"
)

// Argo CD gives health scripts only os.time and os.date. It opens them into the table
// library's module (so table.time and table.date exist) and preloads them for require("os");
// there is no global os.
var safeOsFuncs = map[string]lua.LGFunction{
	"time": osTime,
	"date": osDate,
}

func openSafeOs(l *lua.LState) int {
	l.Push(l.RegisterModule(lua.TabLibName, safeOsFuncs))
	return 1
}

func loadSafeOs(l *lua.LState) int {
	l.Push(l.SetFuncs(l.NewTable(), safeOsFuncs))
	return 1
}

// osTime answers the current Unix time; health scripts have no use for its table form.
func osTime(l *lua.LState) int {
	l.Push(lua.LNumber(time.Now().Unix()))
	return 1
}

// osDate answers the current UTC time in RFC 3339, whatever format is asked for: enough for a
// script that stamps a message, which is all a health check could want.
func osDate(l *lua.LState) int {
	l.Push(lua.LString(time.Now().UTC().Format(time.RFC3339)))
	return 1
}
