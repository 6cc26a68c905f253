package tokens_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/agentbroker/agentbroker/tokens"
	"github.com/agentbroker/agentbroker/tokens/internal/memstore"
)

// A session's MCP token: minted when the session starts, verified on each
// MCP request, useless anywhere else, dead once the session is revoked.
func Example() {
	ctx := context.Background()
	db := memstore.New() // in the broker: sqlite.Open(ctx, sqlite.Options{Dir: dir})
	svc, err := tokens.New(ctx, db, db, nil)
	if err != nil {
		log.Fatal(err)
	}

	raw, _, err := svc.Mint(ctx, tokens.Grant{
		Subject:  "alice",
		Project:  "proj-1",
		Session:  "sess-42",
		Agent:    "claude",
		Audience: tokens.AudienceMCP,
		Scopes:   []tokens.Scope{tokens.ScopeProjectRead, tokens.ScopeTasksRead},
	})
	if err != nil {
		log.Fatal(err)
	}

	c, err := svc.Verify(ctx, raw, tokens.AudienceMCP)
	fmt.Println(c.Subject, c.Project, c.Session, c.Scopes, err)
	fmt.Println(c.Require("proj-1", "sess-42"), tokens.RequireScope(c, tokens.ScopeTasksRead))
	fmt.Println(tokens.RequireScope(c, tokens.ScopeTasksWrite))

	_, err = svc.Verify(ctx, raw, tokens.AudienceProxy)
	fmt.Println(errors.Is(err, tokens.ErrWrongAudience))

	if err := svc.RevokeSession(ctx, "sess-42"); err != nil {
		log.Fatal(err)
	}
	_, err = svc.Verify(ctx, raw, tokens.AudienceMCP)
	fmt.Println(err)
	// Output:
	// alice proj-1 sess-42 project:read tasks:read <nil>
	// <nil> <nil>
	// tokens: insufficient scope: needs tasks:write
	// true
	// tokens: token revoked
}

// Protecting a handler: the claims reach it through the request context,
// and a token short of a scope gets a 403 naming it.
func ExampleService_Middleware() {
	ctx := context.Background()
	db := memstore.New()
	svc, err := tokens.New(ctx, db, db, nil)
	if err != nil {
		log.Fatal(err)
	}
	h := svc.Middleware(tokens.AudienceMCP, tokens.ScopeTasksRead)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := tokens.ClaimsFrom(r.Context())
		fmt.Fprintln(w, "hello", c.Subject)
	}))
	raw, _, err := svc.Mint(ctx, tokens.Grant{Subject: "alice", Project: "p", Session: "s",
		Audience: tokens.AudienceMCP, Scopes: []tokens.Scope{tokens.ScopeProjectRead}})
	if err != nil {
		log.Fatal(err)
	}
	for _, auth := range []string{"", "Bearer " + raw} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/mcp", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		h.ServeHTTP(rec, req)
		fmt.Println(rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	// Output:
	// 401 Bearer realm="agentbroker"
	// 403 Bearer realm="agentbroker", error="insufficient_scope", error_description="token lacks scope tasks:read", scope="tasks:read"
}

// A short-lived admin token may hand out a narrower session token, but
// nothing that outlives it.
func ExampleCheckDelegation() {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	admin, _ := tokens.NewScopes(tokens.ScopeAdmin)
	minter := tokens.Claims{Subject: "op", Audience: tokens.AudienceAdmin, Scopes: admin, ExpiresAt: now.Add(5 * time.Minute)}

	viewer := tokens.Grant{Subject: "op", Project: "proj-1", Session: "sess-42", Audience: tokens.AudienceViewer,
		Scopes: []tokens.Scope{tokens.ScopeSessionView}, Lifetime: 5 * time.Minute}
	fmt.Println(tokens.CheckDelegation(minter, viewer, now))

	forever := tokens.Grant{Subject: "op", Audience: tokens.AudienceAdmin, Scopes: []tokens.Scope{tokens.ScopeAdmin},
		Lifetime: 90 * 24 * time.Hour}
	err := tokens.CheckDelegation(minter, forever, now)
	fmt.Println(errors.Is(err, tokens.ErrEscalation))
	// Output:
	// <nil>
	// true
}

// Deciding without writing: a WebSocket, say, keeps the raw token and asks
// again on each message; a refusal says why, for a metric, a close frame or
// (Refusal.Write) an HTTP answer.
func ExampleService_Authorize() {
	ctx := context.Background()
	db := memstore.New()
	svc, err := tokens.New(ctx, db, db, nil)
	if err != nil {
		log.Fatal(err)
	}
	raw, claims, err := svc.Mint(ctx, tokens.Grant{Subject: "alice", Project: "p", Session: "s",
		Audience: tokens.AudienceViewer, Scopes: []tokens.Scope{tokens.ScopeSessionView}})
	if err != nil {
		log.Fatal(err)
	}
	p := tokens.Policy{Audience: tokens.AudienceViewer, Scopes: []tokens.Scope{tokens.ScopeSessionView}, Session: "s"}
	c, ref := svc.Authorize(ctx, raw, p)
	fmt.Println(c.Subject, ref == nil)

	if err := svc.Revoke(ctx, claims.ID, claims.ExpiresAt); err != nil {
		log.Fatal(err)
	}
	_, ref = svc.Authorize(ctx, raw, p)
	fmt.Println(ref.Status, ref.Code, ref.Reason, ref.Description)
	fmt.Println(ref.Challenge())
	// Output:
	// alice true
	// 401 invalid_token revoked token revoked
	// Bearer realm="agentbroker", error="invalid_token", error_description="token revoked"
}
