package tokens

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestScopes(t *testing.T) {
	t.Parallel()
	all := AllScopes()
	if len(all) != 11 {
		t.Fatalf("AllScopes has %d scopes; want the 11 of the table", len(all))
	}
	for _, want := range []Scope{"project:read", "tasks:read", "tasks:write", "knowledge:read", "knowledge:write",
		"sessions:read", "inference", "session:view", "session:control", "admin", "tasks:manage"} {
		if !want.Known() {
			t.Errorf("%s is not in the vocabulary", want)
		}
	}
	all[0] = "mutated"
	if AllScopes()[0] != ScopeProjectRead {
		t.Fatal("AllScopes shares its slice")
	}

	s, err := ParseScopes("tasks:write  project:read\ttasks:write")
	if err != nil {
		t.Fatal(err)
	}
	if !s.Has(ScopeTasksWrite) || !s.Has(ScopeProjectRead) || s.Has(ScopeTasksRead) || s.Len() != 2 {
		t.Fatalf("ParseScopes = %v", s.List())
	}
	if got := s.String(); got != "project:read tasks:write" {
		t.Fatalf("String = %q; want canonical order", got)
	}
	if s.Has("") || s.Has("nope") {
		t.Fatal("Has of unknown scope")
	}
	if e, err := ParseScopes(""); err != nil || e.Len() != 0 || e != (Scopes{}) {
		t.Fatalf("ParseScopes(\"\") = %v, %v", e, err)
	}
	for _, bad := range []string{"tasks:delete", "TASKS:READ", "tasks:read,tasks:write", "admin*"} {
		if _, err := ParseScopes(bad); !errors.Is(err, ErrUnknownScope) {
			t.Errorf("ParseScopes(%q) = %v; want ErrUnknownScope", bad, err)
		}
	}
	b, _ := json.Marshal(s)
	var back Scopes
	if err := json.Unmarshal(b, &back); err != nil || back != s {
		t.Fatalf("JSON round trip: %s → %v, %v", b, back, err)
	}
}

// TestTasksManageScope: tasks:manage was appended to the vocabulary (its bit
// is the last one, so earlier scopes keep theirs); it is allowed on the MCP
// and admin audiences only, and admin implies it.
func TestTasksManageScope(t *testing.T) {
	t.Parallel()
	if all := AllScopes(); all[len(all)-1] != ScopeTasksManage {
		t.Fatalf("tasks:manage is not the last scope of the vocabulary: %v", all)
	}
	if s, err := ParseScopes("tasks:manage admin"); err != nil || s.String() != "admin tasks:manage" {
		t.Fatalf("ParseScopes = %v, %v; want canonical order admin tasks:manage", s, err)
	}
	for aud, want := range map[Audience]bool{AudienceMCP: true, AudienceAdmin: true, AudienceProxy: false, AudienceViewer: false} {
		if got := aud.AllowedScopes().Has(ScopeTasksManage); got != want {
			t.Errorf("%s allows tasks:manage = %v; want %v", aud, got, want)
		}
	}
	f := newFixture(t, nil)
	g := mcpGrant()
	g.Scopes = []Scope{ScopeTasksWrite, ScopeTasksManage}
	raw, c, err := f.svc.Mint(context.Background(), g)
	if err != nil {
		t.Fatalf("Mint with tasks:manage on MCP: %v", err)
	}
	if got, err := f.svc.Verify(context.Background(), raw, AudienceMCP); err != nil || !got.HasScope(ScopeTasksManage) {
		t.Fatalf("Verify = %+v, %v; want a token holding tasks:manage", got, err)
	}
	if c.Scopes.String() != "tasks:write tasks:manage" {
		t.Fatalf("scope claim = %q", c.Scopes.String())
	}
	proxy := Grant{Subject: "u", Project: "p", Session: "s", Audience: AudienceProxy, Scopes: []Scope{ScopeTasksManage}}
	if _, _, err := f.svc.Mint(context.Background(), proxy); !errors.Is(err, ErrInvalidGrant) {
		t.Fatalf("Mint tasks:manage on proxy = %v; want ErrInvalidGrant", err)
	}
	if !(Claims{Audience: AudienceAdmin, Scopes: mustScopes(ScopeAdmin)}).HasScope(ScopeTasksManage) {
		t.Fatal("admin does not imply tasks:manage")
	}
	if (Claims{Audience: AudienceMCP, Scopes: mustScopes(ScopeTasksWrite)}).HasScope(ScopeTasksManage) {
		t.Fatal("tasks:write implies tasks:manage")
	}
}

// TestAdminScope: admin satisfies every check on the admin audience, and
// only there; scopes outside their audience never count.
func TestAdminScope(t *testing.T) {
	t.Parallel()
	admin := Claims{Audience: AudienceAdmin, Scopes: mustScopes(ScopeAdmin)}
	for _, s := range AllScopes() {
		if err := RequireScope(admin, s); err != nil {
			t.Errorf("admin token lacks %s: %v", s, err)
		}
	}
	// Not even a hand-built Claims with admin on another audience passes.
	for _, aud := range []Audience{AudienceMCP, AudienceProxy, AudienceViewer} {
		c := Claims{Audience: aud, Scopes: mustScopes(ScopeAdmin)}
		err := RequireScope(c, ScopeTasksWrite)
		if !errors.Is(err, ErrInsufficientScope) || !strings.Contains(err.Error(), "tasks:write") {
			t.Errorf("admin scope on %s: RequireScope = %v; want ErrInsufficientScope naming tasks:write", aud, err)
		}
	}
	mcp := Claims{Audience: AudienceMCP, Scopes: mustScopes(ScopeTasksRead, ScopeInference)}
	if RequireScope(mcp, ScopeTasksRead) != nil || RequireScope(mcp, ScopeInference) == nil {
		t.Error("scope outside its audience counted")
	}
	limited := Claims{Audience: AudienceAdmin, Scopes: mustScopes(ScopeSessionsRead)}
	if RequireScope(limited, ScopeSessionsRead) != nil || RequireScope(limited, ScopeAdmin) == nil {
		t.Error("a read-only admin token is not read-only")
	}
}

func TestMintClaims(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	raw, c, err := f.svc.Mint(context.Background(), mcpGrant())
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	want := Claims{
		Issuer: "agentbroker", Subject: "user-1", Audience: AudienceMCP,
		Project: "proj-1", Session: "sess-1", Agent: "claude",
		Scopes: mustScopes(ScopeProjectRead, ScopeTasksRead),
		ID:     c.ID, KeyID: f.svc.KeyRing().SigningKeyID(),
		IssuedAt: now, NotBefore: now, ExpiresAt: now.Add(time.Hour),
	}
	if c != want {
		t.Fatalf("Mint claims = %+v\nwant %+v", c, want)
	}
	if len(c.ID) < 22 {
		t.Fatalf("jti %q is shorter than 128 bits of base64url", c.ID)
	}
	got, err := f.svc.Verify(context.Background(), raw, AudienceMCP)
	if err != nil || got != c {
		t.Fatalf("Verify = %+v, %v; want the minted claims", got, err)
	}
	in, err := Inspect(raw)
	if err != nil {
		t.Fatal(err)
	}
	if in.Header["alg"] != "EdDSA" || in.Header["typ"] != "at+jwt" || in.Header["kid"] != c.KeyID {
		t.Fatalf("header = %v", in.Header)
	}
	for k, v := range map[string]any{"iss": "agentbroker", "sub": "user-1", "aud": "agentbroker:mcp",
		"scope": "project:read tasks:read", "project": "proj-1", "sid": "sess-1", "agent": "claude", "jti": c.ID} {
		if in.Payload[k] != v {
			t.Errorf("payload %s = %v; want %v", k, in.Payload[k], v)
		}
	}
	for _, k := range []string{"exp", "nbf", "iat"} {
		if _, ok := in.Payload[k].(json.Number); !ok {
			t.Errorf("payload %s = %T %v; want a number", k, in.Payload[k], in.Payload[k])
		}
	}
	if in.Claims != c {
		t.Errorf("Inspect claims = %+v; want %+v", in.Claims, c)
	}
	// Every jti differs.
	seen := map[string]bool{}
	for range 100 {
		_, c := mint(t, f.svc, mcpGrant())
		if seen[c.ID] {
			t.Fatal("jti repeated")
		}
		seen[c.ID] = true
	}
}

func TestMintRefusesBadGrants(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) { o.MaxLifetime = 8 * time.Hour; o.AdminMaxLifetime = 30 * 24 * time.Hour })
	for _, tc := range []struct {
		name string
		mod  func(*Grant)
		want error
	}{
		{"empty audience", func(g *Grant) { g.Audience = "" }, ErrInvalidGrant},
		{"unknown audience", func(g *Grant) { g.Audience = "agentbroker:other" }, ErrInvalidGrant},
		{"unknown scope", func(g *Grant) { g.Scopes = append(g.Scopes, "tasks:delete") }, ErrUnknownScope},
		{"no scope", func(g *Grant) { g.Scopes = nil }, ErrInvalidGrant},
		{"scope of another audience", func(g *Grant) { g.Scopes = append(g.Scopes, ScopeInference) }, ErrInvalidGrant},
		{"admin scope on MCP", func(g *Grant) { g.Scopes = []Scope{ScopeAdmin} }, ErrInvalidGrant},
		{"no subject", func(g *Grant) { g.Subject = "" }, ErrInvalidGrant},
		{"no project", func(g *Grant) { g.Project = "" }, ErrInvalidGrant},
		{"no session", func(g *Grant) { g.Session = "" }, ErrInvalidGrant},
		{"newline in subject", func(g *Grant) { g.Subject = "user\nadmin" }, ErrInvalidGrant},
		{"CR in project", func(g *Grant) { g.Project = "p\r" }, ErrInvalidGrant},
		{"NUL in session", func(g *Grant) { g.Session = "s\x00" }, ErrInvalidGrant},
		{"escape in agent", func(g *Grant) { g.Agent = "\x1b[31mclaude" }, ErrInvalidGrant},
		{"bidi override in agent", func(g *Grant) { g.Agent = "claude\u202e" }, ErrInvalidGrant},
		{"line separator", func(g *Grant) { g.Subject = "a\u2028b" }, ErrInvalidGrant},
		{"not UTF-8", func(g *Grant) { g.Subject = "\xff" }, ErrInvalidGrant},
		{"too long", func(g *Grant) { g.Project = strings.Repeat("p", 257) }, ErrInvalidGrant},
		{"negative lifetime", func(g *Grant) { g.Lifetime = -time.Second }, ErrInvalidGrant},
		{"lifetime over the maximum", func(g *Grant) { g.Lifetime = 8*time.Hour + time.Second }, ErrLifetimeTooLong},
	} {
		g := mcpGrant()
		tc.mod(&g)
		raw, c, err := f.svc.Mint(context.Background(), g)
		if !errors.Is(err, tc.want) || raw != "" || c != (Claims{}) {
			t.Errorf("%s: Mint = %q, %v; want %v", tc.name, raw, err, tc.want)
		}
	}
	// The limits themselves are fine.
	g := mcpGrant()
	g.Lifetime, g.Project, g.Subject = 8*time.Hour, strings.Repeat("p", 256), "Jane Doe <jane@example.com>"
	if _, c, err := f.svc.Mint(context.Background(), g); err != nil || c.ExpiresAt.Sub(c.IssuedAt) != 8*time.Hour {
		t.Errorf("Mint at the limits = %+v, %v", c, err)
	}
	admin := Grant{Subject: "root", Audience: AudienceAdmin, Scopes: []Scope{ScopeAdmin}}
	if _, _, err := f.svc.Mint(context.Background(), admin); err != nil {
		t.Errorf("admin grant without project or session: %v", err)
	}
	// Admin tokens have their own bound, longer than a session token's.
	admin.Lifetime = 30 * 24 * time.Hour
	if _, _, err := f.svc.Mint(context.Background(), admin); err != nil {
		t.Errorf("admin grant at AdminMaxLifetime: %v", err)
	}
	admin.Lifetime += time.Second
	if _, _, err := f.svc.Mint(context.Background(), admin); !errors.Is(err, ErrLifetimeTooLong) {
		t.Errorf("admin grant over AdminMaxLifetime = %v; want ErrLifetimeTooLong", err)
	}
	// …and that bound does not leak to session tokens.
	g = mcpGrant()
	g.Lifetime = 9 * time.Hour
	if _, _, err := f.svc.Mint(context.Background(), g); !errors.Is(err, ErrLifetimeTooLong) {
		t.Errorf("session grant over MaxLifetime = %v; want ErrLifetimeTooLong", err)
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) { o.DefaultLifetime = 10 * time.Minute; o.Issuer = "broker-a" })
	_, c := mint(t, f.svc, mcpGrant())
	if c.ExpiresAt.Sub(c.IssuedAt) != 10*time.Minute || c.Issuer != "broker-a" || f.svc.Issuer() != "broker-a" {
		t.Errorf("claims %+v do not follow the options", c)
	}
	for _, bad := range []Options{
		{MaxLifetime: -1},
		{DefaultLifetime: -1},
		{MaxLifetime: time.Hour, DefaultLifetime: 2 * time.Hour},
		{Issuer: "a\nb"},
	} {
		if _, err := New(context.Background(), f.st, f.st, &bad); err == nil {
			t.Errorf("New(%+v) accepted", bad)
		}
	}
	short := f.open(t, func(o *Options) { o.MaxLifetime = 5 * time.Minute })
	if _, c := mint(t, short, mcpGrant()); c.ExpiresAt.Sub(c.IssuedAt) != 5*time.Minute {
		t.Errorf("default lifetime not capped by MaxLifetime: %v", c.ExpiresAt.Sub(c.IssuedAt))
	}
	if _, err := New(context.Background(), f.st, nil, nil); err == nil {
		t.Error("New without a RevocationStore accepted")
	}
	if _, err := New(context.Background(), nil, f.st, nil); err == nil {
		t.Error("New without a KeyStore accepted")
	}
}

func TestRevokeArguments(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	ctx := context.Background()
	if err := f.svc.Revoke(ctx, "", t0); err == nil {
		t.Error("Revoke(\"\") accepted")
	}
	if err := f.svc.RevokeSession(ctx, ""); err == nil {
		t.Error("RevokeSession(\"\") accepted")
	}
	raw, c := mint(t, f.svc, mcpGrant())
	other, _ := mint(t, f.svc, proxyGrant()) // same session
	g := mcpGrant()
	g.Session = "sess-2"
	third, _ := mint(t, f.svc, g)
	if err := f.svc.Revoke(ctx, c.ID, c.ExpiresAt); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Verify(ctx, raw, AudienceMCP); !errors.Is(err, ErrRevoked) {
		t.Errorf("revoked token: %v", err)
	}
	if _, err := f.svc.Verify(ctx, other, AudienceProxy); err != nil {
		t.Errorf("revoking one jti revoked another: %v", err)
	}
	if err := f.svc.RevokeSession(ctx, "sess-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Verify(ctx, other, AudienceProxy); !errors.Is(err, ErrRevoked) {
		t.Errorf("session revoked, its proxy token still verifies: %v", err)
	}
	if _, err := f.svc.Verify(ctx, third, AudienceMCP); err != nil {
		t.Errorf("revoking sess-1 revoked sess-2: %v", err)
	}
	// A token minted for a revoked session is dead on arrival.
	late, _ := mint(t, f.svc, mcpGrant())
	if _, err := f.svc.Verify(ctx, late, AudienceMCP); !errors.Is(err, ErrRevoked) {
		t.Errorf("token minted after its session was revoked: %v", err)
	}
}

// TestMintModelClaim: an inference token names its session's model as the
// "model" claim, which Verify returns; a grant without one carries none.
func TestMintModelClaim(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	g := proxyGrant()
	g.Model = "claude-sonnet-4-6"
	raw, c, err := f.svc.Mint(context.Background(), g)
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.svc.Verify(context.Background(), raw, AudienceProxy)
	if err != nil || got.Model != "claude-sonnet-4-6" || got != c {
		t.Fatalf("Verify = %+v, %v; want the model claim back", got, err)
	}
	in, err := Inspect(raw)
	if err != nil || in.Payload["model"] != "claude-sonnet-4-6" {
		t.Fatalf("payload model = %v (%v)", in.Payload["model"], err)
	}
	raw, _, err = f.svc.Mint(context.Background(), proxyGrant())
	if err != nil {
		t.Fatal(err)
	}
	if in, _ := Inspect(raw); in.Payload["model"] != nil {
		t.Errorf("an unbound grant's token carries model %v", in.Payload["model"])
	}
	g.Model = "bad\nmodel"
	if _, _, err := f.svc.Mint(context.Background(), g); !errors.Is(err, ErrInvalidGrant) {
		t.Errorf("a model with a newline: %v, want ErrInvalidGrant", err)
	}
}
