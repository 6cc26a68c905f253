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
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentbroker/agentbroker/internal/origins"
	"github.com/agentbroker/agentbroker/internal/server"
	"github.com/agentbroker/agentbroker/store"
	"github.com/agentbroker/agentbroker/tokens"
)

// Authorizer decides whether a bearer token passes a policy
// (*tokens.Service does).
type Authorizer interface {
	Authorize(ctx context.Context, raw string, p tokens.Policy) (tokens.Claims, *tokens.Refusal)
}

var _ Authorizer = (*tokens.Service)(nil)

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
	// CloseTokenInvalid: the socket's token is no longer valid; the reason
	// says why: "token expired" (at its exp), "token revoked" (the token or
	// its session), or another refusal's description (its signing key
	// retired, say). Sent within a second of the expiry or revocation,
	// whether or not the viewer sends anything, and in answer to a message
	// sent with such a token (which is not acted on). Reconnect with a valid
	// token (and ?after=SEQ).
	CloseTokenInvalid = 4401
	// CloseAuthUnavailable: the token could not be verified again (the
	// revocation store did not answer); the socket is closed rather than
	// trusted. Reconnect shortly.
	CloseAuthUnavailable = 4503
)

// Subprotocol is the WebSocket subprotocol the events endpoint speaks.
// Browsers, which cannot set an Authorization header on a WebSocket, offer
// the token as a second subprotocol "bearer.<token>".
const Subprotocol = "agentbroker.events.v1"

// ViewerOptions configure ViewerHandler. Zero values mean the defaults.
type ViewerOptions struct {
	// Tokens decides on viewers' tokens, at the handshake, on every message
	// and every RecheckInterval while the socket is open. Required.
	Tokens Authorizer
	Logs   LogSource
	// Control carries out prompts, cancels and permission answers. Nil:
	// viewers can only watch.
	Control Controller
	// PublicURL is the broker's public URL (http://127.0.0.1:7420): its
	// origin (and, for a loopback host, the other loopback spellings) may
	// connect, as on the MCP endpoint. Empty: only AllowedOrigins.
	PublicURL string
	// AllowedOrigins lists the other browser origins (scheme://host[:port])
	// that may connect. Any other Origin is refused with 403 before the
	// upgrade; the request's Host plays no part (DNS rebinding). Requests
	// without an Origin header (terminals, scripts) are allowed.
	// ViewerHandler panics on a PublicURL or an origin it cannot parse
	// (Manager checks them in New).
	AllowedOrigins []string
	// RecheckInterval is how often the tokens of open sockets are verified
	// again (one goroutine for all of them; cheap: Verify is cached), so
	// that a socket whose token expired or was revoked is closed within it
	// (CloseTokenInvalid). Default 500ms.
	RecheckInterval time.Duration
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
	if opts.RecheckInterval <= 0 {
		opts.RecheckInterval = 500 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	allowed, err := allowedOrigins(opts.PublicURL, opts.AllowedOrigins)
	if err != nil {
		panic("sessions: viewer handler: " + err.Error())
	}
	v := &viewers{opts: opts, origins: allowed, open: make(map[*socket]struct{})}
	v.up = websocket.Upgrader{
		Subprotocols:    []string{Subprotocol},
		CheckOrigin:     v.checkOrigin,
		ReadBufferSize:  4096,
		WriteBufferSize: 16384,
	}
	return v
}

type viewers struct {
	opts    ViewerOptions
	origins origins.Set
	up      websocket.Upgrader

	mu       sync.Mutex
	open     map[*socket]struct{} // the sockets sweep re-checks
	sweeping bool                 // sweep is running (while open is not empty)
}

// socket is an open viewer socket, as sweep sees it.
type socket struct {
	g      grant
	refuse context.CancelCauseFunc // ends the socket with a *tokenRefusal
}

// tokenRefusal is why a socket's token no longer passes: the cause its
// context is cancelled with, turned into a close frame by the writer.
type tokenRefusal struct {
	code int
	why  string
}

func (e *tokenRefusal) Error() string { return "viewer token: " + e.why }

// watch adds s to the sockets re-checked every RecheckInterval, and
// returns the function that removes it.
func (v *viewers) watch(s *socket) (unwatch func()) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.open[s] = struct{}{}
	if !v.sweeping {
		v.sweeping = true
		go v.sweep()
	}
	return func() {
		v.mu.Lock()
		defer v.mu.Unlock()
		delete(v.open, s)
	}
}

// sweep re-verifies every open socket's token each RecheckInterval and
// ends the sockets whose token no longer passes (expired, revoked). One
// goroutine for all sockets rather than a ticker each: a thousand idle
// viewers cost a thousand cached Verify calls per interval, not two
// thousand wake-ups a second. It ends, within an interval, once no socket
// is open (its owner is the set of open sockets).
func (v *viewers) sweep() {
	t := time.NewTicker(v.opts.RecheckInterval)
	defer t.Stop()
	var batch []*socket
	for range t.C {
		v.mu.Lock()
		if len(v.open) == 0 {
			v.sweeping = false
			v.mu.Unlock()
			return
		}
		batch = batch[:0]
		for s := range v.open {
			batch = append(batch, s)
		}
		v.mu.Unlock()
		for _, s := range batch {
			if code, why := v.check(context.Background(), s.g); code != 0 {
				s.refuse(&tokenRefusal{code, why})
			}
		}
		clear(batch)
	}
}

// allowedOrigins is the origin rule of the events WebSocket, the same as
// the MCP endpoint's: the public URL's origin and the allowed list.
func allowedOrigins(publicURL string, allowed []string) (origins.Set, error) {
	if publicURL == "" {
		return origins.New(allowed...)
	}
	return origins.ForPublicURL(publicURL, allowed)
}

func (v *viewers) checkOrigin(r *http.Request) bool {
	return v.origins.Allows(r.Header.Get("Origin"))
}

// grant is what a request was authorized with: the token, the policy it
// passed (a viewer's or an admin's) and its claims. A socket keeps it to
// check the token again.
type grant struct {
	raw    string
	policy tokens.Policy
	claims tokens.Claims
}

// authorizeSession accepts a viewer token of this session with scope, or
// an admin token with the admin scope, taken from Authorization or, when
// webSocket, from a "bearer.<token>" subprotocol. It returns what passed,
// or the refusal to answer with.
func authorizeSession(r *http.Request, auth Authorizer, sessionID string, scope tokens.Scope, webSocket bool) (grant, *tokens.Refusal) {
	viewer := tokens.Policy{Audience: tokens.AudienceViewer, Scopes: []tokens.Scope{scope}, Session: sessionID,
		AcceptSubprotocol: webSocket}
	raw, ref := tokens.RequestToken(r, viewer)
	if ref != nil {
		return grant{}, ref
	}
	c, ref := auth.Authorize(r.Context(), raw, viewer)
	if ref != nil && ref.Reason == tokens.ReasonWrongAudience {
		admin := tokens.Policy{Audience: tokens.AudienceAdmin, Scopes: []tokens.Scope{tokens.ScopeAdmin},
			AcceptSubprotocol: webSocket}
		ac, aref := auth.Authorize(r.Context(), raw, admin)
		if aref == nil {
			return grant{raw: raw, policy: admin, claims: ac}, nil
		}
		if aref.Reason != tokens.ReasonWrongAudience {
			return grant{}, aref
		}
	}
	if ref != nil {
		return grant{}, ref
	}
	return grant{raw: raw, policy: viewer, claims: c}, nil
}

// check verifies a socket's token again: the close code and reason when it
// no longer passes, 0 when it does. A socket's token ends at its exp,
// without the leeway Verify grants for clock skew: this clock is the one
// that verified it.
func (v *viewers) check(ctx context.Context, g grant) (int, string) {
	if !time.Now().Before(g.claims.ExpiresAt) {
		return CloseTokenInvalid, "token expired"
	}
	if _, ref := v.opts.Tokens.Authorize(ctx, g.raw, g.policy); ref != nil {
		if ref.Reason == tokens.ReasonUnavailable {
			return CloseAuthUnavailable, ref.Description
		}
		return CloseTokenInvalid, ref.Description
	}
	return 0, ""
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
	g, ref := authorizeSession(r, v.opts.Tokens, id, tokens.ScopeSessionView, true)
	if ref != nil {
		ref.Write(w)
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
	v.serve(r.Context(), conn, log, g, after)
}

// serve runs one viewer: a writer that pulls events and a reader for the
// viewer's messages and pongs. It returns when either ends.
func (v *viewers) serve(ctx context.Context, conn *websocket.Conn, log *Log, g grant, after int64) {
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
	closeWith := func(code int, reason string) {
		conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
		conn.Close()
	}
	// The token is checked again on each message (by the reader), and
	// every RecheckInterval (by sweep); either cancels ctx with a
	// *tokenRefusal, which becomes the close frame here.
	refuse := func(code int, why string) { cancel(&tokenRefusal{code, why}) }
	refused := func() bool {
		var tr *tokenRefusal
		if !errors.As(context.Cause(ctx), &tr) {
			return false
		}
		l.Info("viewer's token no longer valid; disconnected", "reason", tr.why, "jti", g.claims.ID)
		closeWith(tr.code, tr.why)
		return true
	}
	defer v.watch(&socket{g: g, refuse: cancel})()
	wg.Go(func() { v.read(ctx, cancel, conn, log.SessionID(), g, write, refuse) })

	ping := time.NewTicker(v.opts.PingInterval)
	defer ping.Stop()
	cursor := after
	for {
		if refused() {
			return
		}
		evs, err := log.Read(ctx, cursor, 256)
		if err != nil {
			l.Warn("viewer: read events", "err", err)
			closeWith(websocket.CloseInternalServerErr, "cannot read events")
			return
		}
		for _, e := range evs {
			t := e.CreatedAt
			if err := write(Frame{Seq: e.Seq, Type: e.Type, Time: &t, Data: e.Data}); err != nil {
				if refused() {
					return
				}
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
		case refused():
			return
		case err != nil: // the reader ended: the viewer left
			conn.Close()
			return
		}
	}
}

// read handles pongs (via the read deadline) and viewers' messages. Each
// message is acted on only if the socket's token still passes (v.check);
// otherwise refuse ends the socket.
func (v *viewers) read(ctx context.Context, cancel context.CancelCauseFunc, conn *websocket.Conn, sessionID string,
	g grant, write func(Frame) error, refuse func(code int, why string)) {
	claims := g.claims
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
		if code, why := v.check(ctx, g); code != 0 {
			refuse(code, why)
			return
		}
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
