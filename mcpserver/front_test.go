package mcpserver

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"

	"github.com/agentbroker/agentbroker/tokens"
)

// TestAuthentication: no token, a token of another audience, a revoked
// token (mid-session) and a token short of a scope are refused at the HTTP
// level, with challenges naming the RFC 9728 metadata, and counted.
func TestAuthentication(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	metaURL := w.http.URL + "/.well-known/oauth-protected-resource/mcp"

	// No token: 401, a challenge without an error code (RFC 6750 §3.1).
	r := w.post("", initBody)
	ch := r.header.Get("WWW-Authenticate")
	if r.status != http.StatusUnauthorized || !strings.Contains(ch, `resource_metadata="`+metaURL+`"`) || strings.Contains(ch, "error=") {
		t.Fatalf("no token: %d %q", r.status, ch)
	}

	// A proxy token: 401 invalid_token.
	proxy, _, err := w.tokens.Mint(context.Background(), tokens.Grant{Subject: "alice", Project: w.projA.ID, Session: w.sessA,
		Audience: tokens.AudienceProxy, Scopes: []tokens.Scope{tokens.ScopeInference}})
	if err != nil {
		t.Fatal(err)
	}
	r = w.post(proxy, initBody)
	ch = r.header.Get("WWW-Authenticate")
	if r.status != http.StatusUnauthorized || !strings.Contains(ch, `error="invalid_token"`) || !strings.Contains(ch, "resource_metadata=") {
		t.Fatalf("proxy token: %d %q", r.status, ch)
	}
	if _, err := w.newClient(proxy).Initialize(context.Background(), initRequest()); err == nil {
		t.Fatal("mcp-go client initialized with a proxy token")
	}

	// Revoked mid-session: the client works, the token is revoked, the next call fails.
	raw, claims := w.mint(w.projA.ID, w.sessA, readScopes...)
	c := w.client(raw)
	call(t, c, "get_project", nil)
	if err := w.tokens.Revoke(context.Background(), claims.ID, claims.ExpiresAt); err != nil {
		t.Fatal(err)
	}
	if _, err := callErr(c, "get_project", nil); err == nil {
		t.Fatal("a revoked token was served")
	}
	// Session revocation works the same way, for a token minted before it.
	raw2, _ := w.mint(w.projA.ID, "sess-ending", readScopes...)
	c2 := w.client(raw2)
	call(t, c2, "list_tasks", nil)
	if err := w.tokens.RevokeSession(context.Background(), "sess-ending"); err != nil {
		t.Fatal(err)
	}
	if _, err := callErr(c2, "list_tasks", nil); err == nil {
		t.Fatal("a token of a revoked session was served")
	}
	r = w.post(raw2, initBody)
	if r.status != http.StatusUnauthorized || !strings.Contains(r.header.Get("WWW-Authenticate"), "token revoked") {
		t.Fatalf("revoked: %d %q", r.status, r.header.Get("WWW-Authenticate"))
	}

	// A tools/call of a tool the scopes do not open: 403 insufficient_scope.
	ro := w.tokenA(readScopes...)
	r = w.post(ro, toolsCallBody(3, "update_task", map[string]any{"id": w.taskA.ID, "status": "failed"}))
	ch = r.header.Get("WWW-Authenticate")
	if r.status != http.StatusForbidden || !strings.Contains(ch, `error="insufficient_scope"`) || !strings.Contains(ch, `scope="tasks:write"`) ||
		!strings.Contains(ch, "resource_metadata=") {
		t.Fatalf("insufficient scope: %d %q %s", r.status, ch, r.body)
	}
	// An unknown tool is mcp-go's JSON-RPC error, as before.
	r = w.post(ro, toolsCallBody(4, "no_such_tool", map[string]any{}))
	if r.status != http.StatusOK || rpcError(t, r) != -32602 {
		t.Fatalf("unknown tool: %d %s", r.status, r.body)
	}

	for series, want := range map[string]float64{
		`agentbroker_mcp_auth_failures_total{reason="missing_token"}`:              1,
		`agentbroker_mcp_auth_failures_total{reason="wrong_audience"}`:             2,
		`agentbroker_mcp_auth_failures_total{reason="revoked"}`:                    3,
		`agentbroker_mcp_auth_failures_total{reason="insufficient_scope"}`:         1,
		`agentbroker_mcp_tool_calls_total{tool="update_task",outcome="forbidden"}`: 1,
	} {
		if got := w.metric(series); got != want {
			t.Errorf("%s = %v; want %v", series, got, want)
		}
	}
}

// TestDefaultRefusesUnauthenticated: without InsecureFixedIdentity (the
// default, and what serve uses) a request without a token is refused.
func TestDefaultRefusesUnauthenticated(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	for _, body := range []string{initBody, toolsCallBody(2, "get_project", map[string]any{})} {
		if r := w.post("", body); r.status != http.StatusUnauthorized {
			t.Fatalf("unauthenticated %s: %d", body, r.status)
		}
	}
	if w.srv.fixed != nil {
		t.Fatal("fixed identity set by default")
	}
}

// TestInsecureFixedIdentity: the conformance-suite mode maps requests
// without a token to the fixed claims; a token, when sent, is still checked.
func TestInsecureFixedIdentity(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	if _, err := New(&Options{Store: w.db, ResourceURL: w.url,
		InsecureFixedIdentity: &tokens.Claims{Audience: tokens.AudienceProxy, Project: "p"}}); err == nil {
		t.Fatal("New accepted fixed claims of the proxy audience")
	}
	if _, err := New(&Options{Store: w.db, ResourceURL: w.url}); err == nil {
		t.Fatal("New accepted neither Tokens nor a fixed identity")
	}
	scopes, _ := tokens.NewScopes(tokens.ScopeProjectRead, tokens.ScopeTasksRead)
	var logs syncBuffer
	srv, err := New(&Options{Store: w.db, ResourceURL: w.url, Tokens: w.tokens, Logger: slogTo(&logs),
		InsecureFixedIdentity: &tokens.Claims{Audience: tokens.AudienceMCP, Project: w.projA.ID, Session: "conformance", Scopes: scopes}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "InsecureFixedIdentity") {
		t.Fatal("no warning logged for the fixed identity")
	}
	mux := http.NewServeMux()
	srv.Mount(mux)
	serve := func(token, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		return rec
	}
	rec := serve("", toolsCallBody(1, "get_project", map[string]any{}))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `\"name\":\"alpha\"`) ||
		!strings.Contains(rec.Body.String(), `conformance`) {
		t.Fatalf("fixed identity: %d %s", rec.Code, rec.Body)
	}
	if rec := serve("", toolsCallBody(2, "update_task", map[string]any{"id": w.taskA.ID})); rec.Code != http.StatusForbidden {
		t.Fatalf("fixed identity beyond its scopes: %d; want 403", rec.Code)
	}
	if rec := serve("not-a-token", initBody); rec.Code != http.StatusUnauthorized {
		t.Fatalf("bad token with fixed identity: %d; want 401", rec.Code)
	}
	if rec := serve(w.tokenA(tokens.ScopeTasksRead), toolsCallBody(3, "get_project", map[string]any{})); rec.Code != http.StatusForbidden {
		t.Fatalf("a real token is judged by its own scopes: %d; want 403", rec.Code)
	}
}

// TestOrigin: DNS-rebinding protection. No Origin passes; the server's own
// origin in its loopback spellings and configured origins pass (the latter
// with CORS headers); anything else is 403 before authentication.
func TestOrigin(t *testing.T) {
	t.Parallel()
	w := newWorld(t, func(o *Options) { o.AllowedOrigins = []string{"https://App.Example.com:443"} })
	tok := w.tokenA(readScopes...)
	port := w.http.URL[strings.LastIndex(w.http.URL, ":")+1:]
	for _, tt := range []struct {
		origin string
		want   int
		cors   bool
	}{
		{"", http.StatusOK, false},
		{"http://127.0.0.1:" + port, http.StatusOK, false},
		{"http://localhost:" + port, http.StatusOK, false},
		{"http://[::1]:" + port, http.StatusOK, false},
		{"https://app.example.com", http.StatusOK, true},
		{"http://127.0.0.1:1", http.StatusForbidden, false},
		{"https://127.0.0.1:" + port, http.StatusForbidden, false},
		{"http://evil.example", http.StatusForbidden, false},
		{"http://app.example.com", http.StatusForbidden, false},
		{"null", http.StatusForbidden, false},
		{"http://127.0.0.1:" + port + "/path", http.StatusForbidden, false},
	} {
		r := w.post(tok, initBody, "Origin", tt.origin)
		if r.status != tt.want {
			t.Errorf("Origin %q: %d; want %d", tt.origin, r.status, tt.want)
		}
		if got := r.header.Get("Access-Control-Allow-Origin") != ""; got != tt.cors {
			t.Errorf("Origin %q: CORS headers %v; want %v", tt.origin, got, tt.cors)
		}
		// Refused before authentication: no token needed to be refused.
		if tt.want == http.StatusForbidden {
			if r := w.post("", initBody, "Origin", tt.origin); r.status != http.StatusForbidden {
				t.Errorf("Origin %q without token: %d; want 403", tt.origin, r.status)
			}
		}
	}
	// A preflight from the allowed origin.
	r := w.do(http.MethodOptions, "", nil, "Origin", "https://app.example.com", "Access-Control-Request-Method", "POST")
	if r.status != http.StatusNoContent || !strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight: %d %v", r.status, r.header)
	}
	if got := w.metric(`agentbroker_mcp_requests_refused_total{reason="origin"}`); got < 6 {
		t.Fatalf("origin refusals counted %v", got)
	}
	if _, err := New(&Options{Store: w.db, Tokens: w.tokens, ResourceURL: w.url, AllowedOrigins: []string{"*"}}); err == nil {
		t.Fatal("New accepted the allowed origin *")
	}
}

// TestBodyLimit: a body over MaxBodyBytes is 413, declared or streamed.
func TestBodyLimit(t *testing.T) {
	t.Parallel()
	w := newWorld(t, func(o *Options) { o.MaxBodyBytes = 4096 })
	tok := w.tokenA(allScopes...)
	big := toolsCallBody(1, "add_knowledge", map[string]any{"title": "t", "body": strings.Repeat("x", 5000)})
	if r := w.post(tok, big); r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("declared big body: %d", r.status)
	}
	// Chunked: no Content-Length, the limit is met while reading.
	if r := w.do(http.MethodPost, tok, struct{ *strings.Reader }{strings.NewReader(big)}); r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("streamed big body: %d", r.status)
	}
	if r := w.post(tok, toolsCallBody(1, "list_tasks", map[string]any{})); r.status != http.StatusOK {
		t.Fatalf("small body: %d", r.status)
	}
	// The default is 1 MiB.
	w2 := newWorld(t, nil)
	tok2 := w2.tokenA(allScopes...)
	huge := toolsCallBody(1, "add_knowledge", map[string]any{"title": "t", "body": strings.Repeat("x", DefaultMaxBodyBytes)})
	if r := w2.post(tok2, huge); r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("1 MiB body: %d", r.status)
	}
	if got := w2.metric(`agentbroker_mcp_requests_refused_total{reason="body_too_large"}`); got != 1 {
		t.Fatalf("body_too_large counted %v", got)
	}
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestRateLimit: each token has its own bucket; beyond it, 429 with
// Retry-After; the bucket refills with time.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t: time.Now()}
	w := newWorld(t, func(o *Options) {
		o.RateLimit = RateLimit{PerSecond: 0.5, Burst: 3}
		o.Now = clk.Now
	})
	tokA := w.tokenA(readScopes...)
	tokB := w.tokenA(readScopes...)
	body := toolsCallBody(1, "list_tasks", map[string]any{})
	for i := 0; i < 3; i++ {
		if r := w.post(tokA, body); r.status != http.StatusOK {
			t.Fatalf("request %d: %d", i, r.status)
		}
	}
	r := w.post(tokA, body)
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "2" {
		t.Fatalf("4th request: %d Retry-After=%q; want 429, 2", r.status, r.header.Get("Retry-After"))
	}
	if r := w.post(tokB, body); r.status != http.StatusOK {
		t.Fatalf("another token: %d", r.status)
	}
	clk.Add(2 * time.Second)
	if r := w.post(tokA, body); r.status != http.StatusOK {
		t.Fatalf("after refill: %d", r.status)
	}
	if r := w.post(tokA, body); r.status != http.StatusTooManyRequests {
		t.Fatalf("after one refill: %d", r.status)
	}
	if got := w.metric(`agentbroker_mcp_requests_refused_total{reason="rate_limited"}`); got != 2 {
		t.Fatalf("rate_limited counted %v", got)
	}
	// The mcp-go client sees the refusal as an error.
	clk.Add(time.Hour)
	c := w.client(tokA) // initialize + notifications/initialized: 2 requests
	call(t, c, "list_tasks", nil)
	if _, err := callErr(c, "list_tasks", nil); err == nil {
		t.Fatal("mcp-go client: a rate-limited call succeeded")
	}
}

// TestLimiter: the defaults, and bounded memory (idle buckets go).
func TestLimiter(t *testing.T) {
	t.Parallel()
	if newLimiter(RateLimit{PerSecond: -1}) != nil {
		t.Fatal("negative rate did not disable")
	}
	l := newLimiter(RateLimit{})
	if l.rate != 50 || l.burst != 100 {
		t.Fatalf("defaults = %v/s burst %v; want 50, 100", l.rate, l.burst)
	}
	t0 := time.Now()
	for i := 0; i < 100; i++ {
		if ok, _ := l.allow("k", t0); !ok {
			t.Fatalf("request %d refused within the burst", i)
		}
	}
	ok, wait := l.allow("k", t0)
	if ok || wait != 20*time.Millisecond {
		t.Fatalf("101st: %v, wait %v; want refused, 20ms", ok, wait)
	}
	for i := 0; i < 5000; i++ {
		l.allow(string(rune('a'+i%26))+time.Duration(i).String(), t0)
	}
	if n := l.size(); n < 5000 {
		t.Fatalf("size %d", n)
	}
	// After a refill period every bucket is full again: the next touch of
	// each shard sweeps it (1000 fresh keys touch all 16 shards).
	later := t0.Add(l.refill + time.Second)
	for i := 0; i < 1000; i++ {
		l.allow("fresh"+time.Duration(i).String(), later)
	}
	if n := l.size(); n > 1000 {
		t.Fatalf("idle buckets kept: %d live; want only the 1000 fresh ones", n)
	}
}

// TestMetadata: the RFC 9728 document at both well-known paths, public.
func TestMetadata(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	for _, p := range []string{"/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"} {
		resp, err := w.http.Client().Get(w.http.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		err = json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %v", p, resp.StatusCode, err)
		}
		if doc["resource"] != w.url || mustJSON(t, doc["bearer_methods_supported"]) != `["header"]` {
			t.Errorf("%s: %v", p, doc)
		}
		if _, ok := doc["authorization_servers"]; ok {
			t.Errorf("%s: authorization_servers present; the broker has none", p)
		}
		scopes := mustJSON(t, doc["scopes_supported"])
		for _, s := range []string{"project:read", "tasks:write", "tasks:manage", "sessions:read"} {
			if !strings.Contains(scopes, `"`+s+`"`) {
				t.Errorf("%s: scopes_supported %s lacks %s", p, scopes, s)
			}
		}
		if strings.Contains(scopes, "inference") || strings.Contains(scopes, "admin") {
			t.Errorf("%s: scopes_supported %s lists non-MCP scopes", p, scopes)
		}
	}
	resp, err := w.http.Client().Post(w.http.URL+"/.well-known/oauth-protected-resource", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST metadata: %d", resp.StatusCode)
	}
	// mcp-go's client follows the challenge to the metadata.
	if got := transportMetadataURL(t, w); got != w.http.URL+"/.well-known/oauth-protected-resource/mcp" {
		t.Fatalf("challenge names %q", got)
	}
}

func mustURL(t testing.TB, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func transportMetadataURL(t *testing.T, w *world) string {
	t.Helper()
	r := w.post("", initBody)
	ch := r.header.Get("WWW-Authenticate")
	return challengeParam(ch, "resource_metadata")
}

// TestNew: required options and bad values.
func TestNew(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	for name, o := range map[string]*Options{
		"nil":            nil,
		"no store":       {Tokens: w.tokens, ResourceURL: w.url},
		"no url":         {Store: w.db, Tokens: w.tokens},
		"bad url":        {Store: w.db, Tokens: w.tokens, ResourceURL: "ftp://x/mcp"},
		"relative url":   {Store: w.db, Tokens: w.tokens, ResourceURL: "/mcp"},
		"negative body":  {Store: w.db, Tokens: w.tokens, ResourceURL: w.url, MaxBodyBytes: -1},
		"origin w/ path": {Store: w.db, Tokens: w.tokens, ResourceURL: w.url, AllowedOrigins: []string{"https://a.example/x"}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
	if got := metadataURL(mustURL(t, "https://broker.example/prefix/mcp")); got != "https://broker.example/.well-known/oauth-protected-resource/prefix/mcp" {
		t.Errorf("metadataURL = %s", got)
	}
}

// TestRevokedClientStream: an mcp-go client holding a GET stream is refused
// on its next call once its token is revoked.
func TestRevokedClientStream(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	raw, c := w.mint(w.projA.ID, w.sessA, readScopes...)
	//lint:ignore SA1019 the test is about the legacy standalone GET stream, which the server still serves to clients of the legacy protocol
	cl := w.client(raw, transport.WithContinuousListening(), versionedGETs(w))
	call(t, cl, "get_project", nil)
	if err := w.tokens.Revoke(context.Background(), c.ID, c.ExpiresAt); err != nil {
		t.Fatal(err)
	}
	_, err := callErr(cl, "get_project", nil)
	if !errors.Is(err, transport.ErrAuthorizationRequired) && !errors.Is(err, transport.ErrUnauthorized) {
		t.Fatalf("call with a revoked token: %v", err)
	}
}

// TestGETStreamEndsWhenTokenRefused: an open GET stream is not a way around
// revocation or expiry: the server ends it (within a second; asserted with
// a generous bound) once its token is revoked, or its session is, or it
// expires, saying why in a last SSE comment.
func TestGETStreamEndsWhenTokenRefused(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	for _, tc := range []struct {
		name   string
		open   func() (raw string, end func())
		reason string
	}{
		{"revoked", func() (string, func()) {
			raw, c := w.mint(w.projA.ID, w.sessA, readScopes...)
			return raw, func() {
				if err := w.tokens.Revoke(context.Background(), c.ID, c.ExpiresAt); err != nil {
					t.Error(err)
				}
			}
		}, "token revoked"},
		{"session revoked", func() (string, func()) {
			raw, _ := w.mint(w.projA.ID, "sess-revoked-stream", readScopes...)
			return raw, func() {
				if err := w.tokens.RevokeSession(context.Background(), "sess-revoked-stream"); err != nil {
					t.Error(err)
				}
			}
		}, "token revoked"},
		{"expired", func() (string, func()) {
			raw, _, err := w.tokens.Mint(context.Background(), tokens.Grant{Subject: "alice", Project: w.projA.ID,
				Session: w.sessA, Audience: tokens.AudienceMCP, Scopes: readScopes, Lifetime: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			return raw, func() {}
		}, "token expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, end := tc.open()
			req, _ := http.NewRequest(http.MethodGet, w.url, nil)
			req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
			req.Header.Set("Accept", "text/event-stream")
			req.Header.Set("Authorization", "Bearer "+raw)
			resp, err := w.http.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET: %d", resp.StatusCode)
			}
			lines := make(chan string, 16)
			go func() {
				defer close(lines)
				sc := bufio.NewScanner(resp.Body)
				for sc.Scan() {
					lines <- sc.Text()
				}
			}()
			end()
			timeout := time.After(5 * time.Second) // the contract is 1s; the bound is generous
			var last string
			for {
				select {
				case l, ok := <-lines:
					if !ok {
						if last != ": "+tc.reason {
							t.Fatalf("stream ended after %q; want a comment %q", last, ": "+tc.reason)
						}
						return
					}
					if l != "" {
						last = l
					}
				case <-timeout:
					t.Fatal("the stream is still open 5s after its token became invalid")
				}
			}
		})
	}
}
