package sessions

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/agentbroker/agentbroker/store"
	"github.com/agentbroker/agentbroker/tokens"
)

// Any node of a fleet answers anything: a command for a session another
// node owns (prompt, cancel, a permission answer, stop) is forwarded to
// the owner's API (store.Nodes says where it is), authenticated by a
// one-minute token this node mints for it (the fleet shares one key ring):
// a viewer token of the session with session:control, or an admin token
// for a stop. A forwarded request is not forwarded again. Viewers on any
// node follow the session's log from the store, woken by the store's event
// notices (followLog).

// forwardedHeader marks a request one node forwarded to another.
const forwardedHeader = "Agentbroker-Forwarded-By"

// forwardTokenLifetime bounds the tokens minted for forwarding.
const forwardTokenLifetime = time.Minute

type forwardedKey struct{}

// markForwarded notes in ctx that r was forwarded by another node.
func markForwarded(r *http.Request) context.Context {
	if r.Header.Get(forwardedHeader) != "" {
		return context.WithValue(r.Context(), forwardedKey{}, true)
	}
	return r.Context()
}

// ownedElsewhere is ErrOwnedElsewhere naming the owner.
type ownedElsewhere struct{ node string }

func (e *ownedElsewhere) Error() string {
	return fmt.Sprintf("%v (node %s)", ErrOwnedElsewhere, e.node)
}

func (e *ownedElsewhere) Is(target error) bool { return target == ErrOwnedElsewhere }

var forwardClient = &http.Client{}

// errorKinds map an owner's error answers back to this package's errors.
var errorKinds = map[string]error{
	"busy": ErrBusy, "no_turn": ErrNoTurn, "session_ended": ErrEnded, "not_found": store.ErrNotFound,
	"invalid_request": ErrInvalidRequest, "invalid_option": ErrInvalidOption, "owned_elsewhere": ErrOwnedElsewhere,
	"unavailable": ErrClosed, "insufficient_storage": store.ErrNoSpace,
}

// forward sends a command for session id to its owner and decodes the
// answer into out. It returns err (the session is owned elsewhere) when it
// cannot forward: no node registry, or the request was forwarded already.
func (m *Manager) forward(ctx context.Context, err error, id, method, path string, admin bool, body, out any) error {
	var oe *ownedElsewhere
	if !errors.As(err, &oe) || m.opts.Nodes == nil || ctx.Value(forwardedKey{}) != nil {
		return err
	}
	base, uerr := m.opts.Nodes.NodeURL(ctx, oe.node)
	if uerr != nil {
		return fmt.Errorf("%w: its address: %w", err, uerr)
	}
	rec, rerr := m.record(ctx, id)
	if rerr != nil {
		return rerr
	}
	g := tokens.Grant{Subject: "node " + m.opts.Node, Project: rec.ProjectID, Session: id, Audience: tokens.AudienceViewer,
		Scopes: []tokens.Scope{tokens.ScopeSessionView, tokens.ScopeSessionControl}, Lifetime: forwardTokenLifetime}
	if admin {
		g = tokens.Grant{Subject: "node " + m.opts.Node, Audience: tokens.AudienceAdmin, Scopes: []tokens.Scope{tokens.ScopeAdmin},
			Lifetime: forwardTokenLifetime}
	}
	raw, _, merr := m.opts.Tokens.Mint(ctx, g)
	if merr != nil {
		return fmt.Errorf("forward to node %s: %w", oe.node, merr)
	}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, rqerr := http.NewRequestWithContext(ctx, method, base+path, rd)
	if rqerr != nil {
		return fmt.Errorf("forward to node %s: %w", oe.node, rqerr)
	}
	req.Header.Set("Authorization", "Bearer "+raw)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(forwardedHeader, m.opts.Node)
	resp, derr := forwardClient.Do(req)
	if derr != nil {
		return fmt.Errorf("forward to node %s: %w", oe.node, derr)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode >= 400 {
		var e struct {
			Kind string `json:"error"`
			Desc string `json:"error_description"`
		}
		json.Unmarshal(data, &e)
		if target, ok := errorKinds[e.Kind]; ok {
			return fmt.Errorf("%w: %s (at node %s)", target, e.Desc, oe.node)
		}
		return fmt.Errorf("forward to node %s: %s %s", oe.node, resp.Status, e.Desc)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("forward to node %s: answer: %w", oe.node, err)
		}
	}
	return nil
}

func sessionPath(id, tail string) string { return "/v1/sessions/" + url.PathEscape(id) + tail }

// followers are the logs followed from the store on this node, by
// session: one per session, however many viewers read it.
type followers struct {
	mu   sync.Mutex
	logs map[string]*follower
}

type follower struct {
	log  *Log
	wake chan struct{}
}

// eventsCommitted wakes the follower of a session (a store notice).
func (m *Manager) eventsCommitted(id string) {
	m.fol.mu.Lock()
	f := m.fol.logs[id]
	m.fol.mu.Unlock()
	if f != nil {
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
}

// followPoll is how often a followed log is read without a notice.
const followPoll = time.Second

// followLog is the log of a session live on another node: it publishes
// what the store holds as it grows (woken by the store's notices, or every
// followPoll), and ends once the session has.
func (m *Manager) followLog(ctx context.Context, id string) (*Log, error) {
	m.fol.mu.Lock()
	defer m.fol.mu.Unlock()
	if f := m.fol.logs[id]; f != nil {
		return f.log, nil
	}
	l, err := m.j.OpenLog(ctx, id)
	if err != nil {
		return nil, err
	}
	f := &follower{log: l, wake: make(chan struct{}, 1)}
	if m.fol.logs == nil {
		m.fol.logs = map[string]*follower{}
	}
	m.fol.logs[id] = f
	m.bg.Add(1)
	go m.follow(id, f)
	return l, nil
}

func (m *Manager) follow(id string, f *follower) {
	defer m.bg.Done()
	defer func() {
		m.fol.mu.Lock()
		delete(m.fol.logs, id)
		m.fol.mu.Unlock()
		f.log.Close()
	}()
	t := time.NewTicker(followPoll)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-f.wake:
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(m.ctx, 10*time.Second)
		rec, err := m.st.SessionByID(ctx, id)
		ended := err == nil && State(rec.State).Final()
		last, lerr := m.st.LastEventSeq(ctx, id)
		cancel()
		if lerr == nil {
			f.log.advance(last)
		}
		if ended && lerr == nil {
			return
		}
	}
}
