package mcpserver

import (
	"bufio"
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/agentbroker/agentbroker/tokens"
)

// TestInitialize: mcp-go's own client connects (it probes server/discover
// first, as Claude Code does, and falls back to initialize on -32601), and
// the protocol versions the real agents ask for are accepted.
func TestInitialize(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	tok := w.tokenA(readScopes...)

	c := w.newClient(tok)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := initRequest()
	req.Params.ProtocolVersion = "" // the client's newest: it probes server/discover first
	res, err := c.Initialize(ctx, req)
	if err != nil {
		t.Fatalf("initialize: %v", err)
	}
	if res.ServerInfo.Name != "agentbroker" || res.Capabilities.Tools == nil || !strings.Contains(res.Instructions, "get_instructions") {
		t.Fatalf("initialize result = %+v", res)
	}
	if mcp.IsModernProtocol(c.ProtocolVersion()) {
		t.Fatalf("client settled on %s; the stateless protocol is not offered", c.ProtocolVersion())
	}
	if c.GetSessionId() != "" {
		t.Fatalf("stateless server issued session id %q", c.GetSessionId())
	}
	if got := w.posted(); len(got) < 2 || got[0] != "server/discover" || got[1] != "initialize" {
		t.Fatalf("client sent %v; want the server/discover probe, then initialize", got)
	}

	for _, v := range []string{"2025-11-25", "2025-06-18", "2025-03-26"} { // Claude, Codex, older
		r := w.post(tok, strings.Replace(initBody, "2025-06-18", v, 1))
		msgs := jsonrpcMessages(t, r)
		result, _ := msgs[0]["result"].(map[string]any)
		if r.status != http.StatusOK || result["protocolVersion"] != v {
			t.Errorf("initialize %s: %d %s", v, r.status, r.body)
		}
		if r.header.Get("Mcp-Session-Id") != "" {
			t.Errorf("initialize %s: a session id was issued", v)
		}
	}
}

// TestUnknownMethods: server/discover (Claude Code's first request) and any
// other unknown method get JSON-RPC -32601, whatever protocol version the
// request claims; a notification of an unknown method is accepted silently.
func TestUnknownMethods(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	tok := w.tokenA(readScopes...)
	for _, tt := range []struct {
		name, body string
		header     []string
	}{
		{"discover legacy", `{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{}}`, nil},
		{"discover modern", `{"jsonrpc":"2.0","id":"d-1","method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`,
			[]string{"Mcp-Protocol-Version", "2026-07-28", "Mcp-Method", "server/discover"}},
		{"discover before initialize, Claude style", `{"jsonrpc":"2.0","id":0,"method":"server/discover"}`,
			[]string{"Mcp-Protocol-Version", "2025-11-25"}},
		{"unknown method", `{"jsonrpc":"2.0","id":2,"method":"foo/bar","params":{}}`, nil},
		{"subscriptions/listen", `{"jsonrpc":"2.0","id":3,"method":"subscriptions/listen","params":{}}`, nil},
	} {
		r := w.post(tok, tt.body, tt.header...)
		if r.status != http.StatusOK {
			t.Errorf("%s: status %d: %s", tt.name, r.status, r.body)
			continue
		}
		if code := rpcError(t, r); code != -32601 {
			t.Errorf("%s: error code %v; want -32601: %s", tt.name, code, r.body)
		}
	}
	r := w.post(tok, `{"jsonrpc":"2.0","method":"notifications/whatever"}`)
	if r.status != http.StatusAccepted {
		t.Errorf("unknown notification: %d %s; want 202", r.status, r.body)
	}
}

// TestGetStreamAndDelete: GET opens a keep-alive-only SSE stream (the
// clients that open one keep it), which ends on Close; DELETE is 405 (no
// session to end), as is any other method; OPTIONS lists the methods.
func TestGetStreamAndDelete(t *testing.T) {
	t.Parallel()
	w := newWorld(t, func(o *Options) { o.StreamKeepAlive = 20 * time.Millisecond })
	tok := w.tokenA(readScopes...)

	req, _ := http.NewRequest(http.MethodGet, w.url, nil)
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := w.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("GET: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	keepAlives := 0
	for keepAlives < 2 {
		select {
		case l := <-lines:
			if l != "" && !strings.HasPrefix(l, ":") {
				t.Fatalf("GET stream carried %q; want only comments", l)
			}
			if l == ": keep-alive" {
				keepAlives++
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no keep-alive on the GET stream")
		}
	}
	if got := w.metric("agentbroker_mcp_get_streams"); got != 1 {
		t.Errorf("open streams gauge = %v; want 1", got)
	}
	w.srv.Close()
	for range lines { // the stream ends
	}
	if r := w.do(http.MethodGet, tok, nil, "Mcp-Protocol-Version", "2025-06-18"); r.status != http.StatusServiceUnavailable {
		t.Errorf("GET after Close: %d; want 503", r.status)
	}

	for _, m := range []string{http.MethodDelete, http.MethodPut, http.MethodPatch} {
		r := w.do(m, tok, nil, "Mcp-Session-Id", "mcp-session-whatever")
		if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET, POST, OPTIONS" {
			t.Errorf("%s: %d Allow=%q; want 405 with Allow", m, r.status, r.header.Get("Allow"))
		}
	}
	if r := w.do(http.MethodDelete, "", nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("DELETE without token: %d; want 405 (nothing to authenticate for)", r.status)
	}
	if r := w.do(http.MethodOptions, "", nil); r.status != http.StatusNoContent || r.header.Get("Allow") != "GET, POST, OPTIONS" {
		t.Errorf("OPTIONS: %d %v", r.status, r.header)
	}
	if r := w.do(http.MethodGet, "", nil, "Mcp-Protocol-Version", "2025-06-18"); r.status != http.StatusUnauthorized {
		t.Errorf("GET without token: %d; want 401", r.status)
	}
}

// TestGetStreamLimits: a token may hold only so many GET streams; the
// stream ends when the token expires.
func TestGetStreamLimits(t *testing.T) {
	t.Parallel()
	w := newWorld(t, func(o *Options) { o.RateLimit.PerSecond = -1 })
	tok := w.tokenA(readScopes...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var open []*http.Response
	defer func() {
		for _, r := range open {
			r.Body.Close()
		}
	}()
	for i := 0; i <= maxStreamsPerToken; i++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.url, nil)
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := w.http.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if i < maxStreamsPerToken {
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("stream %d: %d", i, resp.StatusCode)
			}
			open = append(open, resp)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("stream %d: %d; want 429", i, resp.StatusCode)
		}
	}
	// Another token is not affected.
	if r, _ := w.mint(w.projA.ID, w.sessA, tokens.ScopeTasksRead); r != "" {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.url, nil)
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
		req.Header.Set("Authorization", "Bearer "+r)
		resp, err := w.http.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("other token's stream: %d", resp.StatusCode)
		}
	}

	// Expiry: a token living one second; its stream ends by itself.
	raw, _, err := w.tokens.Mint(context.Background(), tokens.Grant{Subject: "a", Project: w.projA.ID, Session: w.sessA,
		Audience: tokens.AudienceMCP, Scopes: []tokens.Scope{tokens.ScopeTasksRead}, Lifetime: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := w.do(http.MethodGet, raw, nil, "Mcp-Protocol-Version", "2025-06-18") // reads until the server ends the stream
		if r.status != http.StatusOK {
			t.Errorf("short-lived token's stream: %d", r.status)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream outlived its token")
	}
}

// TestContinuousListeningClient: mcp-go's client with continuous listening
// works end to end. Its GET stream is accepted (and harmless) when it
// carries the negotiated Mcp-Protocol-Version; mcp-go v1.2.1 may send it
// before it has stored the version (it opens the stream as soon as the
// initialize response arrives), and then gets 405 and goes on without one.
func TestContinuousListeningClient(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	//lint:ignore SA1019 the test is about the legacy standalone GET stream, which the server still serves to clients of the legacy protocol
	c := w.client(w.tokenA(readScopes...), transport.WithContinuousListening())
	res := call(t, c, "get_project", nil)
	if structured(t, res)["project"].(map[string]any)["name"] != "alpha" {
		t.Fatalf("get_project: %s", resultText(t, res))
	}
	ok := waitFor(func() bool {
		return w.metric("agentbroker_mcp_get_streams") == 1 || w.metric(`agentbroker_mcp_requests_refused_total{reason="method"}`) == 1
	})
	if !ok {
		t.Fatal("the client's GET stream neither opened nor was refused")
	}
	call(t, c, "list_tasks", nil)
}

func waitFor(cond func() bool) bool {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

// TestToolsListFiltered: a token sees only the tools its scopes open, and
// tools/list is the observer's readiness signal for the token's session.
func TestToolsListFiltered(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	all := []string{"add_knowledge", "get_instructions", "get_knowledge", "get_project", "get_session_messages", "get_task",
		"list_sessions", "list_tasks", "search_knowledge", "search_messages", "search_tasks", "update_task"}
	for _, tt := range []struct {
		name   string
		scopes []tokens.Scope
		want   []string
	}{
		{"everything", append(allScopes, tokens.ScopeTasksManage), all},
		{"read only", readScopes, []string{"get_instructions", "get_knowledge", "get_project", "get_session_messages", "get_task",
			"list_sessions", "list_tasks", "search_knowledge", "search_messages", "search_tasks"}},
		{"tasks:read", []tokens.Scope{tokens.ScopeTasksRead}, []string{"get_task", "list_tasks", "search_tasks"}},
		{"tasks:write", []tokens.Scope{tokens.ScopeTasksWrite}, []string{"update_task"}},
		{"tasks:manage", []tokens.Scope{tokens.ScopeTasksManage}, []string{"update_task"}},
		{"knowledge:write", []tokens.Scope{tokens.ScopeKnowledgeWrite}, []string{"add_knowledge"}},
		{"sessions:read", []tokens.Scope{tokens.ScopeSessionsRead}, []string{"get_session_messages", "list_sessions", "search_messages"}},
		{"project:read", []tokens.Scope{tokens.ScopeProjectRead}, []string{"get_instructions", "get_project"}},
	} {
		session := "sess-list-" + strings.ReplaceAll(tt.name, " ", "-")
		raw, _ := w.mint(w.projA.ID, session, tt.scopes...)
		c := w.client(raw)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := c.ListTools(ctx, mcp.ListToolsRequest{})
		cancel()
		if err != nil {
			t.Fatalf("%s: tools/list: %v", tt.name, err)
		}
		var got []string
		for _, tool := range res.Tools {
			got = append(got, tool.Name)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: tools/list = %v; want %v", tt.name, got, tt.want)
		}
		if !w.obs.SessionListed(session) {
			t.Errorf("%s: observer was not told that session %s listed tools", tt.name, session)
		}
	}
	if w.obs.SessionListed("sess-never") {
		t.Fatal("observer reports a session that never listed")
	}
}
