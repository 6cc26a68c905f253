// Package adminapi is the admin side of the broker's HTTP API for what
// exists so far: signing keys and tokens. Every route needs an admin-audience
// bearer token with the admin scope; so does every /v1/ path that no package
// claims, so that probing the API without a token learns nothing but 401.
package adminapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/agentbroker/agentbroker/catalog"
	"github.com/agentbroker/agentbroker/internal/server"
	"github.com/agentbroker/agentbroker/store"
	"github.com/agentbroker/agentbroker/tokens"
)

// MaxBody caps every admin request body.
const MaxBody = 64 << 10

// Mux is where the routes go (internal/server.Server satisfies it).
type Mux interface {
	Handle(pattern string, h http.Handler)
}

// Mount adds the admin routes to m. cat checks the agent names of minted
// tokens.
func Mount(m Mux, svc *tokens.Service, cat *catalog.Catalog) {
	a := &api{svc: svc, cat: cat}
	admin := svc.Middleware(tokens.AudienceAdmin, tokens.ScopeAdmin)
	m.Handle("GET /v1/keys", admin(http.HandlerFunc(a.listKeys)))
	m.Handle("POST /v1/keys/rotate", admin(http.HandlerFunc(a.rotateKey)))
	m.Handle("POST /v1/keys/{kid}/retire", admin(http.HandlerFunc(a.retireKey)))
	m.Handle("POST /v1/tokens", admin(http.HandlerFunc(a.mint)))
	m.Handle("POST /v1/tokens/revoke", admin(http.HandlerFunc(a.revoke)))
	m.Handle("GET /v1/whoami", svc.Middleware(tokens.AudienceAdmin)(http.HandlerFunc(a.whoami)))
	m.Handle("/v1/", admin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		server.WriteError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path)
	})))
}

type api struct {
	svc *tokens.Service
	cat *catalog.Catalog
}

// KeyJSON is a signing key as the API shows it: no secret.
type KeyJSON struct {
	ID        string     `json:"kid"`
	CreatedAt time.Time  `json:"created_at"`
	RetiredAt *time.Time `json:"retired_at,omitempty"`
	Signing   bool       `json:"signing"`
}

func keysJSON(infos []tokens.KeyInfo) []KeyJSON {
	out := make([]KeyJSON, 0, len(infos))
	for _, k := range infos {
		j := KeyJSON{ID: k.ID, CreatedAt: k.CreatedAt, Signing: k.Signing}
		if !k.RetiredAt.IsZero() {
			t := k.RetiredAt
			j.RetiredAt = &t
		}
		out = append(out, j)
	}
	return out
}

func (a *api) listKeys(w http.ResponseWriter, r *http.Request) {
	if err := a.svc.KeyRing().Refresh(r.Context()); err != nil {
		server.WriteError(w, http.StatusServiceUnavailable, "store_unavailable", "cannot read the key ring")
		return
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"keys": keysJSON(a.svc.KeyRing().Keys())})
}

func (a *api) rotateKey(w http.ResponseWriter, r *http.Request) {
	kid, err := a.svc.KeyRing().Rotate(r.Context())
	if err != nil {
		server.WriteError(w, http.StatusServiceUnavailable, "store_unavailable", "cannot rotate the key ring")
		return
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"signing_kid": kid, "keys": keysJSON(a.svc.KeyRing().Keys())})
}

func (a *api) retireKey(w http.ResponseWriter, r *http.Request) {
	err := a.svc.KeyRing().Retire(r.Context(), r.PathValue("kid"))
	switch {
	case errors.Is(err, store.ErrNotFound):
		server.WriteError(w, http.StatusNotFound, "not_found", "no such key")
	case err != nil:
		server.WriteError(w, http.StatusConflict, "cannot_retire", err.Error())
	default:
		server.WriteJSON(w, http.StatusOK, map[string]any{"keys": keysJSON(a.svc.KeyRing().Keys())})
	}
}

// MintRequest is the body of POST /v1/tokens.
//
// A token minted through the API never outlives, nor holds more than, the
// bearer token that asks for it (tokens.CheckDelegation): a TTL beyond the
// caller's own remaining lifetime, or a scope, audience or binding beyond
// its own, is refused with 403 "exceeds_minter", never silently shortened;
// an omitted TTL is the default lifetime cut to the caller's remaining
// lifetime (expires_at in the answer says which).
type MintRequest struct {
	Subject string   `json:"subject"`
	Purpose string   `json:"purpose"` // mcp, proxy, viewer or admin
	Project string   `json:"project,omitempty"`
	Session string   `json:"session,omitempty"`
	Agent   string   `json:"agent,omitempty"`
	Scopes  []string `json:"scopes"`
	TTL     string   `json:"ttl,omitempty"` // Go duration; empty = the default lifetime
}

// MintResponse answers POST /v1/tokens.
type MintResponse struct {
	Token     string    `json:"token"`
	ID        string    `json:"jti"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (a *api) mint(w http.ResponseWriter, r *http.Request) {
	var req MintRequest
	if !decode(w, r, &req) {
		return
	}
	g, err := GrantFrom(req, a.cat)
	if err != nil {
		server.WriteError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	minter, ok := tokens.ClaimsFrom(r.Context())
	if !ok { // the admin middleware always sets them
		server.WriteError(w, http.StatusUnauthorized, "invalid_token", "no verified token")
		return
	}
	raw, claims, err := a.svc.MintDelegated(r.Context(), minter, g)
	switch {
	case errors.Is(err, tokens.ErrEscalation):
		server.WriteError(w, http.StatusForbidden, "exceeds_minter", err.Error())
		return
	case err != nil:
		server.WriteError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	server.WriteJSON(w, http.StatusCreated, MintResponse{Token: raw, ID: claims.ID, ExpiresAt: claims.ExpiresAt})
}

// GrantFrom checks a mint request and turns it into a grant; the CLI uses it
// too, so both refuse the same things.
func GrantFrom(req MintRequest, cat *catalog.Catalog) (tokens.Grant, error) {
	aud, err := ParsePurpose(req.Purpose)
	if err != nil {
		return tokens.Grant{}, err
	}
	if req.Agent != "" && cat != nil {
		if _, err := cat.Policy(req.Agent); err != nil {
			return tokens.Grant{}, fmt.Errorf("agent %q: %w", req.Agent, err)
		}
	}
	g := tokens.Grant{Subject: req.Subject, Audience: aud, Project: req.Project, Session: req.Session, Agent: req.Agent}
	for _, s := range req.Scopes {
		g.Scopes = append(g.Scopes, tokens.Scope(s))
	}
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 {
			return tokens.Grant{}, fmt.Errorf("ttl %q: want a positive duration such as 30m or 12h", req.TTL)
		}
		g.Lifetime = d
	}
	return g, nil
}

// ParsePurpose maps the purposes people type to token audiences.
func ParsePurpose(p string) (tokens.Audience, error) {
	switch strings.ToLower(p) {
	case "mcp":
		return tokens.AudienceMCP, nil
	case "proxy", "inference":
		return tokens.AudienceProxy, nil
	case "viewer", "session-viewer":
		return tokens.AudienceViewer, nil
	case "admin":
		return tokens.AudienceAdmin, nil
	case "":
		return "", errors.New("purpose is required: mcp, proxy, viewer or admin")
	}
	return "", fmt.Errorf("unknown purpose %q: want mcp, proxy, viewer or admin", p)
}

// RevokeRequest is the body of POST /v1/tokens/revoke: one of the two.
type RevokeRequest struct {
	ID        string    `json:"jti,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"` // the token's exp, so the row can be pruned; default now+max TTL
	Session   string    `json:"session,omitempty"`
}

func (a *api) revoke(w http.ResponseWriter, r *http.Request) {
	var req RevokeRequest
	if !decode(w, r, &req) {
		return
	}
	var err error
	switch {
	case (req.ID == "") == (req.Session == ""):
		server.WriteError(w, http.StatusBadRequest, "invalid_request", "give exactly one of jti and session")
		return
	case req.ID != "":
		exp := req.ExpiresAt
		if exp.IsZero() {
			exp = time.Now().Add(365 * 24 * time.Hour)
		}
		err = a.svc.Revoke(r.Context(), req.ID, exp)
	default:
		err = a.svc.RevokeSession(r.Context(), req.Session)
	}
	if errors.Is(err, store.ErrNoSpace) || errors.Is(err, store.ErrReadOnly) {
		storeError(w, err)
		return
	}
	if err != nil {
		server.WriteError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"revoked": true})
}

func (a *api) whoami(w http.ResponseWriter, r *http.Request) {
	c, _ := tokens.ClaimsFrom(r.Context())
	server.WriteJSON(w, http.StatusOK, c)
}

// decode reads a JSON body strictly: size-capped, unknown fields and
// trailing data refused. It writes the error response itself.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		server.WriteError(w, http.StatusUnsupportedMediaType, "invalid_request", "send application/json")
		return false
	}
	return server.DecodeJSON(w, r, MaxBody, v)
}
