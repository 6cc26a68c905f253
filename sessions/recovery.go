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
// The store has no query for sessions by state across projects, so
// Recover lists every project's newest store.MaxListLimit sessions.
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
	projects, err := m.st.ListProjects(ctx)
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
	for _, p := range projects {
		recs, err := m.st.ListSessions(ctx, p.ID, store.MaxListLimit)
		if err != nil {
			return finish, fmt.Errorf("recover: %w", err)
		}
		for _, r := range recs {
			from := State(r.State)
			if from.Final() && from != StateInterrupted {
				continue
			}
			if m.liveSession(r.ID) != nil {
				continue
			}
			sc, err := m.scan(ctx, r.ID)
			if err != nil {
				return finish, fmt.Errorf("recover %s: %w", r.ID, err)
			}
			// A state change is its event, then the record: a broker killed
			// between the two left the record behind. The log is the truth.
			if sc.state != "" && sc.state != from {
				m.log.Warn("sessions: record and log disagree; the log wins", "session", r.ID, "record", from, "log", sc.state)
				from, r.State = sc.state, string(sc.state)
				if from.Final() && from != StateInterrupted {
					if err := m.st.PutSession(ctx, r); err != nil {
						return finish, fmt.Errorf("recover %s: %w", r.ID, err)
					}
					continue
				}
			}
			if from == StateInterrupted && !sc.resumable {
				continue
			}
			res := Recovered{ID: r.ID, Project: r.ProjectID, From: from}
			s, relaunch, err := m.prepareRecovery(ctx, r, sc)
			if relaunch {
				launch = append(launch, pending{s: s, acpID: sc.acpID, res: res})
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
	}
	if err := m.failLeftRuns(ctx); err != nil {
		return finish, err
	}
	return finish, nil
}

// prepareRecovery brings one session back from the store: ended when it
// cannot be resumed, else live in state starting with new tokens, for
// relaunch (relaunch true).
func (m *Manager) prepareRecovery(ctx context.Context, r store.SessionRecord, sc scanned) (_ *session, relaunch bool, _ error) {
	var cfg sessionConfig
	if sc.cfg != nil {
		cfg = *sc.cfg
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
	s.acpID, s.turns = sc.acpID, sc.turns
	var err error
	if s.log, err = m.j.OpenLog(ctx, r.ID); err != nil {
		return nil, false, err
	}
	bg := context.WithoutCancel(ctx)
	if !m.register(s) {
		s.log.Close()
		return nil, false, ErrClosed
	}
	s.startObserverQueue()
	// An agent that ignores end of input outlives a broker killed with
	// SIGKILL: it goes before the session is resumed or ended, or the
	// session would have two agents.
	if killed, err := supervisor.KillStale(sc.agent); err != nil {
		m.log.Warn("sessions: stale agent", "session", r.ID, "pid", sc.agent.PID, "err", err)
	} else if killed {
		m.log.Warn("sessions: an agent of the previous broker was still running: stopped", "session", r.ID, "pid", sc.agent.PID)
		s.appendEvent(EventWarning, map[string]any{"warning": "an agent of the previous broker was still running: stopped", "pid": sc.agent.PID})
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
	case sc.cfg == nil:
		return giveUp("no configuration recorded")
	case cfg.Run:
		return giveUp("a task run is not resumed: its run has failed")
	case !configured:
		return giveUp(fmt.Sprintf("agent %q is not configured on this broker", cfg.Profile))
	case cred.Kind == profile.KindAPIKey || cred.Kind == profile.KindOAuthToken:
		return giveUp("its " + string(cred.Kind) + " credential is not kept across broker restarts")
	case sc.acpID == "":
		return giveUp("the agent never opened an ACP session")
	case sc.loadable != nil && !*sc.loadable:
		return giveUp("the agent cannot load sessions")
	}
	if s.state == StatePrompting {
		s.appendEvent(EventTurnFailed, map[string]any{"turn": sc.turns, "error": "the broker restarted during the turn", "reason": FailBrokerRestarted})
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

// scanned is what a session's stored events say about it.
type scanned struct {
	cfg       *sessionConfig
	acpID     string
	loadable  *bool
	turns     int
	resumable bool // the last state event was an interruption by Close
	mcpStatus string
	lastError string
	lastSeq   int64
	agent     supervisor.Identity // the last agent started
	state     State               // the last state event's
}

// scan reads a session's events (all of them: the store has no column for
// the configuration, see doc.go).
func (m *Manager) scan(ctx context.Context, id string) (scanned, error) {
	var sc scanned
	after := int64(0)
	for {
		evs, err := m.st.Events(ctx, id, after, store.MaxEventLimit)
		if err != nil {
			return sc, err
		}
		for _, e := range evs {
			sc.apply(e)
		}
		if len(evs) < store.MaxEventLimit {
			return sc, nil
		}
		after = evs[len(evs)-1].Seq
	}
}

func (sc *scanned) apply(e store.Event) {
	sc.lastSeq = e.Seq
	switch e.Type {
	case EventConfig:
		var c sessionConfig
		if json.Unmarshal(e.Data, &c) == nil {
			sc.cfg = &c
		}
	case EventACPSession:
		var v struct {
			ID          string `json:"acp_session_id"`
			LoadSession *bool  `json:"load_session"`
		}
		if json.Unmarshal(e.Data, &v) == nil {
			sc.acpID, sc.loadable = v.ID, v.LoadSession
		}
	case EventPrompt:
		var v struct {
			Turn int `json:"turn"`
		}
		if json.Unmarshal(e.Data, &v) == nil && v.Turn > sc.turns {
			sc.turns = v.Turn
		}
	case EventState:
		var v struct {
			State     State  `json:"state"`
			Resumable bool   `json:"resumable"`
			Error     string `json:"error"`
		}
		if json.Unmarshal(e.Data, &v) == nil {
			sc.resumable = v.State == StateInterrupted && v.Resumable
			sc.state = v.State
			if v.Error != "" {
				sc.lastError = v.Error
			}
		}
	case EventMCPConnected:
		sc.mcpStatus = MCPConnected
	case EventMCPNotConnected:
		sc.mcpStatus = MCPNotConnected
	case EventAgentStarted:
		sc.mcpStatus = MCPPending
		var v struct {
			Identity supervisor.Identity `json:"identity"`
		}
		if json.Unmarshal(e.Data, &v) == nil {
			sc.agent = v.Identity
		}
	case EventAgentExited, EventTurnFailed:
		var v struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(e.Data, &v) == nil {
			sc.lastError = v.Error
		}
	}
}

// fill completes the Info of a session that is not live.
func (sc scanned) fill(in *Info) {
	in.ACPSessionID, in.Turn, in.LastError, in.LastEventSeq = sc.acpID, sc.turns, sc.lastError, sc.lastSeq
	if c := sc.cfg; c != nil {
		in.CatalogAgent, in.Cwd, in.PermissionPolicy, in.Credential = c.CatalogAgent, c.Cwd, c.Policy, string(c.Credential.Kind)
		in.Sandbox, in.Task, in.BudgetUSD = c.Sandbox, c.Task, c.BudgetUSD
		in.MCP = &MCPInfo{Name: c.MCP.Name, URL: c.MCP.URL, TokenID: c.MCP.TokenID, Status: sc.mcpStatus}
	}
}
