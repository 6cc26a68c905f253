package tokens

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestCheckDelegation: a minted token never outlives, nor holds more than,
// the token that mints it; the same or narrower passes.
func TestCheckDelegation(t *testing.T) {
	t.Parallel()
	now := t0
	admin := Claims{Subject: "op", Audience: AudienceAdmin, Scopes: mustScopes(ScopeAdmin), ExpiresAt: now.Add(5 * time.Minute)}
	adminNoAdmin := Claims{Subject: "op", Audience: AudienceAdmin, Scopes: mustScopes(ScopeTasksRead), ExpiresAt: now.Add(time.Hour)}
	mcp := Claims{Subject: "user-1", Audience: AudienceMCP, Project: "proj-1", Session: "sess-1", Agent: "claude",
		Scopes: mustScopes(ScopeProjectRead, ScopeTasksRead), ExpiresAt: now.Add(time.Hour)}
	withGrant := func(g Grant, mod func(*Grant)) Grant { mod(&g); return g }
	adminGrant := Grant{Subject: "op", Audience: AudienceAdmin, Scopes: []Scope{ScopeAdmin}, Lifetime: 5 * time.Minute}
	sessionGrant := withGrant(mcpGrant(), func(g *Grant) { g.Lifetime = time.Minute })

	for _, tc := range []struct {
		name   string
		minter Claims
		g      Grant
		ok     bool
	}{
		{"admin mints admin for its remaining lifetime", admin, adminGrant, true},
		{"admin mints a shorter admin token", admin, withGrant(adminGrant, func(g *Grant) { g.Lifetime = time.Minute }), true},
		{"admin mints a narrower session token", admin, sessionGrant, true},
		{"admin mints inference for a session", admin, withGrant(proxyGrant(), func(g *Grant) { g.Lifetime = time.Minute }), true},
		{"admin mints a viewer for any subject", admin,
			withGrant(sessionGrant, func(g *Grant) {
				g.Subject, g.Audience, g.Scopes = "someone", AudienceViewer, []Scope{ScopeSessionControl}
			}), true},
		{"longer lifetime: 90 days from a 5-minute admin", admin, withGrant(adminGrant, func(g *Grant) { g.Lifetime = 90 * 24 * time.Hour }), false},
		{"longer lifetime by one second", admin, withGrant(adminGrant, func(g *Grant) { g.Lifetime = 5*time.Minute + time.Second }), false},
		{"longer session token than the admin minter", admin, withGrant(sessionGrant, func(g *Grant) { g.Lifetime = time.Hour }), false},
		{"expired minter", withClaims(admin, func(c *Claims) { c.ExpiresAt = now }), withGrant(adminGrant, func(g *Grant) { g.Lifetime = time.Second }), false},
		{"minter without exp", withClaims(admin, func(c *Claims) { c.ExpiresAt = time.Time{} }), adminGrant, false},
		{"unresolved lifetime", admin, withGrant(adminGrant, func(g *Grant) { g.Lifetime = 0 }), false},
		{"admin from a non-admin admin-audience token", adminNoAdmin, withGrant(adminGrant, func(g *Grant) { g.Lifetime = time.Minute }), false},
		{"non-admin: same scope, same audience", adminNoAdmin,
			Grant{Subject: "op", Audience: AudienceAdmin, Scopes: []Scope{ScopeTasksRead}, Lifetime: time.Minute}, true},
		{"non-admin: broader scope", adminNoAdmin,
			Grant{Subject: "op", Audience: AudienceAdmin, Scopes: []Scope{ScopeTasksRead, ScopeTasksWrite}, Lifetime: time.Minute}, false},
		{"non-admin: another audience", adminNoAdmin,
			withGrant(sessionGrant, func(g *Grant) { g.Subject, g.Scopes = "op", []Scope{ScopeTasksRead} }), false},
		{"session token mints the same", mcp, sessionGrant, true},
		{"session token mints narrower", mcp, withGrant(sessionGrant, func(g *Grant) { g.Scopes = []Scope{ScopeTasksRead} }), true},
		{"session token mints broader scope", mcp, withGrant(sessionGrant, func(g *Grant) { g.Scopes = []Scope{ScopeTasksWrite} }), false},
		{"session token mints admin", mcp, withGrant(adminGrant, func(g *Grant) { g.Subject, g.Lifetime = "user-1", time.Minute }), false},
		{"session token mints inference", mcp, withGrant(proxyGrant(), func(g *Grant) { g.Lifetime = time.Minute }), false},
		{"session token mints for another session", mcp, withGrant(sessionGrant, func(g *Grant) { g.Session = "sess-2" }), false},
		{"session token mints for another project", mcp, withGrant(sessionGrant, func(g *Grant) { g.Project = "proj-2" }), false},
		{"session token mints for another subject", mcp, withGrant(sessionGrant, func(g *Grant) { g.Subject = "user-2" }), false},
		{"session token mints for another agent", mcp, withGrant(sessionGrant, func(g *Grant) { g.Agent = "codex" }), false},
		{"model-bound token mints for its model", withClaims(mcp, func(c *Claims) { c.Model = "m-1" }),
			withGrant(sessionGrant, func(g *Grant) { g.Model = "m-1" }), true},
		{"model-bound token mints an unbound token", withClaims(mcp, func(c *Claims) { c.Model = "m-1" }), sessionGrant, false},
		{"model-bound token mints for another model", withClaims(mcp, func(c *Claims) { c.Model = "m-1" }),
			withGrant(sessionGrant, func(g *Grant) { g.Model = "m-2" }), false},
		{"session token mints longer", mcp, withGrant(sessionGrant, func(g *Grant) { g.Lifetime = 2 * time.Hour }), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := CheckDelegation(tc.minter, tc.g, now)
			if tc.ok && err != nil {
				t.Errorf("CheckDelegation = %v, want nil", err)
			}
			if !tc.ok && !errors.Is(err, ErrEscalation) {
				t.Errorf("CheckDelegation = %v, want ErrEscalation", err)
			}
		})
	}
}

func withClaims(c Claims, mod func(*Claims)) Claims { mod(&c); return c }

// TestMintDelegated: through the service, a 5-minute admin token cannot
// mint a 90-day admin token; without a lifetime asked, the default is cut to
// the minter's remaining lifetime; what is minted verifies.
func TestMintDelegated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, nil)
	adminGrant := Grant{Subject: "op", Audience: AudienceAdmin, Scopes: []Scope{ScopeAdmin}, Lifetime: 5 * time.Minute}
	_, minter := mint(t, f.svc, adminGrant)

	g := adminGrant
	g.Lifetime = 90 * 24 * time.Hour
	if _, _, err := f.svc.MintDelegated(ctx, minter, g); !errors.Is(err, ErrEscalation) {
		t.Fatalf("MintDelegated 90 days from a 5-minute token = %v, want ErrEscalation", err)
	}

	f.clk.Add(2 * time.Minute)
	g = mcpGrant() // no lifetime: the default (1h) cut to the 3 minutes left
	raw, c, err := f.svc.MintDelegated(ctx, minter, g)
	if err != nil {
		t.Fatalf("MintDelegated default lifetime: %v", err)
	}
	if !c.ExpiresAt.Equal(minter.ExpiresAt) {
		t.Errorf("exp = %v, want the minter's %v", c.ExpiresAt, minter.ExpiresAt)
	}
	if _, err := f.svc.Verify(ctx, raw, AudienceMCP); err != nil {
		t.Errorf("Verify the delegated token: %v", err)
	}

	_, session := mint(t, f.svc, mcpGrant())
	g = Grant{Subject: session.Subject, Audience: AudienceAdmin, Scopes: []Scope{ScopeAdmin}, Lifetime: time.Minute}
	if _, _, err := f.svc.MintDelegated(ctx, session, g); !errors.Is(err, ErrEscalation) {
		t.Fatalf("a session token minted admin: %v", err)
	}

	f.clk.Add(3 * time.Minute) // the minter has expired
	if _, _, err := f.svc.MintDelegated(ctx, minter, mcpGrant()); !errors.Is(err, ErrEscalation) {
		t.Fatalf("MintDelegated from an expired minter = %v, want ErrEscalation", err)
	}
}
