package sessions

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/agentbroker/agentbroker/acp"
	"github.com/agentbroker/agentbroker/acp/profile"
	"github.com/agentbroker/agentbroker/catalog"
	"github.com/agentbroker/agentbroker/internal/markdown"
	"github.com/agentbroker/agentbroker/internal/origins"
	"github.com/agentbroker/agentbroker/mcpserver"
	"github.com/agentbroker/agentbroker/proxy"
	"github.com/agentbroker/agentbroker/store"
	"github.com/agentbroker/agentbroker/tokens"
)

// Store is what the Manager needs of the store: the event log, session
// records (by ID, by state, by project) and transcripts, and projects.
type Store interface {
	EventStore
	GetProject(ctx context.Context, id string) (store.Project, error)
	ListProjects(ctx context.Context) ([]store.Project, error)
	PutSession(ctx context.Context, s store.SessionRecord) error
	SessionByID(ctx context.Context, id string) (store.SessionRecord, error)
	SessionsByState(ctx context.Context, states ...string) ([]store.SessionRecord, error)
	ListSessions(ctx context.Context, projectID string, limit int) ([]store.SessionRecord, error)
	AppendMessages(ctx context.Context, msgs []store.Message) ([]store.Message, error)
	UsageStore
	RunStore
}

// Models checks models against the catalog (*catalog.Catalog does).
type Models interface {
	Resolve(agent, wireID string) (catalog.Resolved, error)
	Policy(agent string) (catalog.Policy, error)
}

// State is where a session stands. Each change is an event of type
// "state" in the session's log, and the session record's State.
type State string

// The states.
const (
	StateStarting    State = "starting"    // tokens minted, agent launching (or relaunching)
	StateReady       State = "ready"       // handshake done, no turn yet since the (re)start
	StatePrompting   State = "prompting"   // a turn is running
	StateIdle        State = "idle"        // between turns
	StateStopping    State = "stopping"    // DELETE in progress
	StateStopped     State = "stopped"     // stopped on request; tokens revoked
	StateFailed      State = "failed"      // the agent could not start or be restarted; tokens revoked
	StateInterrupted State = "interrupted" // the broker shut down (resumable) or could not resume it
)

// Final reports whether no agent runs for a session in this state any more.
func (s State) Final() bool {
	return s == StateStopped || s == StateFailed || s == StateInterrupted
}

// MCP readiness of a session (Info.MCP.Status).
const (
	MCPPending      = "pending"       // waiting for the agent's tools/list
	MCPConnected    = "connected"     // the session's MCP token reached tools/list
	MCPNotConnected = "not_connected" // it did not within ReadyTimeout (or the first turn)
	MCPFirstPrompt  = "first_prompt"  // the agent connects only when a prompt starts (Amp)
	MCPFailed       = "failed"        // the agent used the session's MCP token after it was revoked
)

// Event types the Manager writes (besides the viewers' "update").
const (
	EventState             = "state"
	EventConfig            = "config"
	EventAgentStarted      = "agent_started"
	EventACPSession        = "acp_session"
	EventAgentExited       = "agent_exited"
	EventUpdate            = "update"
	EventReplay            = "replay"
	EventPrompt            = "prompt"
	EventTurnEnd           = "turn_end"
	EventTurnFailed        = "turn_failed"
	EventCancel            = "cancel"
	EventPermissionRequest = "permission_request"
	EventPermissionAnswer  = "permission_answer"
	EventMCPConnected      = "mcp_connected"
	EventMCPNotConnected   = "mcp_not_connected"
	EventMCPAuthFailed     = "mcp_auth_failed"
	EventToolCallMCP       = "tool_call_mcp"
	EventUsage             = "usage"
	EventModelRefused      = "model_refused"
	EventWarning           = "warning"
)

// Errors callers branch on. The HTTP API maps them to status codes.
var (
	// ErrUnknownSession: no session by that ID (wraps store.ErrNotFound).
	ErrUnknownSession = fmt.Errorf("sessions: unknown session: %w", store.ErrNotFound)
	// ErrInvalidRequest: the request is malformed or names something unusable.
	ErrInvalidRequest = errors.New("sessions: invalid request")
	// ErrModelRefused: the catalog refuses the model for the agent (the
	// catalog's sentinel is wrapped too).
	ErrModelRefused = errors.New("sessions: model refused")
	// ErrBusy: the session cannot take this now (a turn is running, or it
	// is starting).
	ErrBusy = errors.New("sessions: session busy")
	// ErrNoTurn: cancel without a running turn.
	ErrNoTurn = errors.New("sessions: no turn running")
	// ErrEnded: the session is stopped, failed or interrupted.
	ErrEnded = errors.New("sessions: session ended")
	// ErrNoSuchPermission: no pending permission request by that ID (never
	// asked, already answered, or timed out).
	ErrNoSuchPermission = errors.New("sessions: no such pending permission request")
	// ErrInvalidOption: the option ID is not one the agent offered.
	ErrInvalidOption = errors.New("sessions: not an option of this permission request")
	// ErrStartFailed: the agent did not start or finish its handshake.
	ErrStartFailed = errors.New("sessions: agent failed to start")
	// ErrClosed: the Manager is closed.
	ErrClosed = errors.New("sessions: manager closed")
)

// AgentConfig is how to run one agent profile on this machine.
type AgentConfig struct {
	// InstallDir holds the profile's npm package (profile.LaunchSpec.InstallDir).
	InstallDir string
	// Command overrides the install (required for amp and custom).
	Command []string
	// Node is the Node.js binary for Node-based adapters ("" = node on PATH).
	Node string
	// ExtraEnv adds KEY=value entries to the agent's environment; the text
	// "{session_dir}" in a value is replaced by the session's directory.
	ExtraEnv []string
	// CatalogAgent, for the custom profile only, is the catalog agent its
	// models are checked against. Empty: a custom session takes no model.
	CatalogAgent string
}

// Options configure a Manager. Zero values mean the defaults.
type Options struct {
	// Store persists sessions, events and transcripts. Required.
	Store Store
	// Tokens mints, verifies and revokes the sessions' tokens. Required.
	Tokens *tokens.Service
	// Models checks models. Nil: catalog.Embedded().
	Models Models
	// SessionsDir holds one private directory per session, <id>: the
	// agent's HOME, TMPDIR and config files. Keep it apart from the
	// broker's own files: agents are given their session's directory.
	// Required; created 0700 (0711 when agents run as another user, who
	// owns each session's directory).
	SessionsDir string
	// Confinement says how agents are confined. Nil: they run as the
	// broker's user, unconfined, and each session records that.
	Confinement *Confinement
	// MCPURL is the broker's MCP endpoint as agents reach it
	// (http://127.0.0.1:7420/mcp). Required.
	MCPURL string
	// MCPServerName is the MCP server's name in session/new (tools appear
	// as mcp__<name>__<tool>). Default "agentbroker".
	MCPServerName string
	// BridgeCommand is the broker's executable, run as `<cmd> mcp-bridge`
	// for agents without HTTP MCP. Empty: such agents cannot get our tools
	// and fail to start.
	BridgeCommand string
	// ProxyBaseURL is the broker's base URL for platform-proxy credentials
	// (the agent is pointed at <base>/proxy/…). Empty: platform-proxy is
	// refused.
	ProxyBaseURL string
	// PlatformKeys are the providers the inference proxy holds a platform
	// key for: a platform-proxy session whose model's provider is not
	// among them is refused at create (its every call would fail). Nil:
	// not checked.
	PlatformKeys map[catalog.Provider]bool
	// Agents configures each profile that may be launched; a profile
	// missing here is refused.
	Agents map[profile.Name]AgentConfig
	// TokenLifetime of the sessions' tokens. Zero: the token service's
	// default. It must not exceed the service's MaxLifetime.
	TokenLifetime time.Duration
	// StartTimeout bounds a launch: process start, ACP handshake. Default 60s.
	StartTimeout time.Duration
	// ReadyTimeout is how long to wait, after the handshake, for the
	// session's MCP token to reach tools/list. Default 15s.
	ReadyTimeout time.Duration
	// AskTimeout bounds a permission request put to viewers; then it is
	// rejected. Default acp.DefaultAskTimeout (2m).
	AskTimeout time.Duration
	// CancelGrace is how long a cancelled or stopped turn may take to end.
	// Default 10s.
	CancelGrace time.Duration
	// StdinGrace and TermGrace are the supervisor's staged stop. Defaults
	// are the supervisor's (3s each).
	StdinGrace, TermGrace time.Duration
	// RestartAttempts is how often a crashed agent is relaunched with
	// session/load before the session fails. Default 2; negative: never.
	RestartAttempts int
	// RestartBackoff is the wait before the first relaunch, doubled for
	// each further one. Default 500ms.
	RestartBackoff time.Duration
	// PublicURL is the broker's public URL (http://127.0.0.1:7420), whose
	// origin browsers on the broker's own pages send: they may open the
	// events WebSocket (ViewerOptions.PublicURL). Empty: MCPURL's origin.
	PublicURL string
	// AllowedOrigins are browser origins allowed to open the events
	// WebSocket besides the broker's own (ViewerOptions.AllowedOrigins).
	AllowedOrigins []string
	// Leases share the sessions with the other brokers of a fleet (see
	// fleet.go): nil for one broker on its own store. Node is this
	// broker's ID in the fleet (stable across its restarts), required with
	// Leases; LeaseTTL how long a lease lasts unrenewed (default
	// DefaultLeaseTTL).
	Leases   store.Leases
	Node     string
	LeaseTTL time.Duration
	// Nodes says where the other nodes are, for commands forwarded to a
	// session's owner (forward.go); NodeURL is this node's base URL as
	// they reach it (recorded at New). Nil: not forwarded (409
	// owned_elsewhere).
	Nodes   store.Nodes
	NodeURL string
	// Journal configures the event journal. Nil: defaults.
	Journal *JournalOptions
	// Logger: nil is silent. Secrets never reach it.
	Logger *slog.Logger
}

func (o *Options) defaults() error {
	switch {
	case o.Store == nil:
		return errors.New("sessions: Options.Store is required")
	case o.Tokens == nil:
		return errors.New("sessions: Options.Tokens is required")
	case o.SessionsDir == "":
		return errors.New("sessions: Options.SessionsDir is required")
	case o.MCPURL == "":
		return errors.New("sessions: Options.MCPURL is required")
	case o.Leases != nil && o.Node == "":
		return errors.New("sessions: Options.Node is required with Leases")
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = DefaultLeaseTTL
	}
	if o.PublicURL == "" {
		o.PublicURL = o.MCPURL
	}
	if _, err := allowedOrigins(o.PublicURL, o.AllowedOrigins); err != nil {
		return fmt.Errorf("sessions: Options: origins: %w", err)
	}
	dir, err := filepath.Abs(o.SessionsDir)
	if err != nil {
		return fmt.Errorf("sessions: sessions dir: %w", err)
	}
	o.SessionsDir = dir
	if o.Models == nil {
		o.Models = catalog.Embedded()
	}
	if o.MCPServerName == "" {
		o.MCPServerName = "agentbroker"
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 60 * time.Second
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 15 * time.Second
	}
	if o.AskTimeout <= 0 {
		o.AskTimeout = acp.DefaultAskTimeout
	}
	if o.CancelGrace <= 0 {
		o.CancelGrace = 10 * time.Second
	}
	if o.RestartAttempts == 0 {
		o.RestartAttempts = 2
	}
	if o.RestartAttempts < 0 {
		o.RestartAttempts = 0
	}
	if o.RestartBackoff <= 0 {
		o.RestartBackoff = 500 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Manager runs agent sessions: it mints their tokens, records them, launches
// and supervises their agents, relays their updates into event logs and
// transcripts, and answers the HTTP API (Mount). It implements
// mcpserver.Observer (readiness, tool calls), proxy.Recorder (usage),
// LogSource and Controller (viewers).
type Manager struct {
	opts    Options
	origins origins.Set        // who may open the sessions watch (handleWatch)
	md      *markdown.Renderer // agents' replies for the console (handleRender)
	st      Store
	j       *Journal
	log     *slog.Logger

	ctx    context.Context // ends at Close, after the agents are stopped
	cancel context.CancelFunc

	mu   sync.Mutex
	live map[string]*session
	// creating holds the sessions Create has recorded but not yet
	// registered: not for a takeover to recover.
	creating map[string]bool
	bg       sync.WaitGroup // the leases' loop (fleet.go), followers (forward.go)
	fol      followers
	tasks    map[string]*spend // project and task → what the task spent
	// starting holds the tasks (project/task) whose run is being started.
	starting map[string]bool
	runEnds  sync.Mutex // serializes the ends of task runs (finishRun)
	closed   bool

	launches atomic.Int64 // agent processes started (tests)

	agentCats agentCatalogs // agents' own model catalogs, read once per install
}

var (
	_ mcpserver.Observer = (*Manager)(nil)
	_ proxy.Recorder     = (*Manager)(nil)
	_ proxy.Budget       = (*Manager)(nil)
	_ LogSource          = (*Manager)(nil)
	_ Controller         = (*Manager)(nil)
)

// New returns a Manager. Call Recover once at start, Mount its routes, and
// Close it at shutdown.
func New(opts Options) (*Manager, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	if err := opts.Confinement.prepareRoot(opts.SessionsDir); err != nil {
		return nil, err
	}
	if c := opts.Confinement; c != nil {
		// Another session's directory is never a working directory. A copy:
		// the caller's Confinement is left as it gave it.
		cc := *c
		cc.Protected = appendNew(slices.Clone(c.Protected), opts.SessionsDir)
		opts.Confinement = &cc
	}
	allowed, err := allowedOrigins(opts.PublicURL, opts.AllowedOrigins)
	if err != nil {
		return nil, fmt.Errorf("sessions: Options: origins: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{
		origins:  allowed,
		md:       markdown.New(),
		opts:     opts,
		st:       opts.Store,
		j:        NewJournal(opts.Store, opts.Journal),
		log:      opts.Logger,
		ctx:      ctx,
		cancel:   cancel,
		live:     map[string]*session{},
		creating: map[string]bool{},
	}
	m.startLeases()
	return m, nil
}

// Spec is what a new session is made of.
type Spec struct {
	// Project is the project ID. Required.
	Project string
	// Agent is the profile (claude-code, codex, codex-zed, amp, custom).
	Agent profile.Name
	// Model is a catalog model ID (or alias); empty means the agent's
	// catalog default. The custom profile takes none unless configured
	// with a CatalogAgent.
	Model string
	// Credential is how the agent reaches its model. For platform-proxy
	// the secret is minted here (leave it empty).
	Credential profile.Credential
	// ViaProxy sends an api-key credential's model calls through the
	// broker's inference proxy (passthrough): the agent gets an inference
	// token, and the proxy calls the provider with the user's key, so the
	// catalog still decides and usage is still counted. The key stays in
	// the broker's memory, never in the agent's environment or the store.
	ViaProxy bool
	// Cwd is the agent's working directory; empty means the project's
	// RepoPath.
	Cwd string
	// Policy decides permission requests. Empty: ask.
	Policy acp.PermissionPolicy
	// Prompt, if set, is the first prompt, sent once the session is ready.
	Prompt string
	// Title of the session; empty means the prompt's beginning.
	Title string
	// CreatedBy is who asked (the admin token's subject), the subject of
	// the session's tokens.
	CreatedBy string
	// Task, if set, is the ID of a task of the project the session works
	// on: its model calls count towards the task's usage and budget.
	Task string
	// Budget, if positive, is the most the session's model calls may
	// cost: once its recorded calls cost that much, the proxy refuses
	// more (budget_exceeded). Zero means no budget.
	Budget catalog.Amount

	// run, set by RunTask, makes the session a task run.
	run *runStart
}

// Created is a new session and its viewer token (a secret for the caller).
type Created struct {
	Session          Info
	ViewerToken      string
	ViewerExpiresAt  time.Time
	ViewerTokenID    string
	FirstPromptError string
}

// sessionConfig is what the store keeps about a session besides its record
// (as the latest "config" event): never a secret, only token IDs.
type sessionConfig struct {
	Profile      profile.Name `json:"profile"`
	CatalogAgent string       `json:"catalog_agent,omitempty"`
	Model        string       `json:"model,omitempty"`
	Cwd          string       `json:"cwd"`
	Policy       string       `json:"permission_policy"`
	Credential   struct {
		Kind     profile.CredentialKind `json:"kind"`
		BaseURL  string                 `json:"base_url,omitempty"`
		ViaProxy bool                   `json:"via_proxy,omitempty"`
	} `json:"credential"`
	MCP struct {
		Name      string    `json:"name"`
		URL       string    `json:"url"`
		TokenID   string    `json:"token_id"`
		ExpiresAt time.Time `json:"token_expires_at"`
	} `json:"mcp"`
	InferenceTokenID string    `json:"inference_token_id,omitempty"`
	InferenceExpires time.Time `json:"inference_token_expires_at,omitzero"`
	ViewerTokenID    string    `json:"viewer_token_id,omitempty"`
	CreatedBy        string    `json:"created_by"`
	// Sandbox says how the agent is confined (or that it is not, and why).
	Sandbox string `json:"sandbox,omitempty"`
	// Task is the task the session works on; BudgetUSD its budget in
	// decimal dollars (catalog.Amount.USD).
	Task      string `json:"task,omitempty"`
	BudgetUSD string `json:"budget_usd,omitempty"`
	// Run marks a task run's session (RunTask): never resumed.
	Run bool `json:"run,omitempty"`
}

// Create starts a session: the model check, the tokens, the record and its
// MCP configuration in the store, the agent's launch and handshake, and the
// wait for its MCP readiness. It returns once the session is ready (the
// first prompt, if any, then runs on its own) or has failed (an error
// wrapping ErrStartFailed, with the session's Info in Created).
func (m *Manager) Create(ctx context.Context, spec Spec) (Created, error) {
	if m.isClosed() {
		return Created{}, ErrClosed
	}
	cfg, catalogAgent, err := m.check(ctx, &spec)
	if err != nil {
		return Created{}, err
	}
	id := newID("ses_")
	cfg.CatalogAgent = catalogAgent
	cfg.Sandbox = m.opts.Confinement.Mode()
	s := m.newSession(id, spec, cfg)

	// Validate the launch before anything is minted or written: a missing
	// secret, a bad command or an adapter not installed is the caller's
	// (or the operator's) to fix, not a failed session.
	l, err := profile.Build(spec.Agent, s.launchSpec("placeholder-token"))
	if err != nil {
		return Created{}, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	if err := l.CheckInstall(); err != nil {
		return Created{}, fmt.Errorf("%w: the %s adapter is not installed on this broker: %w", ErrInvalidRequest, spec.Agent, err)
	}

	viewer, err := s.mintTokens(ctx)
	if err != nil {
		return Created{}, err
	}
	created := Created{ViewerToken: viewer.raw, ViewerExpiresAt: viewer.claims.ExpiresAt, ViewerTokenID: viewer.claims.ID}

	// Record the session and its MCP configuration before the launch.
	m.mu.Lock()
	m.creating[id] = true
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.creating, id)
		m.mu.Unlock()
	}()
	if err := m.st.PutSession(ctx, s.record()); err != nil {
		m.revoke(s)
		return Created{}, fmt.Errorf("record session: %w", err)
	}
	if ok, err := m.own(ctx, id); err != nil || !ok {
		m.revoke(s)
		return Created{}, fmt.Errorf("lease of the new session: owned %v: %w", ok, err)
	}
	s.log, err = m.j.OpenLog(ctx, id)
	if err != nil {
		m.revoke(s)
		return Created{}, err
	}
	if _, err := s.log.Append(ctx, EventConfig, s.configSnapshot()); err != nil {
		m.revoke(s)
		return Created{}, err
	}
	s.appendEvent(EventState, map[string]any{"state": StateStarting, "reason": "created"})
	bg := context.WithoutCancel(ctx)
	if !m.register(s) {
		s.shutdown(bg, StateInterrupted, "broker shutting down", true, true)
		return Created{}, ErrClosed
	}
	s.startObserverQueue()

	if spec.run != nil {
		if err := s.beginRun(ctx, spec.run); err != nil {
			s.mu.Lock()
			s.lastError = err.Error()
			s.mu.Unlock()
			s.shutdown(bg, StateFailed, "the task run could not be recorded", true, true)
			created.Session = s.info()
			return created, err
		}
	}
	if err := s.start("", 0); err != nil {
		s.mu.Lock()
		s.lastError = err.Error()
		s.mu.Unlock()
		s.shutdown(bg, StateFailed, "agent failed to start", true, true)
		created.Session = s.info()
		return created, fmt.Errorf("%w: %w", ErrStartFailed, err)
	}
	if spec.Prompt != "" {
		t, err := s.prompt(ctx, spec.Prompt, "creator")
		switch {
		case err != nil:
			created.FirstPromptError = err.Error()
			if spec.run != nil {
				s.shutdown(bg, StateFailed, "the task run's prompt did not start: "+err.Error(), true, true)
			}
		case spec.run != nil:
			// The run ends with this turn (awaitRun), or with the session.
			s.transMu.Lock()
			if !s.ending {
				s.wg.Add(1)
				go s.awaitRun(t)
			}
			s.transMu.Unlock()
		}
	}
	created.Session = s.info()
	return created, nil
}

// check validates a spec and resolves its model: nothing is minted,
// written or started before it passes.
func (m *Manager) check(ctx context.Context, spec *Spec) (sessionConfig, string, error) {
	var cfg sessionConfig
	prof, err := profile.Lookup(spec.Agent)
	if err != nil {
		return cfg, "", fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	ac, ok := m.opts.Agents[prof.Name]
	if !ok {
		return cfg, "", fmt.Errorf("%w: agent %q is not configured on this broker", ErrInvalidRequest, prof.Name)
	}
	catalogAgent := prof.Agent
	if prof.Name == profile.Custom {
		catalogAgent = ac.CatalogAgent
	}
	switch {
	case catalogAgent != "" && spec.Model == "":
		p, err := m.opts.Models.Policy(catalogAgent)
		if err != nil {
			return cfg, "", fmt.Errorf("%w: %w", ErrModelRefused, err)
		}
		spec.Model = p.Default
		fallthrough
	case catalogAgent != "":
		r, err := m.opts.Models.Resolve(catalogAgent, spec.Model)
		if err != nil {
			return cfg, "", fmt.Errorf("%w: %w", ErrModelRefused, err)
		}
		spec.Model = r.Model.ID
		if len(prof.KnownModels) > 0 && !slices.Contains(prof.KnownModels, spec.Model) {
			return cfg, "", fmt.Errorf("%w: the %s agent has no metadata for %s and the broker cannot give it any (it would warn on every reply and plan with fallback limits): use one of %s",
				ErrModelRefused, prof.Name, spec.Model, strings.Join(prof.KnownModels, ", "))
		}
	case spec.Model != "":
		return cfg, "", fmt.Errorf("%w: the %s profile takes no model here (no catalog agent configured)", ErrModelRefused, prof.Name)
	}
	if spec.Policy == "" {
		spec.Policy = acp.PolicyAsk
	}
	if _, err := acp.ParsePermissionPolicy(string(spec.Policy)); err != nil {
		return cfg, "", fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	if spec.Credential.Kind == "" {
		spec.Credential.Kind = profile.KindNone
	}
	if spec.ViaProxy {
		switch {
		case spec.Credential.Kind != profile.KindAPIKey:
			return cfg, "", fmt.Errorf("%w: via_proxy applies to an api-key credential", ErrInvalidRequest)
		case spec.Credential.Secret.IsZero():
			return cfg, "", fmt.Errorf("%w: an api-key credential needs its key", ErrInvalidRequest)
		case m.opts.ProxyBaseURL == "":
			return cfg, "", fmt.Errorf("%w: this broker has no inference proxy configured", ErrInvalidRequest)
		case catalogAgent == "":
			return cfg, "", fmt.Errorf("%w: via_proxy needs an agent whose models the catalog knows", ErrInvalidRequest)
		}
	}
	if spec.Credential.Kind == profile.KindPlatformProxy {
		if m.opts.ProxyBaseURL == "" {
			return cfg, "", fmt.Errorf("%w: this broker has no inference proxy configured", ErrInvalidRequest)
		}
		if !spec.Credential.Secret.IsZero() {
			return cfg, "", fmt.Errorf("%w: a platform-proxy credential takes no secret: the broker mints it", ErrInvalidRequest)
		}
		spec.Credential.Secret = profile.NewSecret("placeholder-inference-token")
		if err := m.checkPlatformKey(catalogAgent, spec.Model); err != nil {
			return cfg, "", err
		}
	}
	if spec.Project == "" {
		return cfg, "", fmt.Errorf("%w: project is required", ErrInvalidRequest)
	}
	if err := checkSpecText(spec); err != nil {
		return cfg, "", err
	}
	proj, err := m.st.GetProject(ctx, spec.Project)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return cfg, "", fmt.Errorf("%w: project %q not found", ErrInvalidRequest, spec.Project)
		}
		return cfg, "", err
	}
	if spec.Cwd == "" {
		spec.Cwd = proj.RepoPath
	}
	if spec.Cwd == "" || !filepath.IsAbs(spec.Cwd) {
		return cfg, "", fmt.Errorf("%w: cwd must be an absolute path (the project has no repo_path)", ErrInvalidRequest)
	}
	if slices.Contains(strings.Split(filepath.ToSlash(spec.Cwd), "/"), "..") {
		return cfg, "", fmt.Errorf("%w: cwd %q has a \"..\" element: give the directory itself", ErrInvalidRequest, truncateUTF8(spec.Cwd, 200))
	}
	spec.Cwd = filepath.Clean(spec.Cwd)
	if fi, err := os.Stat(spec.Cwd); err != nil || !fi.IsDir() {
		return cfg, "", fmt.Errorf("%w: cwd %q is not a directory", ErrInvalidRequest, spec.Cwd)
	}
	if err := m.opts.Confinement.CheckOpen(spec.Cwd); err != nil {
		return cfg, "", fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	if spec.Task != "" {
		if _, err := m.st.GetTask(ctx, spec.Project, spec.Task); err != nil {
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
				return cfg, "", fmt.Errorf("%w: task %q not found in project %q", ErrInvalidRequest, truncateUTF8(spec.Task, 200), spec.Project)
			}
			return cfg, "", err
		}
	}
	if spec.Budget < 0 {
		return cfg, "", fmt.Errorf("%w: budget_usd must be positive", ErrInvalidRequest)
	}
	if spec.CreatedBy == "" {
		spec.CreatedBy = "agentbroker"
	}
	if spec.Title == "" {
		spec.Title = titleOf(spec.Prompt)
	}
	cfg.Profile = prof.Name
	cfg.Model = spec.Model
	cfg.Cwd = spec.Cwd
	cfg.Policy = string(spec.Policy)
	cfg.Credential.Kind = spec.Credential.Kind
	cfg.Credential.BaseURL = spec.Credential.BaseURL
	cfg.Credential.ViaProxy = spec.ViaProxy
	cfg.MCP.Name = m.opts.MCPServerName
	cfg.MCP.URL = m.opts.MCPURL
	cfg.CreatedBy = spec.CreatedBy
	cfg.Task = spec.Task
	cfg.Run = spec.run != nil
	if spec.Budget > 0 {
		cfg.BudgetUSD = spec.Budget.USD()
	}
	return cfg, catalogAgent, nil
}

// checkPlatformKey refuses a platform-proxy session whose model's provider
// has no platform key: the proxy would refuse its every call.
func (m *Manager) checkPlatformKey(catalogAgent, model string) error {
	if m.opts.PlatformKeys == nil || catalogAgent == "" {
		return nil
	}
	r, err := m.opts.Models.Resolve(catalogAgent, model)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrModelRefused, err)
	}
	if p := r.Model.Provider; !m.opts.PlatformKeys[p] {
		return fmt.Errorf("%w: this broker has no platform key for %s, which serves %s: the operator sets one (agentbroker serve reads %s or --%s-key-file), or start the session with your own key (credential api-key, via_proxy)",
			ErrInvalidRequest, p, r.Model.ID, keyEnv(p), p)
	}
	return nil
}

// keyEnv is where agentbroker serve reads provider p's platform key.
func keyEnv(p catalog.Provider) string {
	info, _ := catalog.LookupProvider(p)
	return info.KeyEnv
}

// checkSpecText refuses, before anything is minted or recorded, the text
// the store would refuse later (and the prompt the first turn would): a
// title or a cwd over its limit, a NUL byte, text that is not UTF-8.
func checkSpecText(spec *Spec) error {
	for _, f := range []struct {
		name, v string
		max     int
	}{
		{"title", spec.Title, store.MaxTitleLen},
		{"cwd", spec.Cwd, store.MaxRefLen},
		{"prompt", spec.Prompt, store.MaxTextLen},
	} {
		switch {
		case len(f.v) > f.max:
			return fmt.Errorf("%w: %s is %d bytes, over the limit of %d", ErrInvalidRequest, f.name, len(f.v), f.max)
		case !utf8.ValidString(f.v):
			return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidRequest, f.name)
		case strings.IndexByte(f.v, 0) >= 0:
			return fmt.Errorf("%w: %s contains a NUL byte", ErrInvalidRequest, f.name)
		}
	}
	return nil
}

func titleOf(prompt string) string {
	t := strings.Join(strings.Fields(prompt), " ")
	if len(t) > 80 {
		cut := 80
		for cut > 0 && !utf8Start(t[cut]) {
			cut--
		}
		t = t[:cut] + "…"
	}
	return t
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

func (m *Manager) newSession(id string, spec Spec, cfg sessionConfig) *session {
	cred := spec.Credential
	var userKey profile.Secret
	if spec.ViaProxy {
		// The agent is launched as for platform-proxy (an inference token is
		// minted for it); the user's key stays here for the proxy. The
		// recorded config keeps saying api-key, so a broker restart, which
		// has lost the key, does not resume it on the platform's key.
		userKey = cred.Secret
		cred = profile.Credential{Kind: profile.KindPlatformProxy, Secret: profile.NewSecret("placeholder-inference-token")}
	}
	s := m.newSessionFrom(id, spec.Project, spec.Title, cred, cfg)
	s.userKey, s.budget = userKey, spec.Budget
	s.run = spec.run != nil
	return s
}

func (m *Manager) newSessionFrom(id, project, title string, cred profile.Credential, cfg sessionConfig) *session {
	qctx, quit := context.WithCancelCause(m.ctx)
	return &session{
		callDone: make(chan struct{}, 1),
		m:        m,
		id:       id,
		project:  project,
		title:    title,
		cfg:      cfg,
		cred:     cred,
		ended:    make(chan struct{}),
		quitCtx:  qctx,
		quit:     quit,
		state:    StateStarting,
		pending:  map[string]*permWait{},
		asked:    map[string]askRecord{},
		obsQ:     make(chan obsEvent, observerQueue),
		obsDone:  make(chan struct{}),
		tr:       newTranscript(),
	}
}

func (m *Manager) register(s *session) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.live[s.id] = s
	return true
}

func (m *Manager) unregister(s *session) {
	m.mu.Lock()
	mine := m.live[s.id] == s
	if mine {
		delete(m.live, s.id)
	}
	m.mu.Unlock()
	if mine {
		m.release(s.id)
	}
}

func (m *Manager) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

func (m *Manager) liveSession(id string) *session {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.live[id]
}

// sessionDir is the session's private directory.
func (m *Manager) sessionDir(id string) string {
	return filepath.Join(m.opts.SessionsDir, id)
}

// Prompt starts a turn. With wait it returns once the turn has ended;
// otherwise at once, with the turn running (Result.Running).
func (m *Manager) Prompt(ctx context.Context, id, text string, wait bool, by string) (TurnResult, error) {
	s, err := m.session(ctx, id)
	if err != nil {
		var res TurnResult
		return res, m.forward(ctx, err, id, http.MethodPost, sessionPath(id, "/prompt?wait="+strconv.FormatBool(wait)), false,
			PromptRequest{Text: text}, &res)
	}
	t, err := s.prompt(ctx, text, by)
	if err != nil {
		return TurnResult{}, err
	}
	if !wait {
		return TurnResult{Turn: t.n, Running: true}, nil
	}
	select {
	case <-t.done:
		return t.result(), nil
	case <-ctx.Done():
		return TurnResult{Turn: t.n, Running: true}, nil
	}
}

// Cancel cancels the running turn; the turn then ends with stop reason
// "cancelled" (pending permission requests are answered "cancelled").
func (m *Manager) Cancel(ctx context.Context, id, by string) error {
	s, err := m.session(ctx, id)
	if err != nil {
		return m.forward(ctx, err, id, http.MethodPost, sessionPath(id, "/cancel"), false, nil, nil)
	}
	return s.cancelTurn(ctx, by)
}

// AnswerPermission answers a pending permission request; the first valid
// answer wins.
func (m *Manager) AnswerPermission(ctx context.Context, id, requestID, optionID, by string) error {
	s, err := m.session(ctx, id)
	if err != nil {
		return m.forward(ctx, err, id, http.MethodPost, sessionPath(id, "/permissions/"+url.PathEscape(requestID)), false,
			PermissionAnswer{OptionID: optionID}, nil)
	}
	return s.answer(requestID, optionID, by)
}

// Stop stops a session: the turn is cancelled, the agent shut down (staged:
// stdin, SIGTERM, SIGKILL), every token of the session revoked, and its log
// closed. Stopping an ended session changes nothing.
func (m *Manager) Stop(ctx context.Context, id string) (Info, error) {
	s := m.liveSession(id)
	if s == nil {
		if _, err := m.record(ctx, id); err == nil {
			if err := m.checkOwner(ctx, id); err != nil {
				var in Info
				if ferr := m.forward(ctx, err, id, http.MethodDelete, sessionPath(id, ""), true, nil, &in); ferr != err {
					return in, ferr
				}
			}
		}
		return m.Get(ctx, id)
	}
	s.shutdown(ctx, StateStopped, "stopped on request", true, true)
	return s.info(), nil
}

// session returns a live session, ErrEnded for a recorded one that is not
// live, ErrUnknownSession otherwise.
func (m *Manager) session(ctx context.Context, id string) (*session, error) {
	if s := m.liveSession(id); s != nil {
		return s, nil
	}
	if _, err := m.record(ctx, id); err != nil {
		return nil, err
	}
	if err := m.checkOwner(ctx, id); err != nil {
		return nil, err
	}
	return nil, ErrEnded
}

// record finds a session record by ID alone.
func (m *Manager) record(ctx context.Context, id string) (store.SessionRecord, error) {
	if id == "" || len(id) > store.MaxIDLen {
		return store.SessionRecord{}, ErrUnknownSession
	}
	r, err := m.st.SessionByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.SessionRecord{}, ErrUnknownSession
	}
	return r, err
}

// Get describes a session, live or recorded.
func (m *Manager) Get(ctx context.Context, id string) (Info, error) {
	var info Info
	if s := m.liveSession(id); s != nil {
		info = s.info()
	} else {
		r, err := m.record(ctx, id)
		if err != nil {
			return Info{}, err
		}
		info = recordInfo(r)
		if sc, err := m.summary(ctx, r); err == nil {
			sc.fill(&info)
		}
	}
	one := []Info{info}
	m.withUsage(ctx, "", one)
	return one[0], nil
}

// List describes the sessions of a project (all projects when project is
// ""), newest first, live state overriding the record's.
func (m *Manager) List(ctx context.Context, project string) ([]Info, error) {
	var projects []string
	if project != "" {
		projects = []string{project}
	} else {
		ps, err := m.st.ListProjects(ctx)
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			projects = append(projects, p.ID)
		}
	}
	var out []Info
	for _, p := range projects {
		recs, err := m.st.ListSessions(ctx, p, store.MaxListLimit)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil, fmt.Errorf("%w: project %q not found", ErrInvalidRequest, p)
			}
			return nil, err
		}
		for _, r := range recs {
			if s := m.liveSession(r.ID); s != nil {
				out = append(out, s.info())
			} else {
				out = append(out, recordInfo(r))
			}
		}
	}
	slices.SortStableFunc(out, func(a, b Info) int { return b.CreatedAt.Compare(a.CreatedAt) })
	m.withUsage(ctx, project, out)
	return out, nil
}

// ViewLog implements LogSource: the live session's log, or, for an ended
// session, its stored log (closed: viewers get the history, then the end).
func (m *Manager) ViewLog(ctx context.Context, id string) (*Log, error) {
	if s := m.liveSession(id); s != nil && s.log != nil {
		return s.log, nil
	}
	rec, err := m.record(ctx, id)
	if err != nil {
		return nil, err
	}
	if m.fleet() && !State(rec.State).Final() {
		// Live on another node (or about to be taken over): its log as
		// the store holds it, followed.
		return m.followLog(ctx, id)
	}
	l, err := m.j.OpenLog(ctx, id)
	if err != nil {
		return nil, err
	}
	l.Close()
	return l, nil
}

// Control implements Controller: viewers' prompts, cancels and permission
// answers (the viewer handler has checked session:control).
func (m *Manager) Control(ctx context.Context, id string, who tokens.Claims, msg ClientMessage) error {
	by := who.Subject + " (viewer " + who.ID + ")"
	switch msg.Type {
	case "prompt":
		_, err := m.Prompt(ctx, id, msg.Text, false, by)
		return err
	case "cancel":
		return m.Cancel(ctx, id, by)
	case "permission":
		return m.AnswerPermission(ctx, id, msg.RequestID, msg.OptionID, by)
	}
	return fmt.Errorf("%w: unknown message type %q (want prompt, cancel or permission)", ErrInvalidRequest, msg.Type)
}

// ToolsListed implements mcpserver.Observer: the session's MCP token
// reached tools/list, the readiness signal. It never blocks.
func (m *Manager) ToolsListed(_ context.Context, c tokens.Claims) {
	if s := m.liveSession(c.Session); s != nil {
		s.mcpListed(c)
	}
}

// RevokedTokenUsed implements mcpserver.RevocationObserver: an agent that
// calls the MCP server with its session's revoked MCP token gets nothing,
// and the session says so: an "mcp_auth_failed" event and MCP status
// "failed". (A token of an ended session is not reported: the session is
// gone.)
func (m *Manager) RevokedTokenUsed(_ context.Context, c tokens.Claims) {
	s := m.liveSession(c.Session)
	if s == nil {
		return
	}
	s.mu.Lock()
	ours := c.ID == s.cfg.MCP.TokenID
	first := ours && s.mcpStatus != MCPFailed
	if ours {
		s.mcpStatus = MCPFailed
	}
	s.mu.Unlock()
	if first {
		s.enqueue(EventMCPAuthFailed, map[string]any{"token_id": c.ID, "reason": "token revoked"})
	}
}

var _ mcpserver.RevocationObserver = (*Manager)(nil)

// ToolCalled implements mcpserver.Observer: each tool call becomes a
// "tool_call_mcp" event. It never blocks (a full queue drops the event and
// counts it in Info.DroppedEvents).
func (m *Manager) ToolCalled(_ context.Context, call mcpserver.ToolCall) {
	s := m.liveSession(call.Session)
	if s == nil {
		return
	}
	s.enqueue(EventToolCallMCP, map[string]any{
		"tool": call.Tool, "outcome": call.Outcome, "error": call.Error, "token_id": call.TokenID,
		"start": call.Start, "duration_ms": call.Duration.Milliseconds(),
	})
}

// UserKey is the proxy's passthrough hook (proxy.Options.UserKey): the
// user's own key of a live session created with ViaProxy, for the provider
// its agent speaks to. Every other session uses the platform's key.
func (m *Manager) UserKey(_ context.Context, c tokens.Claims, p catalog.Provider) (string, bool) {
	s := m.liveSession(c.Session)
	if s == nil || s.project != c.Project {
		return "", false
	}
	s.mu.Lock()
	key, agent := s.userKey, s.cfg.CatalogAgent
	s.mu.Unlock()
	if key.IsZero() {
		return "", false
	}
	pol, err := m.opts.Models.Policy(agent)
	if err != nil {
		return "", false
	}
	if prov, ok := catalog.ProviderOf(pol.API); !ok || prov != p {
		return "", false
	}
	return key.Reveal(), true
}

// RecordUsage implements proxy.Recorder: each inference request becomes a
// "usage" event, and a refusal of the model asked for also a
// "model_refused" event (model is the session's, wire_model the one
// asked). It never blocks.
func (m *Manager) RecordUsage(_ context.Context, r proxy.UsageRecord) {
	s := m.liveSession(r.Session)
	if s == nil {
		return
	}
	ev := map[string]any{
		"route": r.Route, "model": r.Model, "wire_model": r.WireModel, "provider": r.Provider,
		"status": r.Status, "outcome": r.Outcome, "token_id": r.TokenID, "user_key": r.UserKey,
		"duration_ms": r.Duration.Milliseconds(),
	}
	if r.UsageReported {
		ev["usage"] = map[string]int64{
			"input_tokens": r.Usage.InputTokens, "output_tokens": r.Usage.OutputTokens,
			"cache_read_tokens": r.Usage.CacheReadTokens, "cache_write_5m_tokens": r.Usage.CacheWrite5mTokens,
			"cache_write_1h_tokens": r.Usage.CacheWrite1hTokens,
		}
		ev["cost_micro_usd"] = r.Cost.MicroUSD()
		ev["cost_usd"] = r.Cost.USD()
	}
	if r.Reason != "" {
		ev["reason"], ev["message"] = r.Reason, r.Message
	}
	// Counted before the handler returns, so that the next call's budget
	// check sees it, and the turn knows the call's outcome before the agent
	// can end the turn on it; stored with the event, off this goroutine.
	s.addSpent(r.Cost)
	s.mu.Lock()
	task, t := s.cfg.Task, s.turn
	s.mu.Unlock()
	if t != nil {
		t.countCall(r)
	}
	if r.Admitted && r.Project == s.project { // Allow counted it
		s.inflight.Add(-1)
		select {
		case s.callDone <- struct{}{}:
		default:
		}
	}
	at := r.Start
	if at.IsZero() {
		at = time.Now()
	}
	s.enqueueUsage(EventUsage, ev, &store.UsageRecord{SessionID: s.id, ProjectID: s.project, TaskID: task,
		Model: r.Model, Provider: string(r.Provider), InputTokens: r.Usage.InputTokens, OutputTokens: r.Usage.OutputTokens,
		CacheReadTokens: r.Usage.CacheReadTokens, CacheWriteTokens: r.Usage.CacheWrite5mTokens + r.Usage.CacheWrite1hTokens,
		CostPicoUSD: int64(max(r.Cost, 0)), Outcome: string(r.Outcome), At: at})
	if r.Reason == proxy.ReasonBudgetExceeded {
		s.budgetRefused(r)
	}
	if r.Outcome == proxy.OutcomeRefused && r.Reason.ModelRefusal() {
		s.mu.Lock()
		model := s.cfg.Model
		s.mu.Unlock()
		s.enqueue(EventModelRefused, map[string]any{
			"route": r.Route, "wire_model": r.WireModel, "model": model, "reason": r.Reason,
			"status": r.Status, "message": r.Message, "token_id": r.TokenID,
		})
	}
}

// Close shuts every live session down (staged, in parallel) and closes the
// journal. The sessions become "interrupted" with resumable set, so that
// Recover in the next broker relaunches them; their tokens are not revoked
// (Recover revokes them one by one and mints new ones). ctx bounds the
// staged stops: when it ends the agents are killed.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	live := make([]*session, 0, len(m.live))
	for _, s := range m.live {
		live = append(live, s)
	}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range live {
		wg.Go(func() { s.shutdown(ctx, StateInterrupted, reasonShutdown, false, true) })
	}
	wg.Wait()
	m.cancel()
	m.bg.Wait()
	m.j.Close()
	return nil
}

// revoke revokes every token of a session (logged on failure: the tokens
// then die at their expiry).
func (m *Manager) revoke(s *session) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(m.ctx), 10*time.Second)
	defer cancel()
	if err := m.opts.Tokens.RevokeSession(ctx, s.id); err != nil {
		m.log.Warn("sessions: revoke session tokens", "session", s.id, "err", err)
	}
}

// newID returns prefix and 16 random base32 characters.
func newID(prefix string) string {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return prefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

func newRequestID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return "perm_" + hex.EncodeToString(b[:])
}
