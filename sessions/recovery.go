package sessions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agentbroker/agentbroker/acp/profile"
	"github.com/agentbroker/agentbroker/acp/supervisor"
	"github.com/agentbroker/agentbroker/catalog"
	"github.com/agentbroker/agentbroker/store"
)

// Recovered is what Recover did with one session.
type Recovered struct {
	ID      string `json:"id"`
	Project string `json:"project"`
	// From is the state the store had; State the state now.
	From  State  `json:"from"`
	State State  `json:"state"`
	Error string `json:"error,omitempty"`
}

// Recover runs once at start: it finds the sessions a previous broker left
// live (any state but stopped, failed and interrupted) or interrupted at
// its shutdown (Close), and relaunches their agents with session/load
// under new tokens (the old ones are revoked). A session that cannot be
// resumed — its agent cannot load sessions, its credential was a secret
// the broker does not keep (api-key, oauth-token), it has no ACP session
// yet, or the relaunch fails — becomes interrupted for good (resumable
// false) and its tokens are revoked. A session left "stopping" is
// stopped. Events already in the store are kept: each log continues after
// its last event.
//
// Recover is BeginRecovery and then its finish. A broker serving its own
// MCP endpoint must split them (see BeginRecovery).
//
// The sessions are found by state (store.SessionsByState), each from its
// record and the events written after it (see summary).
func (m *Manager) Recover(ctx context.Context) ([]Recovered, error) {
	finish, err := m.BeginRecovery(ctx)
	if finish == nil {
		return nil, err
	}
	out, ferr := finish()
	return out, errors.Join(err, ferr)
}

// BeginRecovery is the part of Recover that needs only the store: every
// session to resume is live again, in state starting (its API answers
// 409 busy until its agent is back), and every session that cannot be
// resumed is ended. finish relaunches the agents, one after the other,
// and reports on every session. The relaunched agents connect back to
// the MCP endpoint during session/load and readiness waits for that: call
// BeginRecovery before serving (no request sees a session in its stale
// stored state) and finish once the MCP endpoint is served (before, the
// start would hang for each session's start and ready timeouts). finish
// is nil only when nothing was begun; it must be called otherwise, even
// with an error (sessions would stay starting).
func (m *Manager) BeginRecovery(ctx context.Context) (finish func() ([]Recovered, error), err error) {
	if m.isClosed() {
		return nil, ErrClosed
	}
	// Every session a previous broker may have left live, and those
	// interrupted (by its Close, resumable; or for good, skipped below).
	recs, err := m.st.SessionsByState(ctx, string(StateStarting), string(StateReady), string(StatePrompting),
		string(StateIdle), string(StateStopping), string(StateInterrupted))
	if err != nil {
		return nil, fmt.Errorf("recover: %w", err)
	}
	type pending struct {
		s     *session
		acpID string
		res   Recovered
	}
	var (
		out    []Recovered
		launch []pending
	)
	report := func(res Recovered) {
		m.log.Info("sessions: recovered", "session", res.ID, "from", res.From, "state", res.State, "err", res.Error)
		out = append(out, res)
	}
	finish = func() ([]Recovered, error) {
		for _, p := range launch {
			if err := p.s.relaunch(ctx, p.acpID); err != nil {
				p.res.Error = err.Error()
			}
			p.res.State = p.s.info().State
			report(p.res)
		}
		return out, nil
	}
	for _, r := range recs {
		from := State(r.State)
		if m.liveSession(r.ID) != nil || m.isCreating(r.ID) {
			continue
		}
		var sc scanned
		if from == StateInterrupted && r.Config != nil && json.Unmarshal(r.Config, &sc) == nil && sc.State == StateInterrupted && !sc.Resumable {
			// Ended for good: its record, written after its last state
			// event, says so (no need to read its log).
			continue
		}
		// In a fleet, only the sessions no live broker owns; held as
		// "creating" until registered (or ended), so that the leases'
		// loop does not release what is being recovered.
		if ok, err := m.own(ctx, r.ID); err != nil {
			return finish, fmt.Errorf("recover %s: %w", r.ID, err)
		} else if !ok {
			continue
		}
		m.mu.Lock()
		m.creating[r.ID] = true
		m.mu.Unlock()
		defer func() {
			m.mu.Lock()
			delete(m.creating, r.ID)
			m.mu.Unlock()
		}()
		sc, err := m.summary(ctx, r)
		if err != nil {
			return finish, fmt.Errorf("recover %s: %w", r.ID, err)
		}
		// A state change is its event, then the record: a broker killed
		// between the two left the record behind. The log is the truth.
		if sc.State != "" && sc.State != from {
			m.log.Warn("sessions: record and log disagree; the log wins", "session", r.ID, "record", from, "log", sc.State)
			from, r.State = sc.State, string(sc.State)
			if from.Final() && from != StateInterrupted {
				r.Config = summaryJSON(sc)
				if err := m.st.PutSession(ctx, r); err != nil {
					return finish, fmt.Errorf("recover %s: %w", r.ID, err)
				}
				m.release(r.ID)
				continue
			}
		}
		if from == StateInterrupted && !sc.Resumable {
			m.release(r.ID)
			continue
		}
		res := Recovered{ID: r.ID, Project: r.ProjectID, From: from}
		s, relaunch, err := m.prepareRecovery(ctx, r, sc)
		if relaunch {
			launch = append(launch, pending{s: s, acpID: sc.ACPID, res: res})
			continue
		}
		if err != nil {
			res.Error = err.Error()
		}
		if s != nil {
			res.State = s.info().State
		}
		report(res)
	}
	if err := m.failLeftRuns(ctx); err != nil {
		return finish, err
	}
	return finish, nil
}

// isCreating reports a session Create has recorded but not registered.
func (m *Manager) isCreating(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.creating[id]
}

// prepareRecovery brings one session back from the store: ended when it
// cannot be resumed, else live in state starting with new tokens, for
// relaunch (relaunch true).
func (m *Manager) prepareRecovery(ctx context.Context, r store.SessionRecord, sc scanned) (_ *session, relaunch bool, _ error) {
	var cfg sessionConfig
	if sc.Cfg != nil {
		cfg = *sc.Cfg
	}
	// The agent reaches this broker's MCP endpoint, wherever the last one was.
	cfg.MCP.Name, cfg.MCP.URL = m.opts.MCPServerName, m.opts.MCPURL
	cred := profile.Credential{Kind: cfg.Credential.Kind, BaseURL: cfg.Credential.BaseURL}
	s := m.newSessionFrom(r.ID, r.ProjectID, r.Title, cred, cfg)
	if cfg.BudgetUSD != "" {
		s.budget, _ = catalog.ParseUSD(cfg.BudgetUSD) // written by check from a parsed amount
	}
	s.state, s.createdAt = State(r.State), r.CreatedAt
	s.run = cfg.Run
	s.acpID, s.turns = sc.ACPID, sc.Turns
	var err error
	if s.log, err = m.j.OpenLog(ctx, r.ID); err != nil {
		return nil, false, err
	}
	s.log.seed(sc)
	bg := context.WithoutCancel(ctx)
	if !m.register(s) {
		s.log.Close()
		return nil, false, ErrClosed
	}
	s.startObserverQueue()
	// An agent that ignores end of input outlives a broker killed with
	// SIGKILL: it goes before the session is resumed or ended, or the
	// session would have two agents.
	if killed, err := supervisor.KillStale(sc.Agent); err != nil {
		m.log.Warn("sessions: stale agent", "session", r.ID, "pid", sc.Agent.PID, "err", err)
	} else if killed {
		m.log.Warn("sessions: an agent of the previous broker was still running: stopped", "session", r.ID, "pid", sc.Agent.PID)
		s.appendEvent(EventWarning, map[string]any{"warning": "an agent of the previous broker was still running: stopped", "pid": sc.Agent.PID})
	}
	giveUp := func(why string) (*session, bool, error) {
		s.giveUp(bg, why)
		return s, false, errors.New(why)
	}
	_, configured := m.opts.Agents[cfg.Profile]
	switch {
	case s.state == StateStopping:
		s.shutdown(bg, StateStopped, "stop completed after a broker restart", true, true)
		return s, false, nil
	case sc.Cfg == nil:
		return giveUp("no configuration recorded")
	case cfg.Run:
		return giveUp("a task run is not resumed: its run has failed")
	case !configured:
		return giveUp(fmt.Sprintf("agent %q is not configured on this broker", cfg.Profile))
	case cred.Kind == profile.KindAPIKey || cred.Kind == profile.KindOAuthToken:
		return giveUp("its " + string(cred.Kind) + " credential is not kept across broker restarts")
	case sc.ACPID == "":
		return giveUp("the agent never opened an ACP session")
	case sc.Loadable != nil && !*sc.Loadable:
		return giveUp("the agent cannot load sessions")
	}
	if s.state == StatePrompting {
		s.appendEvent(EventTurnFailed, map[string]any{"turn": sc.Turns, "error": "the broker restarted during the turn", "reason": FailBrokerRestarted})
	}
	// The old tokens die; the agent gets new ones.
	m.revokeToken(bg, cfg.MCP.TokenID, cfg.MCP.ExpiresAt)
	if cfg.InferenceTokenID != "" {
		m.revokeToken(bg, cfg.InferenceTokenID, cfg.InferenceExpires)
	}
	if !s.transition(nil, StateStarting, "broker restarted; relaunching with session/load", nil) {
		return s, false, ErrEnded
	}
	if err := s.mintAgentTokens(ctx); err != nil {
		return giveUp(err.Error())
	}
	s.mu.Lock()
	s.cfg.Sandbox = m.opts.Confinement.Mode() // this broker's, which relaunches it
	s.mu.Unlock()
	s.appendEvent(EventConfig, s.configSnapshot())
	return s, true, nil
}

// relaunch starts a recovered session's agent with session/load; a
// failure ends the session (interrupted for good).
func (s *session) relaunch(ctx context.Context, acpID string) error {
	if err := s.start(acpID, 1); err != nil {
		s.mu.Lock()
		s.lastError = err.Error()
		s.mu.Unlock()
		s.giveUp(context.WithoutCancel(ctx), err.Error())
		return err
	}
	return nil
}

// giveUp ends a session Recover cannot resume.
func (s *session) giveUp(ctx context.Context, why string) {
	s.shutdown(ctx, StateInterrupted, "not resumed after a broker restart: "+why, true, true)
}

// revokeToken revokes one token by its ID (logged on failure: it then
// dies at its expiry).
func (m *Manager) revokeToken(ctx context.Context, jti string, exp time.Time) {
	if jti == "" {
		return
	}
	if err := m.opts.Tokens.Revoke(ctx, jti, exp); err != nil {
		m.log.Warn("sessions: revoke token", "jti", jti, "err", err)
	}
}

// scanned is what a session's events say about it, up to its event Seq.
// The session's log keeps it as events are appended, and each write of the
// session's record stores it (store.SessionRecord.Config), so that the
// record alone says how the session was configured and where it stood: a
// lookup reads only the events after Seq, none for a session whose record
// was written last (see summary).
type scanned struct {
	Seq       int64               `json:"seq"` // the last event applied
	Cfg       *sessionConfig      `json:"config,omitempty"`
	ACPID     string              `json:"acp_session_id,omitempty"`
	Loadable  *bool               `json:"load_session,omitempty"`
	Turns     int                 `json:"turns,omitempty"`
	Resumable bool                `json:"resumable,omitempty"` // the last state event was an interruption by Close
	MCPStatus string              `json:"mcp_status,omitempty"`
	LastError string              `json:"last_error,omitempty"`
	Agent     supervisor.Identity `json:"agent,omitzero"`  // the last agent started
	State     State               `json:"state,omitempty"` // the last state event's
}

// summary is what a session's record and the events after it say about
// the session: the record's stored summary (see scanned) brought up to the
// end of its log. A record without one (written by an older broker), or
// whose summary is ahead of the stored log (events it counted were not
// committed before a kill), is rebuilt from the whole log.
func (m *Manager) summary(ctx context.Context, r store.SessionRecord) (scanned, error) {
	var sc scanned
	if r.Config == nil || json.Unmarshal(r.Config, &sc) != nil || sc.Seq < 0 {
		return m.scanFrom(ctx, r.ID, scanned{})
	}
	last, err := m.st.LastEventSeq(ctx, r.ID)
	if err != nil {
		return sc, err
	}
	if last < sc.Seq {
		m.log.Warn("sessions: session record ahead of its log; reading the whole log", "session", r.ID, "record_seq", sc.Seq, "log_seq", last)
		return m.scanFrom(ctx, r.ID, scanned{})
	}
	if last == sc.Seq {
		return sc, nil
	}
	return m.scanFrom(ctx, r.ID, sc)
}

// scanFrom applies a session's events after sc.Seq to sc.
func (m *Manager) scanFrom(ctx context.Context, id string, sc scanned) (scanned, error) {
	for {
		evs, err := m.st.Events(ctx, id, sc.Seq, store.MaxEventLimit)
		if err != nil {
			return sc, err
		}
		for _, e := range evs {
			sc.apply(e)
		}
		if len(evs) < store.MaxEventLimit {
			return sc, nil
		}
	}
}

// summaryJSON is sc as a session record's Config.
func summaryJSON(sc scanned) []byte {
	b, err := json.Marshal(sc)
	if err != nil || len(b) > store.MaxConfigLen {
		return nil // the record keeps its last one; lookups read the log
	}
	return b
}

func (sc *scanned) apply(e store.Event) {
	sc.Seq = e.Seq
	switch e.Type {
	case EventConfig:
		var c sessionConfig
		if json.Unmarshal(e.Data, &c) == nil {
			sc.Cfg = &c
		}
	case EventACPSession:
		var v struct {
			ID          string `json:"acp_session_id"`
			LoadSession *bool  `json:"load_session"`
		}
		if json.Unmarshal(e.Data, &v) == nil {
			sc.ACPID, sc.Loadable = v.ID, v.LoadSession
		}
	case EventPrompt:
		var v struct {
			Turn int `json:"turn"`
		}
		if json.Unmarshal(e.Data, &v) == nil && v.Turn > sc.Turns {
			sc.Turns = v.Turn
		}
	case EventState:
		var v struct {
			State     State  `json:"state"`
			Resumable bool   `json:"resumable"`
			Error     string `json:"error"`
		}
		if json.Unmarshal(e.Data, &v) == nil {
			sc.Resumable = v.State == StateInterrupted && v.Resumable
			sc.State = v.State
			if v.Error != "" {
				sc.LastError = v.Error
			}
		}
	case EventMCPConnected:
		sc.MCPStatus = MCPConnected
	case EventMCPNotConnected:
		sc.MCPStatus = MCPNotConnected
	case EventAgentStarted:
		sc.MCPStatus = MCPPending
		var v struct {
			Identity supervisor.Identity `json:"identity"`
		}
		if json.Unmarshal(e.Data, &v) == nil {
			sc.Agent = v.Identity
		}
	case EventAgentExited, EventTurnFailed:
		var v struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(e.Data, &v) == nil {
			sc.LastError = v.Error
		}
	}
}

// fill completes the Info of a session that is not live.
func (sc scanned) fill(in *Info) {
	in.ACPSessionID, in.Turn, in.LastError, in.LastEventSeq = sc.ACPID, sc.Turns, sc.LastError, sc.Seq
	if c := sc.Cfg; c != nil {
		in.CatalogAgent, in.Cwd, in.PermissionPolicy, in.Credential = c.CatalogAgent, c.Cwd, c.Policy, string(c.Credential.Kind)
		in.Sandbox, in.Task, in.BudgetUSD = c.Sandbox, c.Task, c.BudgetUSD
		in.MCP = &MCPInfo{Name: c.MCP.Name, URL: c.MCP.URL, TokenID: c.MCP.TokenID, Status: sc.MCPStatus}
	}
}
