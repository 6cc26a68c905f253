package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/agentbroker/agentbroker/internal/metrics"
	"github.com/agentbroker/agentbroker/internal/origins"
	"github.com/agentbroker/agentbroker/store"
	"github.com/agentbroker/agentbroker/tokens"
)

// Store is what the tools read and write: exactly the store methods they
// call (store.Store, and so store/sqlite, satisfies it).
type Store interface {
	GetProject(ctx context.Context, id string) (store.Project, error)
	GetTask(ctx context.Context, projectID, id string) (store.Task, error)
	UpdateTask(ctx context.Context, projectID, id string, u store.TaskUpdate) (store.Task, error)
	ListTasks(ctx context.Context, projectID string, f store.TaskFilter) ([]store.Task, error)
	SearchTasks(ctx context.Context, projectID, query string, limit int) ([]store.SearchHit[store.Task], error)
	GetKnowledge(ctx context.Context, projectID, id string) (store.Knowledge, error)
	ListKnowledge(ctx context.Context, projectID string, limit int) ([]store.Knowledge, error)
	AddKnowledge(ctx context.Context, k store.Knowledge) (store.Knowledge, error)
	SearchKnowledge(ctx context.Context, projectID, query string, limit int) ([]store.SearchHit[store.Knowledge], error)
	ListSessions(ctx context.Context, projectID string, limit int) ([]store.SessionRecord, error)
	SessionMessages(ctx context.Context, projectID, sessionID string, afterSeq int64, limit int) ([]store.Message, error)
	SearchMessages(ctx context.Context, projectID, query string, limit int) ([]store.SearchHit[store.Message], error)
}

var _ Store = store.Store(nil)

// Authenticator decides whether a bearer token passes a policy
// (*tokens.Service satisfies it).
type Authenticator interface {
	Authorize(ctx context.Context, raw string, p tokens.Policy) (tokens.Claims, *tokens.Refusal)
}

var _ Authenticator = (*tokens.Service)(nil)

// DefaultMaxBodyBytes is the default limit on a request body.
const DefaultMaxBodyBytes = 1 << 20

// Options configure New. Zero values mean the documented defaults.
type Options struct {
	// Store holds the project context. Required.
	Store Store
	// Tokens verifies bearer tokens (audience tokens.AudienceMCP).
	// Required, unless InsecureFixedIdentity is set.
	Tokens Authenticator
	// ResourceURL is the public URL of the MCP endpoint, as agents are
	// given it (e.g. http://127.0.0.1:7420/mcp): the RFC 9728 resource,
	// the base of the metadata URL in challenges, and the origin browsers
	// on the server's own pages send. Required, http or https. (mcp-go's
	// own DNS-rebinding check stays on: on a loopback connection it refuses
	// a Host header that is not a loopback name, so a reverse proxy on the
	// same machine must forward a loopback Host.)
	ResourceURL string
	// AllowedOrigins are the browser origins (scheme://host[:port]) allowed
	// to call the endpoint, besides the server's own origin and, when that
	// is a loopback address, its other loopback spellings. A request
	// carrying any other Origin header is refused with 403 (DNS-rebinding
	// protection); a request without one (CLI agents) passes. Allowed
	// cross-origin requests get CORS headers. Default: none.
	AllowedOrigins []string
	// MaxBodyBytes bounds a request body; a larger one is refused with 413.
	// Zero means DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int64
	// RateLimit is the per-token request rate (429 with Retry-After beyond
	// it). The zero value means 50 requests per second, bursts of 100.
	RateLimit RateLimit
	// Observer is told of tools/list and tools/call. Nil: nobody.
	Observer Observer
	// Metrics receives the server's series (agentbroker_mcp_…). One
	// Server per registry. Nil: a private registry.
	Metrics *metrics.Registry
	// Logger receives warnings (internal errors, panics) and debug
	// records; never a token. Nil: silent.
	Logger *slog.Logger
	// Now is the clock for rate limiting and call timing. Nil: time.Now.
	Now func() time.Time
	// Version is the server version reported at initialize. Empty: "dev".
	Version string
	// StreamKeepAlive is the interval of the comments that keep an idle GET
	// stream open through proxies. Zero means 25s.
	StreamKeepAlive time.Duration

	// AuthorizationServers are the issuers of the OAuth authorization
	// servers that hand out tokens for this resource (RFC 9728
	// authorization_servers): the broker itself when it serves
	// internal/oauth. None: the metadata lists none (tokens come only from
	// the broker's sessions).
	AuthorizationServers []string

	// InsecureFixedIdentity, when set, treats every request WITHOUT an
	// Authorization header as authenticated with these claims (a request
	// with one is still verified by Tokens, when set). It exists for
	// protocol conformance suites that cannot carry a bearer token, and
	// must never be set by `agentbroker serve`: anyone who can reach the
	// endpoint then acts as this identity. The claims must be for
	// tokens.AudienceMCP and name a project. New logs a warning when it is
	// set.
	InsecureFixedIdentity *tokens.Claims
}

// Server is the MCP server: the project-context tools on mcp-go's
// streamable HTTP transport, behind the checks mcp-go does not make.
// Create it with New, mount it with Mount, and Close it on shutdown.
type Server struct {
	store     Store
	observer  Observer
	metrics   *serverMetrics
	log       *slog.Logger
	now       func() time.Time
	fixed     *tokens.Claims
	maxBody   int64
	keepAlive time.Duration

	resource    *url.URL
	metadataURL string
	metadata    []byte

	origins     origins.Set // the server's own origin and the allowed ones
	corsOrigins origins.Set // the explicitly allowed ones, which get CORS headers
	limiter     *limiter    // nil: no rate limiting
	tools       map[string]*toolDef
	mcp         *server.MCPServer
	transport   *server.StreamableHTTPServer
	auth        Authenticator // nil: fixed identity only
	policy      tokens.Policy
	revocations RevocationObserver // nil: nobody
	handler     http.Handler

	closeOnce sync.Once
	closing   chan struct{}
	streamsMu sync.Mutex
	streams   map[string]int // open GET streams per token ID
}

// instructions is what clients get at initialize (Claude Code, for one,
// puts it in the model's prompt).
const instructions = "Project context for this agent session, from agentbroker. " +
	"Start with get_project and get_instructions, and follow the instructions. " +
	"Tasks (list_tasks, get_task, search_tasks, update_task), what earlier sessions learnt " +
	"(search_knowledge, get_knowledge, add_knowledge) and their transcripts (list_sessions, " +
	"get_session_messages, search_messages) are here too; a tool you do not see is one this session's token does not allow. " +
	"The instructions are also the prompt project_instructions, and the project, its tasks and knowledge entries are resources (agentbroker://…)."

// New returns a server for opts (nil: every default, which fails for want
// of a Store, Tokens and ResourceURL).
func New(opts *Options) (*Server, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Store == nil {
		return nil, errors.New("mcpserver: new: no Store")
	}
	if o.Tokens == nil && o.InsecureFixedIdentity == nil {
		return nil, errors.New("mcpserver: new: no Tokens")
	}
	if f := o.InsecureFixedIdentity; f != nil && (f.Audience != tokens.AudienceMCP || f.Project == "") {
		return nil, errors.New("mcpserver: new: InsecureFixedIdentity must be MCP-audience claims naming a project")
	}
	resource, err := parseResourceURL(o.ResourceURL)
	if err != nil {
		return nil, err
	}
	if o.MaxBodyBytes < 0 {
		return nil, errors.New("mcpserver: new: negative MaxBodyBytes")
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	if o.Metrics == nil {
		o.Metrics = metrics.NewRegistry()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.StreamKeepAlive <= 0 {
		o.StreamKeepAlive = 25 * time.Second
	}
	cors, err := origins.New(o.AllowedOrigins...)
	if err != nil {
		return nil, fmt.Errorf("mcpserver: new: allowed origins: %w", err)
	}
	allowed, err := origins.ForPublicURL(resource.String(), o.AllowedOrigins)
	if err != nil {
		return nil, fmt.Errorf("mcpserver: new: allowed origins: %w", err)
	}

	s := &Server{
		store:       o.Store,
		observer:    o.Observer,
		metrics:     newServerMetrics(o.Metrics),
		log:         o.Logger,
		now:         o.Now,
		fixed:       cloneClaims(o.InsecureFixedIdentity),
		maxBody:     o.MaxBodyBytes,
		keepAlive:   o.StreamKeepAlive,
		resource:    resource,
		metadataURL: metadataURL(resource),
		origins:     allowed,
		corsOrigins: cors,
		limiter:     newLimiter(o.RateLimit),
		tools:       make(map[string]*toolDef),
		closing:     make(chan struct{}),
		streams:     make(map[string]int),
	}
	if s.metadata, err = s.buildMetadata(o.AuthorizationServers); err != nil {
		return nil, err
	}

	hooks := &server.Hooks{}
	hooks.AddAfterListTools(func(ctx context.Context, _ any, _ *mcp.ListToolsRequest, _ *mcp.ListToolsResult) {
		if c, ok := tokens.ClaimsFrom(ctx); ok {
			s.observer.ToolsListed(ctx, c)
		}
	})
	s.mcp = server.NewMCPServer("agentbroker", o.Version, append(capabilities(),
		server.WithTitle("agentbroker project context"),
		server.WithInstructions(instructions),
		server.WithToolFilter(s.filterTools),
		server.WithPromptFilter(s.filterPrompts),
		server.WithHooks(hooks),
	)...)
	s.addPrompts()
	for _, d := range tools() {
		if err := s.addTool(d); err != nil {
			return nil, err
		}
	}
	s.transport = server.NewStreamableHTTPServer(s.mcp,
		server.WithStateLess(true),
		server.WithStreamableHTTPProtocolVersions(legacyProtocolVersions()...),
		server.WithStreamableHTTPLogger(o.Logger),
	)
	if o.Tokens != nil {
		s.auth = o.Tokens
		s.policy = tokens.Policy{Audience: tokens.AudienceMCP, ResourceMetadata: s.metadataURL,
			ChallengeScope: tokens.AudienceMCP.AllowedScopes().String()}
		s.revocations, _ = o.Observer.(RevocationObserver)
	}
	s.handler = http.HandlerFunc(s.serveMCP)
	if s.fixed != nil {
		s.log.Warn("mcpserver: InsecureFixedIdentity is set: requests without a token act as a fixed identity",
			slog.Any("claims", *s.fixed))
	}
	return s, nil
}

func cloneClaims(c *tokens.Claims) *tokens.Claims {
	if c == nil {
		return nil
	}
	cc := *c
	return &cc
}

// addTool registers d with mcp-go.
func (s *Server) addTool(d *toolDef) error {
	if _, dup := s.tools[d.name]; dup {
		return fmt.Errorf("mcpserver: tool %s defined twice", d.name)
	}
	t, err := d.mcpTool()
	if err != nil {
		return fmt.Errorf("mcpserver: %w", err)
	}
	s.tools[d.name] = d
	s.mcp.AddTool(t, s.toolHandler(d))
	return nil
}

// legacyProtocolVersions are the protocol versions served: every one that
// has the initialize handshake. The stateless 2026-07-28 core is not
// offered (server/discover answers -32601, so clients fall back to
// initialize, as Claude Code does).
func legacyProtocolVersions() []string {
	var out []string
	for _, v := range mcp.ValidProtocolVersions {
		if !mcp.IsModernProtocol(v) {
			out = append(out, v)
		}
	}
	return out
}

func parseResourceURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("mcpserver: new: no ResourceURL")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("mcpserver: new: ResourceURL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("mcpserver: new: ResourceURL %q: want http(s)://host[:port]/path", raw)
	}
	return u, nil
}

// Well-known paths of the RFC 9728 metadata.
const (
	metadataPath = "/.well-known/oauth-protected-resource"
	endpointPath = "/mcp"
)

// metadataURL is where RFC 9728 §3.1 puts the metadata of resource: the
// well-known prefix inserted before the resource's path.
func metadataURL(resource *url.URL) string {
	return resource.Scheme + "://" + resource.Host + metadataPath + strings.TrimSuffix(resource.EscapedPath(), "/")
}

// buildMetadata renders the RFC 9728 document. authorization_servers
// lists as (the MCP authorization spec requires one for clients that sign
// in); without any, it is omitted: the broker's sessions get their tokens
// minted, and there is no server a client could obtain one from.
func (s *Server) buildMetadata(as []string) ([]byte, error) {
	var scopes []string
	for _, sc := range tokens.AudienceMCP.AllowedScopes().List() {
		scopes = append(scopes, string(sc))
	}
	b, err := json.MarshalIndent(struct {
		Resource               string   `json:"resource"`
		ResourceName           string   `json:"resource_name"`
		AuthorizationServers   []string `json:"authorization_servers,omitempty"`
		BearerMethodsSupported []string `json:"bearer_methods_supported"`
		ScopesSupported        []string `json:"scopes_supported"`
	}{s.resource.String(), "agentbroker MCP (project context)", as, []string{"header"}, scopes}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("mcpserver: metadata: %w", err)
	}
	return append(b, '\n'), nil
}

// Mount mounts the MCP endpoint at /mcp and the RFC 9728 metadata at
// /.well-known/oauth-protected-resource, its path-suffixed form
// /.well-known/oauth-protected-resource/mcp, and the path-suffixed form of
// ResourceURL's path when that differs (behind a proxy that adds a prefix).
// The patterns carry no method: the handlers answer 405 themselves.
func (s *Server) Mount(mux interface{ Handle(string, http.Handler) }) {
	meta := http.HandlerFunc(s.serveMetadata)
	mux.Handle(endpointPath, s.handler)
	mux.Handle(metadataPath, meta)
	mux.Handle(metadataPath+endpointPath, meta)
	if p := strings.TrimSuffix(s.resource.EscapedPath(), "/"); p != "" && p != endpointPath {
		mux.Handle(metadataPath+p, meta)
	}
}

// Close ends the open GET streams and refuses new ones (503), so that an
// HTTP server's Shutdown is not held up by them: register it with
// http.Server.RegisterOnShutdown, or call it before Shutdown. POST
// requests are still served. Close is idempotent and always returns nil.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	return nil
}

// filterTools is the tools/list (and tools/call) filter: a token sees
// only the tools its scopes open.
func (s *Server) filterTools(ctx context.Context, ts []mcp.Tool) []mcp.Tool {
	c, ok := tokens.ClaimsFrom(ctx)
	if !ok {
		return nil
	}
	out := ts[:0:0]
	for _, t := range ts {
		if d, known := s.tools[t.Name]; known && d.allowed(c) {
			out = append(out, t)
		}
	}
	return out
}
