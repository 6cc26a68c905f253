package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// goBenchmarks are the packages' own benchmarks (go test -bench) whose
// figures the issues quote; each reports its baseline from the same run.
var goBenchmarks = []struct{ what, pkg, bench, benchtime string }{
	{"MCP `get_task` through the whole stack against bare mcp-go (ratio-full is the 70% target; full-uncached sends both reads to SQLite; full-nosql has no store)",
		"./mcpserver", "GetTask/clients=.*/ratio", "3s"},
	{"tokens: mint and verify against golang-jwt's own parse", "./tokens", ".", "1s"},
	{"proxy: added time to first byte, streamed and plain JSON", "./proxy", "Overhead", "1s"},
	{"events from an agent's stdout to 1, 10 and 100 viewers", "./sessions", "EventsToViewers", "20000x"},
}

func runGoBench(ctx context.Context, e *env) error {
	e.printf("\n## Package benchmarks\n\n")
	e.printf("`go test -bench` in the packages: each compares with a baseline in the same run (the `ratio` and\n")
	e.printf("baseline columns are theirs). The lines below are their output, unedited.\n")
	for _, gb := range goBenchmarks {
		benchtime := gb.benchtime
		if e.quick {
			benchtime = "1x"
		}
		args := []string{"test", gb.pkg, "-run=^$", "-bench=" + gb.bench, "-benchtime=" + benchtime}
		cmd := exec.CommandContext(ctx, "go", args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out.Bytes())
		}
		e.printf("\n%s: `go %s`\n\n```\n", gb.what, strings.Join(quoteArgs(args), " "))
		for l := range strings.SplitSeq(out.String(), "\n") {
			if strings.HasPrefix(l, "Benchmark") {
				e.printf("%s\n", strings.Join(strings.Fields(l), " "))
			}
		}
		e.printf("```\n")
	}
	return nil
}

func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, "*^$|") {
			a = "'" + a + "'"
		}
		out[i] = a
	}
	return out
}
