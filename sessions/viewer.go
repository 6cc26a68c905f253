package sessions

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentbroker/agentbroker/internal/server"
	"github.com/agentbroker/agentbroker/store"
	"github.com/agentbroker/agentbroker/tokens"
)

// Verifier checks a bearer token for an audience (tokens.Service does).
type Verifier interface {
	Verify(ctx context.Context, raw string, audience tokens.Audience) (tokens.Claims, error)
}

// LogSource finds the event log of a session a viewer asks for; an
// unknown session is store.ErrNotFound.
type LogSource interface {
	ViewLog(ctx context.Context, sessionID string) (*Log, error)
}

// ClientMessage is what a viewer may send: a prompt, a cancel, or an
// answer to a permission request.
type ClientMessage struct {
	Type      string `json:"type"` // prompt, cancel, permission
	Text      string `json:"text,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	OptionID  string `json:"option_id,omitempty"`
}

// Controller carries out viewers' messages. Each error goes back to that
// viewer as an error frame.
type Controller interface {
	Control(ctx context.Context, sessionID string, who tokens.Claims, msg ClientMessage) error
}

// Frame is what a viewer receives: an event (Seq > 0), or a notice about
// the connection itself (Seq 0: "error").
type Frame struct {
	Seq   int64           `json:"seq,omitempty"`
	Type  string          `json:"type"`
	Time  *time.Time      `json:"time,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
	Error string          `json:"error,omitempty"`
}

// Close codes (the 4000–4999 range is the application's).
const (
	// CloseSlowViewer: the viewer did not take frames fast enough; the
	// close reason is "resume after N", the last seq it was sent.
	CloseSlowViewer = 4008
	// CloseSessionEnded: the log is closed and the viewer has all of it.
	CloseSessionEnded = 4000
)

// Subprotocol is the WebSocket subprotocol the events endpoint speaks.
// Browsers, which cannot set an Authorization header on a WebSocket, offer
// the token as a second subprotocol "bearer.<token>".
const Subprotocol = "agentbroker.events.v1"

// ViewerOptions configure ViewerHandler. Zero values mean the defaults.
type ViewerOptions struct {
	Tokens Verifier
	Logs   LogSource
	// Control carries out prompts, cancels and permission answers. Nil:
	// viewers can only watch.
	Control Controller
	// AllowedOrigins lists the browser origins (scheme://host[:port]) that
	// may connect besides the broker's own host. Requests without an
	// Origin header (terminals, scripts) are allowed.
	AllowedOrigins []string
	// WriteTimeout: a viewer that does not take a frame in this time is
	// disconnected with CloseSlowViewer. Default 10s.
	WriteTimeout time.Duration
	// PingInterval between heartbeats; a viewer silent for three intervals
	// is gone. Default 20s.
	PingInterval time.Duration
	// Logger: nil is silent.
	Logger *slog.Logger
}

// ViewerHandler serves GET /v1/sessions/{id}/events?after=SEQ: a
// WebSocket that replays the session's events after SEQ, then follows
// them live.
func ViewerHandler(opts ViewerOptions) http.Handler {
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = 20 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	v := &viewers{opts: opts}
	v.up = websocket.Upgrader{
		Subprotocols:    []string{Subprotocol},
		CheckOrigin:     v.checkOrigin,
		ReadBufferSize:  4096,
		WriteBufferSize: 16384,
	}
	return v
}

type viewers struct {
	opts ViewerOptions
	up   websocket.Upgrader
}

func (v *viewers) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, o := range v.opts.AllowedOrigins {
		if strings.EqualFold(strings.TrimSuffix(o, "/"), origin) {
			return true
		}
	}
	return false
}

// bearer takes the token from Authorization or, for browsers, from the
// "bearer.<token>" subprotocol.
func bearer(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	for _, p := range websocket.Subprotocols(r) {
		if tok, ok := strings.CutPrefix(p, "bearer."); ok {
			return tok
		}
	}
	return ""
}

// authorize accepts a viewer token of this session with session:view, or
// an admin token.
func (v *viewers) authorize(r *http.Request, sessionID string) (tokens.Claims, int, string) {
	return authorizeSession(r, v.opts.Tokens, sessionID, tokens.ScopeSessionView)
}

// authorizeSession accepts a viewer token of this session with scope, or
// an admin token with the admin scope. It returns the claims, or the HTTP
// status and the reason of a refusal.
func authorizeSession(r *http.Request, ver Verifier, sessionID string, scope tokens.Scope) (tokens.Claims, int, string) {
	raw := bearer(r)
	if raw == "" {
		return tokens.Claims{}, http.StatusUnauthorized, "missing bearer token"
	}
	c, err := ver.Verify(r.Context(), raw, tokens.AudienceViewer)
	if errors.Is(err, tokens.ErrWrongAudience) {
		c, err = ver.Verify(r.Context(), raw, tokens.AudienceAdmin)
		if err == nil {
			if !c.HasScope(tokens.ScopeAdmin) {
				return c, http.StatusForbidden, "needs admin"
			}
			return c, 0, ""
		}
	}
	if err != nil {
		return c, http.StatusUnauthorized, "invalid token"
	}
	if c.Session != sessionID {
		return c, http.StatusForbidden, "token of another session"
	}
	if !c.HasScope(scope) {
		return c, http.StatusForbidden, "needs " + string(scope)
	}
	return c, 0, ""
}

func (v *viewers) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	after, err := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	if r.URL.Query().Get("after") == "" {
		after, err = 0, nil
	}
	if err != nil || after < 0 {
		server.WriteError(w, http.StatusBadRequest, "invalid_request", "after must be a sequence number ≥ 0")
		return
	}
	claims, code, why := v.authorize(r, id)
	if code != 0 {
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="agentbroker"`)
		}
		server.WriteError(w, code, "unauthorized", why)
		return
	}
	log, err := v.opts.Logs.ViewLog(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		server.WriteError(w, http.StatusNotFound, "not_found", "no such session")
		return
	}
	if err != nil {
		server.WriteError(w, http.StatusServiceUnavailable, "unavailable", "cannot open the session's events")
		return
	}
	conn, err := v.up.Upgrade(w, r, nil) // answers the handshake error itself
	if err != nil {
		return
	}
	v.serve(r.Context(), conn, log, claims, after)
}

// serve runs one viewer: a writer that pulls events and a reader for the
// viewer's messages and pongs. It returns when either ends.
func (v *viewers) serve(ctx context.Context, conn *websocket.Conn, log *Log, claims tokens.Claims, after int64) {
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancel(nil)
	l := v.opts.Logger.With("session", log.SessionID())
	conn.SetReadLimit(MaxClientMessage)

	var writeMu sync.Mutex // frames from the reader (errors) and the writer
	write := func(f Frame) error {
		writeMu.Lock()
		defer writeMu.Unlock()
		conn.SetWriteDeadline(time.Now().Add(v.opts.WriteTimeout))
		return conn.WriteJSON(f)
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { v.read(ctx, cancel, conn, log.SessionID(), claims, write) })

	closeWith := func(code int, reason string) {
		conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
		conn.Close()
	}
	ping := time.NewTicker(v.opts.PingInterval)
	defer ping.Stop()
	cursor := after
	for {
		evs, err := log.Read(ctx, cursor, 256)
		if err != nil {
			l.Warn("viewer: read events", "err", err)
			closeWith(websocket.CloseInternalServerErr, "cannot read events")
			return
		}
		for _, e := range evs {
			t := e.CreatedAt
			if err := write(Frame{Seq: e.Seq, Type: e.Type, Time: &t, Data: e.Data}); err != nil {
				if ctx.Err() == nil {
					l.Info("viewer too slow or gone; disconnected", "resume_after", cursor, "err", err)
					closeWith(CloseSlowViewer, fmt.Sprintf("resume after %d", cursor))
					cancel(err)
				}
				return
			}
			cursor = e.Seq
		}
		if len(evs) > 0 {
			continue
		}
		waitCtx, stop := context.WithCancel(ctx)
		waited := make(chan error, 1)
		go func() { waited <- log.Wait(waitCtx, cursor) }()
		select {
		case err = <-waited:
		case <-ping.C:
			stop()
			<-waited
			writeMu.Lock()
			perr := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(v.opts.WriteTimeout))
			writeMu.Unlock()
			if perr != nil {
				cancel(perr)
				conn.Close()
				return
			}
			continue
		}
		stop()
		switch {
		case errors.Is(err, ErrLogClosed):
			closeWith(CloseSessionEnded, fmt.Sprintf("session ended after %d", cursor))
			return
		case err != nil: // the reader ended: the viewer left
			conn.Close()
			return
		}
	}
}

// read handles pongs (via the read deadline) and viewers' messages.
func (v *viewers) read(ctx context.Context, cancel context.CancelCauseFunc, conn *websocket.Conn, sessionID string,
	claims tokens.Claims, write func(Frame) error) {
	deadline := func() { conn.SetReadDeadline(time.Now().Add(3 * v.opts.PingInterval)) }
	deadline()
	conn.SetPongHandler(func(string) error { deadline(); return nil })
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			cancel(fmt.Errorf("viewer left: %w", err))
			return
		}
		deadline()
		msg, err := ParseClientMessage(data)
		if err != nil {
			write(Frame{Type: "error", Error: "bad message: " + err.Error()})
			continue
		}
		switch {
		case !claims.HasScope(tokens.ScopeSessionControl) && !claims.HasScope(tokens.ScopeAdmin):
			write(Frame{Type: "error", Error: "insufficient_scope: needs session:control"})
		case v.opts.Control == nil:
			write(Frame{Type: "error", Error: "this session cannot be controlled from here"})
		default:
			if err := v.opts.Control.Control(ctx, sessionID, claims, msg); err != nil {
				write(Frame{Type: "error", Error: err.Error()})
			}
		}
	}
}

// MaxClientMessage bounds one message from a viewer (the WebSocket read
// limit): a larger one ends the connection.
const MaxClientMessage = 64 << 10

// ParseClientMessage reads one viewer message strictly: one JSON object,
// no unknown fields, no trailing data, a known type with the fields that
// type needs. Its errors are meant for the viewer.
func ParseClientMessage(data []byte) (ClientMessage, error) {
	var msg ClientMessage
	if len(data) > MaxClientMessage {
		return msg, fmt.Errorf("message of %d bytes, over the limit of %d", len(data), MaxClientMessage)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&msg); err != nil {
		return ClientMessage{}, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return ClientMessage{}, errors.New("one JSON object expected, without trailing data")
	}
	switch msg.Type {
	case "prompt":
		if strings.TrimSpace(msg.Text) == "" {
			return ClientMessage{}, errors.New("a prompt needs a non-empty text")
		}
	case "cancel":
	case "permission":
		if msg.RequestID == "" || msg.OptionID == "" {
			return ClientMessage{}, errors.New("a permission answer needs request_id and option_id")
		}
	default:
		return ClientMessage{}, fmt.Errorf("unknown message type %q (want prompt, cancel or permission)", msg.Type)
	}
	return msg, nil
}
