package tokens

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestMiddleware(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	readTok, _ := mint(t, f.svc, mcpGrant())
	g := mcpGrant()
	g.Scopes = append(g.Scopes, ScopeTasksWrite)
	writeTok, _ := mint(t, f.svc, g)
	proxyTok, _ := mint(t, f.svc, proxyGrant())
	adminTok, _ := mint(t, f.svc, Grant{Subject: "root", Audience: AudienceAdmin, Scopes: []Scope{ScopeAdmin}})
	expiring, _ := mint(t, f.svc, Grant{Subject: "u", Project: "p", Session: "s", Audience: AudienceMCP,
		Scopes: []Scope{ScopeTasksRead}, Lifetime: time.Minute})
	revoked, rc := mint(t, f.svc, mcpGrant())
	if err := f.svc.Revoke(context.Background(), rc.ID, rc.ExpiresAt); err != nil {
		t.Fatal(err)
	}
	f.clk.Add(2 * time.Minute) // expiring is now expired

	// Each protected handler reports the claims it got.
	var calls int
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		c, ok := ClaimsFrom(r.Context())
		if !ok {
			t.Error("handler ran without claims")
		}
		io.WriteString(w, c.Subject)
	})
	mux := http.NewServeMux()
	mux.Handle("/mcp/read", f.svc.Middleware(AudienceMCP, ScopeTasksRead)(handler))
	mux.Handle("/mcp/write", f.svc.Middleware(AudienceMCP, ScopeTasksRead, ScopeTasksWrite)(handler))
	mux.Handle("/mcp/meta", f.svc.MiddlewareWith(MiddlewareOptions{Audience: AudienceMCP,
		ResourceMetadata: "https://broker.example/.well-known/oauth-protected-resource/mcp"})(handler))
	mux.Handle("/proxy", f.svc.MiddlewareWith(MiddlewareOptions{Audience: AudienceProxy,
		Scopes: []Scope{ScopeInference}, AcceptAPIKey: true})(handler))
	mux.Handle("/proxy/strict", f.svc.Middleware(AudienceProxy, ScopeInference)(handler))
	mux.Handle("/admin", f.svc.Middleware(AudienceAdmin, ScopeTasksWrite)(handler))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	for _, tc := range []struct {
		name      string
		path      string
		hdr       http.Header
		status    int
		challenge string // expected WWW-Authenticate ("" = none)
		errCode   string // expected body error
	}{
		{"bearer", "/mcp/read", bearer(readTok), 200, "", ""},
		{"lowercase scheme", "/mcp/read", http.Header{"Authorization": {"bearer " + readTok}}, 200, "", ""},
		{"uppercase scheme", "/mcp/read", http.Header{"Authorization": {"BEARER " + readTok}}, 200, "", ""},
		{"no token", "/mcp/read", nil, 401, `Bearer realm="agentbroker"`, "invalid_token"},
		{"Basic scheme", "/mcp/read", http.Header{"Authorization": {"Basic " + readTok}}, 401, `Bearer realm="agentbroker"`, "invalid_token"},
		{"token without scheme", "/mcp/read", http.Header{"Authorization": {readTok}}, 401, `Bearer realm="agentbroker"`, "invalid_token"},
		{"empty bearer", "/mcp/read", http.Header{"Authorization": {"Bearer "}}, 400,
			`Bearer realm="agentbroker", error="invalid_request", error_description="empty bearer token"`, "invalid_request"},
		{"cookie", "/mcp/read", http.Header{"Cookie": {"access_token=" + readTok + "; token=" + readTok}}, 401, `Bearer realm="agentbroker"`, "invalid_token"},
		{"query string", "/mcp/read?access_token=" + url.QueryEscape(readTok), nil, 400,
			`Bearer realm="agentbroker", error="invalid_request", error_description="tokens are not accepted in the query string"`, "invalid_request"},
		{"query string and header", "/mcp/read?access_token=" + readTok, bearer(readTok), 400,
			`Bearer realm="agentbroker", error="invalid_request", error_description="tokens are not accepted in the query string"`, "invalid_request"},
		{"two Authorization headers", "/mcp/read", http.Header{"Authorization": {"Bearer " + readTok, "Bearer " + readTok}}, 400,
			`Bearer realm="agentbroker", error="invalid_request", error_description="more than one Authorization header"`, "invalid_request"},
		{"x-api-key where not accepted", "/proxy/strict", http.Header{"X-Api-Key": {proxyTok}}, 401, `Bearer realm="agentbroker"`, "invalid_token"},
		{"x-api-key where accepted", "/proxy", http.Header{"X-Api-Key": {proxyTok}}, 200, "", ""},
		{"x-api-key and the same bearer", "/proxy", http.Header{"X-Api-Key": {proxyTok}, "Authorization": {"Bearer " + proxyTok}}, 200, "", ""},
		{"x-api-key and another bearer", "/proxy", http.Header{"X-Api-Key": {proxyTok}, "Authorization": {"Bearer " + readTok}}, 400,
			`Bearer realm="agentbroker", error="invalid_request", error_description="different tokens in Authorization and x-api-key"`, "invalid_request"},
		{"expired", "/mcp/read", bearer(expiring), 401,
			`Bearer realm="agentbroker", error="invalid_token", error_description="token expired"`, "invalid_token"},
		{"revoked", "/mcp/read", bearer(revoked), 401,
			`Bearer realm="agentbroker", error="invalid_token", error_description="token revoked"`, "invalid_token"},
		{"garbage", "/mcp/read", bearer("not.a.token"), 401,
			`Bearer realm="agentbroker", error="invalid_token", error_description="malformed token"`, "invalid_token"},
		{"MCP token at the proxy", "/proxy", bearer(readTok), 401,
			`Bearer realm="agentbroker", error="invalid_token", error_description="token not valid for this resource"`, "invalid_token"},
		{"proxy token at MCP", "/mcp/read", bearer(proxyTok), 401,
			`Bearer realm="agentbroker", error="invalid_token", error_description="token not valid for this resource"`, "invalid_token"},
		{"admin token at MCP", "/mcp/read", bearer(adminTok), 401,
			`Bearer realm="agentbroker", error="invalid_token", error_description="token not valid for this resource"`, "invalid_token"},
		{"scope escalation", "/mcp/write", bearer(readTok), 403,
			`Bearer realm="agentbroker", error="insufficient_scope", error_description="token lacks scope tasks:write", scope="tasks:read tasks:write"`, "insufficient_scope"},
		{"enough scope", "/mcp/write", bearer(writeTok), 200, "", ""},
		{"admin implies scopes on the admin API", "/admin", bearer(adminTok), 200, "", ""},
		{"resource metadata on 401", "/mcp/meta", nil, 401,
			`Bearer realm="agentbroker", resource_metadata="https://broker.example/.well-known/oauth-protected-resource/mcp"`, "invalid_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls = 0
			req, _ := http.NewRequest(http.MethodGet, srv.URL+tc.path, nil)
			for k, vs := range tc.hdr {
				for _, v := range vs {
					req.Header.Add(k, v)
				}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d (%s); want %d", resp.StatusCode, body, tc.status)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tc.challenge {
				t.Errorf("WWW-Authenticate = %s\nwant               %s", got, tc.challenge)
			}
			for _, tok := range []string{readTok, writeTok, proxyTok, adminTok, expiring, revoked} {
				assertNoTokenIn(t, "response body", string(body), tok)
				assertNoTokenIn(t, "challenge", resp.Header.Get("WWW-Authenticate"), tok)
			}
			if tc.status == 200 {
				if calls != 1 {
					t.Errorf("handler ran %d times", calls)
				}
				return
			}
			if calls != 0 {
				t.Errorf("handler ran on a refused request")
			}
			var e struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			if err := json.Unmarshal(body, &e); err != nil || e.Error != tc.errCode || e.Description == "" {
				t.Errorf("body %s; want error %q with a description", body, tc.errCode)
			}
			if resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("headers %v", resp.Header)
			}
		})
	}
}

func TestMiddlewareStoreDown(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	raw, _ := mint(t, f.svc, mcpGrant())
	broken := &failingStore{Store: f.st}
	s, err := New(context.Background(), f.st, broken, &Options{Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	broken.fail.Store(true)
	h := s.Middleware(AudienceMCP)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		t.Error("handler ran while revocations could not be checked")
	}))
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/mcp", nil)
	req.Header.Set("Authorization", "Bearer "+raw)
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "temporarily_unavailable") {
		t.Fatalf("store down: %d %s; want 503", rec.Code, rec.Body)
	}
}

func TestMiddlewarePanicsOnBadConfig(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	for name, o := range map[string]MiddlewareOptions{
		"unknown audience": {Audience: "agentbroker:nope"},
		"unknown scope":    {Audience: AudienceMCP, Scopes: []Scope{"tasks:delete"}},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f.svc.MiddlewareWith(o)
		}()
	}
}

func TestQuote(t *testing.T) {
	t.Parallel()
	if got := quote("a\"b\\c\r\nd"); got != `"a\"b\\cd"` {
		t.Fatalf("quote = %s", got)
	}
}
