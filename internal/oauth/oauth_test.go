package oauth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentbroker/agentbroker/mcpserver"
	"github.com/agentbroker/agentbroker/store"
	"github.com/agentbroker/agentbroker/store/sqlite"
	"github.com/agentbroker/agentbroker/tokens"
)

// world is a broker's HTTP surface as serve mounts it: the MCP server
// (naming this authorization server), the authorization server, a store
// with two projects, an admin token.
type world struct {
	t            *testing.T
	http         *httptest.Server
	db           *sqlite.DB
	tokens       *tokens.Service
	as           *Server
	admin        string
	projA, projB store.Project
	taskB        store.Task
	statePath    string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, sqlite.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	svc, err := tokens.New(ctx, db, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, db: db, tokens: svc, statePath: filepath.Join(t.TempDir(), "oauth-state.json")}
	if w.projA, err = db.CreateProject(ctx, store.Project{Name: "alpha", Instructions: "Alpha rules."}); err != nil {
		t.Fatal(err)
	}
	if w.projB, err = db.CreateProject(ctx, store.Project{Name: "beta", Instructions: "secret-beta"}); err != nil {
		t.Fatal(err)
	}
	if w.taskB, err = db.CreateTask(ctx, store.Task{ProjectID: w.projB.ID, Title: "secret-beta-task"}); err != nil {
		t.Fatal(err)
	}
	w.admin, _, err = svc.Mint(ctx, tokens.Grant{Subject: "admin", Audience: tokens.AudienceAdmin, Scopes: []tokens.Scope{tokens.ScopeAdmin}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	w.http = httptest.NewServer(mux)
	t.Cleanup(w.http.Close)
	w.as, err = New(Options{Tokens: svc, Projects: db, Issuer: w.http.URL, Resource: w.http.URL + "/mcp", StatePath: w.statePath})
	if err != nil {
		t.Fatal(err)
	}
	mcp, err := mcpserver.New(&mcpserver.Options{Store: db, Tokens: svc, ResourceURL: w.http.URL + "/mcp",
		AuthorizationServers: []string{w.as.Issuer()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mcp.Close() })
	mcp.Mount(mux)
	w.as.Mount(mux)
	return w
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("not JSON (%d): %s", r.status, r.body)
	}
	return m
}

// do sends a request without following redirects; header is pairs.
func (w *world) do(method, path string, body io.Reader, header ...string) response {
	w.t.Helper()
	req, err := http.NewRequest(method, w.http.URL+path, body)
	if err != nil {
		w.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

func (w *world) register(redirects ...string) string {
	w.t.Helper()
	b, _ := json.Marshal(map[string]any{"redirect_uris": redirects, "client_name": "Test client",
		"token_endpoint_auth_method": "none", "grant_types": []string{"authorization_code", "refresh_token"}})
	r := w.do(http.MethodPost, RegisterPath, bytes.NewReader(b), "Content-Type", "application/json")
	if r.status != http.StatusCreated {
		w.t.Fatalf("register: %d %s", r.status, r.body)
	}
	return r.json(w.t)["client_id"].(string)
}

type pkce struct{ verifier, challenge string }

func newPKCE() pkce {
	v := randomToken(32)
	h := sha256.Sum256([]byte(v))
	return pkce{v, base64.RawURLEncoding.EncodeToString(h[:])}
}

// authorize starts an authorization and returns the consent request's ID.
func (w *world) authorize(clientID, redirect string, p pkce) string {
	w.t.Helper()
	r := w.authorizeRaw(url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect},
		"code_challenge": {p.challenge}, "code_challenge_method": {"S256"}, "state": {"st-1"},
		"scope": {"project:read tasks:read"}, "resource": {w.http.URL + "/mcp"}})
	loc := r.header.Get("Location")
	if r.status != http.StatusFound || !strings.HasPrefix(loc, ConsentPagePath+"?request=") {
		w.t.Fatalf("authorize: %d %q %s", r.status, loc, r.body)
	}
	u, _ := url.Parse(loc)
	return u.Query().Get("request")
}

func (w *world) authorizeRaw(q url.Values) response {
	w.t.Helper()
	return w.do(http.MethodGet, AuthorizePath+"?"+q.Encode(), nil)
}

// consent approves request id as the admin and returns the code.
func (w *world) consent(id, project string, scopes ...string) string {
	w.t.Helper()
	r := w.consentRaw(id, w.admin, map[string]any{"decision": "approve", "project": project, "scopes": scopes,
		"lifetime_seconds": 86400, "name": "my laptop"})
	if r.status != http.StatusOK {
		w.t.Fatalf("consent: %d %s", r.status, r.body)
	}
	u, err := url.Parse(r.json(w.t)["redirect_to"].(string))
	if err != nil || u.Query().Get("state") != "st-1" || u.Query().Get("iss") != w.http.URL {
		w.t.Fatalf("redirect_to: %v %v", u, err)
	}
	return u.Query().Get("code")
}

func (w *world) consentRaw(id, token string, body any, header ...string) response {
	w.t.Helper()
	b, _ := json.Marshal(body)
	h := append([]string{"Content-Type", "application/json"}, header...)
	if token != "" {
		h = append(h, "Authorization", "Bearer "+token)
	}
	return w.do(http.MethodPost, requestsPath+id, bytes.NewReader(b), h...)
}

func (w *world) token(form url.Values) response {
	w.t.Helper()
	return w.do(http.MethodPost, TokenPath, strings.NewReader(form.Encode()), "Content-Type", "application/x-www-form-urlencoded")
}

func (w *world) exchange(clientID, redirect, code, verifier string) response {
	w.t.Helper()
	return w.token(url.Values{"grant_type": {"authorization_code"}, "client_id": {clientID}, "redirect_uri": {redirect},
		"code": {code}, "code_verifier": {verifier}, "resource": {w.http.URL + "/mcp"}})
}

func (w *world) refresh(clientID, rt string) response {
	w.t.Helper()
	return w.token(url.Values{"grant_type": {"refresh_token"}, "client_id": {clientID}, "refresh_token": {rt}})
}

// connect runs the whole flow for project and returns the client ID and
// the token response.
func (w *world) connect(project string, scopes ...string) (clientID string, tok map[string]any) {
	w.t.Helper()
	redirect := "http://127.0.0.1:33333/callback"
	clientID = w.register(redirect)
	p := newPKCE()
	code := w.consent(w.authorize(clientID, redirect, p), project, scopes...)
	r := w.exchange(clientID, redirect, code, p.verifier)
	if r.status != http.StatusOK {
		w.t.Fatalf("exchange: %d %s", r.status, r.body)
	}
	return clientID, r.json(w.t)
}

// mcpCall posts one tools/call and returns the HTTP status and body.
func (w *world) mcpCall(token, tool string, args map[string]any) response {
	w.t.Helper()
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call",
		"params": map[string]any{"name": tool, "arguments": args}})
	return w.do(http.MethodPost, "/mcp", bytes.NewReader(b), "Content-Type", "application/json",
		"Accept", "application/json, text/event-stream", "Authorization", "Bearer "+token, "Mcp-Protocol-Version", "2025-06-18")
}

func (w *world) connections() []map[string]any {
	w.t.Helper()
	r := w.do(http.MethodGet, connectionsPath, nil, "Authorization", "Bearer "+w.admin)
	if r.status != http.StatusOK {
		w.t.Fatalf("connections: %d %s", r.status, r.body)
	}
	var out struct {
		Connections []map[string]any `json:"connections"`
	}
	_ = json.Unmarshal(r.body, &out)
	return out.Connections
}

// TestMetadata: the MCP resource names this authorization server; its
// RFC 8414 metadata offers the code grant with S256 PKCE only, public
// clients, dynamic registration.
func TestMetadata(t *testing.T) {
	w := newWorld(t)
	prm := w.do(http.MethodGet, "/.well-known/oauth-protected-resource/mcp", nil).json(t)
	if as, _ := prm["authorization_servers"].([]any); len(as) != 1 || as[0] != w.http.URL {
		t.Errorf("protected resource metadata: %v", prm)
	}
	m := w.do(http.MethodGet, MetadataPath, nil).json(t)
	for k, want := range map[string]string{
		"issuer": w.http.URL, "authorization_endpoint": w.http.URL + AuthorizePath, "token_endpoint": w.http.URL + TokenPath,
		"registration_endpoint": w.http.URL + RegisterPath,
	} {
		if m[k] != want {
			t.Errorf("%s = %v; want %s", k, m[k], want)
		}
	}
	if got, _ := json.Marshal(m["code_challenge_methods_supported"]); string(got) != `["S256"]` {
		t.Errorf("code_challenge_methods_supported = %s", got)
	}
	if got, _ := json.Marshal(m["token_endpoint_auth_methods_supported"]); string(got) != `["none"]` {
		t.Errorf("token_endpoint_auth_methods_supported = %s", got)
	}
}

// TestFlow: registration, authorization with PKCE, consent, exchange, a
// tools/call with the token, refresh (rotated), the connection listed, its
// revocation, and the refusal of both tokens after it.
func TestFlow(t *testing.T) {
	w := newWorld(t)
	clientID, tok := w.connect(w.projA.ID, "project:read", "tasks:read")
	access, rt := tok["access_token"].(string), tok["refresh_token"].(string)
	if tok["token_type"] != "Bearer" || tok["scope"] != "project:read tasks:read" || access == "" || rt == "" {
		t.Fatalf("token response: %v", tok)
	}
	c, err := w.tokens.Verify(context.Background(), access, tokens.AudienceMCP)
	if err != nil || c.Project != w.projA.ID || !strings.HasPrefix(c.Session, sessionPrefix) || c.Subject != "admin" {
		t.Fatalf("access token claims: %+v %v", c, err)
	}
	r := w.mcpCall(access, "get_project", nil)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), "alpha") {
		t.Fatalf("get_project with the OAuth token: %d %s", r.status, r.body)
	}
	// The scopes the admin gave, not more: tasks:write was not given.
	if r := w.mcpCall(access, "update_task", map[string]any{"id": "x", "status": "failed"}); r.status != http.StatusForbidden {
		t.Errorf("update_task without tasks:write: %d", r.status)
	}

	r = w.refresh(clientID, rt)
	if r.status != http.StatusOK {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	tok2 := r.json(t)
	access2, rt2 := tok2["access_token"].(string), tok2["refresh_token"].(string)
	if rt2 == rt || access2 == access {
		t.Fatal("refresh did not rotate")
	}
	if r := w.mcpCall(access2, "get_project", nil); r.status != http.StatusOK {
		t.Fatalf("get_project with the refreshed token: %d %s", r.status, r.body)
	}

	conns := w.connections()
	if len(conns) != 1 || conns[0]["name"] != "my laptop" || conns[0]["project"] != w.projA.ID || conns[0]["revoked"] != nil {
		t.Fatalf("connections: %v", conns)
	}
	if strings.Contains(string(mustJSON(conns)), "refresh") {
		t.Error("the connection list shows refresh token hashes")
	}
	// The state file is private and holds no token, only hashes.
	if fi, err := os.Stat(w.statePath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(w.statePath); bytes.Contains(b, []byte(rt2)) || bytes.Contains(b, []byte(access2)) {
		t.Error("the state file holds a token")
	}

	id := conns[0]["id"].(string)
	if r := w.do(http.MethodDelete, connectionsPath+"/"+id, nil, "Authorization", "Bearer "+w.admin); r.status != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	if r := w.mcpCall(access2, "get_project", nil); r.status != http.StatusUnauthorized {
		t.Errorf("access token after revocation: %d %s", r.status, r.body)
	}
	if r := w.refresh(clientID, rt2); r.status != http.StatusBadRequest || r.json(t)["error"] != "invalid_grant" {
		t.Errorf("refresh after revocation: %d %s", r.status, r.body)
	}
	if conns := w.connections(); conns[0]["revoked"] == nil {
		t.Errorf("revoked connection not shown as revoked: %v", conns)
	}

	// A new server on the same state file knows the client and connection.
	as2, err := New(Options{Tokens: w.tokens, Projects: w.db, Issuer: w.http.URL, Resource: w.http.URL + "/mcp", StatePath: w.statePath})
	if err != nil || as2.st.Clients[clientID] == nil || as2.st.Connections[id] == nil || as2.st.Connections[id].Revoked == nil {
		t.Errorf("state not reloaded: %v", err)
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// TestAttackCodeReplay: a code exchanged twice is refused the second time,
// and the connection it made is revoked (its first token too).
func TestAttackCodeReplay(t *testing.T) {
	w := newWorld(t)
	redirect := "http://127.0.0.1:33333/callback"
	clientID := w.register(redirect)
	p := newPKCE()
	code := w.consent(w.authorize(clientID, redirect, p), w.projA.ID, "project:read")
	first := w.exchange(clientID, redirect, code, p.verifier)
	if first.status != http.StatusOK {
		t.Fatalf("first exchange: %d %s", first.status, first.body)
	}
	access := first.json(t)["access_token"].(string)
	second := w.exchange(clientID, redirect, code, p.verifier)
	if second.status != http.StatusBadRequest || second.json(t)["error"] != "invalid_grant" {
		t.Fatalf("replayed code: %d %s", second.status, second.body)
	}
	if r := w.mcpCall(access, "get_project", nil); r.status != http.StatusUnauthorized {
		t.Errorf("token of a replayed code: %d; want 401 (connection revoked)", r.status)
	}
	if r := w.refresh(clientID, first.json(t)["refresh_token"].(string)); r.status != http.StatusBadRequest {
		t.Errorf("refresh token of a replayed code: %d", r.status)
	}
}

// TestAttackWrongVerifier: a code with the wrong PKCE verifier (or none,
// or another client's ID, or another redirect URI) is refused, and burnt:
// the right verifier afterwards gets nothing either.
func TestAttackWrongVerifier(t *testing.T) {
	w := newWorld(t)
	redirect := "http://127.0.0.1:33333/callback"
	clientID := w.register(redirect)
	other := w.register(redirect)
	for name, mutate := range map[string]func(cid, red, ver *string){
		"wrong verifier":   func(_, _, v *string) { *v = newPKCE().verifier },
		"no verifier":      func(_, _, v *string) { *v = "" },
		"plain challenge":  func(_, _, v *string) { *v = strings.Repeat("a", 43) },
		"another client":   func(c, _, _ *string) { *c = other },
		"another redirect": func(_, r, _ *string) { *r = "http://127.0.0.1:33333/other" },
	} {
		p := newPKCE()
		code := w.consent(w.authorize(clientID, redirect, p), w.projA.ID, "project:read")
		cid, red, ver := clientID, redirect, p.verifier
		mutate(&cid, &red, &ver)
		if r := w.exchange(cid, red, code, ver); r.status != http.StatusBadRequest || r.json(t)["error"] != "invalid_grant" {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
		if r := w.exchange(clientID, redirect, code, p.verifier); r.status != http.StatusBadRequest {
			t.Errorf("%s, then the right exchange: %d %s; want the code burnt", name, r.status, r.body)
		}
	}
	// PKCE is required, S256 only: the authorization request is refused
	// back to the client.
	for name, q := range map[string]url.Values{
		"no challenge": {"code_challenge": nil},
		"plain":        {"code_challenge_method": {"plain"}},
	} {
		v := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect},
			"code_challenge": {newPKCE().challenge}, "code_challenge_method": {"S256"}, "state": {"s"}}
		for k, x := range q {
			v[k] = x
		}
		r := w.authorizeRaw(v)
		loc, _ := url.Parse(r.header.Get("Location"))
		if r.status != http.StatusFound || loc.Query().Get("error") != "invalid_request" || !strings.HasPrefix(loc.String(), redirect) {
			t.Errorf("%s: %d %s", name, r.status, r.header.Get("Location"))
		}
	}
}

// TestAttackRedirectURI: an authorization request with a redirect URI the
// client did not register is refused here (never redirected there);
// registration takes https, loopback http and private-use schemes only; a
// loopback redirect may change its port (RFC 8252 §7.3) and nothing else.
func TestAttackRedirectURI(t *testing.T) {
	w := newWorld(t)
	clientID := w.register("http://127.0.0.1:33333/callback", "https://app.example/cb")
	for _, bad := range []string{"https://evil.example/cb", "https://app.example/cb/x", "https://app.example/cb?x=1",
		"http://127.0.0.1:33333/other", "http://evil.example:33333/callback", "http://localhost:33333/callback",
		"https://app.example:8443/cb", ""} {
		r := w.authorizeRaw(url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {bad},
			"code_challenge": {newPKCE().challenge}, "code_challenge_method": {"S256"}})
		if r.status != http.StatusBadRequest || r.header.Get("Location") != "" {
			t.Errorf("redirect_uri %q: %d %q", bad, r.status, r.header.Get("Location"))
		}
	}
	// redirect_uri is required, even for a client with one.
	single := w.register("https://app.example/only")
	if r := w.authorizeRaw(url.Values{"response_type": {"code"}, "client_id": {single},
		"code_challenge": {newPKCE().challenge}, "code_challenge_method": {"S256"}}); r.status != http.StatusBadRequest || r.header.Get("Location") != "" {
		t.Errorf("no redirect_uri: %d %q", r.status, r.header.Get("Location"))
	}
	// RFC 8252: the loopback port may differ.
	p := newPKCE()
	id := w.authorize(clientID, "http://127.0.0.1:45678/callback", p)
	code := w.consent(id, w.projA.ID, "project:read")
	if r := w.exchange(clientID, "http://127.0.0.1:45678/callback", code, p.verifier); r.status != http.StatusOK {
		t.Errorf("loopback redirect on another port: %d %s", r.status, r.body)
	}
	// An unknown client: refused here too.
	if r := w.authorizeRaw(url.Values{"client_id": {"nope"}, "redirect_uri": {"https://evil.example/cb"}}); r.status != http.StatusBadRequest || r.header.Get("Location") != "" {
		t.Errorf("unknown client: %d", r.status)
	}
	for _, bad := range [][]string{{"http://app.example/cb"}, {"https://app.example/cb#frag"}, {"javascript:alert(1)"},
		{"myapp:/cb"}, {"/relative"}, {}, {"https://" + strings.Repeat("a", maxURILen) + ".example/"}} {
		b, _ := json.Marshal(map[string]any{"redirect_uris": bad})
		if r := w.do(http.MethodPost, RegisterPath, bytes.NewReader(b)); r.status != http.StatusBadRequest {
			t.Errorf("register %v: %d %s", bad, r.status, r.body)
		}
	}
	b, _ := json.Marshal(map[string]any{"redirect_uris": []string{"com.example.app:/oauth", "http://[::1]/cb"}})
	if r := w.do(http.MethodPost, RegisterPath, bytes.NewReader(b)); r.status != http.StatusCreated {
		t.Errorf("register a private-use scheme and [::1]: %d %s", r.status, r.body)
	}
}

// TestAttackOtherProject: a connection's token is bound to its project:
// another project's task or resource is not found with it, and its claims
// cannot be changed without breaking the signature.
func TestAttackOtherProject(t *testing.T) {
	w := newWorld(t)
	_, tok := w.connect(w.projA.ID, "project:read", "tasks:read")
	access := tok["access_token"].(string)
	r := w.mcpCall(access, "get_task", map[string]any{"id": w.taskB.ID})
	if r.status != http.StatusOK || !strings.Contains(string(r.body), "not found") || strings.Contains(string(r.body), "secret-beta") {
		t.Errorf("project B's task with project A's connection: %d %s", r.status, r.body)
	}
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 2, "method": "resources/read",
		"params": map[string]any{"uri": "agentbroker://tasks/" + w.taskB.ID}})
	r = w.do(http.MethodPost, "/mcp", bytes.NewReader(b), "Content-Type", "application/json",
		"Accept", "application/json, text/event-stream", "Authorization", "Bearer "+access, "Mcp-Protocol-Version", "2025-06-18")
	if !strings.Contains(string(r.body), "-32002") || strings.Contains(string(r.body), "secret-beta") {
		t.Errorf("project B's task resource: %d %s", r.status, r.body)
	}
	if r := w.mcpCall(access, "get_project", nil); strings.Contains(string(r.body), "beta") {
		t.Errorf("get_project shows project B: %s", r.body)
	}
	// A second connection, to project B, and its revocation leave A's alone.
	_, tokB := w.connect(w.projB.ID, "project:read")
	for _, c := range w.connections() {
		if c["project"] == w.projB.ID {
			w.do(http.MethodDelete, connectionsPath+"/"+c["id"].(string), nil, "Authorization", "Bearer "+w.admin)
		}
	}
	if r := w.mcpCall(tokB["access_token"].(string), "get_project", nil); r.status != http.StatusUnauthorized {
		t.Errorf("B's revoked token: %d", r.status)
	}
	if r := w.mcpCall(access, "get_project", nil); r.status != http.StatusOK {
		t.Errorf("A's token after B's revocation: %d", r.status)
	}
}

// TestAttackRefreshReuse: a refresh token used twice revokes the
// connection: the thief's and the client's tokens both stop working.
func TestAttackRefreshReuse(t *testing.T) {
	w := newWorld(t)
	clientID, tok := w.connect(w.projA.ID, "project:read")
	rt := tok["refresh_token"].(string)
	r := w.refresh(clientID, rt)
	if r.status != http.StatusOK {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	newer := r.json(t)
	r = w.refresh(clientID, rt) // reused
	if r.status != http.StatusBadRequest || r.json(t)["error"] != "invalid_grant" {
		t.Fatalf("reused refresh token: %d %s", r.status, r.body)
	}
	if r := w.refresh(clientID, newer["refresh_token"].(string)); r.status != http.StatusBadRequest {
		t.Errorf("the rotated refresh token after a reuse: %d; want refused", r.status)
	}
	if r := w.mcpCall(newer["access_token"].(string), "get_project", nil); r.status != http.StatusUnauthorized {
		t.Errorf("access token after a reuse: %d; want 401", r.status)
	}
	if c := w.connections(); c[0]["revoked"] == nil || !strings.Contains(c[0]["revoked_reason"].(string), "reused") {
		t.Errorf("connection after a reuse: %v", c)
	}
	// Another client's refresh token is not this client's.
	other, tok2 := w.connect(w.projA.ID, "project:read")
	_ = other
	if r := w.refresh(clientID, tok2["refresh_token"].(string)); r.status != http.StatusBadRequest {
		t.Errorf("refresh with another client's token: %d", r.status)
	}
}

// TestRefreshRace: the same refresh token sent twice at once is a reuse
// however the two requests interleave: at most one gets tokens, and the
// connection ends revoked.
func TestRefreshRace(t *testing.T) {
	w := newWorld(t)
	for round := range 5 {
		clientID, tok := w.connect(w.projA.ID, "project:read")
		rt := tok["refresh_token"].(string)
		statuses := make(chan int, 2)
		for range 2 {
			go func() {
				form := url.Values{"grant_type": {"refresh_token"}, "client_id": {clientID}, "refresh_token": {rt}}
				resp, err := http.PostForm(w.http.URL+TokenPath, form)
				if err != nil {
					statuses <- 0
					return
				}
				resp.Body.Close()
				statuses <- resp.StatusCode
			}()
		}
		ok := 0
		for range 2 {
			if <-statuses == http.StatusOK {
				ok++
			}
		}
		revoked := false
		for _, c := range w.connections() {
			if c["client_id"] == clientID {
				revoked = c["revoked"] != nil
			}
		}
		if ok > 1 || !revoked {
			t.Errorf("round %d: %d refreshes succeeded, connection revoked %v; want at most 1, revoked", round, ok, revoked)
		}
	}
}

// TestAttackConsentWithoutAdmin: the consent endpoints need the admin
// token: none, an MCP token or a garbage one get 401, and the request stays
// undecided.
func TestAttackConsentWithoutAdmin(t *testing.T) {
	w := newWorld(t)
	redirect := "http://127.0.0.1:33333/callback"
	clientID := w.register(redirect)
	p := newPKCE()
	id := w.authorize(clientID, redirect, p)
	_, mcpTok := w.connect(w.projA.ID, "project:read")
	approve := map[string]any{"decision": "approve", "project": w.projA.ID, "scopes": []string{"project:read"}, "lifetime_seconds": 3600}
	for name, tok := range map[string]string{"none": "", "mcp token": mcpTok["access_token"].(string), "garbage": "x.y.z"} {
		if r := w.consentRaw(id, tok, approve); r.status != http.StatusUnauthorized {
			t.Errorf("consent with %s: %d %s", name, r.status, r.body)
		}
		h := []string{}
		if tok != "" {
			h = []string{"Authorization", "Bearer " + tok}
		}
		if r := w.do(http.MethodGet, requestsPath+id, nil, h...); r.status != http.StatusUnauthorized {
			t.Errorf("read the request with %s: %d", name, r.status)
		}
		if r := w.do(http.MethodGet, connectionsPath, nil, h...); r.status != http.StatusUnauthorized {
			t.Errorf("list connections with %s: %d", name, r.status)
		}
	}
	// Still pending: the admin can decide it.
	if code := w.consent(id, w.projA.ID, "project:read"); code == "" {
		t.Error("no code")
	}
	// Decided once only.
	if r := w.consentRaw(id, w.admin, approve); r.status != http.StatusNotFound {
		t.Errorf("second decision: %d", r.status)
	}
}

// TestAttackConsentCSRF: a cross-site page cannot approve: a form post
// carries no bearer token (the admin's credential is never a cookie), and
// a request from a foreign Origin is refused even with one.
func TestAttackConsentCSRF(t *testing.T) {
	w := newWorld(t)
	redirect := "http://127.0.0.1:33333/callback"
	clientID := w.register(redirect)
	id := w.authorize(clientID, redirect, newPKCE())
	form := url.Values{"decision": {"approve"}, "project": {w.projA.ID}, "scopes": {"project:read"}, "lifetime_seconds": {"3600"}}
	r := w.do(http.MethodPost, requestsPath+id, strings.NewReader(form.Encode()),
		"Content-Type", "application/x-www-form-urlencoded", "Origin", "https://evil.example",
		"Cookie", "session=whatever")
	if r.status != http.StatusForbidden {
		t.Errorf("cross-site form post: %d %s", r.status, r.body)
	}
	r = w.consentRaw(id, w.admin, map[string]any{"decision": "approve", "project": w.projA.ID,
		"scopes": []string{"project:read"}, "lifetime_seconds": 3600}, "Origin", "https://evil.example")
	if r.status != http.StatusForbidden {
		t.Errorf("foreign Origin with the admin token: %d %s", r.status, r.body)
	}
	r = w.do(http.MethodPost, requestsPath+id, strings.NewReader(form.Encode()), "Content-Type", "application/x-www-form-urlencoded")
	if r.status != http.StatusUnauthorized {
		t.Errorf("form post without Origin nor token: %d", r.status)
	}
	// The console's own origin with the token decides it.
	r = w.consentRaw(id, w.admin, map[string]any{"decision": "deny"}, "Origin", w.http.URL)
	loc, _ := url.Parse(r.json(t)["redirect_to"].(string))
	if r.status != http.StatusOK || loc.Query().Get("error") != "access_denied" || loc.Query().Get("state") != "st-1" {
		t.Errorf("deny from the console: %d %s", r.status, r.body)
	}
}

// TestConsentChecks: the admin's choices are checked: known MCP scopes, a
// project that exists, a lifetime within a year.
func TestConsentChecks(t *testing.T) {
	w := newWorld(t)
	redirect := "http://127.0.0.1:33333/callback"
	clientID := w.register(redirect)
	id := w.authorize(clientID, redirect, newPKCE())
	for name, body := range map[string]map[string]any{
		"admin scope":  {"decision": "approve", "project": w.projA.ID, "scopes": []string{"admin"}, "lifetime_seconds": 60},
		"inference":    {"decision": "approve", "project": w.projA.ID, "scopes": []string{"inference"}, "lifetime_seconds": 60},
		"no scope":     {"decision": "approve", "project": w.projA.ID, "scopes": []string{}, "lifetime_seconds": 60},
		"no project":   {"decision": "approve", "project": "nope", "scopes": []string{"project:read"}, "lifetime_seconds": 60},
		"too long":     {"decision": "approve", "project": w.projA.ID, "scopes": []string{"project:read"}, "lifetime_seconds": 400 * 86400},
		"no lifetime":  {"decision": "approve", "project": w.projA.ID, "scopes": []string{"project:read"}},
		"bad decision": {"decision": "maybe"},
	} {
		if r := w.consentRaw(id, w.admin, body); r.status != http.StatusBadRequest {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	r := w.do(http.MethodGet, requestsPath+id, nil, "Authorization", "Bearer "+w.admin)
	m := r.json(t)
	if r.status != http.StatusOK || m["client_name"] != "Test client" || m["redirect_uri"] != redirect {
		t.Errorf("request read: %d %s", r.status, r.body)
	}
}

// TestConnectionExpiry: tokens of a connection never outlive it, and a
// refresh after its end is refused.
func TestConnectionExpiry(t *testing.T) {
	w := newWorld(t)
	now := time.Now()
	w.as.o.Now = func() time.Time { return now }
	redirect := "http://127.0.0.1:33333/callback"
	clientID := w.register(redirect)
	p := newPKCE()
	id := w.authorize(clientID, redirect, p)
	r := w.consentRaw(id, w.admin, map[string]any{"decision": "approve", "project": w.projA.ID,
		"scopes": []string{"project:read"}, "lifetime_seconds": 600})
	u, _ := url.Parse(r.json(t)["redirect_to"].(string))
	r = w.exchange(clientID, redirect, u.Query().Get("code"), p.verifier)
	tok := r.json(t)
	if exp := tok["expires_in"].(float64); exp > 600 || exp < 590 {
		t.Errorf("expires_in = %v; want the connection's 600s", exp)
	}
	now = now.Add(11 * time.Minute)
	if r := w.refresh(clientID, tok["refresh_token"].(string)); r.status != http.StatusBadRequest {
		t.Errorf("refresh after the connection's end: %d", r.status)
	}
}

// FuzzRegistration: parseRegistration never panics, and whatever it
// accepts has 1..8 redirect URIs that checkRedirectURI accepts.
func FuzzRegistration(f *testing.F) {
	for _, s := range []string{`{"redirect_uris":["http://127.0.0.1/cb"]}`, `{"redirect_uris":["com.x.y:/cb"],"client_name":"a"}`,
		`{"redirect_uris":[]}`, `[]`, `{"redirect_uris":["https://a/#x"]}`, `{"redirect_uris":["http://[::1]:1/"]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		reg, err := parseRegistration(b)
		if err != nil {
			return
		}
		if len(reg.RedirectURIs) == 0 || len(reg.RedirectURIs) > maxRedirectURIs {
			t.Fatalf("accepted %d redirect URIs", len(reg.RedirectURIs))
		}
		for _, u := range reg.RedirectURIs {
			if checkRedirectURI(u) != nil || strings.Contains(u, "#") {
				t.Fatalf("accepted %q", u)
			}
			if !redirectMatches(reg.RedirectURIs, u) {
				t.Fatalf("%q does not match itself", u)
			}
		}
	})
}

// FuzzRedirectMatch: a URI matches a registered one only when equal, or a
// loopback http URI differing in the port alone.
func FuzzRedirectMatch(f *testing.F) {
	f.Add("http://127.0.0.1:1/cb", "http://127.0.0.1:2/cb")
	f.Add("https://a.example/cb", "https://a.example/cb/")
	f.Add("http://localhost/cb", "http://localhost:9/cb?x")
	f.Fuzz(func(t *testing.T, registered, got string) {
		if !redirectMatches([]string{registered}, got) || registered == got {
			return
		}
		ru, err1 := url.Parse(registered)
		gu, err2 := url.Parse(got)
		if err1 != nil || err2 != nil || gu.Scheme != "http" || ru.Scheme != "http" || !isLoopbackHost(gu.Hostname()) ||
			ru.Hostname() != gu.Hostname() || ru.EscapedPath() != gu.EscapedPath() || ru.RawQuery != gu.RawQuery {
			t.Fatalf("%q matched registered %q", got, registered)
		}
	})
}

// TestStateUnwritable: when the state file cannot be written,
// registration, consent and refresh answer 503 and change nothing: no
// client, no connection, and the refresh token stays good.
func TestStateUnwritable(t *testing.T) {
	w := newWorld(t)
	redirect := "http://127.0.0.1:33333/callback"
	cid, tok := w.connect(w.projA.ID, "project:read") // before the writes fail
	clientID := w.register(redirect)
	p := newPKCE()
	id := w.authorize(clientID, redirect, p)
	counts := func() (int, int, int) {
		w.as.mu.Lock()
		defer w.as.mu.Unlock()
		return len(w.as.st.Clients), len(w.as.st.Connections), len(w.as.codes)
	}
	clients, conns, codes := counts()
	// The state file's folder becomes a file: every write fails.
	dir := filepath.Join(t.TempDir(), "gone")
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	w.as.mu.Lock()
	w.as.o.StatePath = filepath.Join(dir, "oauth-state.json")
	w.as.mu.Unlock()

	b, _ := json.Marshal(map[string]any{"redirect_uris": []string{redirect}})
	if r := w.do(http.MethodPost, RegisterPath, bytes.NewReader(b)); r.status != http.StatusServiceUnavailable {
		t.Errorf("register: %d %s", r.status, r.body)
	}
	r := w.consentRaw(id, w.admin, map[string]any{"decision": "approve", "project": w.projA.ID,
		"scopes": []string{"project:read"}, "lifetime_seconds": 3600})
	if r.status != http.StatusServiceUnavailable || strings.Contains(string(r.body), "code=") {
		t.Errorf("consent: %d %s", r.status, r.body)
	}
	if r := w.refresh(cid, tok["refresh_token"].(string)); r.status != http.StatusServiceUnavailable {
		t.Errorf("refresh: %d %s", r.status, r.body)
	}
	if c2, n2, k2 := counts(); c2 != clients || n2 != conns || k2 != codes {
		t.Errorf("after failed writes: %d clients, %d connections, %d codes; want %d, %d, %d", c2, n2, k2, clients, conns, codes)
	}

	w.as.mu.Lock()
	w.as.o.StatePath = w.statePath
	w.as.mu.Unlock()
	if r := w.refresh(cid, tok["refresh_token"].(string)); r.status != http.StatusOK {
		t.Errorf("refresh once the state can be written: %d %s; the failed one must not count as a use", r.status, r.body)
	}
}
