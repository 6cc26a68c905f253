package sessions

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentbroker/agentbroker/internal/server"
	"github.com/agentbroker/agentbroker/tokens"
)

// WatchSubprotocol is the WebSocket subprotocol of GET /v1/sessions/watch.
// As on the events endpoint, a browser offers the admin token as a second
// subprotocol "bearer.<token>".
const WatchSubprotocol = "agentbroker.sessions.v1"

// WatchFrame is what GET /v1/sessions/watch sends: the whole sessions list
// (as GET /v1/sessions answers it), at once and again after every change.
type WatchFrame struct {
	Type     string `json:"type"` // "sessions"
	Sessions []Info `json:"sessions"`
}

// watchSettle is how long a watcher lets changes gather before it reads
// the list again: a streaming agent commits events many times a second,
// and a list per commit would only be thrown away.
const watchSettle = 250 * time.Millisecond

// handleWatch serves GET /v1/sessions/watch: a WebSocket (admin token) on
// which the broker pushes the sessions list whenever any session's log
// commits an event (a state change, a turn, a model call's cost…), at
// most every watchSettle, and only when it differs from the last one
// sent. The socket closes with CloseTokenInvalid when the token stops
// passing, and when the broker's sessions stop.
func (m *Manager) handleWatch(w http.ResponseWriter, r *http.Request) {
	policy := tokens.Policy{Audience: tokens.AudienceAdmin, Scopes: []tokens.Scope{tokens.ScopeAdmin}, AcceptSubprotocol: true}
	raw, ref := tokens.RequestToken(r, policy)
	if ref == nil {
		_, ref = m.opts.Tokens.Authorize(r.Context(), raw, policy)
	}
	if ref != nil {
		ref.Write(w)
		return
	}
	up := websocket.Upgrader{
		Subprotocols:    []string{WatchSubprotocol},
		CheckOrigin:     func(r *http.Request) bool { return m.origins.Allows(r.Header.Get("Origin")) },
		ReadBufferSize:  1024,
		WriteBufferSize: 16384,
	}
	conn, err := up.Upgrade(w, r, nil) // answers the handshake error itself
	if err != nil {
		return
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	// The reader: pongs, and the watcher's leaving; it sends nothing.
	conn.SetReadLimit(1024)
	const pingEvery = 20 * time.Second
	readDeadline := func() { conn.SetReadDeadline(time.Now().Add(3 * pingEvery)) }
	readDeadline()
	conn.SetPongHandler(func(string) error { readDeadline(); return nil })
	left := make(chan struct{})
	go func() {
		defer close(left)
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	defer func() { conn.Close(); <-left }()

	closeWith := func(code int, reason string) {
		conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
	}
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	recheck := time.NewTicker(time.Second)
	defer recheck.Stop()
	var last []byte
	for {
		changed := m.j.Changed()
		list, err := m.List(ctx, "")
		if err != nil {
			m.log.Warn("sessions: watch: list sessions", "err", err)
			closeWith(websocket.CloseInternalServerErr, "cannot list sessions")
			return
		}
		if list == nil {
			list = []Info{}
		}
		b, err := json.Marshal(WatchFrame{Type: "sessions", Sessions: list})
		if err != nil {
			closeWith(websocket.CloseInternalServerErr, "cannot encode sessions")
			return
		}
		if !bytes.Equal(b, last) {
			conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := conn.WriteMessage(websocket.TextMessage, b); err != nil {
				return
			}
			last = b
		}
	wait:
		for {
			select {
			case <-changed:
				select {
				case <-time.After(watchSettle):
				case <-m.ctx.Done():
				}
				break wait
			case <-ping.C:
				if conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(10*time.Second)) != nil {
					return
				}
			case <-recheck.C:
				if _, ref := m.opts.Tokens.Authorize(ctx, raw, policy); ref != nil {
					closeWith(CloseTokenInvalid, ref.Description)
					return
				}
			case <-m.ctx.Done():
				closeWith(websocket.CloseGoingAway, "the broker is stopping")
				return
			case <-left:
				return
			}
		}
	}
}

// RenderRequest is the body of POST /v1/sessions/{id}/render: Markdown
// texts of the session (its agent's replies) to render for the console.
type RenderRequest struct {
	Markdown []string `json:"markdown"`
}

// MaxRenderTexts bounds the texts of one render request.
const MaxRenderTexts = 64

// handleRender answers {"html": [...]}: each text as sanitized HTML
// (internal/markdown), for a viewer or an admin of the session. It is
// pure: the session need not be live.
func (m *Manager) handleRender(w http.ResponseWriter, r *http.Request, _ tokens.Claims) {
	var req RenderRequest
	if !decode(w, r, &req) {
		return
	}
	if len(req.Markdown) > MaxRenderTexts {
		server.WriteError(w, http.StatusBadRequest, "invalid_request", "at most 64 texts per request")
		return
	}
	out := make([]string, len(req.Markdown))
	for i, s := range req.Markdown {
		out[i] = m.md.Render(s)
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"html": out})
}
