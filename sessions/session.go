package sessions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentbroker/agentbroker/acp"
	"github.com/agentbroker/agentbroker/acp/profile"
	"github.com/agentbroker/agentbroker/acp/supervisor"
	"github.com/agentbroker/agentbroker/catalog"
	"github.com/agentbroker/agentbroker/proxy"
	"github.com/agentbroker/agentbroker/store"
	"github.com/agentbroker/agentbroker/tokens"
)

// observerQueue bounds the MCP and proxy notifications waiting to become
// events of one session; beyond it they are dropped and counted.
const observerQueue = 256

// session is one live session: the record, its log, the current agent
// process and the turn in progress.
//
// Goroutines: watch (one per agent process: notices its end, restarts it),
// runTurn (one per turn), drainObserver (one per session). shutdown waits
// for all of them.
type session struct {
	m       *Manager
	id      string
	project string
	title   string
	cred    profile.Credential // in memory only: never persisted
	userKey profile.Secret     // ViaProxy: the user's key, for the proxy; in memory only
	run     bool               // a task run's session (RunTask)
	log     *Log

	quitCtx context.Context // ends when the session is shutting down
	quit    context.CancelCauseFunc

	// transMu orders state changes with their events; held briefly.
	transMu sync.Mutex
	ending  bool          // guarded by transMu: shutdown has begun
	ended   chan struct{} // closed when shutdown is complete

	mu         sync.Mutex
	cfg        sessionConfig
	mcpToken   string // the agent's MCP token (secret, in memory)
	state      State
	createdAt  time.Time
	lastError  string
	cur        *agentProc
	acpID      string
	loadable   bool
	mcpStatus  string
	mcpCh      chan struct{} // closed when this launch's token lists tools
	mcpSeen    bool
	turn       *turn
	turns      int
	restarts   int
	pending    map[string]*permWait
	asked      map[string]askRecord // by tool call ID
	obsStarted bool

	dropped atomic.Int64
	obsQ    chan obsEvent
	// budget is the session's USD budget (0: none); spent what its
	// recorded calls cost.
	budget catalog.Amount
	spent  spend
	// inflight counts the model calls the proxy admitted (Allow) and has
	// not recorded yet; callDone is signalled as each is recorded.
	inflight atomic.Int64
	callDone chan struct{}
	obsDone  chan struct{}
	wg       sync.WaitGroup
	tr       *transcript
}

// agentProc is one run of the agent process and its ACP connection.
type agentProc struct {
	proc        *supervisor.Process
	conn        *acp.Conn
	cancel      context.CancelFunc
	launch      *profile.Launch
	replayUntil atomic.Uint64 // updates up to this Seq are session/load replay
	stopping    atomic.Bool   // we are taking it down: its end is no crash
}

func (p *agentProc) teardown(ctx context.Context) {
	p.stopping.Store(true)
	_ = p.proc.Stop(ctx)
	_ = p.conn.Close()
	p.cancel()
}

func (p *agentProc) kill() {
	p.stopping.Store(true)
	p.proc.Kill()
	_ = p.conn.Close()
	p.cancel()
}

// Why a turn failed: the "reason" of its turn_failed event.
const (
	// FailAgentError: the agent answered the prompt with an error.
	FailAgentError = "agent_error"
	// FailAgentExited: the agent's process went away during the turn.
	FailAgentExited = "agent_exited"
	// FailModelCalls: the turn made model calls through the proxy and
	// every one failed (refused, upstream error, unreachable…).
	FailModelCalls = "model_calls_failed"
	// FailBrokerRestarted: the broker stopped during the turn.
	FailBrokerRestarted = "broker_restarted"
)

// turn is one prompt turn.
type turn struct {
	n    int
	done chan struct{}
	// Set before done is closed.
	stop     acp.StopReason
	err      string
	reply    string
	isFailed bool
	// budget is the proxy's message once it refused a call of this turn
	// for a spent budget.
	budget      atomic.Pointer[string]
	budgetEvent atomic.Bool // the turn's budget_exceeded event is recorded
	// calls counts the turn's model calls through the proxy, failed those
	// that did not end ok, lastFailure says how the latest failed one
	// ended. The proxy records a call before its client sees the end of
	// the answer, so before the agent can end the turn on it.
	calls, failed atomic.Int64
	lastFailure   atomic.Pointer[string]
}

// countCall counts a model call the proxy recorded during the turn.
func (t *turn) countCall(r proxy.UsageRecord) {
	t.calls.Add(1)
	if r.Outcome == proxy.OutcomeOK {
		return
	}
	t.failed.Add(1)
	why := string(r.Outcome)
	if r.Status != 0 {
		why += fmt.Sprintf(" %d", r.Status)
	}
	if r.Reason != "" {
		why += " " + string(r.Reason)
	}
	if r.Message != "" {
		why += ": " + truncateUTF8(r.Message, 500)
	}
	t.lastFailure.Store(&why)
}

// modelFailure returns why the turn failed when it made model calls and
// every one of them failed (refused by the proxy, or an upstream error),
// and "" otherwise: one call that went through is enough for the turn to
// have done model work.
func (t *turn) modelFailure() string {
	n, f := t.calls.Load(), t.failed.Load()
	if n == 0 || f < n {
		return ""
	}
	why := "?"
	if p := t.lastFailure.Load(); p != nil {
		why = *p
	}
	if n == 1 {
		return "the turn's only model call failed: " + why
	}
	return fmt.Sprintf("all %d model calls of the turn failed; the last: %s", n, why)
}

// TurnResult is how a turn ended (or that it is still running).
type TurnResult struct {
	Turn       int            `json:"turn"`
	Running    bool           `json:"running,omitempty"`
	StopReason acp.StopReason `json:"stop_reason,omitempty"`
	// Reply is the agent's text of the turn (its agent_message_chunks).
	Reply string `json:"reply,omitempty"`
	// Failed reports a turn that ended without doing its work: the agent
	// answered the prompt with an error, crashed, or every model call it
	// made failed (refused by the proxy or failed upstream), whatever
	// stop reason it then gave. Error says why.
	Failed bool   `json:"failed,omitempty"`
	Error  string `json:"error,omitempty"`
	// ModelCalls and FailedModelCalls count the turn's calls through the
	// broker's inference proxy.
	ModelCalls       int64 `json:"model_calls,omitempty"`
	FailedModelCalls int64 `json:"failed_model_calls,omitempty"`
}

func (t *turn) result() TurnResult {
	return TurnResult{Turn: t.n, StopReason: t.stop, Reply: t.reply, Failed: t.isFailed, Error: t.err,
		ModelCalls: t.calls.Load(), FailedModelCalls: t.failed.Load()}
}

type permWait struct {
	id       string
	options  []acp.PermissionOption
	toolCall acp.ToolCall
	askedAt  time.Time
	ch       chan permAnswer // buffered 1
}

type permAnswer struct{ option, by string }

type askRecord struct{ rid, by string }

type obsEvent struct {
	typ  string
	data any
	// usage, for a "usage" event, is stored before the event is queued.
	usage *store.UsageRecord
}

type mintedToken struct {
	raw    string
	claims tokens.Claims
}

// The MCP token's scopes: read the project, work on tasks and knowledge,
// read earlier sessions.
var mcpScopes = []tokens.Scope{
	tokens.ScopeProjectRead, tokens.ScopeTasksRead, tokens.ScopeTasksWrite,
	tokens.ScopeKnowledgeRead, tokens.ScopeKnowledgeWrite, tokens.ScopeSessionsRead,
}

func (s *session) mint(ctx context.Context, aud tokens.Audience, scopes ...tokens.Scope) (mintedToken, error) {
	agent := s.cfg.CatalogAgent
	if agent == "" {
		agent = string(s.cfg.Profile)
	}
	g := tokens.Grant{
		Subject: s.cfg.CreatedBy, Project: s.project, Session: s.id, Agent: agent,
		Audience: aud, Scopes: scopes, Lifetime: s.m.opts.TokenLifetime,
	}
	if aud == tokens.AudienceProxy && s.cfg.CatalogAgent != "" {
		// The proxy lets this token use the session's model and the
		// agent's side models, nothing else.
		g.Model = s.cfg.Model
	}
	raw, c, err := s.m.opts.Tokens.Mint(ctx, g)
	if err != nil {
		return mintedToken{}, fmt.Errorf("mint %s token: %w", aud, err)
	}
	return mintedToken{raw, c}, nil
}

// mintAgentTokens mints the agent's MCP token and, for platform-proxy, its
// inference token, recording their IDs in cfg.
func (s *session) mintAgentTokens(ctx context.Context) error {
	mcp, err := s.mint(ctx, tokens.AudienceMCP, mcpScopes...)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.mcpToken = mcp.raw
	s.cfg.MCP.TokenID, s.cfg.MCP.ExpiresAt = mcp.claims.ID, mcp.claims.ExpiresAt
	s.mu.Unlock()
	if s.cred.Kind == profile.KindPlatformProxy {
		inf, err := s.mint(ctx, tokens.AudienceProxy, tokens.ScopeInference)
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.cred.Secret = profile.NewSecret(inf.raw)
		s.cfg.InferenceTokenID, s.cfg.InferenceExpires = inf.claims.ID, inf.claims.ExpiresAt
		s.mu.Unlock()
	}
	return nil
}

// mintTokens mints every token of a new session and returns the viewer's.
func (s *session) mintTokens(ctx context.Context) (mintedToken, error) {
	if err := s.mintAgentTokens(ctx); err != nil {
		s.m.revoke(s)
		return mintedToken{}, err
	}
	v, err := s.mint(ctx, tokens.AudienceViewer, tokens.ScopeSessionView, tokens.ScopeSessionControl)
	if err != nil {
		s.m.revoke(s)
		return mintedToken{}, err
	}
	s.mu.Lock()
	s.cfg.ViewerTokenID = v.claims.ID
	s.mu.Unlock()
	return v, nil
}

func (s *session) configSnapshot() sessionConfig {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

// record is the session's store record; its Config is what its log says
// so far (see scanned), nil before the log is open.
func (s *session) record() store.SessionRecord {
	var config []byte
	if s.log != nil {
		config = summaryJSON(s.log.summary())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.createdAt.IsZero() {
		s.createdAt = time.Now().UTC()
	}
	return store.SessionRecord{ID: s.id, ProjectID: s.project, Agent: string(s.cfg.Profile), Model: s.cfg.Model,
		State: string(s.state), Title: s.title, Config: config, CreatedAt: s.createdAt}
}

// launchSpec is the profile's input for this session, with mcpToken.
func (s *session) launchSpec(mcpToken string) profile.LaunchSpec {
	s.mu.Lock()
	cfg, cred := s.cfg, s.cred
	s.mu.Unlock()
	ac := s.m.opts.Agents[cfg.Profile]
	dir := s.m.sessionDir(s.id)
	env := make([]string, len(ac.ExtraEnv))
	for i, kv := range ac.ExtraEnv {
		env[i] = strings.ReplaceAll(kv, "{session_dir}", dir)
	}
	return profile.LaunchSpec{
		SessionID: s.id, SessionDir: dir, Cwd: cfg.Cwd, Model: cfg.Model,
		MCP:        profile.MCPServer{Name: cfg.MCP.Name, URL: cfg.MCP.URL, Token: profile.NewSecret(mcpToken)},
		Credential: cred, ProxyBaseURL: s.m.opts.ProxyBaseURL,
		InstallDir: ac.InstallDir, Command: ac.Command, Node: ac.Node, ExtraEnv: env,
	}
}

// addAgentModels gives the agent's configuration the catalog's facts about
// the session's models, and the agent's own model catalog where its profile
// reads one, so that the configuration can fill in what the agent lacks. A
// catalog that cannot be read is a warning event, not a failed start.
func (s *session) addAgentModels(spec *profile.LaunchSpec) {
	s.mu.Lock()
	cfg := s.cfg
	s.mu.Unlock()
	p, err := profile.Lookup(cfg.Profile)
	if err != nil || len(p.ModelCatalog) == 0 || spec.Model == "" {
		return
	}
	spec.Models = modelFacts(s.m.opts.Models, cfg.CatalogAgent, spec.Model)
	if pol, err := s.m.opts.Models.Policy(cfg.CatalogAgent); err == nil {
		spec.AllowedModels = pol.Allowed
	}
	data, err := s.m.agentCats.read(s.quitCtx, p, *spec, s.m.opts.SessionsDir, s.m.opts.Confinement)
	if err != nil {
		s.appendEvent(EventWarning, map[string]any{"warning": "the agent's own model catalog could not be read: it may warn that it lacks metadata for " + cfg.Model, "error": err.Error()})
		return
	}
	spec.AgentModels = data
}

// appendEvent records an event; a failure is logged (the log is closed
// only when the session has ended).
func (s *session) appendEvent(typ string, data any) {
	if _, err := s.log.Append(context.Background(), typ, data); err != nil && !errors.Is(err, ErrLogClosed) {
		s.m.log.Warn("sessions: event not recorded", "session", s.id, "type", typ, "err", err)
	}
}

// queueEvent records an event without waiting for its commit (the journal
// batches it with others; order is kept, and viewers see it only once it is
// durable). The next appendEvent, or syncEvents, waits for it too: use it
// where nothing is acknowledged until one of those. An event the store
// refuses (its disk is full) is counted where a person sees it
// (Info.DroppedEvents), as the broker could not log it.
func (s *session) queueEvent(typ string, data any) {
	if err := s.log.AppendAsync(context.Background(), typ, data, func(err error) {
		s.dropped.Add(1)
		s.m.log.Warn("sessions: event not recorded", "session", s.id, "type", typ, "err", err)
	}); err != nil && !errors.Is(err, ErrLogClosed) {
		s.dropped.Add(1)
		s.m.log.Warn("sessions: event not recorded", "session", s.id, "type", typ, "err", err)
	}
}

// syncEvents waits until every event recorded so far is durable.
func (s *session) syncEvents() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.log.Sync(ctx); err != nil && !errors.Is(err, ErrLogClosed) {
		s.m.log.Warn("sessions: events not recorded", "session", s.id, "err", err)
	}
}

// emitState sets the state; the caller holds transMu or has the session
// to itself.
func (s *session) emitState(to State, reason string, extra map[string]any) {
	s.mu.Lock()
	from := s.state
	s.state = to
	s.mu.Unlock()
	data := map[string]any{"state": to, "from": from}
	if reason != "" {
		data["reason"] = reason
	}
	for k, v := range extra {
		data[k] = v
	}
	s.appendEvent(EventState, data)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.m.st.PutSession(ctx, s.record()); err != nil {
		s.m.log.Warn("sessions: session record not updated", "session", s.id, "state", to, "err", err)
	}
}

// transition changes the state when allowed(from) holds and shutdown has
// not begun.
func (s *session) transition(allowed func(State) bool, to State, reason string, extra map[string]any) bool {
	s.transMu.Lock()
	defer s.transMu.Unlock()
	s.mu.Lock()
	from := s.state
	s.mu.Unlock()
	if s.ending || (allowed != nil && !allowed(from)) {
		return false
	}
	s.emitState(to, reason, extra)
	return true
}

// start launches the agent (resuming acpID when set), installs it and waits
// for its MCP readiness; the session is then ready.
func (s *session) start(resume string, attempt int) error {
	p, err := s.launch(resume, attempt)
	if err != nil {
		return err
	}
	s.transMu.Lock()
	s.mu.Lock()
	ok := !s.ending && s.state == StateStarting
	if ok {
		s.cur = p
	}
	s.mu.Unlock()
	s.transMu.Unlock()
	if !ok {
		p.kill()
		return errors.New("the session ended during its start")
	}
	s.wg.Add(1)
	go s.watch(p)
	s.awaitMCP(p)
	extra := map[string]any{"attempt": attempt}
	if resume != "" {
		extra["resumed"] = resume
	}
	// Ready unless the agent died meanwhile (the watcher then restarts it).
	s.transition(func(st State) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return st == StateStarting && s.cur == p
	}, StateReady, "agent ready", extra)
	return nil
}

// launch writes the agent's configuration, starts it and runs the ACP
// handshake with our MCP server entry.
func (s *session) launch(resume string, attempt int) (*agentProc, error) {
	m := s.m
	dir := m.sessionDir(s.id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("session directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("session directory: %w", err)
	}
	s.mu.Lock()
	token := s.mcpToken
	cfg := s.cfg
	s.mu.Unlock()
	ls := s.launchSpec(token)
	s.addAgentModels(&ls)
	l, err := profile.Build(cfg.Profile, ls)
	if err != nil && ls.AgentModels != nil {
		// The agent's own catalog is only a help: without it the agent
		// still runs, with its fallback metadata.
		s.appendEvent(EventWarning, map[string]any{"warning": "the agent's own model catalog was not used: it may warn that it lacks metadata for " + cfg.Model, "error": err.Error()})
		ls.AgentModels = nil
		l, err = profile.Build(cfg.Profile, ls)
	}
	if err != nil {
		return nil, err
	}
	conf := m.opts.Confinement
	if err := conf.takeBack(dir); err != nil {
		return nil, fmt.Errorf("session directory: %w", err)
	}
	if err := l.Prepare(); err != nil {
		return nil, err
	}
	if resume != "" {
		if err := l.PrepareLoad(resume); err != nil {
			return nil, err
		}
	}
	if err := conf.giveTo(dir); err != nil {
		return nil, fmt.Errorf("session directory for the agent user: %w", err)
	}
	s.mu.Lock()
	cred := s.cred
	s.mu.Unlock()
	policy, confined := conf.policy(dir, l, m.opts.Agents[cfg.Profile], cred, m.opts.BridgeCommand)
	s.resetMCP(l.MCPConnect)
	spec := supervisor.Spec{
		Path: l.Path, Args: l.Args, Env: l.Env, Dir: l.Dir,
		StartTimeout: m.opts.StartTimeout, StdinGrace: m.opts.StdinGrace, TermGrace: m.opts.TermGrace,
		Logger:   m.log,
		LogAttrs: []slog.Attr{slog.String("session", s.id), slog.String("profile", string(l.Profile))},
		Sandbox:  policy,
	}
	if policy != nil {
		spec.Launcher = conf.Launcher
	}
	proc, err := supervisor.Start(s.quitCtx, spec)
	if err != nil {
		return nil, fmt.Errorf("start agent: %w", err)
	}
	m.launches.Add(1)
	s.appendEvent(EventAgentStarted, map[string]any{"pid": proc.Pid(), "attempt": attempt, "profile": l.Profile,
		"resume": resume, "mcp_connect": l.MCPConnect, "sandbox": confined, "identity": proc.Identity()})

	ctx, cancel := context.WithCancel(m.ctx)
	p := &agentProc{proc: proc, cancel: cancel, launch: l}
	if resume != "" {
		p.replayUntil.Store(math.MaxUint64)
	}
	p.conn = acp.NewConn(ctx, proc.Stdout(), proc.Stdin(), &acp.ConnOptions{
		Logger:        m.log.With("session", s.id),
		WorkDir:       cfg.Cwd,
		OnUpdate:      func(u acp.Update) { s.onUpdate(p, u) },
		Permissions:   acp.PermissionPolicy(cfg.Policy),
		Asker:         s,
		AskTimeout:    m.opts.AskTimeout,
		MCPServerName: cfg.MCP.Name,
		ProjectTool:   l.OwnTool,
		OnExtension:   s.onExtension,
		OnPermission:  s.onPermission,
		Agent:         cfg.CatalogAgent,
		Models:        m.opts.Models,
		CancelGrace:   m.opts.CancelGrace,
	})
	var choose acp.AuthChooser
	if l.AuthMethod != "" {
		choose = func([]acp.AuthMethod) (string, error) { return l.AuthMethod, nil }
	}
	hctx, hcancel := context.WithTimeout(s.quitCtx, m.opts.StartTimeout)
	defer hcancel()
	sess, err := p.conn.Handshake(hctx, acp.HandshakeOptions{
		Cwd:             cfg.Cwd,
		MCP:             &acp.MCPConfig{Name: cfg.MCP.Name, URL: cfg.MCP.URL, Token: token, BridgeCommand: m.opts.BridgeCommand},
		ResumeSessionID: resume,
		ChooseAuth:      choose,
	})
	if err == nil && resume != "" && !sess.Loaded {
		err = errors.New("the agent cannot load sessions (no loadSession capability)")
	}
	if err == nil {
		err = proc.MarkReady()
	}
	if err != nil {
		p.kill()
		return nil, fmt.Errorf("handshake: %w%s", err, tailText(proc.StderrTail()))
	}
	p.replayUntil.Store(p.conn.Stats().Updates)
	s.mu.Lock()
	s.acpID = sess.ID
	// An agent whose profile says session/load does not work for the
	// broker is not resumed, whatever it advertises.
	s.loadable = sess.Init.AgentCapabilities.LoadSession && l.NoResume == ""
	s.mu.Unlock()
	ev := map[string]any{"acp_session_id": sess.ID, "loaded": sess.Loaded, "load_session": s.loadable}
	if sess.Init.AgentInfo != nil {
		ev["agent_info"] = sess.Init.AgentInfo
	}
	if sess.MCPServer != nil {
		ev["mcp_transport"] = sess.MCPServer.Type
	}
	s.appendEvent(EventACPSession, ev)
	if l.InitialMode != "" {
		if err := p.conn.SetMode(hctx, sess.ID, l.InitialMode); err != nil {
			s.appendEvent(EventWarning, map[string]any{"warning": "initial mode not set", "mode": l.InitialMode, "error": err.Error()})
		}
	}
	return p, nil
}

func tailText(tail []string) string {
	if len(tail) == 0 {
		return ""
	}
	return "; stderr: " + strings.Join(tail, " | ")
}

// resetMCP starts waiting for this launch's tools/list.
func (s *session) resetMCP(when profile.MCPConnect) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mcpCh = make(chan struct{})
	s.mcpSeen = false
	s.mcpStatus = MCPPending
	if when == profile.MCPAtFirstPrompt {
		s.mcpStatus = MCPFirstPrompt
	}
}

// mcpListed is the readiness signal (from the MCP server's request
// goroutine): it never blocks.
func (s *session) mcpListed(c tokens.Claims) {
	s.mu.Lock()
	if c.ID != s.cfg.MCP.TokenID || s.mcpCh == nil {
		s.mu.Unlock()
		return
	}
	late := s.mcpStatus == MCPNotConnected || s.mcpStatus == MCPFirstPrompt
	if !s.mcpSeen {
		s.mcpSeen = true
		close(s.mcpCh)
	}
	if late {
		s.mcpStatus = MCPConnected
	}
	s.mu.Unlock()
	if late {
		s.enqueue(EventMCPConnected, map[string]any{"token_id": c.ID, "late": true})
	}
}

// awaitMCP waits for the readiness signal after a handshake, and reports
// an agent that never connected.
func (s *session) awaitMCP(p *agentProc) {
	s.mu.Lock()
	ch, status := s.mcpCh, s.mcpStatus
	s.mu.Unlock()
	if status == MCPFirstPrompt {
		return // Amp: judged at the end of the first turn
	}
	t := time.NewTimer(s.m.opts.ReadyTimeout)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-s.quitCtx.Done():
		return
	case <-p.proc.Done():
		return
	case <-p.conn.Done():
		return
	}
	s.mu.Lock()
	seen := s.mcpSeen
	if seen {
		s.mcpStatus = MCPConnected
	} else {
		s.mcpStatus = MCPNotConnected
	}
	tokenID := s.cfg.MCP.TokenID
	s.mu.Unlock()
	if seen {
		s.appendEvent(EventMCPConnected, map[string]any{"token_id": tokenID})
		return
	}
	s.appendEvent(EventMCPNotConnected, map[string]any{"token_id": tokenID,
		"reason": fmt.Sprintf("the agent did not list our MCP tools within %v of its handshake", s.m.opts.ReadyTimeout)})
}

// onUpdate runs on the connection's update goroutine, in the agent's order:
// the update is committed to the log (viewers see it from there) and fed
// to the transcript.
func (s *session) onUpdate(p *agentProc, u acp.Update) {
	raw := u.Update.Raw
	if len(raw) == 0 {
		b, err := json.Marshal(u.Update)
		if err != nil {
			s.m.log.Warn("sessions: update not encodable", "session", s.id, "err", err)
			return
		}
		raw = b
	}
	var data any = json.RawMessage(raw)
	if len(raw) > store.MaxEventData-256 {
		data = map[string]any{"sessionUpdate": u.Update.Kind, "truncated": true, "bytes": len(raw)}
	}
	typ := EventUpdate
	if u.Seq <= p.replayUntil.Load() {
		typ = EventReplay
	}
	// Updates are the bulk of a session's events: queue them without
	// waiting for each commit.
	s.queueEvent(typ, data)
	if typ == EventUpdate {
		s.tr.update(u.Update)
	}
}

// prompt starts a turn.
func (s *session) prompt(_ context.Context, text, by string) (*turn, error) {
	if strings.TrimSpace(text) == "" {
		return nil, fmt.Errorf("%w: empty prompt", ErrInvalidRequest)
	}
	if len(text) > store.MaxTextLen {
		return nil, fmt.Errorf("%w: prompt over %d bytes", ErrInvalidRequest, store.MaxTextLen)
	}
	s.transMu.Lock()
	s.mu.Lock()
	st, p, acpID := s.state, s.cur, s.acpID
	if s.ending || st.Final() {
		s.mu.Unlock()
		s.transMu.Unlock()
		return nil, ErrEnded
	}
	if (st != StateReady && st != StateIdle) || p == nil {
		s.mu.Unlock()
		s.transMu.Unlock()
		return nil, fmt.Errorf("%w: the session is %s", ErrBusy, st)
	}
	s.turns++
	t := &turn{n: s.turns, done: make(chan struct{})}
	s.turn = t
	s.mu.Unlock()
	// The prompt is recorded before the agent sees it: one that cannot be
	// (the store's disk is full) is refused, not run unrecorded.
	if _, err := s.log.Append(context.Background(), EventPrompt, map[string]any{"turn": t.n, "text": text, "by": by}); err != nil {
		s.mu.Lock()
		s.turns--
		s.turn = nil
		s.mu.Unlock()
		s.transMu.Unlock()
		if errors.Is(err, ErrLogClosed) {
			return nil, ErrEnded
		}
		return nil, fmt.Errorf("record the prompt: %w", err)
	}
	s.emitState(StatePrompting, "", map[string]any{"turn": t.n})
	s.wg.Add(1)
	s.transMu.Unlock()

	s.tr.beginTurn()
	go s.runTurn(p, acpID, t, text)
	return t, nil
}

// runTurn runs a turn to its end. Most of its events are queued, not
// waited for one by one; the turn's end waits for all of them (the idle
// state's commit, or syncEvents) before anyone hears of it.
func (s *session) runTurn(p *agentProc, acpID string, t *turn, text string) {
	defer s.wg.Done()
	// The transcript's user message is written while the agent works, not
	// before the prompt is answered; the turn's own messages after it.
	userSaved := make(chan struct{})
	go func() {
		defer close(userSaved)
		s.saveMessages([]store.Message{{Role: store.RoleUser, Content: text}})
	}()
	stop, err := p.conn.Prompt(s.quitCtx, acpID, []acp.ContentBlock{acp.TextBlock(text)})
	overBudget := t.budget.Load()
	if overBudget != nil && err == nil {
		// The broker cancelled the turn: the proxy refused a call for a
		// spent budget. That is why it ended.
		stop, t.err = StopBudgetExceeded, *overBudget
	}
	msgs, reply := s.tr.endTurn()
	<-userSaved
	s.saveMessages(msgs)
	t.reply, t.stop = reply, stop
	crashed := err != nil && (p.conn.Err() != nil || errors.Is(err, acp.ErrPeerClosed)) && !p.stopping.Load()
	if crashed {
		// The agent went away mid-turn: say why, with its stderr; the
		// watcher then restarts it or fails the session.
		select {
		case <-p.proc.Done():
		case <-time.After(5 * time.Second):
		}
		t.err, t.isFailed = "agent exited mid-turn: "+exitCause(p, err.Error()), true
		s.appendEvent(EventTurnFailed, map[string]any{"turn": t.n, "error": t.err, "reason": FailAgentExited,
			"stderr_tail": p.proc.StderrTail()})
		s.mu.Lock()
		s.turn, s.lastError = nil, t.err
		s.mu.Unlock()
		close(t.done)
		return
	}
	modelFailure := ""
	if err == nil && (stop != acp.StopCancelled || overBudget != nil) {
		s.awaitCalls()
		// A turn the person cancelled ended because they said so; any
		// other whose every model call failed did nothing, whatever the
		// agent says.
		modelFailure = t.modelFailure()
	}
	switch {
	case err != nil:
		t.err, t.isFailed = err.Error(), true
		s.queueEvent(EventTurnFailed, map[string]any{"turn": t.n, "error": t.err, "reason": FailAgentError, "stop_reason": stop})
	case modelFailure != "":
		if t.err == "" { // else a spent budget, which says why already
			t.err = modelFailure
		}
		t.isFailed = true
		s.queueEvent(EventTurnFailed, map[string]any{"turn": t.n, "error": t.err, "reason": FailModelCalls, "stop_reason": stop,
			"model_calls": t.calls.Load(), "failed_model_calls": t.failed.Load()})
	default:
		end := map[string]any{"turn": t.n, "stop_reason": stop}
		if t.err != "" {
			end["error"] = t.err
		}
		if n := p.conn.Stats().SkippedLines; n > 0 {
			// Lines on the agent's stdout that were not JSON-RPC (logs,
			// banners, garbage): dropped, and counted here.
			end["skipped_lines"] = n
		}
		if n := t.calls.Load(); n > 0 {
			end["model_calls"], end["failed_model_calls"] = n, t.failed.Load()
		}
		s.queueEvent(EventTurnEnd, end)
	}
	s.mu.Lock()
	firstPromptMiss := s.mcpStatus == MCPFirstPrompt && !s.mcpSeen
	if firstPromptMiss {
		s.mcpStatus = MCPNotConnected
	}
	if err == nil {
		s.restarts = 0
	}
	if t.isFailed {
		s.lastError = t.err
	}
	tokenID := s.cfg.MCP.TokenID
	s.mu.Unlock()
	if firstPromptMiss {
		s.queueEvent(EventMCPNotConnected, map[string]any{"token_id": tokenID,
			"reason": "the agent did not list our MCP tools during its first prompt"})
	}
	s.transMu.Lock()
	s.mu.Lock()
	s.turn = nil
	idle := s.state == StatePrompting && !s.ending
	s.mu.Unlock()
	if idle {
		s.emitState(StateIdle, "turn ended", map[string]any{"turn": t.n, "stop_reason": stop})
	} else {
		s.syncEvents()
	}
	s.transMu.Unlock()
	close(t.done)
}

// awaitCalls waits until the model calls the proxy admitted are
// recorded, for at most callSettle: the agent may end its turn as soon as
// it has read an answer, a moment before the proxy records the call. A
// call still running after that (a side call the agent left behind) is
// not waited for.
func (s *session) awaitCalls() {
	if s.inflight.Load() <= 0 {
		return
	}
	timer := time.NewTimer(callSettle)
	defer timer.Stop()
	for s.inflight.Load() > 0 {
		select {
		case <-s.callDone:
		case <-timer.C:
			return
		}
	}
}

// callSettle bounds awaitCalls.
const callSettle = 5 * time.Second

// saveMessages appends transcript messages (in batches the store takes).
func (s *session) saveMessages(msgs []store.Message) {
	for i := range msgs {
		msgs[i].SessionID, msgs[i].ProjectID = s.id, s.project
		msgs[i].Content = truncateUTF8(msgs[i].Content, store.MaxTextLen)
	}
	for len(msgs) > 0 {
		n := min(len(msgs), store.MaxAppend)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := s.m.st.AppendMessages(ctx, msgs[:n]); err != nil {
			s.m.log.Warn("sessions: transcript messages not saved", "session", s.id, "count", n, "err", err)
		}
		cancel()
		msgs = msgs[n:]
	}
}

func (s *session) cancelTurn(ctx context.Context, by string) error {
	s.mu.Lock()
	t, p, acpID, st := s.turn, s.cur, s.acpID, s.state
	s.mu.Unlock()
	if st.Final() {
		return ErrEnded
	}
	if t == nil || p == nil {
		return ErrNoTurn
	}
	s.appendEvent(EventCancel, map[string]any{"turn": t.n, "by": by})
	if err := p.conn.Cancel(ctx, acpID); err != nil {
		return fmt.Errorf("cancel: %w", err)
	}
	return nil
}

// AskPermission implements acp.Asker: the request goes to the viewers as
// an event; the first valid answer (AnswerPermission) wins; the end of ctx
// (the ask timeout, a cancel) rejects it.
func (s *session) AskPermission(ctx context.Context, req acp.PermissionRequest) (string, error) {
	w := &permWait{id: newRequestID(), options: req.Request.Options, toolCall: req.ToolCall,
		askedAt: time.Now().UTC(), ch: make(chan permAnswer, 1)}
	tcID := req.Request.ToolCall.ToolCallID
	s.mu.Lock()
	s.pending[w.id] = w
	s.asked[tcID] = askRecord{rid: w.id}
	s.mu.Unlock()
	ev := map[string]any{"request_id": w.id, "tool_call": req.ToolCall, "options": req.Request.Options,
		"project_tool": req.ProjectTool}
	if dl, ok := ctx.Deadline(); ok {
		ev["expires_at"] = dl.UTC()
	}
	s.queueEvent(EventPermissionRequest, ev)
	select {
	case a := <-w.ch:
		s.mu.Lock()
		s.asked[tcID] = askRecord{rid: w.id, by: a.by}
		s.mu.Unlock()
		return a.option, nil
	case <-ctx.Done():
		s.mu.Lock()
		delete(s.pending, w.id)
		s.mu.Unlock()
		return "", ctx.Err()
	}
}

var _ acp.Asker = (*session)(nil)

func (s *session) answer(rid, optionID, by string) error {
	s.mu.Lock()
	w, ok := s.pending[rid]
	if !ok {
		s.mu.Unlock()
		return ErrNoSuchPermission
	}
	if !slices.ContainsFunc(w.options, func(o acp.PermissionOption) bool { return o.OptionID == optionID }) {
		s.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrInvalidOption, optionID)
	}
	delete(s.pending, rid)
	s.mu.Unlock()
	w.ch <- permAnswer{option: optionID, by: by}
	return nil
}

// onPermission records every decision, asked or by policy.
func (s *session) onPermission(d acp.PermissionDecision) {
	s.mu.Lock()
	rec, ok := s.asked[d.ToolCall.ToolCallID]
	delete(s.asked, d.ToolCall.ToolCallID)
	s.mu.Unlock()
	ev := map[string]any{"tool_call_id": d.ToolCall.ToolCallID, "title": d.ToolCall.Title,
		"outcome": d.Outcome.Outcome, "option_id": d.Outcome.OptionID, "kind": d.Kind, "reason": d.Reason}
	if ok {
		ev["request_id"] = rec.rid
		if rec.by != "" {
			ev["answered_by"] = rec.by
		}
	}
	s.queueEvent(EventPermissionAnswer, ev)
}

func (s *session) enqueue(typ string, data any) { s.enqueueUsage(typ, data, nil) }

// enqueueUsage queues an event and, for a "usage" event, its store record.
func (s *session) enqueueUsage(typ string, data any, usage *store.UsageRecord) {
	select {
	case s.obsQ <- obsEvent{typ, data, usage}:
	default:
		s.dropped.Add(1)
		s.m.log.Warn("sessions: observer queue full; event dropped", "session", s.id, "type", typ)
	}
}

func (s *session) startObserverQueue() {
	s.mu.Lock()
	s.obsStarted = true
	s.mu.Unlock()
	go s.drainObserver()
}

// drainObserver turns MCP and proxy notifications into events until the
// session shuts down, then records what is queued and returns.
func (s *session) drainObserver() {
	defer close(s.obsDone)
	for {
		select {
		case e := <-s.obsQ:
			s.observed(e)
		case <-s.quitCtx.Done():
			for {
				select {
				case e := <-s.obsQ:
					s.observed(e)
				default:
					return
				}
			}
		}
	}
}

// observed records one queued notification: a usage record first, so
// that once its event is seen the totals include it.
func (s *session) observed(e obsEvent) {
	if e.usage != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.quitCtx), 10*time.Second)
		if err := s.m.st.AddUsage(ctx, *e.usage); err != nil {
			s.m.log.Warn("sessions: usage record not stored", "session", s.id, "err", err)
		}
		cancel()
	}
	s.queueEvent(e.typ, e.data)
}

// watch notices the end of an agent process we did not ask for: a crash,
// or a connection failure (the process is then killed). It waits for the
// turn to record its failure, then restarts the agent.
func (s *session) watch(p *agentProc) {
	defer s.wg.Done()
	select {
	case <-p.proc.Done():
	case <-p.conn.Done():
	}
	if p.stopping.Load() {
		return
	}
	// Not p.kill: that would mark the end as asked for.
	p.proc.Kill()
	_ = p.conn.Close()
	p.cancel()
	s.mu.Lock()
	t := s.turn
	s.mu.Unlock()
	if t != nil {
		<-t.done
	}
	why := exitCause(p, "agent exited")
	s.appendEvent(EventAgentExited, map[string]any{"error": why, "stderr_tail": p.proc.StderrTail(), "during_turn": t != nil})
	s.mu.Lock()
	if s.cur == p {
		s.cur = nil
	}
	s.lastError = why
	s.mu.Unlock()
	s.restart(why)
}

// exitCause says why an agent went away: the connection's own failure
// when that came first (a message over the line limit, updates the broker
// could not keep up with: the broker then kills the process, whose exit
// says only that it was killed), else how the process ended.
func exitCause(p *agentProc, fallback string) string {
	cerr := p.conn.Err()
	if cerr != nil && !errors.Is(cerr, acp.ErrPeerClosed) && !errors.Is(cerr, acp.ErrClosed) {
		return cerr.Error()
	}
	if xe := p.proc.ExitErr(); xe != nil {
		return xe.Error()
	}
	if cerr != nil {
		return cerr.Error()
	}
	return fallback
}

// restart relaunches a crashed agent with session/load, a bounded number
// of times with backoff; else the session fails.
func (s *session) restart(why string) {
	for {
		s.mu.Lock()
		s.restarts++
		n, acpID, loadable := s.restarts, s.acpID, s.loadable
		s.mu.Unlock()
		var reason string
		switch {
		case !loadable || acpID == "":
			reason = "agent exited (" + why + ") and cannot load its session"
		case s.m.opts.RestartAttempts == 0:
			reason = "agent exited (" + why + "); restarts are disabled"
		case n > s.m.opts.RestartAttempts:
			reason = fmt.Sprintf("agent exited (%s); %d restarts failed", why, n-1)
		}
		if reason != "" {
			s.shutdown(context.Background(), StateFailed, reason, true, false)
			return
		}
		if !s.transition(func(st State) bool { return !st.Final() && st != StateStopping }, StateStarting,
			"agent exited; relaunching with session/load", map[string]any{"attempt": n, "error": why}) {
			return
		}
		backoff := s.m.opts.RestartBackoff << (n - 1)
		select {
		case <-time.After(backoff):
		case <-s.quitCtx.Done():
			return
		}
		err := s.start(acpID, n)
		if err == nil {
			return
		}
		if s.quitCtx.Err() != nil {
			return
		}
		why = err.Error()
		s.appendEvent(EventWarning, map[string]any{"warning": "restart failed", "attempt": n, "error": why})
	}
}

// shutdown ends the session: the running turn is cancelled (given
// CancelGrace), the agent stopped in stages, the goroutines waited for,
// the tokens revoked when asked, the final state recorded and the log
// closed. The first caller does it; later ones wait for it. waitAll is
// false when called from a goroutine shutdown would wait for (watch).
func (s *session) shutdown(ctx context.Context, final State, reason string, revoke, waitAll bool) {
	s.transMu.Lock()
	if s.ending {
		s.transMu.Unlock()
		if waitAll {
			// A goroutine of the session (waitAll false) must not wait:
			// the shutdown under way waits for it.
			<-s.ended
		}
		return
	}
	s.ending = true
	if final == StateStopped {
		s.emitState(StateStopping, reason, nil)
	}
	s.transMu.Unlock()
	defer close(s.ended)

	s.mu.Lock()
	p, t, acpID := s.cur, s.turn, s.acpID
	s.mu.Unlock()
	if p != nil && t != nil {
		s.appendEvent(EventCancel, map[string]any{"turn": t.n, "by": "shutdown"})
		cctx, cancel := context.WithTimeout(ctx, s.m.opts.CancelGrace)
		_ = p.conn.Cancel(cctx, acpID)
		select {
		case <-t.done:
		case <-cctx.Done():
		}
		cancel()
	}
	s.quit(errors.New(reason))
	if p != nil {
		p.teardown(ctx)
	}
	if waitAll {
		s.wg.Wait()
	}
	s.mu.Lock()
	obs := s.obsStarted
	s.mu.Unlock()
	if obs {
		<-s.obsDone
	}
	if revoke {
		s.m.revoke(s)
	}
	extra := map[string]any{}
	if final == StateInterrupted {
		extra["resumable"] = !revoke && reason == reasonShutdown
	}
	if final == StateFailed {
		// The failure itself, not only its kind: it survives the session
		// (Info.LastError of an ended session comes from here).
		s.mu.Lock()
		if s.lastError != "" {
			extra["error"] = s.lastError
		}
		s.mu.Unlock()
	}
	s.emitState(final, reason, extra)
	if s.run {
		s.sessionEndedRun(final, reason)
	}
	if s.log != nil {
		s.log.Close()
	}
	s.m.unregister(s)
}

// reasonShutdown marks an interruption by Close, which Recover resumes.
const reasonShutdown = "broker shutdown"

// Info describes a session (GET /v1/sessions/{id}).
type Info struct {
	ID           string `json:"id"`
	Project      string `json:"project"`
	Agent        string `json:"agent"`
	CatalogAgent string `json:"catalog_agent,omitempty"`
	Model        string `json:"model,omitempty"`
	// SideModels are the models this session's agent may also use besides
	// Model (the catalog's side models: titles, summaries, classifiers);
	// its inference token is good for these and Model only. Live sessions.
	SideModels       []catalog.SideModel `json:"side_models,omitempty"`
	State            State               `json:"state"`
	Title            string              `json:"title,omitempty"`
	Live             bool                `json:"live"`
	Cwd              string              `json:"cwd,omitempty"`
	PermissionPolicy string              `json:"permission_policy,omitempty"`
	Credential       string              `json:"credential,omitempty"`
	ACPSessionID     string              `json:"acp_session_id,omitempty"`
	MCP              *MCPInfo            `json:"mcp,omitempty"`
	Turn             int                 `json:"turn,omitempty"`
	Prompting        bool                `json:"prompting,omitempty"`
	Pending          []Pending           `json:"pending_permissions,omitempty"`
	Restarts         int                 `json:"restarts,omitempty"`
	LastError        string              `json:"last_error,omitempty"`
	DroppedEvents    int64               `json:"dropped_events,omitempty"`
	// Sandbox says how the agent is confined, or that it is not and why.
	Sandbox string `json:"sandbox,omitempty"`
	// Task is the task the session works on, if any.
	Task string `json:"task,omitempty"`
	// BudgetUSD is the session's budget in decimal dollars, if any.
	BudgetUSD string `json:"budget_usd,omitempty"`
	// Usage is what the session's model calls used and cost (in GET
	// /v1/sessions/{id} and the list).
	Usage        *Usage    `json:"usage,omitempty"`
	LastEventSeq int64     `json:"last_event_seq"`
	CreatedAt    time.Time `json:"created_at,omitzero"`
	UpdatedAt    time.Time `json:"updated_at,omitzero"`
	// LastActivityAt is when the session's last event was recorded (a
	// live session's), or its record last changed (an ended one's).
	LastActivityAt time.Time `json:"last_activity_at,omitzero"`
}

// MCPInfo is a session's MCP server configuration and readiness. The token
// itself is never shown, only its ID.
type MCPInfo struct {
	Name    string `json:"name"`
	URL     string `json:"url"`
	TokenID string `json:"token_id"`
	// Status: pending, connected, not_connected, first_prompt.
	Status string `json:"status"`
}

// Pending is a permission request waiting for a viewer's answer.
type Pending struct {
	RequestID string                 `json:"request_id"`
	ToolCall  acp.ToolCall           `json:"tool_call"`
	Options   []acp.PermissionOption `json:"options"`
	AskedAt   time.Time              `json:"asked_at"`
}

func (s *session) info() Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := Info{
		ID: s.id, Project: s.project, Agent: string(s.cfg.Profile), CatalogAgent: s.cfg.CatalogAgent,
		Model: s.cfg.Model, State: s.state, Title: s.title, Live: !s.state.Final(), Cwd: s.cfg.Cwd,
		PermissionPolicy: s.cfg.Policy, Credential: string(s.cfg.Credential.Kind), ACPSessionID: s.acpID,
		MCP:  &MCPInfo{Name: s.cfg.MCP.Name, URL: s.cfg.MCP.URL, TokenID: s.cfg.MCP.TokenID, Status: s.mcpStatus},
		Turn: s.turns, Prompting: s.turn != nil, Restarts: s.restarts, LastError: s.lastError,
		DroppedEvents: s.dropped.Load(), CreatedAt: s.createdAt, Sandbox: s.cfg.Sandbox,
		Task: s.cfg.Task, BudgetUSD: s.cfg.BudgetUSD,
	}
	if s.cfg.CatalogAgent != "" {
		if p, err := s.m.opts.Models.Policy(s.cfg.CatalogAgent); err == nil {
			for _, sm := range p.SideModels {
				if sm.ID != s.cfg.Model {
					in.SideModels = append(in.SideModels, sm)
				}
			}
		}
	}
	for _, w := range s.pending {
		in.Pending = append(in.Pending, Pending{RequestID: w.id, ToolCall: w.toolCall, Options: w.options, AskedAt: w.askedAt})
	}
	slices.SortFunc(in.Pending, func(a, b Pending) int { return a.AskedAt.Compare(b.AskedAt) })
	if s.log != nil {
		in.LastEventSeq = s.log.Committed()
		in.LastActivityAt = s.log.LastAt()
	}
	if in.LastActivityAt.IsZero() {
		in.LastActivityAt = s.createdAt
	}
	return in
}

func recordInfo(r store.SessionRecord) Info {
	return Info{ID: r.ID, Project: r.ProjectID, Agent: r.Agent, Model: r.Model, State: State(r.State),
		Title: r.Title, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, LastActivityAt: r.UpdatedAt}
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
