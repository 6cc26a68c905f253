package mcpserver

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/agentbroker/agentbroker/store"
	"github.com/agentbroker/agentbroker/store/sqlite"
	"github.com/agentbroker/agentbroker/tokens"
)

// BenchmarkGetTask measures tools/call get_task through the whole stack
// (Origin check, bearer auth with its revocation check on SQLite, rate
// limiter, scope check, argument validation, the task read on SQLite,
// mcp-go, the observer) against a bare mcp-go streamable HTTP server
// (stateless) with a trivial tool, at 1, 8 and 64 concurrent clients, over
// loopback HTTP with keep-alive. Each target's sub-benchmark reports ops/s
// and p50/p99 latency. The "ratio" sub-benchmark then runs the targets
// interleaved, in short rounds, so that they share whatever else the
// machine is doing, and reports each one's throughput over the bare
// server's (ratio-full is the figure the 70% target is about).
//
// "full" is the real stack. Each call makes two reads (the token's
// revocation check and the task), which the store answers from memory
// while neither table has changed (store/sqlite/changes.go): the benchmark
// reads one task with one token, so after the first call every read is a
// hit. Two diagnostics bracket that: "full-uncached" is the same stack on a
// store that sends both reads to SQLite every time (the cost of a call
// right after a write), and "full-nosql" has the task and the revocation
// list in plain maps (the cost of this package alone).
func BenchmarkGetTask(b *testing.B) {
	w := newWorldWith(b, false, func(o *Options) {
		o.RateLimit = RateLimit{PerSecond: 1e9, Burst: 1e9} // measured, never refusing
	})
	tok := w.tokenA(tokens.ScopeTasksRead)
	body := []byte(toolsCallBody(1, "get_task", map[string]any{"id": w.taskA.ID}))
	full := benchTarget{url: w.url, token: tok, body: body, want: []byte(w.taskA.ID)}
	noSQL := newNoSQLTarget(b, w.taskA)
	wu := newWorldOn(b, false, sqlite.Options{NoReadCache: true}, func(o *Options) {
		o.RateLimit = RateLimit{PerSecond: 1e9, Burst: 1e9}
	})
	uncached := benchTarget{url: wu.url, token: wu.tokenA(tokens.ScopeTasksRead),
		body: []byte(toolsCallBody(1, "get_task", map[string]any{"id": wu.taskA.ID})), want: []byte(wu.taskA.ID)}

	bareMCP := server.NewMCPServer("bare", "1", server.WithToolCapabilities(false))
	bareMCP.AddTool(mcp.NewTool("get_task", mcp.WithString("id", mcp.Required())),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText("task " + req.GetString("id", "")), nil
		})
	bareHTTP := httptest.NewServer(server.NewStreamableHTTPServer(bareMCP, server.WithStateLess(true)))
	defer bareHTTP.Close()
	bare := benchTarget{url: bareHTTP.URL, token: tok, body: body, want: []byte(w.taskA.ID)}

	targets := []struct {
		name string
		t    benchTarget
	}{{"bare", bare}, {"full", full}, {"full-uncached", uncached}, {"full-nosql", noSQL}}
	for _, c := range []int{1, 8, 64} {
		for _, v := range targets {
			b.Run(fmt.Sprintf("clients=%d/%s", c, v.name), func(b *testing.B) { v.t.run(b, c) })
		}
		b.Run(fmt.Sprintf("clients=%d/ratio", c), func(b *testing.B) {
			ts := make([]benchTarget, len(targets))
			for i, v := range targets {
				ts[i] = v.t
			}
			ops := interleave(b, c, ts)
			for i, v := range targets[1:] {
				b.ReportMetric(ops[i+1]/ops[0], "ratio-"+v.name)
			}
		})
	}
}

// interleave runs the targets in turns of a few hundred calls each until
// b.N calls have been made in all, and returns each one's ops/s over its
// own turns.
func interleave(b *testing.B, clients int, ts []benchTarget) []float64 {
	hcs := make([]*http.Client, len(ts))
	for i, bt := range ts {
		tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}
		defer tr.CloseIdleConnections()
		hcs[i] = &http.Client{Transport: tr}
		for range clients {
			bt.call(b, hcs[i])
		}
	}
	turn := max(200, 20*clients)
	calls := make([]int, len(ts))
	spent := make([]time.Duration, len(ts))
	b.ResetTimer()
	for done := 0; done < b.N; {
		for i, bt := range ts {
			n := min(turn, max(1, (b.N-done+len(ts)-1)/len(ts)))
			var next atomic.Int64
			var wg sync.WaitGroup
			start := time.Now()
			for range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(n) {
						bt.call(b, hcs[i])
					}
				}()
			}
			wg.Wait()
			spent[i] += time.Since(start)
			calls[i] += n
			done += n
		}
	}
	b.StopTimer()
	ops := make([]float64, len(ts))
	for i := range ts {
		ops[i] = float64(calls[i]) / spent[i].Seconds()
	}
	return ops
}

// newNoSQLTarget is the full stack on in-memory stores.
func newNoSQLTarget(b *testing.B, task store.Task) benchTarget {
	mem := &memStore{tasks: map[string]store.Task{task.ProjectID + "/" + task.ID: task}, revoked: map[string]bool{}}
	svc, err := tokens.New(context.Background(), mem, mem, nil)
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	hs := httptest.NewServer(mux)
	b.Cleanup(hs.Close)
	srv, err := New(&Options{Store: mem, Tokens: svc, ResourceURL: hs.URL + "/mcp", Observer: &MemoryObserver{},
		RateLimit: RateLimit{PerSecond: 1e9, Burst: 1e9}})
	if err != nil {
		b.Fatal(err)
	}
	srv.Mount(mux)
	raw, _, err := svc.Mint(context.Background(), tokens.Grant{Subject: "bench", Project: task.ProjectID, Session: task.SessionID,
		Audience: tokens.AudienceMCP, Scopes: []tokens.Scope{tokens.ScopeTasksRead}})
	if err != nil {
		b.Fatal(err)
	}
	return benchTarget{url: hs.URL + "/mcp", token: raw,
		body: []byte(toolsCallBody(1, "get_task", map[string]any{"id": task.ID})), want: []byte(task.ID)}
}

// memStore holds tasks, signing keys and revocations in memory (enough for
// the benchmark: other Store methods are not called).
type memStore struct {
	Store
	mu      sync.RWMutex
	tasks   map[string]store.Task
	keys    []store.SigningKey
	revoked map[string]bool
}

func (m *memStore) GetTask(_ context.Context, projectID, id string) (store.Task, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	t, ok := m.tasks[projectID+"/"+id]
	if !ok {
		return store.Task{}, store.ErrNotFound
	}
	return t, nil
}

func (m *memStore) SigningKeys(context.Context) ([]store.SigningKey, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return slices.Clone(m.keys), nil
}

func (m *memStore) AddSigningKey(_ context.Context, k store.SigningKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys = append(m.keys, k)
	return nil
}

func (m *memStore) RetireSigningKey(context.Context, string, time.Time) error { return nil }

func (m *memStore) RevokeToken(_ context.Context, jti string, _ time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.revoked["t/"+jti] = true
	return nil
}

func (m *memStore) RevokeSession(_ context.Context, id string, _ time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.revoked["s/"+id] = true
	return nil
}

func (m *memStore) IsRevoked(_ context.Context, jti, session string) (bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.revoked["t/"+jti] || session != "" && m.revoked["s/"+session], nil
}

type benchTarget struct {
	url, token string
	body, want []byte
}

// run does b.N calls from clients goroutines and reports throughput and
// latency percentiles; it returns ops/s.
func (bt benchTarget) run(b *testing.B, clients int) float64 {
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	for range clients { // warm the connections
		bt.call(b, hc)
	}
	var next atomic.Int64
	lat := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for g := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, b.N/clients+1)
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				bt.call(b, hc)
				mine = append(mine, time.Since(t0))
			}
			lat[g] = mine
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	ops := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(ops, "ops/s")
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)*50/100].Microseconds()), "p50-µs")
		b.ReportMetric(float64(all[min(len(all)-1, len(all)*99/100)].Microseconds()), "p99-µs")
	}
	return ops
}

func (bt benchTarget) call(b *testing.B, hc *http.Client) {
	req, err := http.NewRequest(http.MethodPost, bt.url, bytes.NewReader(bt.body))
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	req.Header.Set("Authorization", "Bearer "+bt.token)
	resp, err := hc.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Contains(body, bt.want) || bytes.Contains(body, []byte(`"isError":true`)) {
		b.Fatalf("call: %d %v %s", resp.StatusCode, err, body)
	}
}
