package tokens

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestAuthorize: the one decision every consumer (the middleware, /mcp, the
// proxy, the session API and WebSocket) makes, without writing anything.
func TestAuthorize(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	ok, okClaims := mint(t, f.svc, mcpGrant())
	short := mcpGrant()
	short.Lifetime = time.Minute
	expired, _ := mint(t, f.svc, short)
	revoked, rc := mint(t, f.svc, mcpGrant())
	if err := f.svc.Revoke(context.Background(), rc.ID, rc.ExpiresAt); err != nil {
		t.Fatal(err)
	}
	proxyTok, _ := mint(t, f.svc, proxyGrant())
	f.clk.Add(2 * time.Minute) // past expired's exp and the 30s leeway

	mcp := Policy{Audience: AudienceMCP, Scopes: []Scope{ScopeTasksRead}}
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	for _, tc := range []struct {
		name   string
		target string
		hdr    http.Header
		p      Policy
		status int
		code   string
		reason Reason
		err    error // errors.Is(Refusal.Err, err); nil: Err must be nil
	}{
		{"ok", "/", bearer(ok), mcp, 0, "", "", nil},
		{"missing", "/", nil, mcp, 401, "invalid_token", ReasonMissing, nil},
		{"wrong scheme", "/", http.Header{"Authorization": {"Basic " + ok}}, mcp, 401, "invalid_token", ReasonMissing, nil},
		{"malformed header: empty bearer", "/", http.Header{"Authorization": {"Bearer "}}, mcp, 400, "invalid_request", ReasonInvalidRequest, nil},
		{"malformed header: two", "/", http.Header{"Authorization": {"Bearer " + ok, "Bearer " + ok}}, mcp, 400, "invalid_request", ReasonInvalidRequest, nil},
		{"token in query", "/?access_token=" + ok, nil, mcp, 400, "invalid_request", ReasonInvalidRequest, nil},
		{"malformed token", "/", bearer("abc.def.ghi"), mcp, 401, "invalid_token", ReasonMalformed, ErrMalformed},
		{"expired", "/", bearer(expired), mcp, 401, "invalid_token", ReasonExpired, ErrExpired},
		{"revoked", "/", bearer(revoked), mcp, 401, "invalid_token", ReasonRevoked, ErrRevoked},
		{"wrong audience", "/", bearer(proxyTok), mcp, 401, "invalid_token", ReasonWrongAudience, ErrWrongAudience},
		{"insufficient scope", "/", bearer(ok), Policy{Audience: AudienceMCP, Scopes: []Scope{ScopeTasksWrite}},
			403, "insufficient_scope", ReasonInsufficientScope, nil},
		{"wrong session", "/", bearer(ok), Policy{Audience: AudienceMCP, Session: "sess-2"}, 403, "insufficient_scope", ReasonWrongSession, nil},
		{"right session", "/", bearer(ok), Policy{Audience: AudienceMCP, Session: "sess-1"}, 0, "", "", nil},
		{"x-api-key not accepted", "/", http.Header{"X-Api-Key": {proxyTok}}, Policy{Audience: AudienceProxy}, 401, "invalid_token", ReasonMissing, nil},
		{"x-api-key accepted", "/", http.Header{"X-Api-Key": {proxyTok}}, Policy{Audience: AudienceProxy, AcceptAPIKey: true}, 0, "", "", nil},
		{"two different tokens", "/", http.Header{"X-Api-Key": {proxyTok}, "Authorization": {"Bearer " + ok}},
			Policy{Audience: AudienceProxy, AcceptAPIKey: true}, 400, "invalid_request", ReasonInvalidRequest, nil},
		{"subprotocol not accepted", "/", http.Header{"Sec-Websocket-Protocol": {"v1, bearer." + ok}}, mcp, 401, "invalid_token", ReasonMissing, nil},
		{"subprotocol accepted", "/", http.Header{"Sec-Websocket-Protocol": {"v1, bearer." + ok}},
			Policy{Audience: AudienceMCP, AcceptSubprotocol: true}, 0, "", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tc.target, nil)
			for k, v := range tc.hdr {
				r.Header[k] = v
			}
			c, ref := f.svc.AuthorizeRequest(r, tc.p)
			if tc.status == 0 {
				if ref != nil {
					t.Fatalf("refused: %+v", ref)
				}
				if c != okClaims && c.Audience != AudienceProxy {
					t.Fatalf("claims %+v; want %+v", c, okClaims)
				}
				return
			}
			if ref == nil {
				t.Fatalf("authorized %+v; want %d %s", c, tc.status, tc.reason)
			}
			if ref.Status != tc.status || ref.Code != tc.code || ref.Reason != tc.reason || ref.Description == "" {
				t.Fatalf("refusal %d %s %s %q; want %d %s %s", ref.Status, ref.Code, ref.Reason, ref.Description, tc.status, tc.code, tc.reason)
			}
			if (tc.err == nil) != (ref.Err == nil) || tc.err != nil && !errors.Is(ref.Err, tc.err) {
				t.Fatalf("Err %v; want %v", ref.Err, tc.err)
			}
			if c != (Claims{}) {
				t.Fatalf("a refusal came with claims %+v", c)
			}
		})
	}

	// A revoked token's refusal carries its claims, for reporting.
	_, ref := f.svc.Authorize(context.Background(), revoked, mcp)
	var rev *RevokedError
	if ref == nil || !errors.As(ref.Err, &rev) || rev.Claims.ID != rc.ID {
		t.Fatalf("revoked: %+v", ref)
	}
	// The raw form and the request form agree.
	if _, ref := f.svc.Authorize(context.Background(), "", mcp); ref == nil || ref.Reason != ReasonMissing {
		t.Fatalf("empty raw token: %+v", ref)
	}
}

// TestRefusalWrite: a refusal writes itself as the middleware always has:
// the RFC 6750 challenge and the JSON body.
func TestRefusalWrite(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	ok, _ := mint(t, f.svc, mcpGrant())
	p := Policy{Audience: AudienceMCP, Scopes: []Scope{ScopeTasksWrite, ScopeTasksRead},
		Realm: "r", ResourceMetadata: "https://b.example/.well-known/oauth-protected-resource/mcp"}
	for _, tc := range []struct {
		raw, challenge, body string
		status               int
	}{
		{"", `Bearer realm="r", resource_metadata="https://b.example/.well-known/oauth-protected-resource/mcp"`,
			`{"error":"invalid_token","error_description":"missing bearer token"}`, 401},
		{"x.y.z", `Bearer realm="r", error="invalid_token", error_description="malformed token", resource_metadata="https://b.example/.well-known/oauth-protected-resource/mcp"`,
			`{"error":"invalid_token","error_description":"malformed token"}`, 401},
		{ok, `Bearer realm="r", error="insufficient_scope", error_description="token lacks scope tasks:write", scope="tasks:read tasks:write", resource_metadata="https://b.example/.well-known/oauth-protected-resource/mcp"`,
			`{"error":"insufficient_scope","error_description":"token lacks scope tasks:write"}`, 403},
	} {
		_, ref := f.svc.Authorize(context.Background(), tc.raw, p)
		if ref == nil {
			t.Fatalf("%q authorized", tc.raw)
		}
		rec := httptest.NewRecorder()
		ref.Write(rec)
		if rec.Code != tc.status || rec.Header().Get("WWW-Authenticate") != tc.challenge ||
			strings.TrimSpace(rec.Body.String()) != tc.body || rec.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%q: %d %q %s", tc.raw, rec.Code, rec.Header().Get("WWW-Authenticate"), rec.Body)
		}
	}
}
