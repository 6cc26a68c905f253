package fakemodel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultAPIKey is the credential a server expects when Options.APIKey is empty.
const DefaultAPIKey = "fake-platform-key"

// DefaultText is the answer when no rule applies and Options.Text is empty.
const DefaultText = "Hello from the fake model."

// DefaultReply prefixes the answer to a tool result when the rule has no Reply.
const DefaultReply = "The tool said: "

// Options configure a Server. A nil *Options means every default.
type Options struct {
	// APIKey is the one credential accepted. Empty means DefaultAPIKey.
	APIKey string
	// Rules script tool calls; the first that applies wins.
	Rules []Rule
	// Text is the answer when no rule applies. Empty means DefaultText.
	Text string
	// TextChunks splits a streamed text answer into that many deltas (at
	// most one per byte). Zero or one means a single delta.
	TextChunks int
	// Usage is what every answer reports. Zero means {Input: 20, Output: 10}.
	Usage Usage
	// Fault applies to every request without an X-Fake-Fault header; the
	// syntax is ParseFault's. Empty means none. New panics if it does not parse.
	Fault string
	// MaxBodyBytes caps request bodies (413 beyond). Zero means 64 MiB.
	MaxBodyBytes int64
	// Logger receives a debug line per request (never a credential). Nil
	// means silent.
	Logger *slog.Logger
}

// Usage is the token count every answer reports, in disjoint parts (as
// catalog.Usage counts them). Each API gets it in its own convention:
// Anthropic reports Input, CacheRead and CacheWrite apart; OpenAI reports
// input_tokens = Input + CacheRead with cached_tokens = CacheRead, and has no
// cache writes.
type Usage struct {
	Input, Output, CacheRead, CacheWrite int64
}

// Rule scripts one tool call.
type Rule struct {
	// Tool is matched as a suffix of the offered tools' names (the bare name
	// for a tool inside an OpenAI namespace): "get_task" matches
	// "mcp__broker__get_task". Required.
	Tool string
	// Prompt must match the text of the latest user message. Nil matches any.
	Prompt *regexp.Regexp
	// Arguments are the tool input, a JSON object. Nil means {}. "$1",
	// "${name}" … are replaced by Prompt's capture groups (regexp.Expand),
	// so a prompt can name the ID to look up; a capture is inserted as it
	// is, so capture only JSON-safe text (an ID, a word).
	Arguments json.RawMessage
	// Reply prefixes the tool's result in the answer that follows it.
	// Empty means DefaultReply.
	Reply string
}

// API names the API family a request used.
type API string

// The API families.
const (
	APIAnthropic API = "anthropic"
	APIOpenAI    API = "openai"
)

// Actions: what the server did with a request.
const (
	ActionText         = "text"         // answered Options.Text
	ActionToolCall     = "tool_call"    // asked for a tool
	ActionToolSearch   = "tool_search"  // asked Codex's tool_search for a rule's tool (OpenAI Responses)
	ActionToolAnswer   = "tool_answer"  // quoted a tool result
	ActionCountTokens  = "count_tokens" // counted tokens
	ActionFault        = "fault"        // served a Status fault
	ActionUnauthorized = "unauthorized" // refused the credential
	ActionBadRequest   = "bad_request"  // refused the body or the route
)

// Outcomes: how a request ended.
const (
	OutcomeOK           = "ok"           // the whole answer was written
	OutcomeCanceled     = "canceled"     // the client went away first
	OutcomeDisconnected = "disconnected" // a fault dropped the connection
)

// Request is one request the server received, as recorded.
type Request struct {
	// Seq numbers requests from 1 in arrival order.
	Seq    int
	Method string
	Path   string
	Query  string
	API    API
	// Route is "messages", "count_tokens", "responses", "chat" or "" for
	// an unknown path.
	Route string
	Model string
	// Stream reports "stream": true.
	Stream bool
	// Tools are the offered tools' names; a tool inside an OpenAI namespace
	// is listed as "<namespace>/<name>".
	Tools []string
	// Header is the request's header with credentials redacted: x-api-key
	// and Authorization read "[platform key]" when they carried exactly
	// Options.APIKey and "[other]" otherwise.
	Header http.Header
	// AuthOK reports that the expected credential, and no other, was sent.
	AuthOK bool
	// Body is the request body as received.
	Body []byte
	// Action is one of the Action constants.
	Action string
	// Tool is the tool asked for (Action ActionToolCall) or answered
	// (ActionToolAnswer).
	Tool string
	// Fault is the fault spec applied ("" for none).
	Fault string
	// Outcome is "" while the request runs, then one of the Outcome constants.
	Outcome string
}

// HasTools reports whether the request offered any tool.
func (r Request) HasTools() bool { return len(r.Tools) > 0 }

// Server is a scripted model upstream. It is safe for concurrent use.
type Server struct {
	opts  Options
	fault Fault
	log   *slog.Logger

	mu      sync.Mutex
	reqs    []Request
	changed chan struct{} // closed and replaced on every change to reqs
	ids     int

	gate        chan struct{}
	releaseOnce sync.Once

	inflight sync.WaitGroup

	// Set by Start.
	srv       *http.Server
	url       string
	serveDone chan struct{}
	closeOnce sync.Once
}

var _ http.Handler = (*Server)(nil)

// New returns a server with opts (nil means defaults). It panics if
// opts.Fault does not parse or a rule has no Tool or invalid Arguments:
// those are bugs in the test that wrote them.
func New(opts *Options) *Server {
	var o Options
	if opts != nil {
		o = *opts
		o.Rules = slices.Clone(o.Rules)
	}
	if o.APIKey == "" {
		o.APIKey = DefaultAPIKey
	}
	if o.Text == "" {
		o.Text = DefaultText
	}
	if o.Usage == (Usage{}) {
		o.Usage = Usage{Input: 20, Output: 10}
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 64 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	f, err := ParseFault(o.Fault)
	if err != nil {
		panic(err.Error())
	}
	for i, r := range o.Rules {
		if r.Tool == "" {
			panic(fmt.Sprintf("fakemodel: rule %d has no Tool", i))
		}
		if r.Arguments == nil {
			o.Rules[i].Arguments = json.RawMessage(`{}`)
		} else if !json.Valid(r.Arguments) || !strings.HasPrefix(strings.TrimSpace(string(r.Arguments)), "{") {
			panic(fmt.Sprintf("fakemodel: rule %d: Arguments must be a JSON object", i))
		}
		if r.Reply == "" {
			o.Rules[i].Reply = DefaultReply
		}
	}
	return &Server{opts: o, fault: f, log: o.Logger, changed: make(chan struct{}), gate: make(chan struct{})}
}

// Start serves on a new listener on 127.0.0.1 (a free port) and returns
// the base URL, e.g. "http://127.0.0.1:41234" (no /v1). Close stops it.
func (s *Server) Start() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("fakemodel: listen: %w", err)
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.url = "http://" + ln.Addr().String()
	s.serveDone = make(chan struct{})
	go func() {
		defer close(s.serveDone)
		_ = s.srv.Serve(ln) // ErrServerClosed after Close
	}()
	return s.url, nil
}

// URL is the base URL Start returned ("" before Start).
func (s *Server) URL() string { return s.url }

// Close stops a started server: it closes the listener and every
// connection (requests in flight see their context cancelled) and waits for
// the handlers to return. It is idempotent; on a server that was not
// started it only waits for handlers in flight.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		if s.srv != nil {
			err = s.srv.Close()
			<-s.serveDone
		}
	})
	s.inflight.Wait()
	return err
}

// Release lets every request paused by a pause-after fault go on, now and
// from then on. It is idempotent.
func (s *Server) Release() { s.releaseOnce.Do(func() { close(s.gate) }) }

// Requests returns a copy of every request received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.reqs))
	for i, r := range s.reqs {
		out[i] = r
		out[i].Header = r.Header.Clone()
		out[i].Tools = slices.Clone(r.Tools)
	}
	return out
}

// Count is the number of requests received so far, whatever became of them.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs)
}

// WaitFor blocks until cond, called with the requests so far after every
// change, returns true, or ctx is done (its error is returned).
func (s *Server) WaitFor(ctx context.Context, cond func([]Request) bool) error {
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if cond(s.Requests()) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("fakemodel: wait: %w", ctx.Err())
		}
	}
}

// record appends r and returns its index.
func (s *Server) record(r Request) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.Seq = len(s.reqs) + 1
	s.reqs = append(s.reqs, r)
	s.notifyLocked()
	return len(s.reqs) - 1
}

// update changes the recorded request i.
func (s *Server) update(i int, f func(*Request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.reqs[i])
	s.notifyLocked()
}

func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// nextID returns a fresh suffix for message, call and response IDs.
func (s *Server) nextID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids++
	return fmt.Sprintf("fake%06d", s.ids)
}

// routes maps a path to its API and route name.
var routes = map[string]struct {
	api   API
	route string
}{
	"/v1/messages":              {APIAnthropic, "messages"},
	"/v1/messages/count_tokens": {APIAnthropic, "count_tokens"},
	"/v1/responses":             {APIOpenAI, "responses"},
	"/v1/chat/completions":      {APIOpenAI, "chat"},
}

// ServeHTTP serves the model API (see the package documentation).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.inflight.Add(1)
	defer s.inflight.Done()

	rt, known := routes[r.URL.Path]
	gModel, gRoute, isGemini := geminiRoute(r.URL.Path)
	if isGemini {
		rt, known = struct {
			api   API
			route string
		}{APIGemini, gRoute}, true
	}
	api := rt.api
	if !known {
		api = APIOpenAI
		switch {
		case strings.Contains(r.URL.Path, "messages"):
			api = APIAnthropic
		case strings.HasPrefix(r.URL.Path, "/v1beta/"):
			api = APIGemini
		}
	}
	body, readErr := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	authOK := s.checkAuth(api, r.Header)
	rec := Request{
		Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, API: api, Route: rt.route,
		Header: s.redact(r.Header), AuthOK: authOK, Body: body,
	}
	spec := r.Header.Get(FaultHeader)
	fault := s.fault
	if spec != "" {
		f, err := ParseFault(spec)
		if err != nil {
			rec.Action = ActionBadRequest
			i := s.record(rec)
			writeError(w, api, http.StatusBadRequest, err.Error())
			s.finish(i, OutcomeOK)
			return
		}
		fault = f
	} else {
		spec = s.opts.Fault
	}
	rec.Fault = spec

	var parsed turn
	var parseErr error
	if known && readErr == nil {
		if isGemini {
			parsed, parseErr = parseGemini(gModel, rt.route, body)
		} else {
			parsed, parseErr = parseTurn(rt.route, body)
		}
		rec.Model, rec.Stream, rec.Tools = parsed.model, parsed.stream, parsed.toolNames()
	}
	switch {
	case !authOK:
		rec.Action = ActionUnauthorized
	case !known || r.Method != http.MethodPost || readErr != nil || parseErr != nil:
		rec.Action = ActionBadRequest
	case fault.Status != 0:
		rec.Action = ActionFault
	}
	i := s.record(rec)
	s.log.LogAttrs(r.Context(), slog.LevelDebug, "fakemodel request", slog.Int("seq", i+1),
		slog.String("path", r.URL.Path), slog.String("model", rec.Model), slog.Bool("auth_ok", authOK))

	switch rec.Action {
	case ActionUnauthorized:
		writeError(w, api, http.StatusUnauthorized, "fakemodel: invalid credential: expected the platform key, and nothing else")
		s.finish(i, OutcomeOK)
		return
	case ActionBadRequest:
		status, msg := http.StatusBadRequest, "fakemodel: bad request"
		var tooBig *http.MaxBytesError
		switch {
		case !known:
			status, msg = http.StatusNotFound, "fakemodel: no route "+r.URL.Path
		case r.Method != http.MethodPost:
			status, msg = http.StatusMethodNotAllowed, "fakemodel: POST only"
		case errors.As(readErr, &tooBig):
			status, msg = http.StatusRequestEntityTooLarge, "fakemodel: body too large"
		case readErr != nil:
			msg = "fakemodel: reading the body: " + readErr.Error()
		case parseErr != nil:
			msg = "fakemodel: " + parseErr.Error()
		}
		writeError(w, api, status, msg)
		s.finish(i, OutcomeOK)
		return
	}

	if fault.HeaderDelay > 0 && !sleep(r.Context(), fault.HeaderDelay) {
		s.finish(i, OutcomeCanceled)
		return
	}
	if rec.Action == ActionFault {
		writeError(w, api, fault.Status, fmt.Sprintf("fakemodel: scripted fault: status %d", fault.Status))
		s.finish(i, OutcomeOK)
		return
	}

	ans := s.decide(parsed)
	switch {
	case rt.route == "count_tokens":
		ans = answer{action: ActionCountTokens}
	case ans.action == ActionToolSearch && rt.route != "responses":
		ans = answer{action: ActionText, text: s.opts.Text}
	}
	s.update(i, func(q *Request) { q.Action, q.Tool = ans.action, ans.tool.display() })
	e := &emitter{s: s, w: w, ctx: r.Context(), fault: fault}
	var outcome string
	switch rt.route {
	case "count_tokens":
		if api == APIGemini {
			outcome = e.json(map[string]int64{"totalTokens": s.opts.Usage.Input})
		} else {
			outcome = e.json(map[string]int64{"input_tokens": s.opts.Usage.Input})
		}
	case "generate", "stream":
		outcome = s.gemini(e, parsed, ans, r.URL.Query().Get("alt") == "sse")
	case "messages":
		outcome = s.anthropic(e, parsed, ans)
	case "responses":
		outcome = s.responses(e, parsed, ans)
	case "chat":
		outcome = s.chat(e, parsed, ans)
	}
	s.finish(i, outcome)
	if outcome == OutcomeDisconnected {
		// Drop the connection without ending the response: the client sees
		// a truncated body. The server does not log this panic.
		panic(http.ErrAbortHandler)
	}
}

func (s *Server) finish(i int, outcome string) {
	s.update(i, func(q *Request) { q.Outcome = outcome })
}

// checkAuth reports whether h carries the expected key and no other
// credential. Anthropic routes take x-api-key or Authorization: Bearer
// (ANTHROPIC_AUTH_TOKEN); OpenAI routes take Authorization: Bearer only.
func (s *Server) checkAuth(api API, h http.Header) bool {
	var creds []string
	for _, v := range h.Values("Authorization") {
		scheme, rest, _ := strings.Cut(v, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return false
		}
		creds = append(creds, strings.TrimSpace(rest))
	}
	keys := h.Values("X-Api-Key")
	if api != APIAnthropic && len(keys) > 0 {
		return false
	}
	if goog := h.Values("X-Goog-Api-Key"); len(goog) > 0 {
		if api != APIGemini {
			return false
		}
		creds = append(creds, goog...)
	}
	creds = append(creds, keys...)
	if len(creds) == 0 {
		return false
	}
	for _, c := range creds {
		if c != s.opts.APIKey {
			return false
		}
	}
	return true
}

// redact clones h with credentials replaced by what they were.
func (s *Server) redact(h http.Header) http.Header {
	out := h.Clone()
	for _, name := range []string{"Authorization", "X-Api-Key", "X-Goog-Api-Key"} {
		vs := out.Values(name)
		if len(vs) == 0 {
			continue
		}
		red := make([]string, len(vs))
		for i, v := range vs {
			if v == s.opts.APIKey || v == "Bearer "+s.opts.APIKey {
				red[i] = "[platform key]"
			} else {
				red[i] = "[other]"
			}
		}
		out[http.CanonicalHeaderKey(name)] = red
	}
	return out
}

// answer is what the model says to one request.
type answer struct {
	action string
	text   string
	tool   offeredTool
	args   json.RawMessage
}

// decide applies the rules to a parsed request.
func (s *Server) decide(t turn) answer {
	if t.result != nil {
		reply := DefaultReply
		if rule, ok := s.ruleFor(t.result.tool); ok {
			reply = rule.Reply
		}
		return answer{action: ActionToolAnswer, text: reply + t.result.text, tool: offeredTool{name: t.result.tool}}
	}
	for _, rule := range s.opts.Rules {
		if rule.Prompt != nil && !rule.Prompt.MatchString(t.userText) {
			continue
		}
		for _, tool := range t.tools {
			if strings.HasSuffix(tool.name, rule.Tool) {
				return answer{action: ActionToolCall, tool: tool, args: rule.arguments(t.userText)}
			}
		}
		if t.searchable && !t.searched {
			// The tool may be deferred behind tool_search: look it up once.
			return answer{action: ActionToolSearch, tool: offeredTool{name: rule.Tool}}
		}
	}
	return answer{action: ActionText, text: s.opts.Text}
}

// arguments expands the prompt's captures into the rule's arguments; a
// result that is not a JSON object falls back to the arguments as given.
func (r Rule) arguments(prompt string) json.RawMessage {
	if r.Prompt == nil || r.Prompt.NumSubexp() == 0 {
		return r.Arguments
	}
	m := r.Prompt.FindStringSubmatchIndex(prompt)
	if m == nil {
		return r.Arguments
	}
	out := r.Prompt.ExpandString(nil, string(r.Arguments), prompt, m)
	if !json.Valid(out) {
		return r.Arguments
	}
	return out
}

func (s *Server) ruleFor(tool string) (Rule, bool) {
	for _, rule := range s.opts.Rules {
		if tool != "" && strings.HasSuffix(tool, rule.Tool) {
			return rule, true
		}
	}
	return Rule{}, false
}

// chunks splits text into n pieces for streaming (at least one).
func chunks(text string, n int) []string {
	if n <= 1 || len(text) <= 1 {
		return []string{text}
	}
	n = min(n, len(text))
	out := make([]string, 0, n)
	size := len(text) / n
	for i := range n {
		start := i * size
		end := start + size
		if i == n-1 {
			end = len(text)
		}
		out = append(out, text[start:end])
	}
	return out
}

// sleep waits d or until ctx is done; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// writeError writes an API-shaped error.
func writeError(w http.ResponseWriter, api API, status int, msg string) {
	var body any
	if api == APIGemini {
		body = map[string]any{"error": map[string]any{"code": status, "message": msg, "status": geminiErrorStatus(status)}}
	} else if api == APIAnthropic {
		body = map[string]any{"type": "error", "error": map[string]string{"type": anthropicErrorType(status), "message": msg}}
	} else {
		typ, code := "invalid_request_error", any(nil)
		switch {
		case status == http.StatusUnauthorized:
			code = "invalid_api_key"
		case status == http.StatusTooManyRequests:
			typ, code = "rate_limit_error", "rate_limit_exceeded"
		case status >= 500:
			typ = "server_error"
		}
		body = map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": code}}
	}
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func anthropicErrorType(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	case 529:
		return "overloaded_error"
	}
	if status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}
