// Package oauth makes the broker the OAuth 2.1 authorization server of its
// own MCP resource, so that MCP clients the broker did not launch (Claude
// Code, Cursor, SDK clients) can sign in to a project's MCP server:
//
//   - metadata: RFC 8414 at /.well-known/oauth-authorization-server (the
//     MCP server's RFC 9728 metadata names this issuer);
//   - registration: RFC 7591 dynamic client registration at
//     /oauth/register, or a client ID metadata document (an https
//     client_id, fetched at authorization: see cimd.go); public clients
//     only (token_endpoint_auth_method "none"), redirect URIs https,
//     loopback http (RFC 8252 §7.3) or a private-use scheme (RFC 8252 §7.1);
//   - authorization: the code grant with PKCE, S256 only, at
//     /oauth/authorize, which sends the browser to the console's consent
//     page (/console/consent.html): a signed-in admin picks the project,
//     the scopes, the connection's lifetime and name, or denies;
//   - tokens: /oauth/token exchanges the code (once: a replayed code
//     revokes the connection it made) and rotates refresh tokens (a reused
//     one revokes the connection). Access tokens are the broker's own
//     MCP-audience JWTs (tokens.Service.Mint), bound to the project and to
//     the connection as their session ("oauth-<connection id>"), so the MCP
//     server checks them on its one path (tokens.Authorize) and revoking a
//     connection is tokens.RevokeSession;
//   - the admin API: GET/POST /v1/oauth/requests/{id} (the consent page's),
//     GET /v1/oauth/connections and DELETE /v1/oauth/connections/{id}.
//
// The consent endpoints take the admin token as a bearer header, never a
// cookie, so a cross-site form cannot ride an admin's session (CSRF), and
// a request carrying a foreign Origin is refused besides.
//
// Registered clients and connections (with their refresh tokens' hashes)
// are kept in a JSON file (0600) when Options.StatePath is set; pending
// consents and codes live in memory only (minutes).
package oauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/agentbroker/agentbroker/internal/origins"
	"github.com/agentbroker/agentbroker/internal/secretfile"
	"github.com/agentbroker/agentbroker/store"
	"github.com/agentbroker/agentbroker/tokens"
)

// Paths served.
const (
	MetadataPath      = "/.well-known/oauth-authorization-server"
	RegisterPath      = "/oauth/register"
	AuthorizePath     = "/oauth/authorize"
	TokenPath         = "/oauth/token"
	ConsentPagePath   = "/console/consent.html"
	requestsPath      = "/v1/oauth/requests/"
	connectionsPath   = "/v1/oauth/connections"
	sessionPrefix     = "oauth-"
	accessLifetime    = time.Hour
	codeLifetime      = time.Minute
	pendingLifetime   = 10 * time.Minute
	maxBody           = 16 << 10
	maxRedirectURIs   = 8
	maxURILen         = 2000
	maxNameLen        = 200
	maxClients        = 1000
	maxPending        = 1000
	maxOldRefresh     = 64
	maxConnectionLife = 365 * 24 * time.Hour
)

// Tokens is what the server needs of the token service
// (*tokens.Service).
type Tokens interface {
	Mint(ctx context.Context, g tokens.Grant) (string, tokens.Claims, error)
	RevokeSession(ctx context.Context, sessionID string) error
	AuthorizeRequest(r *http.Request, p tokens.Policy) (tokens.Claims, *tokens.Refusal)
}

// Projects reads projects (store.Store satisfies it).
type Projects interface {
	GetProject(ctx context.Context, id string) (store.Project, error)
}

// Options configure New.
type Options struct {
	Tokens   Tokens
	Projects Projects
	// Issuer is the broker's public origin (http(s)://host[:port]), the
	// RFC 8414 issuer; the endpoints are under it.
	Issuer string
	// Resource is the MCP server's resource URL (RFC 8707 resource
	// indicator): a resource parameter, when sent, must be it.
	Resource string
	// AllowedOrigins are browser origins allowed besides the issuer's own.
	AllowedOrigins []string
	// MaxLifetime bounds an access token's life (tokens.Options.MaxLifetime);
	// zero: one hour.
	MaxLifetime time.Duration
	// StatePath is the JSON file keeping clients and connections ("":
	// memory only).
	StatePath string
	Now       func() time.Time
	Logger    *slog.Logger
}

// Server is the authorization server.
type Server struct {
	o       Options
	origins origins.Set

	fetch *http.Client // client ID metadata documents

	mu      sync.Mutex
	st      state
	pending map[string]*pendingAuth // by request ID
	codes   map[string]*authCode    // by code hash
}

type state struct {
	Clients     map[string]*Client     `json:"clients"`
	Connections map[string]*Connection `json:"connections"`
}

// Client is a registered client.
type Client struct {
	ID           string    `json:"client_id"`
	Name         string    `json:"client_name"`
	RedirectURIs []string  `json:"redirect_uris"`
	Created      time.Time `json:"created"`
}

// Connection is what an admin's consent made: one client's access to one
// project with some scopes, until Expires or revocation.
type Connection struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	ClientID   string     `json:"client_id"`
	ClientName string     `json:"client_name"`
	Project    string     `json:"project"`
	Scopes     []string   `json:"scopes"`
	Subject    string     `json:"subject"` // the admin who consented
	Created    time.Time  `json:"created"`
	Expires    time.Time  `json:"expires"`
	Revoked    *time.Time `json:"revoked,omitempty"`
	RevokedWhy string     `json:"revoked_reason,omitempty"`
	Refresh    string     `json:"-"` // hash of the current refresh token
	OldRefresh []string   `json:"-"` // hashes of rotated-out ones
}

// connectionFile is a Connection with its refresh hashes, as stored.
type connectionFile struct {
	Connection
	Refresh    string   `json:"refresh_sha256"`
	OldRefresh []string `json:"old_refresh_sha256"`
}

type pendingAuth struct {
	ID          string
	ClientID    string
	RedirectURI string
	State       string
	Challenge   string
	Scope       string
	Expires     time.Time
}

type authCode struct {
	ConnID      string
	ClientID    string
	RedirectURI string
	Challenge   string
	Expires     time.Time
	Used        bool
}

// New returns a server for o.
func New(o Options) (*Server, error) {
	if o.Tokens == nil || o.Projects == nil {
		return nil, errors.New("oauth: new: Tokens and Projects are required")
	}
	iu, err := url.Parse(o.Issuer)
	if err != nil || (iu.Scheme != "http" && iu.Scheme != "https") || iu.Host == "" || iu.RawQuery != "" || iu.Fragment != "" || iu.User != nil {
		return nil, fmt.Errorf("oauth: new: issuer %q: want http(s)://host[:port][/path]", o.Issuer)
	}
	o.Issuer = strings.TrimSuffix(o.Issuer, "/")
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxLifetime <= 0 {
		o.MaxLifetime = accessLifetime
	}
	set, err := origins.ForPublicURL(o.Issuer, o.AllowedOrigins)
	if err != nil {
		return nil, fmt.Errorf("oauth: new: %w", err)
	}
	s := &Server{o: o, origins: set, fetch: metadataClient(), pending: map[string]*pendingAuth{}, codes: map[string]*authCode{},
		st: state{Clients: map[string]*Client{}, Connections: map[string]*Connection{}}}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

// Mount serves the endpoints on mux.
func (s *Server) Mount(mux interface{ Handle(string, http.Handler) }) {
	mux.Handle(MetadataPath, http.HandlerFunc(s.serveMetadata))
	if u, err := url.Parse(s.o.Issuer); err == nil && strings.Trim(u.EscapedPath(), "/") != "" {
		// RFC 8414 §3.1: an issuer with a path has its metadata at the
		// well-known path with the issuer's path appended.
		mux.Handle(MetadataPath+u.EscapedPath(), http.HandlerFunc(s.serveMetadata))
	}
	mux.Handle(RegisterPath, http.HandlerFunc(s.serveRegister))
	mux.Handle(AuthorizePath, http.HandlerFunc(s.serveAuthorize))
	mux.Handle(TokenPath, http.HandlerFunc(s.serveToken))
	mux.Handle(requestsPath+"{id}", http.HandlerFunc(s.serveRequest))
	mux.Handle(connectionsPath, http.HandlerFunc(s.serveConnections))
	mux.Handle(connectionsPath+"/{id}", http.HandlerFunc(s.serveConnection))
}

// Issuer is the issuer URL (for the MCP server's authorization_servers).
func (s *Server) Issuer() string { return s.o.Issuer }

// ---- persistence ----

func (s *Server) load() error {
	if s.o.StatePath == "" {
		return nil
	}
	b, err := os.ReadFile(s.o.StatePath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("oauth: read state: %w", err)
	}
	var f struct {
		Clients     map[string]*Client         `json:"clients"`
		Connections map[string]*connectionFile `json:"connections"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("oauth: state %s: %w", s.o.StatePath, err)
	}
	for id, c := range f.Clients {
		s.st.Clients[id] = c
	}
	for id, c := range f.Connections {
		conn := c.Connection
		conn.Refresh, conn.OldRefresh = c.Refresh, c.OldRefresh
		s.st.Connections[id] = &conn
	}
	return nil
}

// saveLocked writes the state (s.mu held).
func (s *Server) saveLocked() error {
	if s.o.StatePath == "" {
		return nil
	}
	conns := map[string]*connectionFile{}
	for id, c := range s.st.Connections {
		conns[id] = &connectionFile{*c, c.Refresh, c.OldRefresh}
	}
	b, err := json.MarshalIndent(struct {
		Clients     map[string]*Client         `json:"clients"`
		Connections map[string]*connectionFile `json:"connections"`
	}{s.st.Clients, conns}, "", "  ")
	if err != nil {
		return err
	}
	return secretfile.Write(s.o.StatePath, b)
}

// ---- helpers ----

func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashOf(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// oauthError writes an RFC 6749 §5.2 error.
func oauthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// cors lets browser-based clients (the Inspector's web UI) call the public
// endpoints: they carry no cookie and no ambient authority.
func cors(w http.ResponseWriter, r *http.Request) bool {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	if r.Method == http.MethodOptions {
		h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization, Mcp-Protocol-Version")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	return false
}

func mcpScopes() []string {
	var out []string
	for _, sc := range tokens.AudienceMCP.AllowedScopes().List() {
		out = append(out, string(sc))
	}
	return out
}

// ---- metadata ----

func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request) {
	if cors(w, r) {
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "use GET")
		return
	}
	w.Header().Set("Cache-Control", "max-age=300")
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                s.o.Issuer,
		"authorization_endpoint":                s.o.Issuer + AuthorizePath,
		"token_endpoint":                        s.o.Issuer + TokenPath,
		"registration_endpoint":                 s.o.Issuer + RegisterPath,
		"response_types_supported":              []string{"code"},
		"response_modes_supported":              []string{"query"},
		"grant_types_supported":                 []string{"authorization_code", "refresh_token"},
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"none"},
		"client_id_metadata_document_supported": true,
		"scopes_supported":                      mcpScopes(),
		"service_documentation":                 s.o.Issuer + ConsentPagePath,
	})
}

// ---- registration (RFC 7591) ----

// registration is the part of an RFC 7591 request read here.
type registration struct {
	RedirectURIs            []string `json:"redirect_uris"`
	ClientName              string   `json:"client_name"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	Scope                   string   `json:"scope"`
}

// parseRegistration reads and checks an RFC 7591 request body.
func parseRegistration(body []byte) (registration, error) {
	var reg registration
	if err := json.Unmarshal(body, &reg); err != nil {
		return reg, errors.New("the body is not a JSON client metadata object")
	}
	if len(reg.RedirectURIs) == 0 {
		return reg, errors.New("redirect_uris is required")
	}
	if len(reg.RedirectURIs) > maxRedirectURIs {
		return reg, fmt.Errorf("at most %d redirect_uris", maxRedirectURIs)
	}
	for _, u := range reg.RedirectURIs {
		if err := checkRedirectURI(u); err != nil {
			return reg, err
		}
	}
	for _, g := range reg.GrantTypes {
		if g != "authorization_code" && g != "refresh_token" {
			return reg, fmt.Errorf("grant type %q is not supported", g)
		}
	}
	for _, t := range reg.ResponseTypes {
		if t != "code" {
			return reg, fmt.Errorf("response type %q is not supported", t)
		}
	}
	if len(reg.ClientName) > maxNameLen || !printable(reg.ClientName) {
		return reg, errors.New("client_name is too long or not printable")
	}
	return reg, nil
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return false
		}
	}
	return true
}

// checkRedirectURI accepts https URLs, http URLs on a loopback host
// (RFC 8252 §7.3: 127.0.0.1, [::1] or localhost) and private-use schemes
// with a dot (reverse domain names, RFC 8252 §7.1); never a fragment.
func checkRedirectURI(raw string) error {
	if len(raw) > maxURILen {
		return errors.New("a redirect URI is too long")
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Fragment != "" || strings.Contains(raw, "#") {
		return fmt.Errorf("redirect URI %q is not an absolute URI without a fragment", raw)
	}
	switch u.Scheme {
	case "https":
		if u.Host == "" || u.User != nil {
			return fmt.Errorf("redirect URI %q has no host", raw)
		}
	case "http":
		if !isLoopbackHost(u.Hostname()) || u.User != nil {
			return fmt.Errorf("redirect URI %q: http is allowed only on a loopback host (127.0.0.1, [::1], localhost)", raw)
		}
	default:
		if !strings.Contains(u.Scheme, ".") {
			return fmt.Errorf("redirect URI %q: a private-use scheme must be a reverse domain name (RFC 8252 §7.1)", raw)
		}
	}
	return nil
}

func isLoopbackHost(h string) bool {
	return h == "127.0.0.1" || h == "::1" || h == "localhost"
}

// redirectMatches is the exact match of a redirect URI against the
// registered ones, except that the port of a loopback http URI may differ
// (RFC 8252 §7.3: the client picks a free port at each request).
func redirectMatches(registered []string, got string) bool {
	for _, r := range registered {
		if r == got {
			return true
		}
	}
	gu, err := url.Parse(got)
	if err != nil || gu.Scheme != "http" || !isLoopbackHost(gu.Hostname()) {
		return false
	}
	for _, r := range registered {
		ru, err := url.Parse(r)
		if err != nil || ru.Scheme != "http" || ru.Hostname() != gu.Hostname() {
			continue
		}
		if ru.EscapedPath() == gu.EscapedPath() && ru.RawQuery == gu.RawQuery && ru.User == nil && gu.User == nil && gu.Fragment == "" {
			return true
		}
	}
	return false
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body := http.MaxBytesReader(w, r.Body, maxBody)
	b := make([]byte, 0, 1024)
	buf := make([]byte, 4096)
	for {
		n, err := body.Read(buf)
		b = append(b, buf[:n]...)
		if err != nil {
			var mb *http.MaxBytesError
			if errors.As(err, &mb) {
				oauthError(w, http.StatusRequestEntityTooLarge, "invalid_request", "the body is over the limit")
				return nil, false
			}
			return b, true
		}
	}
}

func (s *Server) serveRegister(w http.ResponseWriter, r *http.Request) {
	if cors(w, r) {
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "use POST")
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	reg, err := parseRegistration(body)
	if err != nil {
		code := "invalid_client_metadata"
		if strings.Contains(err.Error(), "redirect") {
			code = "invalid_redirect_uri"
		}
		oauthError(w, http.StatusBadRequest, code, err.Error())
		return
	}
	c := &Client{ID: "mcp-" + randomToken(18), Name: reg.ClientName, RedirectURIs: reg.RedirectURIs, Created: s.o.Now().UTC()}
	if c.Name == "" {
		c.Name = "MCP client"
	}
	s.mu.Lock()
	if len(s.st.Clients) >= maxClients {
		s.evictClientLocked()
	}
	s.st.Clients[c.ID] = c
	err = s.saveLocked()
	if err != nil {
		delete(s.st.Clients, c.ID)
	}
	s.mu.Unlock()
	if err != nil {
		s.o.Logger.Warn("oauth: save state", "err", err)
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "cannot record the client now")
		return
	}
	s.o.Logger.Info("oauth client registered", "client_id", c.ID, "client_name", c.Name)
	writeJSON(w, http.StatusCreated, map[string]any{
		"client_id":                  c.ID,
		"client_id_issued_at":        c.Created.Unix(),
		"client_name":                c.Name,
		"redirect_uris":              c.RedirectURIs,
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"token_endpoint_auth_method": "none",
	})
}

// evictClientLocked forgets the oldest client no connection uses.
func (s *Server) evictClientLocked() {
	used := map[string]bool{}
	for _, c := range s.st.Connections {
		used[c.ClientID] = true
	}
	var oldest *Client
	for _, c := range s.st.Clients {
		if !used[c.ID] && (oldest == nil || c.Created.Before(oldest.Created)) {
			oldest = c
		}
	}
	if oldest != nil {
		delete(s.st.Clients, oldest.ID)
	}
}

// ---- authorization ----

// serveAuthorize checks an authorization request and sends the browser to
// the consent page. Until client_id and redirect_uri are known good, errors
// are shown here (never redirected, RFC 6749 §4.1.2.1); after, they go
// back to the client.
func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "use GET")
		return
	}
	if len(r.URL.RawQuery) > maxBody {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the request is too long")
		return
	}
	q := r.URL.Query()
	var c *Client
	if cid := q.Get("client_id"); isMetadataURL(cid) {
		var err error
		if c, err = s.fetchMetadataDocument(r.Context(), cid); err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_client", err.Error())
			return
		}
		s.mu.Lock()
		if s.st.Clients[c.ID] == nil && len(s.st.Clients) >= maxClients {
			s.evictClientLocked()
		}
		s.st.Clients[c.ID] = c // the latest document (kept for the consent page and the connection list)
		s.mu.Unlock()
	} else {
		s.mu.Lock()
		c = s.st.Clients[cid]
		s.mu.Unlock()
	}
	if c == nil {
		oauthError(w, http.StatusBadRequest, "invalid_client", "unknown client_id (register at "+RegisterPath+
			", or use a client ID metadata document's https URL)")
		return
	}
	// redirect_uri is required (OAuth 2.1), and exact-matched.
	redirect := q.Get("redirect_uri")
	if redirect == "" || !redirectMatches(c.RedirectURIs, redirect) {
		oauthError(w, http.StatusBadRequest, "invalid_request", "redirect_uri is not one registered for this client")
		return
	}
	back := func(code, desc string) {
		u, _ := url.Parse(redirect)
		v := u.Query()
		v.Set("error", code)
		v.Set("error_description", desc)
		if st := q.Get("state"); st != "" {
			v.Set("state", st)
		}
		v.Set("iss", s.o.Issuer)
		u.RawQuery = v.Encode()
		http.Redirect(w, r, u.String(), http.StatusFound)
	}
	switch {
	case q.Get("response_type") != "code":
		back("unsupported_response_type", "only response_type=code")
		return
	case q.Get("code_challenge_method") != "S256":
		back("invalid_request", "PKCE with code_challenge_method=S256 is required")
		return
	case len(q.Get("code_challenge")) != 43:
		back("invalid_request", "code_challenge must be a base64url SHA-256 (43 characters)")
		return
	case q.Get("resource") != "" && strings.TrimSuffix(q.Get("resource"), "/") != strings.TrimSuffix(s.o.Resource, "/"):
		back("invalid_target", "this server issues tokens for "+s.o.Resource+" only")
		return
	}
	if _, err := tokens.ParseScopes(q.Get("scope")); err != nil {
		back("invalid_scope", err.Error())
		return
	}
	p := &pendingAuth{ID: randomToken(18), ClientID: c.ID, RedirectURI: redirect, State: q.Get("state"),
		Challenge: q.Get("code_challenge"), Scope: q.Get("scope"), Expires: s.o.Now().Add(pendingLifetime)}
	s.mu.Lock()
	s.sweepLocked()
	if len(s.pending) >= maxPending {
		s.mu.Unlock()
		back("temporarily_unavailable", "too many authorizations waiting for consent")
		return
	}
	s.pending[p.ID] = p
	s.mu.Unlock()
	http.Redirect(w, r, ConsentPagePath+"?request="+url.QueryEscape(p.ID), http.StatusFound)
}

func (s *Server) sweepLocked() {
	now := s.o.Now()
	for id, p := range s.pending {
		if now.After(p.Expires) {
			delete(s.pending, id)
		}
	}
	for h, c := range s.codes {
		if now.After(c.Expires.Add(time.Hour)) { // used codes are kept a while to spot replays
			delete(s.codes, h)
		}
	}
}

// adminCheck authorizes a console call: a foreign Origin is refused, the
// admin token is required (bearer only: no cookie can stand for it).
func (s *Server) adminCheck(w http.ResponseWriter, r *http.Request) (tokens.Claims, bool) {
	if o := r.Header.Get("Origin"); o != "" && !s.origins.Allows(o) {
		oauthError(w, http.StatusForbidden, "forbidden_origin", "this Origin may not call the admin API")
		return tokens.Claims{}, false
	}
	c, ref := s.o.Tokens.AuthorizeRequest(r, tokens.Policy{Audience: tokens.AudienceAdmin, Scopes: []tokens.Scope{tokens.ScopeAdmin}})
	if ref != nil {
		ref.Write(w)
		return tokens.Claims{}, false
	}
	return c, true
}

// consent is the console's decision on a pending authorization.
type consent struct {
	Decision string   `json:"decision"` // approve or deny
	Project  string   `json:"project"`
	Scopes   []string `json:"scopes"`
	// LifetimeSeconds is how long the connection lasts (refresh included).
	LifetimeSeconds int64  `json:"lifetime_seconds"`
	Name            string `json:"name"`
}

func (s *Server) serveRequest(w http.ResponseWriter, r *http.Request) {
	admin, ok := s.adminCheck(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	s.mu.Lock()
	s.sweepLocked()
	p := s.pending[id]
	var c *Client
	if p != nil {
		c = s.st.Clients[p.ClientID]
	}
	s.mu.Unlock()
	if p == nil || c == nil {
		oauthError(w, http.StatusNotFound, "not_found", "no such authorization request (it may have expired: start again from the client)")
		return
	}
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{
			"id": p.ID, "client_id": c.ID, "client_name": c.Name, "redirect_uri": p.RedirectURI,
			"requested_scopes": strings.Fields(p.Scope), "scopes_supported": mcpScopes(),
			"expires": p.Expires.UTC(),
		})
	case http.MethodPost:
		body, ok := readBody(w, r)
		if !ok {
			return
		}
		var d consent
		if err := json.Unmarshal(body, &d); err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_request", "the body is not a consent object")
			return
		}
		s.decide(w, r, admin, p, c, d)
	default:
		w.Header().Set("Allow", "GET, POST")
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "use GET or POST")
	}
}

func (s *Server) decide(w http.ResponseWriter, r *http.Request, admin tokens.Claims, p *pendingAuth, c *Client, d consent) {
	redirect := func(v url.Values) string {
		u, _ := url.Parse(p.RedirectURI)
		q := u.Query()
		for k, vs := range v {
			q[k] = vs
		}
		if p.State != "" {
			q.Set("state", p.State)
		}
		q.Set("iss", s.o.Issuer)
		u.RawQuery = q.Encode()
		return u.String()
	}
	take := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.pending[p.ID] != p {
			return false
		}
		delete(s.pending, p.ID)
		return true
	}
	switch d.Decision {
	case "deny":
		if !take() {
			oauthError(w, http.StatusNotFound, "not_found", "the request was already decided")
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"redirect_to": redirect(url.Values{"error": {"access_denied"},
			"error_description": {"the administrator denied access"}})})
		return
	case "approve":
	default:
		oauthError(w, http.StatusBadRequest, "invalid_request", `decision must be "approve" or "deny"`)
		return
	}
	var scopes []tokens.Scope
	for _, sc := range d.Scopes {
		scopes = append(scopes, tokens.Scope(sc))
	}
	set, err := tokens.NewScopes(scopes...)
	if err != nil || set.Len() == 0 {
		oauthError(w, http.StatusBadRequest, "invalid_scope", "pick at least one known scope")
		return
	}
	allowed := tokens.AudienceMCP.AllowedScopes()
	for _, sc := range set.List() {
		if !allowed.Has(sc) {
			oauthError(w, http.StatusBadRequest, "invalid_scope", "scope "+string(sc)+" is not an MCP scope")
			return
		}
	}
	life := time.Duration(d.LifetimeSeconds) * time.Second
	if d.LifetimeSeconds <= 0 || life > maxConnectionLife {
		oauthError(w, http.StatusBadRequest, "invalid_request", "lifetime_seconds must be between 1 and one year")
		return
	}
	if d.Project == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "pick a project")
		return
	}
	if _, err := s.o.Projects.GetProject(r.Context(), d.Project); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "no such project")
		return
	}
	name := strings.TrimSpace(d.Name)
	if name == "" {
		name = c.Name
	}
	if len(name) > maxNameLen || !printable(name) {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the connection name is too long or not printable")
		return
	}
	if !take() {
		oauthError(w, http.StatusNotFound, "not_found", "the request was already decided")
		return
	}
	now := s.o.Now().UTC()
	var names []string
	for _, sc := range set.List() {
		names = append(names, string(sc))
	}
	conn := &Connection{ID: randomToken(12), Name: name, ClientID: c.ID, ClientName: c.Name, Project: d.Project,
		Scopes: names, Subject: admin.Subject, Created: now, Expires: now.Add(life)}
	code := randomToken(32)
	s.mu.Lock()
	s.st.Connections[conn.ID] = conn
	s.codes[hashOf(code)] = &authCode{ConnID: conn.ID, ClientID: c.ID, RedirectURI: p.RedirectURI,
		Challenge: p.Challenge, Expires: now.Add(codeLifetime)}
	err = s.saveLocked()
	if err != nil { // nothing granted: the code is never given out
		delete(s.st.Connections, conn.ID)
		delete(s.codes, hashOf(code))
	}
	s.mu.Unlock()
	if err != nil {
		s.o.Logger.Warn("oauth: save state", "err", err)
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "cannot record the connection now")
		return
	}
	s.o.Logger.Info("oauth connection approved", "connection", conn.ID, "name", conn.Name, "client_id", c.ID,
		"project", conn.Project, "scopes", strings.Join(names, " "), "by", admin.Subject)
	writeJSON(w, http.StatusOK, map[string]string{"redirect_to": redirect(url.Values{"code": {code}}), "connection": conn.ID})
}

// ---- token endpoint ----

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	if cors(w, r) {
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "use POST")
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body is not form-encoded")
		return
	}
	for k, v := range form {
		if len(v) > 1 {
			oauthError(w, http.StatusBadRequest, "invalid_request", "parameter "+k+" repeated")
			return
		}
	}
	if res := form.Get("resource"); res != "" && strings.TrimSuffix(res, "/") != strings.TrimSuffix(s.o.Resource, "/") {
		oauthError(w, http.StatusBadRequest, "invalid_target", "this server issues tokens for "+s.o.Resource+" only")
		return
	}
	switch form.Get("grant_type") {
	case "authorization_code":
		s.exchangeCode(w, r, form)
	case "refresh_token":
		s.refresh(w, r, form)
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
	}
}

func pkceOK(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	h := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(h[:]) == challenge
}

func (s *Server) exchangeCode(w http.ResponseWriter, r *http.Request, form url.Values) {
	h := hashOf(form.Get("code"))
	s.mu.Lock()
	code := s.codes[h]
	if code == nil {
		s.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "unknown or expired code")
		return
	}
	if code.Used {
		// RFC 6749 §4.1.2: a code used twice revokes what it gave.
		s.mu.Unlock()
		_ = s.revoke(r.Context(), code.ConnID, "authorization code replayed")
		oauthError(w, http.StatusBadRequest, "invalid_grant", "the code was already used; the connection it made is revoked")
		return
	}
	code.Used = true
	s.mu.Unlock()
	// A failed exchange burns the code and the connection it was to make
	// (no token was issued from it): whoever holds the code with the wrong
	// verifier, client or redirect URI is not the client that asked.
	fail := func(desc string) {
		_ = s.revoke(r.Context(), code.ConnID, "failed code exchange: "+desc)
		oauthError(w, http.StatusBadRequest, "invalid_grant", desc)
	}
	switch {
	case s.o.Now().After(code.Expires):
		fail("the code expired")
		return
	case form.Get("client_id") != code.ClientID:
		fail("the code was issued to another client")
		return
	case form.Get("redirect_uri") != code.RedirectURI:
		fail("redirect_uri differs from the authorization request's")
		return
	case !pkceOK(form.Get("code_verifier"), code.Challenge):
		fail("code_verifier does not match the code_challenge")
		return
	}
	s.issue(w, r, code.ConnID, "")
}

func (s *Server) refresh(w http.ResponseWriter, r *http.Request, form url.Values) {
	rt := form.Get("refresh_token")
	if rt == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "refresh_token is required")
		return
	}
	h := hashOf(rt)
	s.mu.Lock()
	var conn *Connection
	reused := false
	for _, c := range s.st.Connections {
		if c.Refresh == h {
			conn = c
			break
		}
		for _, old := range c.OldRefresh {
			if old == h {
				conn, reused = c, true
			}
		}
		if conn != nil {
			break
		}
	}
	s.mu.Unlock()
	switch {
	case conn == nil:
		oauthError(w, http.StatusBadRequest, "invalid_grant", "unknown refresh token")
		return
	case reused:
		_ = s.revoke(r.Context(), conn.ID, "refresh token reused")
		oauthError(w, http.StatusBadRequest, "invalid_grant", "the refresh token was already used; the connection is revoked")
		return
	case form.Get("client_id") != conn.ClientID:
		oauthError(w, http.StatusBadRequest, "invalid_grant", "the refresh token was issued to another client")
		return
	}
	s.issue(w, r, conn.ID, h)
}

// issue mints an access token and a new refresh token for the connection;
// prev is the refresh token's hash being rotated out ("" for a code).
func (s *Server) issue(w http.ResponseWriter, r *http.Request, connID, prev string) {
	now := s.o.Now()
	s.mu.Lock()
	conn := s.st.Connections[connID]
	if conn != nil && conn.Revoked == nil && prev != "" && conn.Refresh != prev {
		// Rotated since the lookup: the same refresh token, used twice at once.
		s.mu.Unlock()
		_ = s.revoke(r.Context(), connID, "refresh token reused")
		oauthError(w, http.StatusBadRequest, "invalid_grant", "the refresh token was already used; the connection is revoked")
		return
	}
	if conn == nil || conn.Revoked != nil || !now.Before(conn.Expires) || conn.Refresh != prev {
		s.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "the connection is revoked or expired")
		return
	}
	cc := *conn
	s.mu.Unlock()
	life := min(accessLifetime, s.o.MaxLifetime, cc.Expires.Sub(now))
	var scopes []tokens.Scope
	for _, sc := range cc.Scopes {
		scopes = append(scopes, tokens.Scope(sc))
	}
	raw, claims, err := s.o.Tokens.Mint(r.Context(), tokens.Grant{Subject: cc.Subject, Project: cc.Project,
		Session: sessionPrefix + cc.ID, Agent: "oauth", Audience: tokens.AudienceMCP, Scopes: scopes,
		Lifetime: max(time.Second, life.Truncate(time.Second))})
	if err != nil {
		s.o.Logger.Warn("oauth: mint", "err", err)
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "cannot mint a token now")
		return
	}
	refresh := randomToken(32)
	s.mu.Lock()
	conn = s.st.Connections[connID]
	if conn != nil && conn.Revoked == nil && prev != "" && conn.Refresh != prev {
		// The same refresh token, used by two requests at once: a reuse.
		s.mu.Unlock()
		_ = s.revoke(r.Context(), connID, "refresh token reused")
		oauthError(w, http.StatusBadRequest, "invalid_grant", "the refresh token was already used; the connection is revoked")
		return
	}
	if conn == nil || conn.Revoked != nil || conn.Refresh != prev {
		s.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "the connection is revoked or expired")
		return
	}
	oldList := conn.OldRefresh
	if prev != "" {
		conn.OldRefresh = append(slices.Clip(conn.OldRefresh), prev)
		if len(conn.OldRefresh) > maxOldRefresh {
			conn.OldRefresh = conn.OldRefresh[len(conn.OldRefresh)-maxOldRefresh:]
		}
	}
	conn.Refresh = hashOf(refresh)
	err = s.saveLocked()
	if err != nil { // not rotated: the client's refresh token stays good
		conn.Refresh, conn.OldRefresh = prev, oldList
	}
	s.mu.Unlock()
	if err != nil {
		s.o.Logger.Warn("oauth: save state", "err", err)
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "cannot record the token now")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token":  raw,
		"token_type":    "Bearer",
		"expires_in":    int(claims.ExpiresAt.Sub(now).Seconds()),
		"refresh_token": refresh,
		"scope":         strings.Join(cc.Scopes, " "),
	})
}

// revoke ends a connection: its refresh token is refused from now on, and
// its access tokens too (tokens.RevokeSession: the MCP server's one check).
func (s *Server) revoke(ctx context.Context, connID, why string) error {
	s.mu.Lock()
	conn := s.st.Connections[connID]
	if conn == nil {
		s.mu.Unlock()
		return store.ErrNotFound
	}
	if conn.Revoked == nil {
		t := s.o.Now().UTC()
		conn.Revoked, conn.RevokedWhy = &t, why
	}
	err := s.saveLocked()
	s.mu.Unlock()
	if err != nil {
		s.o.Logger.Warn("oauth: save state", "err", err)
	}
	s.o.Logger.Info("oauth connection revoked", "connection", connID, "reason", why)
	return s.o.Tokens.RevokeSession(ctx, sessionPrefix+connID)
}

// ---- connections (admin) ----

func (s *Server) serveConnections(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.adminCheck(w, r); !ok {
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "use GET")
		return
	}
	s.mu.Lock()
	out := make([]Connection, 0, len(s.st.Connections))
	for _, c := range s.st.Connections {
		out = append(out, *c)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	writeJSON(w, http.StatusOK, map[string]any{"connections": out})
}

func (s *Server) serveConnection(w http.ResponseWriter, r *http.Request) {
	admin, ok := s.adminCheck(w, r)
	if !ok {
		return
	}
	if r.Method != http.MethodDelete {
		w.Header().Set("Allow", "DELETE")
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "use DELETE")
		return
	}
	err := s.revoke(r.Context(), r.PathValue("id"), "revoked by "+admin.Subject)
	switch {
	case errors.Is(err, store.ErrNotFound):
		oauthError(w, http.StatusNotFound, "not_found", "no such connection")
	case err != nil:
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "cannot revoke now")
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}
