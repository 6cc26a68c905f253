package tokens

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// MiddlewareOptions configure Service.MiddlewareWith.
type MiddlewareOptions struct {
	// Audience the protected handler serves. Required.
	Audience Audience
	// Scopes the request needs, all of them (Claims.HasScope each). None
	// means any valid token for Audience.
	Scopes []Scope
	// AcceptAPIKey also takes the token from an x-api-key header (the
	// inference proxy, for Anthropic clients configured with an API key).
	// When both headers are present they must carry the same token. Default:
	// only Authorization.
	AcceptAPIKey bool
	// ResourceMetadata, when set, is the URL of the RFC 9728 protected
	// resource metadata, advertised as resource_metadata="…" in every
	// WWW-Authenticate challenge (the MCP server needs it).
	ResourceMetadata string
	// Realm in the challenge. Default "agentbroker".
	Realm string
	// OnRefused, when set, is told of each token Verify refuses, before the
	// 401 is written (the error may be a *RevokedError carrying the claims).
	OnRefused func(r *http.Request, err error)
}

// Middleware protects a handler: it takes the bearer token from the
// Authorization header, verifies it for audience, requires every scope in
// required, and passes the claims to the handler in the request context
// (ClaimsFrom). See MiddlewareWith for the details.
func (s *Service) Middleware(audience Audience, required ...Scope) func(http.Handler) http.Handler {
	return s.MiddlewareWith(MiddlewareOptions{Audience: audience, Scopes: required})
}

// MiddlewareWith is Middleware with options. It decides with
// Service.AuthorizeRequest and answers a refusal with Refusal.Write.
//
// The token is accepted from "Authorization: Bearer <token>" (the scheme
// case-insensitively, RFC 7235; so "bearer" is fine) and, with AcceptAPIKey,
// from x-api-key. Nowhere else: a cookie is ignored, an access_token query
// parameter is refused outright (400), another scheme (Basic) counts as no
// token.
//
// Responses (JSON body {"error": …, "error_description": …}, never echoing
// the token, Cache-Control: no-store):
//
//   - 401 when the token is missing (challenge without an error code, RFC
//     6750 §3.1) or refused by Verify (error="invalid_token" and the reason);
//   - 403 error="insufficient_scope", scope="<the scopes needed>" when a
//     scope is missing;
//   - 400 error="invalid_request" for a token in the query string, two
//     Authorization headers, or two different tokens;
//   - 503 when the revocation store cannot answer (fail closed).
//
// It panics if o names an unknown audience or scope: that is a bug in the
// caller, found at start-up.
func (s *Service) MiddlewareWith(o MiddlewareOptions) func(http.Handler) http.Handler {
	if !o.Audience.Known() {
		panic(fmt.Sprintf("tokens: middleware for unknown audience %q", o.Audience))
	}
	required, err := NewScopes(o.Scopes...)
	if err != nil {
		panic(fmt.Sprintf("tokens: middleware: %v", err))
	}
	p := Policy{Audience: o.Audience, Scopes: required.List(), AcceptAPIKey: o.AcceptAPIKey,
		Realm: o.Realm, ResourceMetadata: o.ResourceMetadata}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, f := s.AuthorizeRequest(r, p)
			if f != nil {
				if f.Err != nil && o.OnRefused != nil {
					o.OnRefused(r, f.Err)
				}
				f.Write(w)
				return
			}
			next.ServeHTTP(w, r.WithContext(ContextWithClaims(r.Context(), c)))
		})
	}
}

// quote makes an RFC 7230 quoted-string; characters a header cannot hold
// (controls) are dropped.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func writeError(w http.ResponseWriter, status int, code, desc string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	if status == http.StatusServiceUnavailable {
		h.Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}{code, desc})
}
