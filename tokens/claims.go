package tokens

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// Claims is what a verified token says. It holds no secret (the jti names a
// token, it does not open anything) and is a plain value: copies are
// independent and safe to keep.
//
// On the wire (an RFC 9068 JWT access token, header typ "at+jwt"): iss, sub,
// aud (one string), exp, nbf, iat, jti, scope (space-separated), and ours:
// "project", "sid" (the session, as the registered claim of that name),
// "agent" and "model" (the model an inference token's session was given;
// absent on older tokens and on tokens minted by hand).
//
// Times are UTC and whole seconds, so Claims compare with ==.
type Claims struct {
	Issuer    string    `json:"iss"`
	Subject   string    `json:"sub"`
	Audience  Audience  `json:"aud"`
	Project   string    `json:"project,omitempty"`
	Session   string    `json:"sid,omitempty"`
	Agent     string    `json:"agent,omitempty"`
	Model     string    `json:"model,omitempty"`
	Scopes    Scopes    `json:"scope"`
	ID        string    `json:"jti"`
	KeyID     string    `json:"kid"`
	IssuedAt  time.Time `json:"iat"`
	NotBefore time.Time `json:"nbf"`
	ExpiresAt time.Time `json:"exp"`
}

// HasScope reports whether the claims grant s: s must be allowed on the
// token's audience and either be in Scopes, or the token is an admin-audience
// token holding ScopeAdmin (see Scope for the table).
func (c Claims) HasScope(s Scope) bool {
	if !c.Audience.allowed().Has(s) {
		return false
	}
	return c.Scopes.Has(s) || (c.Audience == AudienceAdmin && c.Scopes.Has(ScopeAdmin))
}

// RequireScope returns nil when c grants scope (Claims.HasScope), else an
// error wrapping ErrInsufficientScope that names the scope needed.
func RequireScope(c Claims, scope Scope) error {
	if c.HasScope(scope) {
		return nil
	}
	return fmt.Errorf("%w: needs %s", ErrInsufficientScope, safeScope(scope))
}

// safeScope names a scope in a message; names outside the vocabulary come
// from code, but are quoted so that nothing odd reaches a log or a header.
func safeScope(s Scope) string {
	if s.Known() {
		return string(s)
	}
	return fmt.Sprintf("%q", string(s))
}

// Require checks that the token belongs to this project and this session
// (both exact; an empty argument matches nothing): ErrWrongProject or
// ErrWrongSession otherwise. Verify proves a token is ours; Require proves it
// is for the thing being touched.
func (c Claims) Require(project, session string) error {
	if err := c.RequireProject(project); err != nil {
		return err
	}
	if session == "" || c.Session != session {
		return ErrWrongSession
	}
	return nil
}

// RequireProject checks only the project (exact; empty matches nothing).
func (c Claims) RequireProject(project string) error {
	if project == "" || c.Project != project {
		return ErrWrongProject
	}
	return nil
}

// LogValue logs the claims as a group (nothing in them is secret).
func (c Claims) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("jti", c.ID),
		slog.String("aud", string(c.Audience)),
		slog.String("sub", c.Subject),
		slog.String("project", c.Project),
		slog.String("session", c.Session),
		slog.String("agent", c.Agent),
		slog.String("model", c.Model),
		slog.String("scope", c.Scopes.String()),
		slog.Time("exp", c.ExpiresAt),
	)
}

type claimsKey struct{}

// ContextWithClaims returns ctx carrying c, as the middleware does for the
// handlers it wraps (and as tests of those handlers may).
func ContextWithClaims(ctx context.Context, c Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// ClaimsFrom returns the verified claims the middleware put in ctx.
func ClaimsFrom(ctx context.Context) (Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(Claims)
	return c, ok
}

// Grant is what Mint is asked for: one token, for one audience.
type Grant struct {
	// Subject is the user the agent acts for. Required.
	Subject string
	// Project and Session the token is bound to. Required for every
	// audience but AudienceAdmin (Audience.SessionBound).
	Project string
	Session string
	// Agent names the agent (claude, codex, amp, …). Optional.
	Agent string
	// Model binds the token to the model its session was given: the
	// inference proxy then allows that model and the agent's side models
	// only. Optional (empty: the agent's whole allowlist).
	Model string
	// Audience is the one place the token opens. Required, one of the
	// Audience constants.
	Audience Audience
	// Scopes the token carries: at least one, each allowed on Audience.
	Scopes []Scope
	// Lifetime of the token: zero means Options.DefaultLifetime, more than
	// Options.MaxLifetime (Options.AdminMaxLifetime for AudienceAdmin) is
	// refused (ErrLifetimeTooLong).
	Lifetime time.Duration
}

// LogValue logs the grant as a group (nothing in it is secret).
func (g Grant) LogValue() slog.Value {
	scopes := make([]string, len(g.Scopes))
	for i, s := range g.Scopes {
		scopes[i] = string(s)
	}
	return slog.GroupValue(
		slog.String("aud", string(g.Audience)),
		slog.String("sub", g.Subject),
		slog.String("project", g.Project),
		slog.String("session", g.Session),
		slog.String("agent", g.Agent),
		slog.String("model", g.Model),
		slog.Any("scopes", scopes),
		slog.Duration("lifetime", g.Lifetime),
	)
}

// maxFieldLen caps every string field of a grant, so that a token stays far
// below MaxTokenSize.
const maxFieldLen = 256

// checkField refuses a value that is too long, not UTF-8, or holds control,
// format or line-separator characters (newlines, NUL, bidi overrides…).
func checkField(name, v string, required bool) error {
	if v == "" {
		if required {
			return fmt.Errorf("%w: %s is required", ErrInvalidGrant, name)
		}
		return nil
	}
	if len(v) > maxFieldLen {
		return fmt.Errorf("%w: %s is longer than %d bytes", ErrInvalidGrant, name, maxFieldLen)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: %s is not UTF-8", ErrInvalidGrant, name)
	}
	for _, r := range v {
		if unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp) {
			return fmt.Errorf("%w: %s holds a control character", ErrInvalidGrant, name)
		}
	}
	return nil
}

// validate checks g and returns its scope set.
func (g Grant) validate() (Scopes, error) {
	if g.Audience == "" {
		return Scopes{}, fmt.Errorf("%w: audience is required", ErrInvalidGrant)
	}
	if !g.Audience.Known() {
		return Scopes{}, fmt.Errorf("%w: unknown audience", ErrInvalidGrant)
	}
	bound := g.Audience.SessionBound()
	for _, f := range []struct {
		name, v  string
		required bool
	}{
		{"subject", g.Subject, true},
		{"project", g.Project, bound},
		{"session", g.Session, bound},
		{"agent", g.Agent, false},
		{"model", g.Model, false},
	} {
		if err := checkField(f.name, f.v, f.required); err != nil {
			return Scopes{}, err
		}
	}
	if len(g.Scopes) == 0 {
		return Scopes{}, fmt.Errorf("%w: at least one scope is required", ErrInvalidGrant)
	}
	set, err := NewScopes(g.Scopes...)
	if err != nil {
		return Scopes{}, fmt.Errorf("%w: %w", ErrInvalidGrant, err)
	}
	allowed := g.Audience.allowed()
	for _, s := range set.List() {
		if !allowed.Has(s) {
			return Scopes{}, fmt.Errorf("%w: scope %s is not allowed on audience %s", ErrInvalidGrant, s, g.Audience)
		}
	}
	if g.Lifetime < 0 {
		return Scopes{}, fmt.Errorf("%w: negative lifetime", ErrInvalidGrant)
	}
	return set, nil
}

// wireClaims is the JSON claims set, as signed. It implements jwt.Claims
// only so the parser accepts it; validation is ours (Service.checkClaims).
type wireClaims struct {
	Issuer    string           `json:"iss,omitempty"`
	Subject   string           `json:"sub,omitempty"`
	Audience  audienceClaim    `json:"aud,omitempty"`
	ExpiresAt *jwt.NumericDate `json:"exp,omitempty"`
	NotBefore *jwt.NumericDate `json:"nbf,omitempty"`
	IssuedAt  *jwt.NumericDate `json:"iat,omitempty"`
	ID        string           `json:"jti,omitempty"`
	Scope     string           `json:"scope,omitempty"`
	Project   string           `json:"project,omitempty"`
	Session   string           `json:"sid,omitempty"`
	Agent     string           `json:"agent,omitempty"`
	Model     string           `json:"model,omitempty"`
}

var _ jwt.Claims = (*wireClaims)(nil)

func (w *wireClaims) GetExpirationTime() (*jwt.NumericDate, error) { return w.ExpiresAt, nil }
func (w *wireClaims) GetIssuedAt() (*jwt.NumericDate, error)       { return w.IssuedAt, nil }
func (w *wireClaims) GetNotBefore() (*jwt.NumericDate, error)      { return w.NotBefore, nil }
func (w *wireClaims) GetIssuer() (string, error)                   { return w.Issuer, nil }
func (w *wireClaims) GetSubject() (string, error)                  { return w.Subject, nil }
func (w *wireClaims) GetAudience() (jwt.ClaimStrings, error) {
	return jwt.ClaimStrings(w.Audience), nil
}

// toWire is the claims set Mint signs for c.
func (c Claims) toWire() *wireClaims {
	return &wireClaims{
		Issuer:    c.Issuer,
		Subject:   c.Subject,
		Audience:  audienceClaim{string(c.Audience)},
		ExpiresAt: jwt.NewNumericDate(c.ExpiresAt),
		NotBefore: jwt.NewNumericDate(c.NotBefore),
		IssuedAt:  jwt.NewNumericDate(c.IssuedAt),
		ID:        c.ID,
		Scope:     c.Scopes.String(),
		Project:   c.Project,
		Session:   c.Session,
		Agent:     c.Agent,
		Model:     c.Model,
	}
}

// claims is the typed view of w (aud only when it is a single value).
func (w *wireClaims) claims(kid string) Claims {
	c := Claims{
		Issuer:  w.Issuer,
		Subject: w.Subject,
		Project: w.Project,
		Session: w.Session,
		Agent:   w.Agent,
		Model:   w.Model,
		Scopes:  parseKnownScopes(w.Scope),
		ID:      w.ID,
		KeyID:   kid,
	}
	if len(w.Audience) == 1 {
		c.Audience = Audience(w.Audience[0])
	}
	if w.IssuedAt != nil {
		c.IssuedAt = w.IssuedAt.UTC()
	}
	if w.NotBefore != nil {
		c.NotBefore = w.NotBefore.UTC()
	}
	if w.ExpiresAt != nil {
		c.ExpiresAt = w.ExpiresAt.UTC()
	}
	return c
}

// audienceClaim is "aud": one string when it has one value (as we mint),
// either form accepted when parsing so that a multi-audience token is
// refused as ErrWrongAudience rather than as malformed.
type audienceClaim []string

func (a audienceClaim) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

func (a *audienceClaim) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*a = nil
		return nil
	}
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audienceClaim{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*a = many
	return nil
}
