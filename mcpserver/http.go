package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/server"

	httpfront "github.com/agentbroker/agentbroker/internal/server"
	"github.com/agentbroker/agentbroker/tokens"
)

// The HTTP front of the MCP endpoint, in the order a request meets it:
//
//  1. Origin: a request whose Origin header is not allowed gets 403
//     (before anything else, so a rebinding page learns nothing).
//  2. CORS preflight (OPTIONS) for allowed origins: 204.
//  3. Method: POST and GET are served; DELETE gets 405, before any token
//     check (this server is stateless: it issues no Mcp-Session-Id, so there
//     is no session to terminate, and 405 is the spec's answer for that;
//     Codex sends DELETE on exit, typically after its token was revoked),
//     and so does anything else.
//  4. Bearer authentication (tokens.Authorize): 401 with a
//     WWW-Authenticate challenge naming the RFC 9728 metadata, 400 for a
//     malformed request, 503 when revocation cannot be checked.
//  5. Per-token rate limit: 429 with Retry-After.
//  6. GET: a keep-alive SSE stream (see serveStream). A GET without an
//     Mcp-Protocol-Version header gets 405 before step 4 (see legacyGET).
//  7. POST: the body (413 over MaxBodyBytes); a JSON-RPC batch is taken
//     apart here (serveBatch); server/discover answered -32601 here, an
//     initialize without a protocolVersion -32602; a tools/call of a tool
//     the token's scopes do not open answered 403 insufficient_scope;
//     everything else to mcp-go.
//
// The 401 and 403 answers to a POST that carries a JSON-RPC request have a
// JSON-RPC error response as their body (see refuseJSONRPC).

const allowedMethods = "GET, POST, OPTIONS"

// streamRecheck is how often an open GET stream's token is verified again,
// so that a revoked token's stream ends within it.
const streamRecheck = 500 * time.Millisecond

// maxStreamsPerToken bounds the GET streams one token may hold open.
const maxStreamsPerToken = 8

func (s *Server) serveMCP(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if !s.origins.Allows(origin) {
		s.metrics.refused.With("origin").Inc()
		writeError(w, http.StatusForbidden, "forbidden_origin", "this Origin may not call the MCP endpoint")
		return
	}
	if origin != "" && s.corsOrigins.Allows(origin) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
		h.Set("Access-Control-Expose-Headers", "WWW-Authenticate, Mcp-Session-Id, Retry-After")
	}
	switch r.Method {
	case http.MethodPost:
	case http.MethodGet:
		if r.Header.Get("Mcp-Protocol-Version") == "" {
			s.legacyGET(w)
			return
		}
	case http.MethodOptions:
		h := w.Header()
		h.Set("Allow", allowedMethods)
		if origin != "" && s.corsOrigins.Allows(origin) {
			h.Set("Access-Control-Allow-Methods", allowedMethods)
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Accept, Mcp-Protocol-Version, Mcp-Session-Id, Last-Event-ID")
			h.Set("Access-Control-Max-Age", "600")
		}
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		// DELETE included: a stateless server has no session to end.
		s.metrics.refused.With("method").Inc()
		w.Header().Set("Allow", allowedMethods)
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed",
			"this MCP endpoint is stateless: POST carries requests, GET opens an (idle) stream, there is no session to DELETE")
		return
	}
	if s.fixed != nil && r.Header.Get("Authorization") == "" {
		s.serveAuthenticated(w, r.WithContext(tokens.ContextWithClaims(r.Context(), *s.fixed)))
		return
	}
	if s.auth == nil { // fixed identity only, and a token was sent
		writeError(w, http.StatusUnauthorized, "invalid_token", "this server does not verify tokens")
		return
	}
	raw, ref := tokens.RequestToken(r, s.policy)
	var c tokens.Claims
	if ref == nil {
		c, ref = s.auth.Authorize(r.Context(), raw, s.policy)
	}
	if ref != nil {
		s.refuse(w, r, ref)
		return
	}
	s.serveAuthenticated(w, r.WithContext(withToken(tokens.ContextWithClaims(r.Context(), c), raw)))
}

// refuse answers a request Authorize refused, counting it by reason and
// telling the observer of a revoked token's use.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, ref *tokens.Refusal) {
	var rev *tokens.RevokedError
	if s.revocations != nil && errors.As(ref.Err, &rev) {
		s.revocations.RevokedTokenUsed(r.Context(), rev.Claims)
	}
	s.metrics.authFailures.With(string(ref.Reason)).Inc()
	if r.Method == http.MethodPost && s.refuseJSONRPC(w, r, ref) {
		return
	}
	ref.Write(w)
}

type rawTokenKey struct{}

// withToken keeps the raw token in the request's context, for serveStream
// to re-check it while the stream is open.
func withToken(ctx context.Context, raw string) context.Context {
	return context.WithValue(ctx, rawTokenKey{}, raw)
}

func (s *Server) serveAuthenticated(w http.ResponseWriter, r *http.Request) {
	c, _ := tokens.ClaimsFrom(r.Context())
	if s.limiter != nil {
		if ok, wait := s.limiter.allow(c.ID, s.now()); !ok {
			s.metrics.refused.With("rate_limited").Inc()
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
			writeError(w, http.StatusTooManyRequests, "rate_limited", "too many requests for this token; retry later")
			return
		}
	}
	if r.Method == http.MethodGet {
		s.serveStream(w, r, c)
		return
	}
	s.servePost(w, r, c)
}

// peeked is what the front reads of a JSON-RPC message: enough to answer
// server/discover, to check a tools/call's scope and to see whether it asks
// for progress. It is read in one pass; a field of the wrong type is left
// empty (encoding/json goes on past it) and the message goes to mcp-go,
// which answers what it makes of it.
type peeked struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params struct {
		Name            string          `json:"name"`
		ProtocolVersion json.RawMessage `json:"protocolVersion"`
		URI             string          `json:"uri"`
		Cursor          json.RawMessage `json:"cursor"`
		Meta            struct {
			ProgressToken json.RawMessage `json:"progressToken"`
		} `json:"_meta"`
	} `json:"params"`
}

// peek reads what it can of body; ok is false when body is not JSON.
func peek(body []byte) (p peeked, ok bool) {
	err := json.Unmarshal(body, &p)
	var te *json.UnmarshalTypeError
	return p, err == nil || errors.As(err, &te)
}

func (s *Server) servePost(w http.ResponseWriter, r *http.Request, c tokens.Claims) {
	// No refusal on the declared length alone: answering before the body
	// is read makes the client's write fail (connection reset) before it
	// reads the 413. Reading stops one byte past the limit.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			s.tooLarge(w)
			return
		}
		writeError(w, http.StatusBadRequest, "invalid_request", "cannot read the request body")
		return
	}
	if isBatch(body) {
		s.serveBatch(w, r, c, body)
		return
	}
	s.serveMessage(w, r, c, body)
}

// serveMessage answers one JSON-RPC message (body), alone in a POST or one
// of a batch's.
func (s *Server) serveMessage(w http.ResponseWriter, r *http.Request, c tokens.Claims, body []byte) {
	if code, msg := checkEnvelope(body); code != 0 {
		s.metrics.refused.With("invalid_message").Inc()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]any{"jsonrpc": "2.0", "id": nil,
			"error": map[string]any{"code": code, "message": msg}})
		return
	}
	// mcp-go reads the body again, and keys its per-request state
	// (in-flight cancellation by notifications/cancelled) by the
	// Mcp-Session-Id header, which a stateless server never issues: bind it
	// to the token, so that one token cannot cancel another's requests.
	r2 := new(http.Request)
	*r2 = *r
	r2.Body = io.NopCloser(bytes.NewReader(body))
	r2.ContentLength = int64(len(body))
	r2.Header = r.Header.Clone()
	r2.Header.Set(server.HeaderKeySessionID, "tok-"+c.ID)

	if p, ok := peek(body); ok && isRequestID(p.ID) {
		switch p.Method {
		case "server/discover":
			// The stateless 2026-07-28 protocol is not offered: answer as a
			// server that predates it, so clients (Claude Code) fall back
			// to initialize.
			writeJSONRPCError(w, p.ID, -32601, "Method not found: server/discover")
			return
		case "initialize":
			// mcp-go would take a missing version for its latest one.
			if !isJSONString(p.Params.ProtocolVersion) {
				s.metrics.refused.With("invalid_message").Inc()
				writeJSONRPCError(w, p.ID, -32602, "Invalid params: initialize needs params.protocolVersion, a string")
				return
			}
		case "resources/list", "resources/templates/list", "resources/read":
			s.serveResources(w, r, c, p)
			return
		case "prompts/get":
			if p.Params.Name == promptInstructions && !c.HasScope(tokens.ScopeProjectRead) {
				s.insufficientScope(w, r, c, tokens.ScopeProjectRead, "prompt "+promptInstructions, "", p.ID)
				return
			}
		case "tools/call":
			if d, ok := s.tools[p.Params.Name]; ok && !d.allowed(c) {
				s.insufficientScope(w, r, c, d.scopes[0], "tool "+d.name, d.name, p.ID)
				return
			}
			if len(p.Params.Meta.ProgressToken) > 0 {
				pw := &progressWriter{ResponseWriter: w, signal: make(chan struct{}, 1)}
				w, r2 = pw, r2.WithContext(context.WithValue(r2.Context(), progressWriterKey{}, pw))
			}
		}
	}
	s.transport.ServeHTTP(w, r2)
}

// progressWriter is the response writer of a tools/call that asked for
// progress. mcp-go writes the call's notifications to it, one Write per SSE
// event, from its per-request forwarder goroutine; progress (call.go) waits
// for each notification's Write before returning, so that none is still
// held by the forwarder when the handler returns. (mcp-go v1.2.1 drops a
// notification the forwarder has taken off its queue but not yet written
// when the response is being finished: about one in 300 in a burst.)
type progressWriter struct {
	http.ResponseWriter
	mu     sync.Mutex // one progress notification in flight at a time
	writes atomic.Int64
	signal chan struct{} // capacity 1: "writes changed"
}

type progressWriterKey struct{}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.ResponseWriter.Write(b)
	p.writes.Add(1)
	select {
	case p.signal <- struct{}{}:
	default:
	}
	return n, err
}

// Flush makes the writer an http.Flusher, which mcp-go requires to stream.
func (p *progressWriter) Flush() { _ = http.NewResponseController(p.ResponseWriter).Flush() }

func (p *progressWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }

// checkEnvelope refuses, with a JSON-RPC error code and a message, a
// message mcp-go would answer with 200 although it is not JSON-RPC 2.0 as
// MCP sends it: text that is not UTF-8 or has lone surrogates (decoded
// as U+FFFD, -32700), a jsonrpc member other than "2.0", an id that is
// not a string or a number, a method that is not a string (-32600).
// Anything that is not a JSON object is left to mcp-go (it answers a parse
// error).
func checkEnvelope(body []byte) (int, string) {
	if err := httpfront.CheckJSONText(body); err != nil {
		return -32700, "Parse error: " + err.Error()
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return 0, ""
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(trimmed, &m) != nil {
		return 0, ""
	}
	if v, ok := m["jsonrpc"]; !ok || string(bytes.TrimSpace(v)) != `"2.0"` {
		return -32600, `Invalid Request: "jsonrpc" must be "2.0"`
	}
	if id, ok := m["id"]; ok && !isRequestID(id) {
		return -32600, "Invalid Request: id must be a string or a number"
	}
	if method, ok := m["method"]; ok {
		var name string
		if json.Unmarshal(method, &name) != nil {
			return -32600, "Invalid Request: method must be a string"
		}
	}
	return 0, ""
}

// isRequestID reports whether raw is a JSON-RPC request id (string or
// number), as opposed to absent (a notification) or something invalid.
func isRequestID(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return false
	}
	switch c := raw[0]; {
	case c == '"':
		return true
	case c == '-' || (c >= '0' && c <= '9'):
		return true
	}
	return false
}

func (s *Server) tooLarge(w http.ResponseWriter) {
	s.metrics.refused.With("body_too_large").Inc()
	w.Header().Set("Connection", "close")
	writeError(w, http.StatusRequestEntityTooLarge, "request_too_large",
		"the request body is over the limit of "+strconv.FormatInt(s.maxBody, 10)+" bytes")
}

// insufficientScope answers a tools/call of a tool the token's scopes do
// not open as the MCP authorization spec (2025-11-25) asks: 403 with an
// insufficient_scope challenge naming the scope needed. tools/list never
// shows such a tool, so only a client calling blind gets here. The call is
// still recorded (outcome forbidden).
//
// The body is a JSON-RPC error response to the call (id), with the OAuth
// error in its data: the official Go SDK keeps its session alive on an HTTP
// error whose body is a JSON-RPC error, and closes it on any other.
//
// The same answer refuses a resources/read or prompts/get the scopes do not
// open (what names it; tool is empty: nothing is recorded).
func (s *Server) insufficientScope(w http.ResponseWriter, r *http.Request, c tokens.Claims, scope tokens.Scope, what, tool string, id json.RawMessage) {
	start := s.now()
	need := string(scope)
	msg := "this token lacks scope " + need + " for " + what
	s.metrics.authFailures.With("insufficient_scope").Inc()
	if tool != "" {
		s.record(r.Context(), tool, c, start, OutcomeForbidden, msg)
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="agentbroker", error="insufficient_scope", error_description="`+
		msg+`", scope="`+need+`", resource_metadata="`+s.metadataURL+`"`)
	writeJSONRPCRefusal(w, http.StatusForbidden, id, "insufficient_scope", msg)
}

// serveStream answers GET with an SSE stream that carries only keep-alive
// comments. Every message of this server (responses, and progress
// notifications) belongs to a request and goes on that POST's own SSE
// response; there are no server-initiated requests or list changes. The
// stream is not handed to mcp-go on purpose: mcp-go v1.2.1 serves a GET by
// draining the notification channel of the session it names — the session
// that POSTs of the same session ID use too, and in stateless mode one
// session "" shared by every client — so a POST's progress notifications
// were split between its own response and whichever GET stream was open
// (half of them lost in a test, in stateful and stateless mode alike, and
// in stateless mode delivered to other tokens' streams).
// The stream ends when the client goes, the token expires (at its exp) or
// is refused by a re-check (revoked: within streamRecheck), or Close.
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request, c tokens.Claims) {
	select {
	case <-s.closing:
		writeError(w, http.StatusServiceUnavailable, "shutting_down", "the server is shutting down")
		return
	default:
	}
	if !s.openStream(c.ID) {
		s.metrics.refused.With("too_many_streams").Inc()
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusTooManyRequests, "too_many_streams", "this token holds too many open GET streams")
		return
	}
	defer s.closeStream(c.ID)
	s.metrics.streams.Add(1)
	defer s.metrics.streams.Add(-1)

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := io.WriteString(w, ": agentbroker MCP stream (keep-alive only)\n\n"); err != nil {
		return
	}
	if err := rc.Flush(); err != nil {
		return
	}
	var expired <-chan time.Time
	if !c.ExpiresAt.IsZero() {
		t := time.NewTimer(c.ExpiresAt.Sub(s.now()))
		defer t.Stop()
		expired = t.C
	}
	// A token revoked while its stream is open: re-verified every
	// streamRecheck (Verify is cached, and revocation reads are too).
	var recheck <-chan time.Time
	raw, _ := r.Context().Value(rawTokenKey{}).(string)
	if raw != "" {
		t := time.NewTicker(streamRecheck)
		defer t.Stop()
		recheck = t.C
	}
	end := func(why string) {
		s.log.LogAttrs(r.Context(), slog.LevelDebug, "mcp GET stream ended", slog.String("reason", why), logAttrsForClaims(c))
		if _, err := io.WriteString(w, ": "+why+"\n\n"); err == nil {
			_ = rc.Flush()
		}
	}
	tick := time.NewTicker(s.keepAlive)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.closing:
			return
		case <-expired:
			end("token expired")
			return
		case <-recheck:
			if _, ref := s.auth.Authorize(r.Context(), raw, s.policy); ref != nil {
				end(ref.Description)
				return
			}
		case <-tick.C:
			if _, err := io.WriteString(w, ": keep-alive\n\n"); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}
}

func (s *Server) openStream(id string) bool {
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	if s.streams[id] >= maxStreamsPerToken {
		return false
	}
	s.streams[id]++
	return true
}

func (s *Server) closeStream(id string) {
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	if s.streams[id]--; s.streams[id] <= 0 {
		delete(s.streams, id)
	}
}

// serveMetadata serves the RFC 9728 protected resource metadata (public:
// no token, any origin).
func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "max-age=300")
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Content-Length", strconv.Itoa(len(s.metadata)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(s.metadata)
	}
}

// writeError writes the broker's JSON error shape (as internal/server does).
func writeError(w http.ResponseWriter, status int, code, desc string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}{code, desc})
}

// writeJSONRPCError writes a JSON-RPC error response (HTTP 200).
func writeJSONRPCError(w http.ResponseWriter, id json.RawMessage, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}{JSONRPC: "2.0", ID: id, Error: struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{code, msg}})
}

// logAttrsForClaims are the log attributes of a token (nothing secret).
func logAttrsForClaims(c tokens.Claims) slog.Attr {
	return slog.Group("token", slog.String("jti", c.ID), slog.String("project", c.Project), slog.String("session", c.Session))
}
