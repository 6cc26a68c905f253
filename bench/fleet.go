package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/agentbroker/agentbroker/internal/pgtest"
)

// fleetResult is one row of the fleet table.
type fleetResult struct {
	name       string
	started    float64 // sessions started per second
	turns      float64 // turns with an MCP call per second
	mcp        float64 // MCP tool calls per second
	mcpP50     time.Duration
	mcpP99     time.Duration
	turnFailed int
}

// runFleet measures one broker on SQLite, one on PostgreSQL and three on
// one PostgreSQL (a fleet), in the same run, with the same load: sessions
// started, turns with an MCP call, MCP calls.
func runFleet(ctx context.Context, e *env) error {
	n, dur := 30, 4*time.Second
	if e.quick {
		n, dur = 4, time.Second
	}
	bin := pgtest.BinDir()
	if bin == "" {
		return fmt.Errorf("PostgreSQL's server binaries are not installed (apt-get install postgresql)")
	}
	cluster, err := pgtest.Start(bin)
	if err != nil {
		return err
	}
	defer cluster.Stop()

	var rows []fleetResult
	for _, cfg := range []struct {
		name  string
		nodes int
		pg    bool
	}{{"1 node, SQLite", 1, false}, {"1 node, PostgreSQL", 1, true}, {"3 nodes, one PostgreSQL", 3, true}} {
		var env []string
		if cfg.pg {
			url, err := cluster.NewDatabase()
			if err != nil {
				return err
			}
			env = append(env, "AGENTBROKER_DATABASE="+url)
		}
		r, err := benchFleet(ctx, e, cfg.name, cfg.nodes, n, dur, env)
		if err != nil {
			return fmt.Errorf("%s: %w", cfg.name, err)
		}
		fmt.Fprintf(os.Stderr, "bench: fleet %s: %+v\n", cfg.name, r)
		rows = append(rows, r)
	}

	e.printf("\n## A fleet: one broker on SQLite, one on PostgreSQL, three on one PostgreSQL\n\n")
	e.printf("`go run ./bench fleet`: the same load on three set-ups, in the same run: %d sessions with the reference agent\n", n)
	e.printf("started (8 in flight, spread over the nodes), each prompted once with a `get_task` call through the MCP server\n")
	e.printf("(16 in flight, each through the node that started it; every reply checked for the task's value), then %s of\n", dur)
	e.printf("MCP `tools/call` from 16 clients spread over the nodes (90%% `get_task`, 10%% `update_task`, which invalidates the\n")
	e.printf("task's cached reads on every node: by the counters file on SQLite, by NOTIFY on PostgreSQL). PostgreSQL is a\n")
	e.printf("throwaway cluster on the same machine (unix socket, fsync off); the three nodes share the machine's cores with it\n")
	e.printf("and with each other, so this measures the cost of the shared database, not the gain of more machines. The ratio is\n")
	e.printf("to one node on SQLite.\n\n")
	e.printf("| set-up | sessions started/s | ratio | turns with an MCP call/s | ratio | MCP calls/s | ratio | MCP p50 / p99 | failed turns |\n")
	e.printf("|---|---|---|---|---|---|---|---|---|\n")
	base := rows[0]
	for _, r := range rows {
		e.printf("| %s | %.0f | %s | %.0f | %s | %.0f | %s | %s / %s | %d |\n", r.name, r.started, ratio(r.started, base.started),
			r.turns, ratio(r.turns, base.turns), r.mcp, ratio(r.mcp, base.mcp), ms(r.mcpP50), ms(r.mcpP99), r.turnFailed)
	}
	return nil
}

func benchFleet(ctx context.Context, e *env, name string, nodes, n int, dur time.Duration, env []string) (fleetResult, error) {
	res := fleetResult{name: name}
	slug := strings.NewReplacer(" ", "-", ",", "").Replace(strings.ToLower(name))
	var bs []*broker
	parent := filepath.Join(e.root, "fleet-"+slug)
	// Agents run as nobody when the bench runs as root: they must reach
	// the sessions directories beside the data directories.
	if err := os.MkdirAll(parent, 0o711); err != nil {
		return res, err
	}
	if err := os.Chmod(parent, 0o711); err != nil {
		return res, err
	}
	for i := range nodes {
		b, err := startBroker(ctx, e.bin, filepath.Join(parent, fmt.Sprint(i)), env...)
		if err != nil {
			return res, err
		}
		defer b.stop()
		bs = append(bs, b)
	}
	b0 := bs[0]
	var proj, task struct{ ID string }
	if err := b0.call(ctx, "POST", "/v1/projects", map[string]any{"name": "fleet bench"}, &proj); err != nil {
		return res, err
	}
	const secret = "FLEET-VALUE-5c2e"
	if err := b0.call(ctx, "POST", "/v1/projects/"+proj.ID+"/tasks",
		map[string]any{"title": "fleet task", "description": "the value is " + secret}, &task); err != nil {
		return res, err
	}
	cwd := filepath.Join(e.root, "cwd")
	agentCwd(cwd)

	// One session per node first, not counted: a broker's first start
	// pays for what later ones find ready.
	if _, err := parallel(ctx, nodes, nodes, func(i int) (struct{}, error) {
		return struct{}{}, bs[i].call(ctx, "POST", "/v1/sessions", map[string]any{
			"project": proj.ID, "agent": "custom", "credential": map[string]string{"kind": "none"}, "cwd": cwd}, nil)
	}); err != nil {
		return res, fmt.Errorf("warm-up session: %w", err)
	}
	start := time.Now()
	ids, err := parallel(ctx, n, 8, func(i int) (string, error) {
		var out struct{ Session struct{ ID string } }
		err := bs[i%nodes].call(ctx, "POST", "/v1/sessions", map[string]any{
			"project": proj.ID, "agent": "custom", "credential": map[string]string{"kind": "none"},
			"cwd": cwd, "permission_policy": "allow-all",
		}, &out)
		return out.Session.ID, err
	})
	if err != nil {
		return res, fmt.Errorf("start sessions: %w", err)
	}
	res.started = float64(n) / time.Since(start).Seconds()

	prompt := fmt.Sprintf(`call get_task with {"id":%q}`, task.ID)
	var failed atomic.Int64
	start = time.Now()
	_, err = parallel(ctx, n, 16, func(i int) (struct{}, error) {
		var out struct{ Reply string }
		err := bs[i%nodes].call(ctx, "POST", "/v1/sessions/"+ids[i]+"/prompt?wait=true", map[string]any{"text": prompt}, &out)
		if err == nil && !strings.Contains(out.Reply, secret) {
			failed.Add(1)
		}
		return struct{}{}, err
	})
	if err != nil {
		return res, err
	}
	res.turns = float64(n) / time.Since(start).Seconds()
	res.turnFailed = int(failed.Load())

	// MCP load, spread over the nodes.
	// Many tokens, as many agents would be: each token has its own rate
	// limit.
	var toks []string
	for i := range 256 {
		raw, err := b0.mint(ctx, "mcp", proj.ID, fmt.Sprintf("fleet-mcp-%d", i), "project:read", "tasks:read", "tasks:write", "tasks:manage")
		if err != nil {
			return res, err
		}
		toks = append(toks, raw)
	}
	calls := make([]mcpCall, 1024)
	for i := range calls {
		name, args := "get_task", map[string]any{"id": task.ID}
		if i%10 == 9 {
			name, args = "update_task", map[string]any{"id": task.ID, "notes": fmt.Sprintf("fleet note %d", i)}
		}
		body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": i + 1, "method": "tools/call",
			"params": map[string]any{"name": name, "arguments": args}})
		calls[i] = mcpCall{token: toks[(i*7)%len(toks)], body: body, write: name == "update_task"}
	}
	lat := &latencies{}
	var ops, errs atomic.Int64
	var firstErr atomic.Value
	tr := &http.Transport{MaxIdleConnsPerHost: 16, MaxConnsPerHost: 16}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	deadline := time.Now().Add(dur)
	start = time.Now()
	_, _ = parallel(ctx, 16, 16, func(w int) (struct{}, error) {
		url := bs[w%nodes].url + "/mcp"
		for i := w; time.Now().Before(deadline) && ctx.Err() == nil; i += 16 {
			t0 := time.Now()
			if err := mcpPost(ctx, hc, url, calls[i%len(calls)]); err != nil {
				if errs.Add(1) == 1 {
					firstErr.Store(err.Error())
				}
				continue
			}
			lat.add(time.Since(t0))
			ops.Add(1)
		}
		return struct{}{}, nil
	})
	if n := errs.Load(); n > 0 {
		return res, fmt.Errorf("%d failed MCP calls, the first: %v", n, firstErr.Load())
	}
	res.mcp = float64(ops.Load()) / time.Since(start).Seconds()
	res.mcpP50, res.mcpP99 = lat.q(0.5), lat.q(0.99)
	return res, nil
}
