package acp

import (
	"os"
	"path/filepath"
	"sync"
)

// maxTrackedToolCalls bounds the tool calls a session remembers (to
// describe permission requests that name only a tool call ID).
const maxTrackedToolCalls = 256

// sessionState is what the connection keeps about a session.
type sessionState struct {
	cwd      string // as given to the agent (absolute, clean)
	realCwd  string // cwd with symlinks resolved ("" if that failed)
	rootOnce sync.Once
	root     *os.Root
	rootErr  error

	configOptions []ConfigOption
	toolCalls     map[string]ToolCall
	toolOrder     []string
	cancelled     bool // session/cancel sent during the current turn
	pending       map[*pendingPermission]struct{}
}

func newSessionState(cwd string) *sessionState {
	s := &sessionState{cwd: filepath.Clean(cwd), toolCalls: map[string]ToolCall{},
		pending: map[*pendingPermission]struct{}{}}
	if real, err := filepath.EvalSymlinks(s.cwd); err == nil {
		s.realCwd = real
	}
	return s
}

func (s *sessionState) openRoot() (*os.Root, error) {
	s.rootOnce.Do(func() { s.root, s.rootErr = os.OpenRoot(s.cwd) })
	return s.root, s.rootErr
}

func (s *sessionState) close() {
	s.rootOnce.Do(func() {}) // no root opened after close
	if s.root != nil {
		s.root.Close()
	}
}

// session returns the state of a session this connection knows.
func (c *Conn) session(id string) (*sessionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.sessions[id]
	return s, ok
}

// addSession records a session created or loaded with cwd.
func (c *Conn) addSession(id, cwd string, opts []ConfigOption) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.sessions[id]
	if !ok || s.cwd != filepath.Clean(cwd) {
		if ok {
			s.close()
		}
		s = newSessionState(cwd)
		c.sessions[id] = s
	}
	if opts != nil {
		s.configOptions = opts
	}
}

// track records, on the read goroutine and so in the agent's order, the
// tool calls and config options a session's updates report.
func (c *Conn) track(n SessionNotification) {
	u := n.Update
	if u.ToolCall == nil && u.ConfigOptions == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.sessions[n.SessionID]
	if !ok {
		return
	}
	if u.ConfigOptions != nil {
		s.configOptions = u.ConfigOptions.ConfigOptions
	}
	if tc := u.ToolCall; tc != nil && tc.ToolCallID != "" {
		old, seen := s.toolCalls[tc.ToolCallID]
		if !seen {
			s.toolOrder = append(s.toolOrder, tc.ToolCallID)
			if len(s.toolOrder) > maxTrackedToolCalls {
				delete(s.toolCalls, s.toolOrder[0])
				s.toolOrder = s.toolOrder[1:]
			}
		}
		old.ToolCallID = tc.ToolCallID
		old.merge(*tc)
		s.toolCalls[tc.ToolCallID] = old
	}
}

// registerPermission adds a pending permission request to its session and
// returns the tool call as known (the session's view merged with the
// request's) and whether the session's turn was already cancelled.
func (c *Conn) registerPermission(p *pendingPermission) (ToolCall, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	tc := ToolCall{ToolCallID: p.req.ToolCall.ToolCallID}
	s, ok := c.sessions[p.req.SessionID]
	if !ok {
		tc.merge(p.req.ToolCall)
		return tc, false
	}
	if known, ok := s.toolCalls[tc.ToolCallID]; ok {
		tc = known
		p.fromUpdates = known
	}
	tc.merge(p.req.ToolCall)
	s.pending[p] = struct{}{}
	return tc, s.cancelled
}

func (c *Conn) unregisterPermission(p *pendingPermission) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.sessions[p.req.SessionID]; ok {
		delete(s.pending, p)
	}
}

// cancelPermissions marks the session's turn cancelled and answers its
// pending permission requests "cancelled".
func (c *Conn) cancelPermissions(sessionID string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.sessions[sessionID]
	if !ok {
		return 0
	}
	s.cancelled = true
	n := 0
	for p := range s.pending {
		select {
		case <-p.cancelled:
		default:
			close(p.cancelled)
			n++
		}
	}
	return n
}

// beginTurn clears the cancelled mark at the start of a prompt turn.
func (c *Conn) beginTurn(sessionID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.sessions[sessionID]; ok {
		s.cancelled = false
	}
}

// ConfigOptions returns a session's config options as last reported by
// the agent (session/new or session/load, config_option_update,
// session/set_config_option).
func (c *Conn) ConfigOptions(sessionID string) []ConfigOption {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.sessions[sessionID]; ok {
		return append([]ConfigOption(nil), s.configOptions...)
	}
	return nil
}
