package tokens

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
)

// Policy is what a request must hold to pass Authorize: a token of one
// audience with every scope listed, taken from where the policy allows.
type Policy struct {
	// Audience the token must be for. Required.
	Audience Audience
	// Scopes the request needs, all of them (Claims.HasScope each). None
	// means any valid token for Audience.
	Scopes []Scope
	// Session, when set, is the session the token must be bound to
	// (Claims.Session); a token of another session is refused with 403.
	Session string
	// AcceptAPIKey also takes the token from an x-api-key header (the
	// inference proxy, for Anthropic clients configured with an API key).
	// When both headers are present they must carry the same token.
	// Default: only Authorization.
	AcceptAPIKey bool
	// APIKeyHeaders, with AcceptAPIKey, are the headers that may carry the
	// token instead of x-api-key (the Gemini API's x-goog-api-key). Empty
	// means x-api-key. Every one present must carry the same token.
	APIKeyHeaders []string
	// AcceptSubprotocol also takes the token from a WebSocket subprotocol
	// "bearer.<token>" (Sec-WebSocket-Protocol), the one place a browser can
	// put it on a WebSocket; Authorization, when present, wins. Default: only
	// Authorization.
	AcceptSubprotocol bool
	// Realm in the challenge Refusal.Write sends. Default "agentbroker".
	Realm string
	// ChallengeScope, when set, is the space-separated scope list a 401's
	// challenge advertises as scope="…" (RFC 6750 §3): the scopes a client
	// should ask for (the MCP authorization spec's clients read it first).
	ChallengeScope string
	// ResourceMetadata, when set, is the URL of the RFC 9728 protected
	// resource metadata, advertised as resource_metadata="…" in the
	// challenge (the MCP server needs it).
	ResourceMetadata string
}

// Reason says, for machines (metric labels, logs, WebSocket close
// reasons), why Authorize refused a request.
type Reason string

// The reasons. Each maps to one HTTP status: 400 for ReasonInvalidRequest,
// 403 for ReasonInsufficientScope and ReasonWrongSession, 503 for
// ReasonUnavailable, 401 for the rest.
const (
	ReasonMissing           Reason = "missing_token"      // no token where the policy looks
	ReasonInvalidRequest    Reason = "invalid_request"    // token in the query, two headers, two tokens, empty bearer
	ReasonMalformed         Reason = "malformed"          // too large, not a JWS, wrong typ, a claim missing
	ReasonBadSignature      Reason = "bad_signature"      // alg or signature
	ReasonUnknownKey        Reason = "unknown_key"        // kid unknown or retired
	ReasonExpired           Reason = "expired"            // exp (plus leeway) passed
	ReasonNotYetValid       Reason = "not_yet_valid"      // nbf or iat in the future
	ReasonWrongIssuer       Reason = "wrong_issuer"       // iss
	ReasonWrongAudience     Reason = "wrong_audience"     // aud is not Policy.Audience
	ReasonRevoked           Reason = "revoked"            // the token or its session was revoked
	ReasonInvalidToken      Reason = "invalid_token"      // any other refusal by Verify
	ReasonInsufficientScope Reason = "insufficient_scope" // a scope of Policy.Scopes is missing
	ReasonWrongSession      Reason = "wrong_session"      // bound to another session than Policy.Session
	ReasonUnavailable       Reason = "unavailable"        // revocation could not be checked (fail closed)
)

// Refusal is Authorize's answer when a request may not pass: everything
// needed to answer it, in whatever shape the protocol wants. It never
// carries the token.
type Refusal struct {
	// Status is the HTTP status: 400, 401, 403 or 503.
	Status int
	// Code is the OAuth error code (RFC 6750 §3.1): invalid_request,
	// invalid_token, insufficient_scope, or temporarily_unavailable for a
	// 503. A missing token is invalid_token here, but its challenge carries
	// no error code, as RFC 6750 §3.1 asks.
	Code string
	// Description is a short English sentence for error_description.
	Description string
	// Scope lists the scopes needed (space-separated) when Code is
	// insufficient_scope, and Policy.ChallengeScope on a 401.
	Scope string
	// Reason is the machine-readable reason.
	Reason Reason
	// Err is Verify's error when Verify refused the token (errors.Is the
	// package's sentinels; a *RevokedError carries the revoked token's
	// claims) or a store error for ReasonUnavailable; nil otherwise.
	Err error

	realm, resourceMetadata string
}

// Challenge is the WWW-Authenticate value (RFC 6750 §3) of the refusal.
func (f *Refusal) Challenge() string {
	var b strings.Builder
	b.WriteString("Bearer realm=")
	b.WriteString(quote(f.realm))
	if f.Reason != ReasonMissing && f.Status != http.StatusServiceUnavailable {
		b.WriteString(", error=" + quote(f.Code))
		b.WriteString(", error_description=" + quote(f.Description))
	}
	if f.Scope != "" {
		b.WriteString(", scope=" + quote(f.Scope))
	}
	if f.resourceMetadata != "" {
		b.WriteString(", resource_metadata=" + quote(f.resourceMetadata))
	}
	return b.String()
}

// Write answers the request: the WWW-Authenticate challenge (not for a
// 503), Cache-Control: no-store, and the JSON body {"error": Code,
// "error_description": Description} (Retry-After: 1 on a 503).
func (f *Refusal) Write(w http.ResponseWriter) {
	if f.Status != http.StatusServiceUnavailable {
		w.Header().Set("WWW-Authenticate", f.Challenge())
	}
	writeError(w, f.Status, f.Code, f.Description)
}

// Authorize decides whether raw, a bearer token, passes p: it verifies it
// (Verify: signature, claims, audience, revocation), then checks p.Session
// and p.Scopes. It returns the claims, or a Refusal saying why not; it
// writes nothing. An empty raw is ReasonMissing.
func (s *Service) Authorize(ctx context.Context, raw string, p Policy) (Claims, *Refusal) {
	if raw == "" {
		return Claims{}, p.refuse(http.StatusUnauthorized, "invalid_token", ReasonMissing, "missing bearer token", nil)
	}
	c, err := s.Verify(ctx, raw, p.Audience)
	if err != nil {
		desc, reason, ok := refusalOf(err)
		if !ok {
			s.log.LogAttrs(ctx, slog.LevelWarn, "token check failed", slog.String("error", err.Error()))
			return Claims{}, p.refuse(http.StatusServiceUnavailable, "temporarily_unavailable", ReasonUnavailable,
				"cannot verify the token now", err)
		}
		return Claims{}, p.refuse(http.StatusUnauthorized, "invalid_token", reason, desc, err)
	}
	if p.Session != "" && c.Session != p.Session {
		return Claims{}, p.refuse(http.StatusForbidden, "insufficient_scope", ReasonWrongSession,
			"token of another session", nil)
	}
	var missing []string
	for _, sc := range p.Scopes {
		if !c.HasScope(sc) {
			missing = append(missing, string(sc))
		}
	}
	if len(missing) > 0 {
		s.log.LogAttrs(ctx, slog.LevelDebug, "token lacks scope",
			slog.String("jti", c.ID), slog.String("missing", strings.Join(missing, " ")))
		f := p.refuse(http.StatusForbidden, "insufficient_scope", ReasonInsufficientScope,
			"token lacks scope "+strings.Join(missing, " "), nil)
		if need, err := NewScopes(p.Scopes...); err == nil {
			f.Scope = need.String()
		} else {
			f.Scope = strings.Join(missing, " ")
		}
		return Claims{}, f
	}
	return c, nil
}

// AuthorizeRequest is Authorize for the token r carries (RequestToken).
func (s *Service) AuthorizeRequest(r *http.Request, p Policy) (Claims, *Refusal) {
	raw, f := RequestToken(r, p)
	if f != nil {
		return Claims{}, f
	}
	return s.Authorize(r.Context(), raw, p)
}

// RequestToken takes the bearer token from r where p allows: from
// "Authorization: Bearer <token>" (the scheme case-insensitively, RFC 7235;
// another scheme counts as no token), and, as p says, from x-api-key or a
// "bearer.<token>" WebSocket subprotocol. Nowhere else: a cookie is
// ignored, an access_token query parameter is refused outright. It returns
// "" when there is none (Authorize then refuses with ReasonMissing), or a
// ReasonInvalidRequest refusal for a token in the query string, two
// Authorization or x-api-key headers, two different tokens or an empty
// bearer.
func RequestToken(r *http.Request, p Policy) (string, *Refusal) {
	bad := func(desc string) (string, *Refusal) {
		return "", p.refuse(http.StatusBadRequest, "invalid_request", ReasonInvalidRequest, desc, nil)
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if q.Has("access_token") || err != nil && strings.Contains(r.URL.RawQuery, "access_token") {
		return bad("tokens are not accepted in the query string")
	}
	auth := r.Header.Values("Authorization")
	if len(auth) > 1 {
		return bad("more than one Authorization header")
	}
	var raw string
	if len(auth) == 1 {
		scheme, rest, _ := strings.Cut(auth[0], " ")
		if strings.EqualFold(scheme, "Bearer") {
			raw = strings.TrimLeft(rest, " ")
			if raw == "" {
				return bad("empty bearer token")
			}
		}
	}
	if p.AcceptAPIKey {
		headers := p.APIKeyHeaders
		if len(headers) == 0 {
			headers = []string{"X-Api-Key"}
		}
		for _, h := range headers {
			name := strings.ToLower(h)
			keys := r.Header.Values(h)
			if len(keys) > 1 {
				return bad("more than one " + name + " header")
			}
			if len(keys) == 1 && keys[0] != "" {
				if raw != "" && raw != keys[0] {
					return bad("different tokens in Authorization and " + name)
				}
				raw = keys[0]
			}
		}
	}
	if p.AcceptSubprotocol && len(auth) == 0 {
		for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
			for _, proto := range strings.Split(h, ",") {
				if tok, ok := strings.CutPrefix(strings.TrimSpace(proto), "bearer."); ok && tok != "" {
					if raw != "" && raw != tok {
						return bad("more than one bearer subprotocol")
					}
					raw = tok
				}
			}
		}
	}
	return raw, nil
}

func (p Policy) refuse(status int, code string, reason Reason, desc string, err error) *Refusal {
	realm := p.Realm
	if realm == "" {
		realm = "agentbroker"
	}
	f := &Refusal{Status: status, Code: code, Description: desc, Reason: reason, Err: err,
		realm: realm, resourceMetadata: p.ResourceMetadata}
	if status == http.StatusUnauthorized {
		f.Scope = p.ChallengeScope
	}
	return f
}
