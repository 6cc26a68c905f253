package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	gosdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentbroker/agentbroker/tokens"
)

// TestLegacySSEGet: a GET without Mcp-Protocol-Version (a client of the
// legacy HTTP+SSE transport, as `claude mcp add --transport sse` makes) is
// answered 405 at once, with or without a token, instead of an SSE stream
// that never sends the "endpoint" event it waits for.
func TestLegacySSEGet(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	for _, tok := range []string{"", w.tokenA(readScopes...)} {
		r := w.do(http.MethodGet, tok, nil, "Accept", "text/event-stream")
		if r.status != http.StatusMethodNotAllowed || strings.HasPrefix(r.header.Get("Content-Type"), "text/event-stream") ||
			!strings.Contains(string(r.body), "not the legacy HTTP+SSE transport") || r.header.Get("Allow") == "" {
			t.Errorf("GET without Mcp-Protocol-Version (token %v): %d %q %s", tok != "", r.status, r.header.Get("Content-Type"), r.body)
		}
	}
	// With the header (every client after initialize), the stream opens.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.url, nil)
	req.Header.Set("Authorization", "Bearer "+w.tokenA(readScopes...))
	req.Header.Set("Mcp-Protocol-Version", "2025-03-26")
	resp, err := w.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET with Mcp-Protocol-Version: %d; want 200", resp.StatusCode)
	}
}

// rpcMessage is one JSON-RPC response as the tests read it.
type rpcMessage struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		} `json:"data"`
	} `json:"error"`
}

func decodeRPC(t *testing.T, body []byte) rpcMessage {
	t.Helper()
	var m rpcMessage
	if err := json.Unmarshal(body, &m); err != nil || m.JSONRPC != "2.0" {
		t.Fatalf("not a JSON-RPC message (%v): %s", err, body)
	}
	return m
}

func decodeRPCArray(t *testing.T, body []byte) []rpcMessage {
	t.Helper()
	var ms []rpcMessage
	if err := json.Unmarshal(body, &ms); err != nil {
		t.Fatalf("not a JSON array of messages (%v): %s", err, body)
	}
	return ms
}

// TestRefusalsAreJSONRPC: the 401 and 403 answers to a JSON-RPC request
// keep their status and challenge (scope= included on the 401) and carry a
// JSON-RPC error response to that request, the OAuth error in its data; a
// body that is not JSON-RPC still gets the OAuth JSON.
func TestRefusalsAreJSONRPC(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	allMCP := tokens.AudienceMCP.AllowedScopes().String()

	// 401, no token.
	r := w.post("", initBody)
	if r.status != http.StatusUnauthorized {
		t.Fatalf("no token: %d", r.status)
	}
	ch := r.header.Get("WWW-Authenticate")
	if got := challengeParam(ch, "scope"); got != allMCP || !strings.Contains(allMCP, "tasks:write") {
		t.Errorf("401 challenge scope = %q; want %q (%s)", got, allMCP, ch)
	}
	m := decodeRPC(t, r.body)
	if string(m.ID) != "1" || m.Error == nil || m.Error.Code != codeUnauthorized || m.Error.Data.Error != "invalid_token" ||
		m.Error.Message != "missing bearer token" {
		t.Errorf("401 body: %s", r.body)
	}

	// 401, a bad token: the error is named in challenge and body alike.
	r = w.post("not-a-jwt", `{"jsonrpc":"2.0","id":"abc","method":"tools/list"}`)
	m = decodeRPC(t, r.body)
	if r.status != http.StatusUnauthorized || string(m.ID) != `"abc"` || m.Error == nil || m.Error.Code != codeUnauthorized ||
		!strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`) || challengeParam(r.header.Get("WWW-Authenticate"), "scope") == "" {
		t.Errorf("bad token: %d %q %s", r.status, r.header.Get("WWW-Authenticate"), r.body)
	}

	// 401 to a notification or to something that is not JSON-RPC: the
	// OAuth JSON body, as before.
	for _, body := range []string{`{"jsonrpc":"2.0","method":"notifications/initialized"}`, `hello`, `{"id":{}}`} {
		r = w.post("", body)
		var oe oauthError
		if r.status != http.StatusUnauthorized || json.Unmarshal(r.body, &oe) != nil || oe.Error != "invalid_token" {
			t.Errorf("401 to %s: %d %s", body, r.status, r.body)
		}
	}

	// 401 to a batch: an array of errors, one per request.
	r = w.post("", `[{"jsonrpc":"2.0","id":7,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":8,"method":"tools/list"}]`)
	ms := decodeRPCArray(t, r.body)
	if r.status != http.StatusUnauthorized || len(ms) != 2 || string(ms[0].ID) != "7" || string(ms[1].ID) != "8" || ms[1].Error.Code != codeUnauthorized {
		t.Errorf("401 to a batch: %d %s", r.status, r.body)
	}

	// 403 insufficient_scope on a tools/call.
	ro := w.tokenA(readScopes...)
	r = w.post(ro, toolsCallBody(42, "update_task", map[string]any{"id": w.taskA.ID, "status": "failed"}))
	m = decodeRPC(t, r.body)
	if r.status != http.StatusForbidden || string(m.ID) != "42" || m.Error == nil || m.Error.Code != codeForbidden ||
		m.Error.Data.Error != "insufficient_scope" || !strings.Contains(m.Error.Message, "tasks:write") ||
		challengeParam(r.header.Get("WWW-Authenticate"), "scope") != "tasks:write" {
		t.Errorf("403: %d %q %s", r.status, r.header.Get("WWW-Authenticate"), r.body)
	}
}

// TestGoSDKSurvives403: the official Go SDK's client, refused a tools/call
// with 403 insufficient_scope, gets the error for that call and keeps its
// session: the next calls on it work.
func TestGoSDKSurvives403(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	tok := w.tokenA(readScopes...)
	hc := &http.Client{Transport: bearerTransport{tok, w.http.Client().Transport}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := gosdk.NewClient(&gosdk.Implementation{Name: "go-sdk-test", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &gosdk.StreamableClientTransport{Endpoint: w.url, HTTPClient: hc, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer cs.Close()

	res, err := cs.CallTool(ctx, &gosdk.CallToolParams{Name: "get_project"})
	if err != nil || res.IsError {
		t.Fatalf("get_project: %v %+v", err, res)
	}
	_, err = cs.CallTool(ctx, &gosdk.CallToolParams{Name: "update_task", Arguments: map[string]any{"id": w.taskA.ID, "status": "failed"}})
	if err == nil || !strings.Contains(err.Error(), "lacks scope tasks:write") {
		t.Fatalf("update_task with a read-only token: %v; want the insufficient_scope error", err)
	}
	for _, name := range []string{"get_project", "list_tasks"} {
		res, err = cs.CallTool(ctx, &gosdk.CallToolParams{Name: name})
		if err != nil || res.IsError {
			t.Fatalf("%s after the 403: %v %+v; the session did not survive", name, err, res)
		}
	}
	tools, err := cs.ListTools(ctx, nil)
	if err != nil || len(tools.Tools) == 0 {
		t.Fatalf("tools/list after the 403: %v", err)
	}
}

type bearerTransport struct {
	token string
	next  http.RoundTripper
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// TestBatch: under protocol 2025-03-26 (or no version header, which the
// spec says to take as 2025-03-26) a JSON-RPC batch is answered as one
// array, each message checked as if alone; under later versions, over the
// count limit, empty, or holding initialize, it is refused saying why.
func TestBatch(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	ro := w.tokenA(readScopes...)
	batch := `[{"jsonrpc":"2.0","id":1,"method":"tools/list"},` +
		toolsCallBody(2, "get_project", map[string]any{}) + `,` +
		`{"jsonrpc":"2.0","method":"notifications/initialized"},` +
		toolsCallBody(3, "update_task", map[string]any{"id": w.taskA.ID, "status": "failed"}) + `,` +
		`{"jsonrpc":"2.0","id":4,"method":"ping"},` +
		`{"jsonrpc":"2.0","id":5,"method":"initialize","params":{"protocolVersion":"2025-03-26"}},` +
		`17]`
	for _, version := range []string{"2025-03-26", ""} {
		var hdr []string
		if version != "" {
			hdr = []string{"Mcp-Protocol-Version", version}
		}
		r := w.post(ro, batch, hdr...)
		if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
			t.Fatalf("batch under %q: %d %s", version, r.status, r.body)
		}
		ms := decodeRPCArray(t, r.body)
		if len(ms) != 6 {
			t.Fatalf("batch under %q: %d responses; want 6: %s", version, len(ms), r.body)
		}
		byID := map[string]rpcMessage{}
		for _, m := range ms {
			byID[string(m.ID)] = m
		}
		if m := byID["1"]; m.Error != nil || !strings.Contains(string(m.Result), `"get_project"`) || strings.Contains(string(m.Result), `"update_task"`) {
			t.Errorf("tools/list in a batch: %s", m.Result)
		}
		if m := byID["2"]; m.Error != nil || !strings.Contains(string(m.Result), "alpha") {
			t.Errorf("get_project in a batch: %+v %s", m.Error, m.Result)
		}
		if m := byID["3"]; m.Error == nil || m.Error.Code != codeForbidden || m.Error.Data.Error != "insufficient_scope" {
			t.Errorf("update_task in a batch with a read-only token: %+v", m.Error)
		}
		if m := byID["4"]; m.Error != nil || string(m.Result) != "{}" {
			t.Errorf("ping in a batch: %+v %s", m.Error, m.Result)
		}
		if m := byID["5"]; m.Error == nil || m.Error.Code != -32600 || !strings.Contains(m.Error.Message, "initialize must not be part") {
			t.Errorf("initialize in a batch: %+v", m.Error)
		}
		if m := byID["null"]; m.Error == nil || m.Error.Code != -32600 {
			t.Errorf("a number in a batch: %+v", m.Error)
		}
	}

	// Notifications only: 202, no body.
	r := w.post(ro, `[{"jsonrpc":"2.0","method":"notifications/initialized"}]`, "Mcp-Protocol-Version", "2025-03-26")
	if r.status != http.StatusAccepted || len(r.body) != 0 {
		t.Errorf("notifications-only batch: %d %s", r.status, r.body)
	}

	refused := func(name, body, version, want string) {
		t.Helper()
		r := w.post(ro, body, "Mcp-Protocol-Version", version)
		m := decodeRPC(t, r.body)
		if r.status != http.StatusBadRequest || m.Error == nil || !strings.Contains(m.Error.Message, want) {
			t.Errorf("%s: %d %s; want 400 saying %q", name, r.status, r.body, want)
		}
	}
	refused("batch under 2025-06-18", `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, "2025-06-18",
		"JSON-RPC batches are not part of MCP protocol 2025-06-18")
	refused("batch under 2025-11-25", `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, "2025-11-25", "send one message per POST")
	refused("empty batch", `[]`, "2025-03-26", "empty batch")
	over := "[" + strings.Repeat(`{"jsonrpc":"2.0","id":1,"method":"ping"},`, maxBatchMessages) + `{"jsonrpc":"2.0","id":1,"method":"ping"}]`
	refused("batch over the count limit", over, "2025-03-26", "over the limit of 32")
	refused("not an array of messages", `[1,`, "2025-03-26", "Parse error")
	full := "[" + strings.Repeat(`{"jsonrpc":"2.0","id":1,"method":"ping"},`, maxBatchMessages-1) + `{"jsonrpc":"2.0","id":1,"method":"ping"}]`
	if r := w.post(ro, full, "Mcp-Protocol-Version", "2025-03-26"); r.status != http.StatusOK || len(decodeRPCArray(t, r.body)) != maxBatchMessages {
		t.Errorf("batch at the count limit: %d %s", r.status, r.body)
	}
	// The body limit holds for a batch as for one message.
	small := newWorld(t, func(o *Options) { o.MaxBodyBytes = 1024 })
	big := "[" + strings.Repeat(`{"jsonrpc":"2.0","id":1,"method":"ping"},`, 30) + `{"jsonrpc":"2.0","id":1,"method":"ping"}]`
	if r := small.post(small.tokenA(readScopes...), big); r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("batch over the body limit: %d", r.status)
	}
}

// TestBatchRateLimit: every message of a batch counts against the token's
// rate; those over it are answered with an error, not served.
func TestBatchRateLimit(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	w := newWorld(t, func(o *Options) {
		o.RateLimit = RateLimit{PerSecond: 1, Burst: 3}
		o.Now = func() time.Time { return now }
	})
	tok := w.tokenA(readScopes...)
	body := "[" + strings.Repeat(`{"jsonrpc":"2.0","id":1,"method":"ping"},`, 4) + `{"jsonrpc":"2.0","id":2,"method":"ping"}]`
	r := w.post(tok, body)
	ms := decodeRPCArray(t, r.body)
	limited := 0
	for _, m := range ms {
		if m.Error != nil && m.Error.Code == codeRateLimited {
			limited++
		}
	}
	if r.status != http.StatusOK || len(ms) != 5 || limited != 2 {
		t.Errorf("5 pings in a batch at burst 3: %d, %d limited: %s", r.status, limited, r.body)
	}
}

// TestInitializeNeedsProtocolVersion: initialize without a protocolVersion
// (or with one that is not a string) is refused with -32602, not taken for
// the latest version.
func TestInitializeNeedsProtocolVersion(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	tok := w.tokenA(readScopes...)
	for _, params := range []string{`{"capabilities":{},"clientInfo":{"name":"x","version":"1"}}`,
		`{"protocolVersion":20250618,"capabilities":{}}`, `{"protocolVersion":null}`} {
		r := w.post(tok, `{"jsonrpc":"2.0","id":9,"method":"initialize","params":`+params+`}`)
		m := decodeRPC(t, r.body)
		if m.Error == nil || m.Error.Code != -32602 || !strings.Contains(m.Error.Message, "protocolVersion") || string(m.ID) != "9" {
			t.Errorf("initialize with %s: %d %s", params, r.status, r.body)
		}
	}
	if r := w.post(tok, `{"jsonrpc":"2.0","id":9,"method":"initialize"}`); rpcError(t, r) != -32602 {
		t.Errorf("initialize without params: %s", r.body)
	}
	if r := w.post(tok, initBody); rpcError(t, r) != 0 {
		t.Errorf("initialize with a version: %s", r.body)
	}
}

// FuzzRefusedRequest posts arbitrary bodies without a token: always 401
// with the challenge, and a body that is JSON (a JSON-RPC error response,
// an array of them, or the OAuth error).
func FuzzRefusedRequest(f *testing.F) {
	w := newWorld(f, nil)
	for _, seed := range []string{initBody, `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, `[`, `{"id":[]}`, `hello`, "\xff", ``} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/mcp", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		w.srv.handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") == "" || !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%q: %d %q %q", body, rec.Code, rec.Header().Get("WWW-Authenticate"), rec.Body)
		}
	})
}
