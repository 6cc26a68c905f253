package mcpserver

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"

	httpfront "github.com/agentbroker/agentbroker/internal/server"
	"github.com/agentbroker/agentbroker/tokens"
)

// The edges of the transport that clients meet when something is off: a
// legacy HTTP+SSE client, an authentication refusal of a JSON-RPC request,
// a JSON-RPC batch.

// legacyGET answers a GET without an Mcp-Protocol-Version header: 405.
// Every Streamable HTTP client of protocol 2025-06-18 and later sends the
// header on every request after initialize; a GET without it is a client of
// the legacy HTTP+SSE transport (2024-11-05, e.g. `claude mcp add
// --transport sse`) waiting for an "endpoint" event this server never
// sends, or a 2025-03-26 client opening the optional stream. The spec lets
// a server that offers no stream answer that GET with 405, so the legacy
// client fails at once instead of hanging, and the 2025-03-26 client goes
// on without the stream (which would carry only keep-alives here). It comes
// before authentication: a legacy client has nothing to gain from a token.
func (s *Server) legacyGET(w http.ResponseWriter) {
	s.metrics.refused.With("method").Inc()
	w.Header().Set("Allow", allowedMethods)
	writeError(w, http.StatusMethodNotAllowed, "method_not_allowed",
		"GET without an Mcp-Protocol-Version header: this is a Streamable HTTP MCP endpoint (protocol 2025-03-26 and later), "+
			"not the legacy HTTP+SSE transport; connect with the streamable HTTP transport (POST)")
}

// JSON-RPC error codes of refusals by the HTTP layer (implementation
// defined, in the range JSON-RPC reserves for servers).
const (
	codeUnauthorized = -32001 // HTTP 401
	codeForbidden    = -32003 // HTTP 403
	codeRateLimited  = -32029 // a batch's message over the token's rate
)

// maxRefusalPeek bounds what is read of an unauthenticated request's body
// to see whether it is JSON-RPC.
const maxRefusalPeek = 64 << 10

// refuseJSONRPC answers a refused POST (401 or 403) whose body is a JSON-RPC
// request, or a batch with requests, with the same status and challenge and
// a JSON-RPC error response (or an array of them) as the body, the OAuth
// error in each error's data. It reports false, having written nothing,
// when the body is not that (the caller then writes the OAuth JSON body).
func (s *Server) refuseJSONRPC(w http.ResponseWriter, r *http.Request, ref *tokens.Refusal) bool {
	if ref.Status != http.StatusUnauthorized && ref.Status != http.StatusForbidden {
		return false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRefusalPeek+1))
	if err != nil || len(body) > maxRefusalPeek || httpfront.CheckJSONText(body) != nil {
		return false
	}
	var ids []json.RawMessage
	if isBatch(body) {
		var msgs []json.RawMessage
		if json.Unmarshal(body, &msgs) != nil || len(msgs) > maxBatchMessages {
			return false
		}
		for _, m := range msgs {
			if p, ok := peek(m); ok && isRequestID(p.ID) {
				ids = append(ids, p.ID)
			}
		}
	} else if p, ok := peek(body); ok && isRequestID(p.ID) {
		ids = append(ids, p.ID)
	}
	if len(ids) == 0 {
		return false
	}
	w.Header().Set("WWW-Authenticate", ref.Challenge())
	if !isBatch(body) {
		writeJSONRPCRefusal(w, ref.Status, ids[0], ref.Code, ref.Description)
		return true
	}
	out := make([]json.RawMessage, len(ids))
	for i, id := range ids {
		out[i] = refusalMessage(ref.Status, id, ref.Code, ref.Description)
	}
	writeJSONStatus(w, ref.Status, out)
	return true
}

// refusalMessage is the JSON-RPC error response for an HTTP refusal.
func refusalMessage(status int, id json.RawMessage, code, desc string) json.RawMessage {
	rpcCode := codeForbidden
	if status == http.StatusUnauthorized {
		rpcCode = codeUnauthorized
	}
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	b, _ := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   rpcErrorBody    `json:"error"`
	}{"2.0", id, rpcErrorBody{Code: rpcCode, Message: desc, Data: &oauthError{code, desc}}})
	return b
}

type rpcErrorBody struct {
	Code    int         `json:"code"`
	Message string      `json:"message"`
	Data    *oauthError `json:"data,omitempty"`
}

type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// writeJSONRPCRefusal writes an HTTP refusal (401, 403) whose body is a
// JSON-RPC error response to request id.
func writeJSONRPCRefusal(w http.ResponseWriter, status int, id json.RawMessage, code, desc string) {
	writeJSONStatus(w, status, refusalMessage(status, id, code, desc))
}

func writeJSONStatus(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// isJSONString reports whether raw is a JSON string.
func isJSONString(raw json.RawMessage) bool {
	var s string
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &s) == nil
}

// isBatch reports whether body is (meant as) a JSON-RPC batch: a JSON array.
func isBatch(body []byte) bool {
	t := bytes.TrimLeft(body, " \t\r\n")
	return len(t) > 0 && t[0] == '['
}

// maxBatchMessages bounds the messages of one batch (the body is bounded
// by MaxBodyBytes besides).
const maxBatchMessages = 32

// batchVersions are the protocol versions under which a POST may carry a
// JSON-RPC batch: 2025-03-26 required servers to accept them, 2025-06-18
// removed them. A request without Mcp-Protocol-Version is taken to be of
// 2025-03-26, as the spec tells servers to assume.
var batchVersions = map[string]bool{"": true, "2024-11-05": true, "2025-03-26": true}

// serveBatch answers a JSON-RPC batch: each message is served as if it had
// come alone (the same envelope, scope and initialize checks, then
// mcp-go), in order, and the responses go back as one JSON array (202 with
// no body when the batch held only notifications and responses). Progress
// notifications of a batched call are dropped: a batch's answer is JSON.
// Each message after the first counts against the token's rate limit.
// initialize may not be batched (2025-03-26: "MUST NOT be part of a JSON-RPC
// batch"); a batch under a later protocol version is refused, saying why.
func (s *Server) serveBatch(w http.ResponseWriter, r *http.Request, c tokens.Claims, body []byte) {
	refuse := func(code int, msg string) {
		s.metrics.refused.With("invalid_message").Inc()
		writeJSONStatus(w, http.StatusBadRequest, errorMessage(nil, code, msg))
	}
	if v := r.Header.Get("Mcp-Protocol-Version"); !batchVersions[v] {
		refuse(-32600, "Invalid Request: JSON-RPC batches are not part of MCP protocol "+v+
			" (2025-06-18 removed them); send one message per POST")
		return
	}
	if err := httpfront.CheckJSONText(body); err != nil {
		refuse(-32700, "Parse error: "+err.Error())
		return
	}
	var msgs []json.RawMessage
	if err := json.Unmarshal(body, &msgs); err != nil {
		refuse(-32700, "Parse error: the batch is not a JSON array of messages")
		return
	}
	if len(msgs) == 0 {
		refuse(-32600, "Invalid Request: empty batch")
		return
	}
	if len(msgs) > maxBatchMessages {
		refuse(-32600, "Invalid Request: a batch of "+strconv.Itoa(len(msgs))+
			" messages is over the limit of "+strconv.Itoa(maxBatchMessages))
		return
	}
	var out []json.RawMessage
	for i, m := range msgs {
		p, ok := peek(m)
		t := bytes.TrimSpace(m)
		var id json.RawMessage
		if ok && isRequestID(p.ID) {
			id = p.ID
		}
		switch {
		case len(t) == 0 || t[0] != '{':
			out = append(out, errorMessage(nil, -32600, "Invalid Request: a batch's members must be JSON-RPC messages (objects)"))
			continue
		case p.Method == "initialize":
			out = append(out, errorMessage(id, -32600, "Invalid Request: initialize must not be part of a JSON-RPC batch"))
			continue
		}
		if i > 0 && s.limiter != nil {
			if ok, _ := s.limiter.allow(c.ID, s.now()); !ok {
				s.metrics.refused.With("rate_limited").Inc()
				if id != nil {
					out = append(out, errorMessage(id, codeRateLimited, "too many requests for this token; retry later"))
				}
				continue
			}
		}
		rec := &batchRecorder{header: make(http.Header)}
		s.serveMessage(rec, r, c, m)
		out = append(out, rec.responses(id)...)
	}
	if len(out) == 0 {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	writeJSONStatus(w, http.StatusOK, out)
}

// errorMessage is a JSON-RPC error response (id null when nil).
func errorMessage(id json.RawMessage, code int, msg string) json.RawMessage {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	b, _ := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   rpcErrorBody    `json:"error"`
	}{"2.0", id, rpcErrorBody{Code: code, Message: msg}})
	return b
}

// batchRecorder takes one batched message's answer.
type batchRecorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *batchRecorder) Header() http.Header { return b.header }

func (b *batchRecorder) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *batchRecorder) Write(p []byte) (int, error) {
	b.WriteHeader(http.StatusOK)
	return b.body.Write(p)
}

// Flush makes the recorder an http.Flusher, which mcp-go needs to stream.
func (b *batchRecorder) Flush() {}

// responses are the JSON-RPC responses in the answer (SSE or JSON); an
// HTTP error that is not JSON-RPC becomes an internal error for id.
func (b *batchRecorder) responses(id json.RawMessage) []json.RawMessage {
	if b.status == http.StatusAccepted || b.body.Len() == 0 {
		return nil
	}
	if strings.HasPrefix(b.header.Get("Content-Type"), "text/event-stream") {
		var out []json.RawMessage
		sc := bufio.NewScanner(&b.body)
		sc.Buffer(make([]byte, 64<<10), 64<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data:")
			if !ok {
				continue
			}
			var m struct {
				Method string `json:"method"`
			}
			raw := json.RawMessage(strings.TrimSpace(data))
			if json.Unmarshal(raw, &m) == nil && m.Method == "" {
				out = append(out, raw) // a response, not a notification
			}
		}
		return out
	}
	raw := bytes.TrimSpace(b.body.Bytes())
	var m struct {
		JSONRPC string `json:"jsonrpc"`
	}
	if json.Unmarshal(raw, &m) == nil && m.JSONRPC == "2.0" {
		return []json.RawMessage{json.RawMessage(raw)}
	}
	if id == nil {
		return nil
	}
	var oe oauthError
	_ = json.Unmarshal(raw, &oe)
	msg := oe.Description
	if msg == "" {
		msg = "internal error (HTTP " + strconv.Itoa(b.status) + ")"
	}
	return []json.RawMessage{errorMessage(id, -32603, msg)}
}
