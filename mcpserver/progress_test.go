package mcpserver

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/agentbroker/agentbroker/tokens"
)

// progressSteps is more than mcp-go's per-request notification queue (100),
// so that the test also covers a full queue.
const progressSteps = 300

// addProgressTool registers a test-only tool that reports progressSteps
// steps as fast as it can.
func addProgressTool(t testing.TB, s *Server) {
	t.Helper()
	err := s.addTool(&toolDef{
		name: "test_progress", title: "progress", description: "test only: reports progress",
		scopes: []tokens.Scope{tokens.ScopeTasksRead}, readOnly: true,
		input:  object(nil),
		output: outObject("", []string{"steps"}, jsonObject{"steps": outInt("")}),
		run: func(ctx context.Context, c *toolCall) (any, error) {
			for i := 1; i <= progressSteps; i++ {
				if err := c.s.progress(ctx, c.req, float64(i), progressSteps, fmt.Sprintf("step %d", i)); err != nil {
					return nil, err
				}
			}
			return map[string]any{"steps": progressSteps}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// openGET opens a raw GET stream and counts the data lines it carries.
func openGET(t *testing.T, w *world, token string) (data *atomic.Int64, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.url, nil)
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := w.http.Client().Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		t.Fatalf("GET: %d", resp.StatusCode)
	}
	data = new(atomic.Int64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "data:") {
				data.Add(1)
			}
		}
	}()
	return data, func() {
		cancel()
		resp.Body.Close()
		<-done
	}
}

// TestProgressWithGETOpen: while clients hold GET streams open, every
// progress notification of a tools/call arrives, in order, on that POST's
// own SSE response, before the result; none goes to a GET stream, and
// concurrent callers each get exactly their own.
func TestProgressWithGETOpen(t *testing.T) {
	t.Parallel()
	w := newWorld(t, func(o *Options) { o.RateLimit.PerSecond = -1 })
	addProgressTool(t, w.srv)
	tokA := w.tokenA(tokens.ScopeTasksRead)
	tokB, _ := w.mint(w.projB.ID, w.sessB, tokens.ScopeTasksRead)
	getA, stopA := openGET(t, w, tokA)
	defer stopA()
	getB, stopB := openGET(t, w, tokB)
	defer stopB()

	var wg sync.WaitGroup
	for i, tok := range []string{tokA, tokB, tokA, tokB} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			progressToken := fmt.Sprintf("pt-%d", i)
			body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"test_progress","arguments":{},"_meta":{"progressToken":%q}}}`, i+1, progressToken)
			r := w.post(tok, body)
			if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/event-stream") {
				t.Errorf("call %d: %d %s", i, r.status, r.header.Get("Content-Type"))
				return
			}
			msgs := jsonrpcMessages(t, r)
			next := 1.0
			for j, m := range msgs {
				if m["method"] == "notifications/progress" {
					p := m["params"].(map[string]any)
					if p["progressToken"] != progressToken || p["progress"] != next || p["total"] != float64(progressSteps) {
						t.Errorf("call %d: notification %d = %v; want progress %v of token %s", i, j, p, next, progressToken)
						return
					}
					next++
					continue
				}
				if j != len(msgs)-1 || m["result"] == nil {
					t.Errorf("call %d: message %d of %d is %v; want the result last", i, j, len(msgs), m)
				}
			}
			if got := int(next) - 1; got != progressSteps {
				t.Errorf("call %d: %d progress notifications on the POST stream; want %d", i, got, progressSteps)
			}
		}()
	}
	wg.Wait()
	if a, b := getA.Load(), getB.Load(); a != 0 || b != 0 {
		t.Errorf("GET streams carried %d and %d messages; want none", a, b)
	}
}

// TestProgressMCPClient: the same through mcp-go's client, holding its own
// GET stream (continuous listening): every notification reaches the
// client's handler.
func TestProgressMCPClient(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	addProgressTool(t, w.srv)
	//lint:ignore SA1019 the test is about the legacy standalone GET stream, which the server still serves to clients of the legacy protocol
	c := w.client(w.tokenA(tokens.ScopeTasksRead), transport.WithContinuousListening(), versionedGETs(w))
	if !waitFor(func() bool { return w.metric("agentbroker_mcp_get_streams") == 1 }) {
		t.Fatal("the client's GET stream did not open")
	}
	var mu sync.Mutex
	var got []float64
	c.OnNotification(func(n mcp.JSONRPCNotification) {
		if n.Method != "notifications/progress" || n.Params.AdditionalFields["progressToken"] != "client-pt" {
			return
		}
		mu.Lock()
		got = append(got, n.Params.AdditionalFields["progress"].(float64))
		mu.Unlock()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var req mcp.CallToolRequest
	req.Params.Name = "test_progress"
	req.Params.Meta = &mcp.Meta{ProgressToken: "client-pt"}
	res, err := c.CallTool(ctx, req)
	if err != nil || res.IsError {
		t.Fatalf("call: %v %v", err, res)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != progressSteps {
		t.Fatalf("client received %d progress notifications; want %d", len(got), progressSteps)
	}
	for i, p := range got {
		if p != float64(i+1) {
			t.Fatalf("notification %d has progress %v; out of order", i, p)
		}
	}
}

// TestNoProgressWithoutToken: a call without a progressToken gets a plain
// JSON answer.
func TestNoProgressWithoutToken(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	addProgressTool(t, w.srv)
	r := w.post(w.tokenA(tokens.ScopeTasksRead), toolsCallBody(1, "test_progress", map[string]any{}))
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" || len(jsonrpcMessages(t, r)) != 1 {
		t.Fatalf("%d %s %s", r.status, r.header.Get("Content-Type"), r.body)
	}
}

// versionedGETs gives an mcp-go client an HTTP client that puts the
// negotiated Mcp-Protocol-Version on a GET that lacks it: mcp-go v1.2.1 may
// open its stream as soon as the initialize response arrives, before it has
// stored the version, and the server answers such a GET 405 (legacyGET).
func versionedGETs(w *world) transport.StreamableHTTPCOption {
	return transport.WithHTTPBasicClient(&http.Client{Transport: versionTransport{w.http.Client().Transport}})
}

type versionTransport struct{ next http.RoundTripper }

func (v versionTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet && r.Header.Get("Mcp-Protocol-Version") == "" {
		r = r.Clone(r.Context())
		r.Header.Set("Mcp-Protocol-Version", mcp.LATEST_LEGACY_PROTOCOL_VERSION)
	}
	return v.next.RoundTrip(r)
}
