package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// mcpCall is one tools/call of the mix, ready to send.
type mcpCall struct {
	token string
	body  []byte
	write bool
}

// mcpTarget is a server under load.
type mcpTarget struct {
	name string
	url  string
	lat  *latencies
	ops  int64
	time time.Duration
	errs atomic.Int64
	err  atomic.Value // first error text
}

func runMCP(ctx context.Context, e *env) error {
	const projects, tasksPer, knowledgePer, tokensPer = 10, 20, 10, 20
	dur := 4 * time.Second // per target per round
	rounds := 3
	clientsList := []int{8, 64}
	if e.quick {
		dur, rounds, clientsList = 500*time.Millisecond, 1, []int{8}
	}
	b, err := startBroker(ctx, e.bin, filepath.Join(e.root, "mcp"))
	if err != nil {
		return err
	}
	defer b.stop()

	// The world: projects with tasks and knowledge, and many tokens.
	rng := rand.New(rand.NewPCG(1, 2))
	type tok struct {
		raw   string
		tasks []string
	}
	var toks []tok
	for p := range projects {
		var proj struct{ ID string }
		if err := b.call(ctx, "POST", "/v1/projects", map[string]any{"name": fmt.Sprintf("bench %d", p),
			"instructions": "Run the tests before you commit."}, &proj); err != nil {
			return err
		}
		var tasks []string
		for i := range tasksPer {
			var t struct{ ID string }
			if err := b.call(ctx, "POST", "/v1/projects/"+proj.ID+"/tasks", map[string]any{
				"title": fmt.Sprintf("task %d of project %d", i, p), "description": "Make the parser reject oversized input " +
					strings.Repeat("and keep the error readable ", 4), "status": "queued"}, &t); err != nil {
				return err
			}
			tasks = append(tasks, t.ID)
		}
		for i := range knowledgePer {
			if err := b.call(ctx, "POST", "/v1/projects/"+proj.ID+"/knowledge", map[string]any{
				"title": fmt.Sprintf("note %d", i), "body": "The parser lives in internal/parse; limits are in limits.go. " +
					strings.Repeat("Oversized input is refused with a clear error. ", 3), "tags": []string{"parser"}}, nil); err != nil {
				return err
			}
		}
		for i := range tokensPer {
			raw, err := b.mint(ctx, "mcp", proj.ID, fmt.Sprintf("mcp-bench-%d-%d", p, i),
				"project:read", "tasks:read", "tasks:write", "tasks:manage", "knowledge:read")
			if err != nil {
				return err
			}
			toks = append(toks, tok{raw, tasks})
		}
	}
	// The mix: 60% get_task, 15% list_tasks, 15% search_knowledge, 10%
	// update_task (a write: it also invalidates the store's task cache).
	calls := make([]mcpCall, 4096)
	for i := range calls {
		t := toks[rng.IntN(len(toks))]
		task := t.tasks[rng.IntN(len(t.tasks))]
		var name string
		var args map[string]any
		switch r := rng.IntN(100); {
		case r < 60:
			name, args = "get_task", map[string]any{"id": task}
		case r < 75:
			name, args = "list_tasks", map[string]any{"limit": 10}
		case r < 90:
			name, args = "search_knowledge", map[string]any{"query": "parser limits", "limit": 5}
		default:
			name, args = "update_task", map[string]any{"id": task, "notes": fmt.Sprintf("bench note %d", i)}
		}
		body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": i + 1, "method": "tools/call",
			"params": map[string]any{"name": name, "arguments": args}})
		calls[i] = mcpCall{token: t.raw, body: body, write: name == "update_task"}
	}

	bare, stopBare, err := startSelf("bare-mcp")
	if err != nil {
		return err
	}
	defer stopBare()

	e.printf("\n## MCP tool calls\n\n")
	e.printf("`go run ./bench mcp`: a mixed load of `tools/call` over streamable HTTP from C concurrent clients with\n")
	e.printf("%d distinct tokens over %d projects (%d tasks and %d knowledge entries each): 60%% `get_task`, 15%% `list_tasks`, 15%%\n",
		len(toks), projects, tasksPer, knowledgePer)
	e.printf("`search_knowledge` (FTS5), 10%% `update_task` (a write, which also invalidates the cached reads of that task's\n")
	e.printf("stripe). The full stack is `agentbroker serve` (Origin check, bearer auth with revocation check, per-token rate limit,\n")
	e.printf("scopes, SQLite, the observer); the baseline is a bare mcp-go streamable HTTP server (stateless) with\n")
	e.printf("four trivial tools of the same names, in its own process, under the same mix. They take turns of %s,\n", dur)
	e.printf("%d rounds each, so both see the same machine. Every answer is checked (HTTP 200, a result, no `isError`).\n\n", rounds)
	e.printf("| clients | full calls/s | bare calls/s | ratio | full p50 / p99 | bare p50 / p99 |\n|---|---|---|---|---|---|\n")
	for _, clients := range clientsList {
		full := &mcpTarget{name: "full", url: b.url + "/mcp", lat: &latencies{}}
		base := &mcpTarget{name: "bare", url: bare, lat: &latencies{}}
		for range rounds {
			for _, t := range []*mcpTarget{full, base} {
				loadMCP(ctx, t, calls, clients, dur)
			}
		}
		for _, t := range []*mcpTarget{full, base} {
			if n := t.errs.Load(); n > 0 {
				return fmt.Errorf("%s: %d failed calls, the first: %v", t.name, n, t.err.Load())
			}
		}
		fo, bo := float64(full.ops)/full.time.Seconds(), float64(base.ops)/base.time.Seconds()
		e.printf("| %d | %.0f | %.0f | %s | %s / %s | %s / %s |\n", clients, fo, bo, ratio(fo, bo),
			ms(full.lat.q(0.5)), ms(full.lat.q(0.99)), ms(base.lat.q(0.5)), ms(base.lat.q(0.99)))
	}
	return nil
}

// loadMCP sends calls from clients goroutines for d.
func loadMCP(ctx context.Context, t *mcpTarget, calls []mcpCall, clients int, d time.Duration) {
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var next, ops atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				c := calls[int(next.Add(1))%len(calls)]
				t0 := time.Now()
				if err := mcpPost(ctx, hc, t.url, c); err != nil {
					if t.errs.Add(1) == 1 {
						t.err.Store(err.Error())
					}
					continue
				}
				t.lat.add(time.Since(t0))
				ops.Add(1)
			}
		})
	}
	wg.Wait()
	t.time += time.Since(start)
	t.ops += ops.Load()
}

func mcpPost(ctx context.Context, hc *http.Client, url string, c mcpCall) error {
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(c.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"result"`)) || bytes.Contains(body, []byte(`"isError":true`)) {
		return fmt.Errorf("HTTP %d: %.300s", resp.StatusCode, body)
	}
	return nil
}

// startSelf runs this program in one of its helper modes (bare-mcp,
// bare-ws, fake-upstream), in a process group of its own, and returns the
// URL it prints on its first line and how to stop it.
func startSelf(mode string, args ...string) (string, func(), error) {
	self, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(self, append([]string{mode}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() }
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("%s: %w", mode, err)
	}
	return strings.TrimSpace(line), stop, nil
}

// serveBareMCP is the baseline: mcp-go's stateless streamable HTTP server
// with the mix's four tool names, each answering a line of text.
func serveBareMCP() {
	s := server.NewMCPServer("bare", "1", server.WithToolCapabilities(false))
	for _, name := range []string{"get_task", "list_tasks", "search_knowledge", "update_task"} {
		s.AddTool(mcp.NewTool(name, mcp.WithString("id"), mcp.WithString("query"), mcp.WithString("notes"), mcp.WithNumber("limit")),
			func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return mcp.NewToolResultText(name + " " + req.GetString("id", "")), nil
			})
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatal(err)
	}
	fmt.Printf("http://%s/mcp\n", ln.Addr())
	mux := http.NewServeMux()
	mux.Handle("/mcp", server.NewStreamableHTTPServer(s, server.WithStateLess(true)))
	fatal(http.Serve(ln, mux))
}
