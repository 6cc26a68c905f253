// Package refagent is agentbroker's reference ACP agent: a small, scripted
// agent for tests and the demo. It speaks ACP v1 over stdio with the wire
// types of package acp (and nothing of acp's client), connects to the MCP
// servers it is given at session/new (HTTP with the given headers, or a
// stdio command with the given env), and answers prompts:
//
//   - `call <tool> with {json}`: plan, thought, tool_call (pending, title
//     mcp__<server>__<tool>, kind other), session/request_permission
//     (options "proceed" allow_once, "always" allow_always, "deny"
//     reject_once), then tool_call_update in_progress, the MCP tools/call,
//     tool_call_update completed with the result, and the reply
//     "<tool> returned: <text>". A rejection replies that permission was
//     denied and does not call the tool; a cancellation ends the turn with
//     stopReason cancelled.
//   - `fs:read <path>` and `fs:write <path> <content>`: use the client's fs;
//     a write is reported as a tool call of kind edit with its diff.
//   - fault modes: `fault:crash` (exit at once), `fault:stall` (never
//     answer, ignore cancel), `fault:garbage` (non-JSON lines on stdout, then
//     a normal reply), `fault:flood N` (N chunks), `fault:bigline N` (one
//     update of N bytes), `fault:exit-mid-turn` (a chunk, then exit),
//     `fault:ignore-eof` (keep running after stdin ends), `fault:unknown`
//     (an unknown notification and an unknown request to the client),
//     `fault:crash-after N` (N chunks, then exit without answering),
//     `fault:noise N` (one non-JSON line of N bytes, then a normal reply),
//     `fault:error [MESSAGE]` (a chunk, then a JSON-RPC error answers the
//     prompt, as an agent reports a failed turn).
//   - `model:call N`: N model calls, one after the other, to the Anthropic
//     Messages API at Options.ModelURL (ANTHROPIC_BASE_URL) with
//     Options.ModelKey (ANTHROPIC_API_KEY) as x-api-key, for
//     Options.Model (ANTHROPIC_MODEL); the first refused call ends the
//     turn with its status and error message in the reply, as an agent
//     shows it.
//   - a prompt of several lines with a line `refagent: <command>` (a task
//     run's prompt, which holds the task's description among other text):
//     the first such line's command, as above.
//   - anything else: a thought and the reply "You said: <prompt>".
//
// session/cancel stops the turn (stopReason cancelled). Only JSON-RPC goes
// to stdout; logs go to the Logger (stderr in the binary).
package refagent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/agentbroker/agentbroker/acp"
)

// Version of the reference agent.
const Version = "0.1.0"

// Name of the reference agent (agentInfo.name).
const Name = "agentbroker-refagent"

// AuthMethodID is the method advertised when Options.RequireAuth is set.
const AuthMethodID = "refagent-key"

// Permission option IDs (deliberately not the kinds).
const (
	OptionProceed = "proceed"
	OptionAlways  = "always"
	OptionDeny    = "deny"
)

// Errors Run returns for the process-ending fault modes.
var (
	ErrCrash       = errors.New("refagent: fault:crash")
	ErrExitMidTurn = errors.New("refagent: fault:exit-mid-turn")
)

// Options configure Run.
type Options struct {
	// Logger receives logs. Nil: silent.
	Logger *slog.Logger
	// NoHTTPMCP advertises mcpCapabilities.http false, so that clients
	// send stdio MCP entries.
	NoHTTPMCP bool
	// RequireAuth makes session/new and session/load answer -32000 until
	// authenticate is called with AuthMethodID.
	RequireAuth bool
	// IgnoreEOF keeps Run going after stdin ends, until ctx ends (as Zed's
	// codex-acp does).
	IgnoreEOF bool
	// StateDir, if set, keeps session histories on disk so that another
	// process can session/load them.
	StateDir string
	// ModelURL, ModelKey and Model are where `model:call` sends its
	// requests (an Anthropic Messages base URL without /v1), the key and
	// the model. Empty ModelURL: model:call fails.
	ModelURL, ModelKey, Model string
	// MCPDelay, when positive, makes session/new return before the agent
	// connects to its MCP servers, which it does that long afterwards (as
	// Copilot CLI, about 0.1 s, and Qwen Code, about 0.5 s, do). A prompt
	// that comes first finds no MCP tool.
	MCPDelay time.Duration
}

// OptionsFromEnv reads REFAGENT_MCP_HTTP=0, REFAGENT_REQUIRE_AUTH=1,
// REFAGENT_IGNORE_EOF=1, REFAGENT_STATE_DIR and REFAGENT_MCP_DELAY (a Go
// duration, at most a minute).
func OptionsFromEnv(getenv func(string) string) Options {
	var delay time.Duration
	if d, err := time.ParseDuration(getenv("REFAGENT_MCP_DELAY")); err == nil && d > 0 && d <= time.Minute {
		delay = d
	}
	return Options{
		MCPDelay:    delay,
		NoHTTPMCP:   getenv("REFAGENT_MCP_HTTP") == "0",
		RequireAuth: getenv("REFAGENT_REQUIRE_AUTH") == "1",
		IgnoreEOF:   getenv("REFAGENT_IGNORE_EOF") == "1",
		StateDir:    getenv("REFAGENT_STATE_DIR"),
		ModelURL:    getenv("ANTHROPIC_BASE_URL"),
		ModelKey:    getenv("ANTHROPIC_API_KEY"),
		Model:       getenv("ANTHROPIC_MODEL"),
	}
}

type agent struct {
	opts   Options
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelCauseFunc
	out    *lockedWriter
	rpc    atomic.Pointer[jsonrpc2.Conn]
	wg     sync.WaitGroup

	ids       atomic.Int64
	ignoreEOF atomic.Bool

	mu            sync.Mutex
	closing       bool
	authenticated bool
	clientCaps    acp.ClientCapabilities
	sessions      map[string]*session
}

type session struct {
	id      string
	cwd     string
	mcp     []*mcpConn
	history []acp.SessionUpdate
	mode    string
	model   string
	cancel  context.CancelFunc // of the running turn
}

// Run serves one client on stdin/stdout until stdin ends (unless
// IgnoreEOF), ctx ends, or a fault mode ends it (ErrCrash, ErrExitMidTurn).
func Run(ctx context.Context, stdin io.Reader, stdout io.Writer, opts Options) error {
	a := &agent{opts: opts, log: opts.Logger, out: &lockedWriter{w: stdout}, sessions: map[string]*session{}}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.ignoreEOF.Store(opts.IgnoreEOF)
	a.ctx, a.cancel = context.WithCancelCause(ctx)
	stream := jsonrpc2.NewPlainObjectStream(&rwc{r: stdin, w: a.out})
	conn := jsonrpc2.NewConn(a.ctx, stream, handler{a}, jsonrpc2.SetLogger(logAdapter{a.log}))
	a.rpc.Store(conn)

	select {
	case <-conn.DisconnectNotify():
		if a.ctx.Err() == nil && a.ignoreEOF.Load() {
			a.log.Info("refagent: stdin ended; ignoring it (fault:ignore-eof)")
			<-a.ctx.Done()
		}
	case <-a.ctx.Done():
	}
	cause := context.Cause(a.ctx)
	a.cancel(errors.New("refagent: stopping"))
	conn.Close()
	a.mu.Lock()
	a.closing = true
	a.mu.Unlock()
	a.wg.Wait()
	for _, s := range a.sessions {
		for _, m := range s.mcp {
			m.client.Close()
		}
	}
	if errors.Is(cause, ErrCrash) || errors.Is(cause, ErrExitMidTurn) {
		return cause
	}
	if ctx.Err() != nil {
		return fmt.Errorf("refagent: %w", context.Cause(ctx))
	}
	return nil
}

// goDo runs f on a goroutine Run waits for.
func (a *agent) goDo(f func()) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closing {
		return false
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		f()
	}()
	return true
}

type handler struct{ a *agent }

// Handle runs on the read loop; it answers quick requests at once.
func (h handler) Handle(_ context.Context, conn *jsonrpc2.Conn, req *jsonrpc2.Request) {
	h.a.rpc.Store(conn) // the same conn Run stores; it may not have yet
	res, err := h.a.handle(conn, req)
	if req.Notif || errors.Is(err, errNoReply) {
		return
	}
	if err != nil {
		var je *jsonrpc2.Error
		if !errors.As(err, &je) {
			je = &jsonrpc2.Error{Code: acp.CodeInternalError, Message: err.Error()}
		}
		_ = conn.ReplyWithError(context.Background(), req.ID, je)
		return
	}
	_ = conn.Reply(context.Background(), req.ID, res)
}

// handle decides a message; requests that take time go to goroutines and
// are answered from there (errNoReply).
func (a *agent) handle(conn *jsonrpc2.Conn, req *jsonrpc2.Request) (any, error) {
	var params json.RawMessage
	if req.Params != nil {
		params = *req.Params
	}
	switch req.Method {
	case acp.MethodSessionCancel:
		var p acp.CancelNotification
		if json.Unmarshal(params, &p) == nil {
			a.mu.Lock()
			if s, ok := a.sessions[p.SessionID]; ok && s.cancel != nil {
				s.cancel()
			}
			a.mu.Unlock()
			a.log.Info("refagent: cancel", "session", p.SessionID)
		}
		return nil, nil
	case acp.MethodInitialize:
		return a.initialize(params)
	case acp.MethodAuthenticate:
		var p acp.AuthenticateRequest
		if err := json.Unmarshal(params, &p); err != nil || p.MethodID != AuthMethodID {
			return nil, &jsonrpc2.Error{Code: acp.CodeInvalidParams, Message: "unknown auth method"}
		}
		a.mu.Lock()
		a.authenticated = true
		a.mu.Unlock()
		return acp.AuthenticateResponse{}, nil
	case acp.MethodSessionNew, acp.MethodSessionLoad, acp.MethodSessionPrompt,
		acp.MethodSessionSetMode, acp.MethodSessionSetConfig:
		if req.Notif {
			return nil, nil
		}
		id, method := req.ID, req.Method
		a.goDo(func() {
			res, err := a.serve(method, params)
			if errors.Is(err, errNoReply) {
				return
			}
			if err != nil {
				var je *jsonrpc2.Error
				if !errors.As(err, &je) {
					je = &jsonrpc2.Error{Code: acp.CodeInternalError, Message: err.Error()}
				}
				_ = conn.ReplyWithError(context.Background(), id, je)
				return
			}
			_ = conn.Reply(context.Background(), id, res)
		})
		return nil, errNoReply
	}
	if req.Notif {
		return nil, nil
	}
	return nil, &jsonrpc2.Error{Code: acp.CodeMethodNotFound, Message: "method not found: " + req.Method}
}

var errNoReply = errors.New("answered later")

func (a *agent) initialize(params json.RawMessage) (any, error) {
	var p acp.InitializeRequest
	if err := json.Unmarshal(params, &p); err != nil {
		return nil, &jsonrpc2.Error{Code: acp.CodeInvalidParams, Message: err.Error()}
	}
	a.mu.Lock()
	a.clientCaps = p.ClientCapabilities
	a.mu.Unlock()
	resp := acp.InitializeResponse{
		ProtocolVersion: acp.ProtocolVersion,
		AgentCapabilities: acp.AgentCapabilities{
			LoadSession:        true,
			PromptCapabilities: acp.PromptCapabilities{EmbeddedContext: true},
			McpCapabilities:    acp.McpCapabilities{HTTP: !a.opts.NoHTTPMCP},
		},
		AgentInfo:   &acp.Implementation{Name: Name, Title: "agentbroker reference agent", Version: Version},
		AuthMethods: []acp.AuthMethod{},
	}
	if a.opts.RequireAuth {
		resp.AuthMethods = []acp.AuthMethod{{ID: AuthMethodID, Name: "Reference key", Description: "Always works"}}
	}
	return resp, nil
}

func (a *agent) serve(method string, params json.RawMessage) (any, error) {
	switch method {
	case acp.MethodSessionNew:
		var p acp.NewSessionRequest
		if err := json.Unmarshal(params, &p); err != nil {
			return nil, &jsonrpc2.Error{Code: acp.CodeInvalidParams, Message: err.Error()}
		}
		if err := a.checkAuth(); err != nil {
			return nil, err
		}
		s := &session{id: fmt.Sprintf("ref-%d", a.ids.Add(1)), cwd: p.Cwd, mode: "default", model: defaultModel}
		if d := a.opts.MCPDelay; d > 0 {
			servers := p.McpServers
			a.goDo(func() {
				select {
				case <-time.After(d):
				case <-a.ctx.Done():
					return
				}
				conns := a.connectAll(servers)
				a.mu.Lock()
				s.mcp = conns
				a.mu.Unlock()
			})
		} else {
			s.mcp = a.connectAll(p.McpServers)
		}
		a.mu.Lock()
		a.sessions[s.id] = s
		a.mu.Unlock()
		a.goDo(func() { a.send(s.id, commandsUpdate()) })
		return acp.NewSessionResponse{SessionID: s.id, Modes: modes(s.mode), ConfigOptions: configOptions(s)}, nil
	case acp.MethodSessionLoad:
		var p acp.LoadSessionRequest
		if err := json.Unmarshal(params, &p); err != nil {
			return nil, &jsonrpc2.Error{Code: acp.CodeInvalidParams, Message: err.Error()}
		}
		if err := a.checkAuth(); err != nil {
			return nil, err
		}
		s, err := a.loadSession(p)
		if err != nil {
			return nil, err
		}
		for _, u := range s.history {
			a.send(s.id, u)
		}
		return acp.LoadSessionResponse{Modes: modes(s.mode), ConfigOptions: configOptions(s)}, nil
	case acp.MethodSessionSetMode:
		var p acp.SetSessionModeRequest
		if err := json.Unmarshal(params, &p); err != nil {
			return nil, &jsonrpc2.Error{Code: acp.CodeInvalidParams, Message: err.Error()}
		}
		s, err := a.session(p.SessionID)
		if err != nil {
			return nil, err
		}
		if p.ModeID != "default" && p.ModeID != "yolo" {
			return nil, &jsonrpc2.Error{Code: acp.CodeInvalidParams, Message: "unknown mode " + p.ModeID}
		}
		a.mu.Lock()
		s.mode = p.ModeID
		a.mu.Unlock()
		a.send(s.id, acp.SessionUpdate{Kind: acp.UpdateCurrentMode, CurrentMode: &acp.CurrentModeUpdate{CurrentModeID: p.ModeID}})
		return acp.SetSessionModeResponse{}, nil
	case acp.MethodSessionSetConfig:
		var p acp.SetSessionConfigOptionRequest
		if err := json.Unmarshal(params, &p); err != nil {
			return nil, &jsonrpc2.Error{Code: acp.CodeInvalidParams, Message: err.Error()}
		}
		s, err := a.session(p.SessionID)
		if err != nil {
			return nil, err
		}
		a.mu.Lock()
		switch p.ConfigID {
		case "model":
			s.model = p.Value
		case "mode":
			s.mode = p.Value
		default:
			a.mu.Unlock()
			return nil, &jsonrpc2.Error{Code: acp.CodeInvalidParams, Message: "unknown config option " + p.ConfigID}
		}
		opts := configOptions(s)
		a.mu.Unlock()
		return acp.SetSessionConfigOptionResponse{ConfigOptions: opts}, nil
	case acp.MethodSessionPrompt:
		var p acp.PromptRequest
		if err := json.Unmarshal(params, &p); err != nil {
			return nil, &jsonrpc2.Error{Code: acp.CodeInvalidParams, Message: err.Error()}
		}
		return a.prompt(p)
	}
	return nil, &jsonrpc2.Error{Code: acp.CodeMethodNotFound, Message: "method not found: " + method}
}

func (a *agent) checkAuth() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.opts.RequireAuth && !a.authenticated {
		return &jsonrpc2.Error{Code: acp.CodeAuthRequired, Message: "Authentication required"}
	}
	return nil
}

func (a *agent) session(id string) (*session, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.sessions[id]
	if !ok {
		return nil, &jsonrpc2.Error{Code: acp.CodeResourceNotFound, Message: "unknown session " + id}
	}
	return s, nil
}

// connectAll connects to every MCP server; like real agents it does not
// fail session/new when a server is unreachable (the tools are missing).
func (a *agent) connectAll(entries []acp.McpServer) []*mcpConn {
	var out []*mcpConn
	for _, e := range entries {
		a.log.Info("refagent: connecting to MCP", "server", e)
		m, err := connectMCP(a.ctx, e, a.log)
		if err != nil {
			a.log.Warn("refagent: MCP server unavailable", "server", e.Name, "err", err)
			continue
		}
		a.log.Info("refagent: MCP connected", "server", e.Name, "tools", m.tools)
		out = append(out, m)
	}
	return out
}

const defaultModel = "claude-sonnet-4-6"

func modes(current string) *acp.SessionModeState {
	return &acp.SessionModeState{CurrentModeID: current, AvailableModes: []acp.SessionMode{
		{ID: "default", Name: "Default", Description: "Ask before tool calls"},
		{ID: "yolo", Name: "YOLO", Description: "Still asks: the reference agent always asks"},
	}}
}

func configOptions(s *session) []acp.ConfigOption {
	str := func(v string) json.RawMessage { b, _ := json.Marshal(v); return b }
	return []acp.ConfigOption{
		{ID: "mode", Name: "Mode", Category: acp.ConfigCategoryMode, Type: "select", CurrentValue: str(s.mode),
			Options: []acp.ConfigSelectOption{{Value: "default", Name: "Default"}, {Value: "yolo", Name: "YOLO"}}},
		{ID: "model", Name: "Model", Category: acp.ConfigCategoryModel, Type: "select", CurrentValue: str(s.model),
			Options: []acp.ConfigSelectOption{{Value: "claude-sonnet-4-6", Name: "Sonnet 4.6"},
				{Value: "claude-opus-4-8", Name: "Opus 4.8"}, {Value: "gpt-5.5", Name: "GPT-5.5"}}},
	}
}

func commandsUpdate() acp.SessionUpdate {
	return acp.SessionUpdate{Kind: acp.UpdateAvailableCommands, AvailableCommands: &acp.AvailableCommandsUpdate{
		AvailableCommands: []acp.AvailableCommand{{Name: "echo", Description: "Repeat the prompt"}}}}
}

// send writes a session/update.
func (a *agent) send(sessionID string, u acp.SessionUpdate) {
	if err := a.conn().Notify(context.Background(), acp.MethodSessionUpdate, acp.SessionNotification{SessionID: sessionID, Update: u}); err != nil {
		a.log.Debug("refagent: update not sent", "err", err)
	}
}

func chunk(kind, text string) acp.SessionUpdate {
	return acp.SessionUpdate{Kind: kind, Chunk: &acp.ContentChunk{Content: acp.TextBlock(text)}}
}

var callRE = regexp.MustCompile(`(?s)^call\s+([A-Za-z0-9_.-]+)\s+with\s+(\{.*\})\s*$`)

// prompt runs a turn.
func (a *agent) prompt(p acp.PromptRequest) (any, error) {
	s, err := a.session(p.SessionID)
	if err != nil {
		return nil, err
	}
	var texts []string
	for _, b := range p.Prompt {
		if b.Type == acp.ContentText {
			texts = append(texts, b.Text)
		}
	}
	text := strings.TrimSpace(strings.Join(texts, "\n"))
	for line := range strings.Lines(text) {
		if cmd, ok := strings.CutPrefix(strings.TrimSpace(line), "refagent: "); ok {
			text = strings.TrimSpace(cmd)
			break
		}
	}
	ctx, cancel := context.WithCancel(a.ctx)
	defer cancel()
	a.mu.Lock()
	s.cancel = cancel
	s.history = append(s.history, chunk(acp.UpdateUserMessageChunk, text))
	a.mu.Unlock()
	reply := func(t string) {
		u := chunk(acp.UpdateAgentMessageChunk, t)
		a.send(s.id, u)
		a.mu.Lock()
		s.history = append(s.history, u)
		a.mu.Unlock()
	}
	defer a.saveSession(s)
	end := func() (any, error) {
		if ctx.Err() != nil {
			return acp.PromptResponse{StopReason: acp.StopCancelled}, nil
		}
		return acp.PromptResponse{StopReason: acp.StopEndTurn}, nil
	}
	verb, arg, _ := strings.Cut(text, " ")
	switch verb {
	case "fault:crash":
		a.log.Info("refagent: crashing (fault:crash)")
		a.cancel(ErrCrash)
		return nil, errNoReply
	case "fault:stall":
		a.log.Info("refagent: stalling (fault:stall)")
		<-a.ctx.Done()
		return nil, errNoReply
	case "fault:error":
		reply("about to fail")
		if arg == "" {
			arg = "the model is unreachable"
		}
		return nil, &jsonrpc2.Error{Code: acp.CodeInternalError, Message: arg}
	case "fault:exit-mid-turn":
		reply("about to exit")
		a.cancel(ErrExitMidTurn)
		return nil, errNoReply
	case "model:call":
		n, err := strconv.Atoi(arg)
		if err != nil || n < 1 {
			reply("model:call wants a positive count")
			return end()
		}
		made, err := a.callModel(ctx, n)
		if err != nil {
			reply(fmt.Sprintf("model call %d failed: %v", made+1, err))
			return end()
		}
		reply(fmt.Sprintf("made %d model calls", made))
		return end()
	case "fault:garbage":
		for _, g := range []string{"this is not JSON", "{not json either", "[1,2,3]", `"a string"`,
			`{"jsonrpc":"2.0","id":null,"result":{}}`, `{"no":"method"}`, "\x00\x01\x02 binary", "   "} {
			a.out.Write([]byte(g + "\n"))
		}
		reply("after the garbage")
		return end()
	case "fault:flood":
		n, _ := strconv.Atoi(arg)
		for i := range n {
			a.send(s.id, chunk(acp.UpdateAgentMessageChunk, fmt.Sprintf("chunk %d", i+1)))
		}
		return end()
	case "fault:crash-after":
		// N chunks, then the process ends without answering the prompt:
		// a crash at a chosen point of a turn.
		n, _ := strconv.Atoi(arg)
		for i := range n {
			a.send(s.id, chunk(acp.UpdateAgentMessageChunk, fmt.Sprintf("chunk %d", i+1)))
		}
		a.log.Info("refagent: crashing (fault:crash-after)", "after", n)
		a.cancel(ErrCrash)
		return nil, errNoReply
	case "fault:noise":
		// One line of N bytes that is not JSON, then a normal reply.
		n, _ := strconv.Atoi(arg)
		line := make([]byte, 0, 64<<10)
		for len(line) < cap(line) {
			line = append(line, "noise "...)
		}
		for left := n; left > 0; left -= len(line) {
			a.out.Write(line[:min(left, len(line))])
		}
		a.out.Write([]byte("\n"))
		reply("after the noise")
		return end()
	case "fault:bigline":
		n, _ := strconv.Atoi(arg)
		reply(strings.Repeat("x", n))
		return end()
	case "fault:ignore-eof":
		a.ignoreEOF.Store(true)
		reply("I will ignore the end of stdin")
		return end()
	case "fault:unknown":
		_ = a.conn().Notify(ctx, "_refagent/notice", map[string]string{"hello": "client"})
		err := a.conn().Call(ctx, "_refagent/ping", map[string]string{}, nil, a.stringID())
		var je *jsonrpc2.Error
		if errors.As(err, &je) {
			reply(fmt.Sprintf("unknown request answered %d", je.Code))
		} else {
			reply(fmt.Sprintf("unknown request answered: %v", err))
		}
		return end()
	case "fs:read", "fs:write":
		reply(a.fsTurn(ctx, s, verb, arg))
		return end()
	}
	if m := callRE.FindStringSubmatch(text); m != nil {
		return a.toolTurn(ctx, s, m[1], m[2], reply, end)
	}
	a.send(s.id, chunk(acp.UpdateAgentThoughtChunk, "The user did not ask for a tool."))
	reply("You said: " + text)
	return end()
}

func (a *agent) stringID() jsonrpc2.CallOption {
	return jsonrpc2.PickID(jsonrpc2.ID{Str: fmt.Sprintf("ref-req-%d", a.ids.Add(1)), IsString: true})
}

// toolTurn calls an MCP tool after asking for permission.
func (a *agent) toolTurn(ctx context.Context, s *session, tool, rawArgs string, reply func(string), end func() (any, error)) (any, error) {
	var args map[string]any
	if err := json.Unmarshal([]byte(rawArgs), &args); err != nil {
		reply(fmt.Sprintf("I could not read the arguments: %v", err))
		return end()
	}
	var server *mcpConn
	a.mu.Lock()
	conns := s.mcp
	a.mu.Unlock()
	for _, m := range conns {
		if m.has(tool) {
			server = m
			break
		}
	}
	if server == nil {
		reply(fmt.Sprintf("%s is not available: no connected MCP server has it", tool))
		return end()
	}
	plan := func(status string) acp.SessionUpdate {
		return acp.SessionUpdate{Kind: acp.UpdatePlan, Plan: &acp.Plan{Entries: []acp.PlanEntry{
			{Content: "Call " + tool, Priority: "high", Status: status},
			{Content: "Report the result", Priority: "medium", Status: "pending"},
		}}}
	}
	a.send(s.id, plan("in_progress"))
	a.send(s.id, chunk(acp.UpdateAgentThoughtChunk, fmt.Sprintf("I will call %s on %s.", tool, server.name)))
	id := fmt.Sprintf("call_%d", a.ids.Add(1))
	tc := acp.ToolCall{ToolCallID: id, Title: "mcp__" + server.name + "__" + tool, Kind: acp.ToolKindOther,
		Status: acp.ToolStatusPending, RawInput: json.RawMessage(rawArgs)}
	a.send(s.id, acp.SessionUpdate{Kind: acp.UpdateToolCall, ToolCall: &tc})
	update := func(u acp.ToolCall) {
		u.ToolCallID = id
		a.send(s.id, acp.SessionUpdate{Kind: acp.UpdateToolCallUpdate, ToolCall: &u})
	}

	var perm acp.RequestPermissionResponse
	req := acp.RequestPermissionRequest{SessionID: s.id, ToolCall: tc, Options: []acp.PermissionOption{
		{OptionID: OptionProceed, Name: "Allow", Kind: acp.AllowOnce},
		{OptionID: OptionAlways, Name: "Always allow", Kind: acp.AllowAlways},
		{OptionID: OptionDeny, Name: "Deny", Kind: acp.RejectOnce},
	}}
	// Wait for the client's answer even after a cancel: the client must
	// answer "cancelled".
	if err := a.conn().Call(a.ctx, acp.MethodRequestPermission, req, &perm, a.stringID()); err != nil {
		return nil, fmt.Errorf("request_permission: %w", err)
	}
	if perm.Outcome.Outcome == acp.OutcomeCancelled || ctx.Err() != nil {
		update(acp.ToolCall{Status: acp.ToolStatusFailed})
		return acp.PromptResponse{StopReason: acp.StopCancelled}, nil
	}
	allowed := perm.Outcome.OptionID == OptionProceed || perm.Outcome.OptionID == OptionAlways
	if !allowed {
		update(acp.ToolCall{Status: acp.ToolStatusFailed})
		reply(fmt.Sprintf("Permission denied: I did not call %s.", tool))
		return end()
	}
	update(acp.ToolCall{Status: acp.ToolStatusInProgress})
	text, raw, err := server.call(ctx, tool, args)
	if ctx.Err() != nil {
		update(acp.ToolCall{Status: acp.ToolStatusFailed})
		return acp.PromptResponse{StopReason: acp.StopCancelled}, nil
	}
	if err != nil {
		update(acp.ToolCall{Status: acp.ToolStatusFailed, RawOutput: raw})
		reply(fmt.Sprintf("%s failed: %v", tool, err))
		return end()
	}
	block := acp.TextBlock(text)
	update(acp.ToolCall{Status: acp.ToolStatusCompleted, RawOutput: raw,
		Content: []acp.ToolCallContent{{Type: "content", Content: &block}}})
	reply(fmt.Sprintf("%s returned: %s", tool, text))
	a.send(s.id, plan("completed"))
	return end()
}

// fsTurn reads or writes a file through the client.
func (a *agent) fsTurn(ctx context.Context, s *session, verb, arg string) string {
	a.mu.Lock()
	caps := a.clientCaps.FS
	a.mu.Unlock()
	path, content, _ := strings.Cut(arg, " ")
	if !filepath.IsAbs(path) {
		path = filepath.Join(s.cwd, path)
	}
	if verb == "fs:read" {
		if !caps.ReadTextFile {
			return "the client does not read files"
		}
		var r acp.ReadTextFileResponse
		if err := a.conn().Call(ctx, acp.MethodFSReadTextFile, acp.ReadTextFileRequest{SessionID: s.id, Path: path}, &r, a.stringID()); err != nil {
			return "read failed: " + err.Error()
		}
		return "read: " + r.Content
	}
	if !caps.WriteTextFile {
		return "the client does not write files"
	}
	// As agents report an edit: a tool call of kind edit whose content is
	// the diff (the file's text before, read through the client when it
	// reads files, and after), completed once the write is done.
	var before *string
	if caps.ReadTextFile {
		var r acp.ReadTextFileResponse
		if a.conn().Call(ctx, acp.MethodFSReadTextFile, acp.ReadTextFileRequest{SessionID: s.id, Path: path}, &r, a.stringID()) == nil {
			before = &r.Content
		}
	}
	id := fmt.Sprintf("call_%d", a.ids.Add(1))
	diff := []acp.ToolCallContent{{Type: "diff", Path: path, OldText: before, NewText: &content}}
	tc := acp.ToolCall{ToolCallID: id, Title: "Write " + filepath.Base(path), Kind: acp.ToolKindEdit, Status: acp.ToolStatusPending,
		Content: diff, Locations: []acp.ToolCallLocation{{Path: path}}}
	a.send(s.id, acp.SessionUpdate{Kind: acp.UpdateToolCall, ToolCall: &tc})
	var r acp.WriteTextFileResponse
	if err := a.conn().Call(ctx, acp.MethodFSWriteTextFile, acp.WriteTextFileRequest{SessionID: s.id, Path: path, Content: content}, &r, a.stringID()); err != nil {
		a.send(s.id, acp.SessionUpdate{Kind: acp.UpdateToolCallUpdate, ToolCall: &acp.ToolCall{ToolCallID: id, Status: acp.ToolStatusFailed}})
		return "write failed: " + err.Error()
	}
	a.send(s.id, acp.SessionUpdate{Kind: acp.UpdateToolCallUpdate, ToolCall: &acp.ToolCall{ToolCallID: id, Status: acp.ToolStatusCompleted, Content: diff}})
	return "wrote " + path
}

type savedSession struct {
	Cwd     string              `json:"cwd"`
	History []acp.SessionUpdate `json:"history"`
}

func (a *agent) saveSession(s *session) {
	if a.opts.StateDir == "" {
		return
	}
	a.mu.Lock()
	b, err := json.Marshal(savedSession{Cwd: s.cwd, History: s.history})
	a.mu.Unlock()
	if err == nil {
		err = os.WriteFile(filepath.Join(a.opts.StateDir, s.id+".json"), b, 0o600)
	}
	if err != nil {
		a.log.Warn("refagent: session not saved", "err", err)
	}
}

func (a *agent) loadSession(p acp.LoadSessionRequest) (*session, error) {
	a.mu.Lock()
	s, ok := a.sessions[p.SessionID]
	a.mu.Unlock()
	if !ok {
		if a.opts.StateDir == "" || strings.ContainsAny(p.SessionID, `/\`) {
			return nil, &jsonrpc2.Error{Code: acp.CodeResourceNotFound, Message: "unknown session " + p.SessionID}
		}
		b, err := os.ReadFile(filepath.Join(a.opts.StateDir, p.SessionID+".json"))
		if err != nil {
			return nil, &jsonrpc2.Error{Code: acp.CodeResourceNotFound, Message: "unknown session " + p.SessionID}
		}
		var saved savedSession
		if err := json.Unmarshal(b, &saved); err != nil {
			return nil, err
		}
		s = &session{id: p.SessionID, history: saved.History, mode: "default", model: defaultModel}
	}
	for _, m := range s.mcp {
		m.client.Close()
	}
	s.cwd = p.Cwd
	s.mcp = a.connectAll(p.McpServers)
	a.mu.Lock()
	a.sessions[s.id] = s
	a.mu.Unlock()
	return s, nil
}

// lockedWriter keeps each write (one JSON line from the encoder, or a
// garbage line) whole.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// rwc is the stream under jsonrpc2. Close closes stdin (so the read loop
// ends) but not stdout: the process, or the test, owns it.
type rwc struct {
	r io.Reader
	w io.Writer
}

func (c *rwc) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *rwc) Write(p []byte) (int, error) { return c.w.Write(p) }
func (c *rwc) Close() error {
	if cl, ok := c.r.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

type logAdapter struct{ log *slog.Logger }

func (l logAdapter) Printf(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }

func (a *agent) conn() *jsonrpc2.Conn { return a.rpc.Load() }

// callModel makes n Messages calls, one after the other; it returns how
// many succeeded and the first failure.
func (a *agent) callModel(ctx context.Context, n int) (int, error) {
	if a.opts.ModelURL == "" {
		return 0, errors.New("no model URL (ANTHROPIC_BASE_URL)")
	}
	body, _ := json.Marshal(map[string]any{"model": a.opts.Model, "max_tokens": 64,
		"messages": []map[string]string{{"role": "user", "content": "hello"}}})
	for i := range n {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(a.opts.ModelURL, "/")+"/v1/messages", bytes.NewReader(body))
		if err != nil {
			return i, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Api-Key", a.opts.ModelKey)
		req.Header.Set("Anthropic-Version", "2023-06-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return i, err
		}
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			var e struct {
				Error struct {
					Message string `json:"message"`
				} `json:"error"`
			}
			_ = json.Unmarshal(raw, &e)
			return i, fmt.Errorf("%d %s", resp.StatusCode, e.Error.Message)
		}
	}
	return n, nil
}
