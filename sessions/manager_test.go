package sessions

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentbroker/agentbroker/acp/profile"
	"github.com/agentbroker/agentbroker/catalog"
	"github.com/agentbroker/agentbroker/internal/server"
	"github.com/agentbroker/agentbroker/mcpserver"
	"github.com/agentbroker/agentbroker/proxy"
	"github.com/agentbroker/agentbroker/store"
	"github.com/agentbroker/agentbroker/store/sqlite"
	"github.com/agentbroker/agentbroker/tokens"
)

// refagentBin is the reference ACP agent, built once by TestMain: the
// session tests run it as a real process.
var refagentBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sessions-refagent")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	refagentBin = filepath.Join(dir, "refagent")
	build := exec.Command("go", "build", "-o", refagentBin, "github.com/agentbroker/agentbroker/internal/refagent/cmd/refagent")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build refagent: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// wait is the generous bound of every wait in these tests (2 shared cores,
// -race).
const wait = 45 * time.Second

// broker is a Manager with a real store, token service and MCP server
// behind an httptest server, running the reference agent.
type broker struct {
	t       *testing.T
	db      *sqlite.DB
	svc     *tokens.Service
	mgr     *Manager
	mcp     *mcpserver.Server
	srv     *httptest.Server
	mux     Mux // the broker's routes, for more (the proxy)
	admin   string
	dataDir string
	project store.Project
	task    store.Task
	cwd     string
}

type brokerOpts struct {
	db      *sqlite.DB // reuse (a broker restart)
	dataDir string
	project *store.Project
	mcpURL  string // override (an unreachable MCP server)
	tweak   func(*Options)
}

func newBroker(t *testing.T, o brokerOpts) *broker {
	t.Helper()
	ctx := context.Background()
	b := &broker{t: t, db: o.db, dataDir: o.dataDir}
	if b.db == nil {
		b.db = openDB(t)
	}
	if b.dataDir == "" {
		b.dataDir = t.TempDir()
	}
	var err error
	b.svc, err = tokens.New(ctx, b.db, b.db, &tokens.Options{RefreshInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if o.project != nil {
		b.project = *o.project
	} else {
		b.cwd = t.TempDir()
		b.project, err = b.db.CreateProject(ctx, store.Project{Name: "demo", RepoPath: b.cwd, Instructions: "Run the tests."})
		if err != nil {
			t.Fatal(err)
		}
		b.task, err = b.db.CreateTask(ctx, store.Task{ProjectID: b.project.ID, Title: "Fix the flux capacitor",
			Description: "It needs 1.21 gigawatts."})
		if err != nil {
			t.Fatal(err)
		}
	}
	b.cwd = b.project.RepoPath
	// The broker's own HTTP front, middleware included (the events
	// WebSocket must get through it).
	mux := server.New(&server.Options{})
	b.srv, b.mux = httptest.NewServer(mux.Handler()), mux
	t.Cleanup(b.srv.Close)
	mcpURL := b.srv.URL + "/mcp"
	if o.mcpURL != "" {
		mcpURL = o.mcpURL
	}
	opts := Options{
		Store: b.db, Tokens: b.svc, SessionsDir: filepath.Join(b.dataDir, "sessions"), MCPURL: mcpURL,
		Agents: map[profile.Name]AgentConfig{
			profile.Custom: {Command: []string{refagentBin}, ExtraEnv: []string{"REFAGENT_STATE_DIR={session_dir}"},
				CatalogAgent: "claude-code"},
			profile.ClaudeCode: {InstallDir: filepath.Join(b.dataDir, "not-installed")},
			profile.CodexZed:   {InstallDir: filepath.Join(b.dataDir, "not-installed")},
		},
		ProxyBaseURL: b.srv.URL,
		ReadyTimeout: 20 * time.Second, AskTimeout: wait, CancelGrace: 10 * time.Second,
		StdinGrace: 2 * time.Second, TermGrace: 2 * time.Second, RestartBackoff: 50 * time.Millisecond,
	}
	if o.tweak != nil {
		o.tweak(&opts)
	}
	b.mgr, err = New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.mgr.Close(context.Background()) })
	b.mcp, err = mcpserver.New(&mcpserver.Options{Store: b.db, Tokens: b.svc, ResourceURL: b.srv.URL + "/mcp", Observer: b.mgr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.mcp.Close() })
	b.mcp.Mount(mux)
	b.mgr.Mount(mux)
	b.admin, _, err = b.svc.Mint(ctx, tokens.Grant{Subject: "tester", Audience: tokens.AudienceAdmin,
		Scopes: []tokens.Scope{tokens.ScopeAdmin}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var client = &http.Client{Timeout: 2 * wait}

// do sends a JSON request and decodes a JSON answer into out (if not nil).
func (b *broker) do(method, path, token string, body, out any) int {
	b.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			b.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, b.srv.URL+path, rd)
	if err != nil {
		b.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			b.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

func (b *broker) create(policy string, prompt string) CreateResponse {
	b.t.Helper()
	body := map[string]any{"project": b.project.ID, "agent": "custom", "credential": map[string]string{"kind": "none"},
		"permission_policy": policy}
	if prompt != "" {
		body["prompt"] = prompt
	}
	var cr CreateResponse
	var raw json.RawMessage
	if code := b.do("POST", "/v1/sessions", b.admin, body, &raw); code != http.StatusCreated {
		b.t.Fatalf("create: %d %s", code, raw)
	}
	if err := json.Unmarshal(raw, &cr); err != nil {
		b.t.Fatal(err)
	}
	return cr
}

func (b *broker) prompt(id, token, text string) TurnResult {
	b.t.Helper()
	var res TurnResult
	if code := b.do("POST", "/v1/sessions/"+id+"/prompt?wait=true", token, PromptRequest{Text: text}, &res); code != http.StatusOK {
		b.t.Fatalf("prompt %q: %d %+v", text, code, res)
	}
	return res
}

func (b *broker) events(id string) []store.Event {
	b.t.Helper()
	evs, err := b.db.Events(context.Background(), id, 0, store.MaxEventLimit)
	if err != nil {
		b.t.Fatal(err)
	}
	return evs
}

// waitEvent waits for an event of the session after seq after that match
// accepts, and returns it.
func (b *broker) waitEvent(id string, after int64, typ string, match func(map[string]any) bool) (store.Event, map[string]any) {
	b.t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		for _, e := range b.events(id) {
			if e.Seq <= after || e.Type != typ {
				continue
			}
			var d map[string]any
			_ = json.Unmarshal(e.Data, &d)
			if match == nil || match(d) {
				return e, d
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.t.Fatalf("no %s event in session %s after %d", typ, id, after)
	return store.Event{}, nil
}

func (b *broker) states(id string) []State {
	var out []State
	for _, e := range b.events(id) {
		if e.Type == EventState {
			var d struct{ State State }
			_ = json.Unmarshal(e.Data, &d)
			out = append(out, d.State)
		}
	}
	return out
}

// mcpToken is the agent's MCP token of a live session (tests only).
func (b *broker) mcpToken(id string) string {
	s := b.mgr.liveSession(id)
	if s == nil {
		b.t.Fatalf("session %s is not live", id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mcpToken
}

// mcpStatus calls tools/list on the MCP endpoint with token.
func (b *broker) mcpStatus(token string) int {
	b.t.Helper()
	req, _ := http.NewRequest("POST", b.srv.URL+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (b *broker) getTaskPrompt() string {
	return fmt.Sprintf(`call get_task with {"id":%q}`, b.task.ID)
}

// A session from creation to stop: every state change, a prompt whose reply
// carries our MCP tool's result, the transcript, and the stop that revokes
// the agent's token.
func TestSessionLifecycle(t *testing.T) {
	t.Parallel()
	b := newBroker(t, brokerOpts{})
	cr := b.create("allow-all", "")
	id := cr.Session.ID
	if !strings.HasPrefix(id, "ses_") || cr.Session.State != StateReady || cr.ViewerToken == "" {
		t.Fatalf("created = %+v", cr.Session)
	}
	if cr.Session.MCP == nil || cr.Session.MCP.Status != MCPConnected || cr.Session.MCP.TokenID == "" {
		t.Fatalf("mcp = %+v", cr.Session.MCP)
	}
	if cr.Session.Model != "claude-opus-4-8" {
		t.Errorf("model = %q, want the catalog default", cr.Session.Model)
	}
	// The MCP configuration was recorded before the launch: the config
	// event comes before the agent started.
	evs := b.events(id)
	if evs[0].Type != EventConfig || !bytes.Contains(evs[0].Data, []byte(cr.Session.MCP.TokenID)) {
		t.Fatalf("first event = %s %s", evs[0].Type, evs[0].Data)
	}
	token := b.mcpToken(id)
	if bytes.Contains(evs[0].Data, []byte(token)) {
		t.Fatal("the config event holds the token itself")
	}
	if fi, err := os.Stat(b.mgr.sessionDir(id)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("session dir: %v %v", fi.Mode(), err)
	}

	res := b.prompt(id, b.admin, b.getTaskPrompt())
	if res.StopReason != "end_turn" || !strings.Contains(res.Reply, "get_task returned:") ||
		!strings.Contains(res.Reply, "Fix the flux capacitor") {
		t.Fatalf("turn = %+v", res)
	}
	_, call := b.waitEvent(id, 0, EventToolCallMCP, nil)
	if call["tool"] != "get_task" || call["outcome"] != "ok" || call["token_id"] != cr.Session.MCP.TokenID {
		t.Errorf("tool call event = %v", call)
	}
	b.waitEvent(id, 0, EventPermissionAnswer, func(d map[string]any) bool { return d["reason"] == "policy allow-all" })
	// Usage reported by the inference proxy becomes an event.
	b.mgr.RecordUsage(context.Background(), proxy.UsageRecord{Session: id, Model: "claude-opus-4-8", Status: 200,
		Outcome: proxy.OutcomeOK, UsageReported: true, Usage: catalog.Usage{InputTokens: 12, OutputTokens: 34}})
	_, usage := b.waitEvent(id, 0, EventUsage, nil)
	if usage["model"] != "claude-opus-4-8" || usage["usage"].(map[string]any)["output_tokens"] != 34.0 {
		t.Errorf("usage event = %v", usage)
	}

	// The transcript serves later sessions.
	ctx := context.Background()
	msgs, err := b.db.SessionMessages(ctx, b.project.ID, id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	roles := map[store.MessageRole]string{}
	for _, m := range msgs {
		roles[m.Role] += m.Content + "\n"
	}
	if !strings.Contains(roles[store.RoleUser], "call get_task") || !strings.Contains(roles[store.RoleAssistant], "Fix the flux capacitor") ||
		!strings.Contains(roles[store.RoleThinking], "I will call get_task") || !strings.Contains(roles[store.RoleTool], "get_task") ||
		roles[store.RolePlan] == "" {
		t.Fatalf("transcript = %+v", roles)
	}
	hits, err := b.db.SearchMessages(ctx, b.project.ID, "flux capacitor", 10)
	if err != nil || !slices.ContainsFunc(hits, func(h store.SearchHit[store.Message]) bool {
		return h.Item.SessionID == id && h.Item.Role == store.RoleAssistant
	}) {
		t.Fatalf("search = %+v, %v", hits, err)
	}

	var list struct{ Sessions []Info }
	if code := b.do("GET", "/v1/sessions?project="+b.project.ID, b.admin, nil, &list); code != 200 ||
		len(list.Sessions) != 1 || list.Sessions[0].State != StateIdle {
		t.Fatalf("list = %d %+v", code, list)
	}
	var got Info
	if code := b.do("GET", "/v1/sessions/"+id, cr.ViewerToken, nil, &got); code != 200 || got.State != StateIdle || got.Turn != 1 {
		t.Fatalf("get = %d %+v", code, got)
	}
	if code := b.do("DELETE", "/v1/sessions/"+id, cr.ViewerToken, nil, nil); code != http.StatusForbidden &&
		code != http.StatusUnauthorized {
		t.Fatalf("a viewer token stopped the session: %d", code)
	}

	if b.mcpStatus(token) != http.StatusOK {
		t.Fatal("the agent's MCP token does not work while the session runs")
	}
	var stopped Info
	if code := b.do("DELETE", "/v1/sessions/"+id, b.admin, nil, &stopped); code != 200 || stopped.State != StateStopped {
		t.Fatalf("stop = %d %+v", code, stopped)
	}
	if code := b.mcpStatus(token); code != http.StatusUnauthorized {
		t.Fatalf("MCP with the stopped session's token: %d, want 401", code)
	}
	if pid := agentPid(b, id); pid == 0 || syscall.Kill(pid, 0) == nil {
		t.Fatalf("agent process %d still exists after the stop", pid)
	}
	if code := b.do("POST", "/v1/sessions/"+id+"/prompt", b.admin, PromptRequest{Text: "hi"}, nil); code != http.StatusConflict {
		t.Fatalf("prompt after stop: %d", code)
	}
	want := []State{StateStarting, StateReady, StatePrompting, StateIdle, StateStopping, StateStopped}
	if got := b.states(id); !slices.Equal(got, want) {
		t.Fatalf("states = %v, want %v", got, want)
	}
	rec, err := b.db.GetSession(ctx, b.project.ID, id)
	if err != nil || rec.State != string(StateStopped) || rec.Agent != "custom" || rec.Model != "claude-opus-4-8" {
		t.Fatalf("record = %+v, %v", rec, err)
	}
	// Every token of the session is revoked, the viewer's too.
	if code := b.do("GET", "/v1/sessions/"+id, cr.ViewerToken, nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("viewer token after stop: %d", code)
	}
	// The record and the log of an ended session are still served.
	if code := b.do("GET", "/v1/sessions/"+id, b.admin, nil, &got); code != 200 || got.State != StateStopped ||
		got.ACPSessionID == "" || got.MCP == nil {
		t.Fatalf("get after stop = %d %+v", code, got)
	}
}

// wsRead reads frames until one matches.
func wsRead(t *testing.T, c *websocket.Conn, match func(Frame) bool) Frame {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		c.SetReadDeadline(deadline)
		var f Frame
		if err := c.ReadJSON(&f); err != nil {
			t.Fatalf("read frame: %v", err)
		}
		if f.Type == "error" {
			t.Fatalf("error frame: %s", f.Error)
		}
		if match(f) {
			return f
		}
	}
}

func frameData(t *testing.T, f Frame) map[string]any {
	var d map[string]any
	if err := json.Unmarshal(f.Data, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// Under the ask policy a permission request goes to the viewers; one answers
// over the WebSocket and the turn goes on. Then a turn is cancelled while
// its request is pending.
func TestPermissionAnsweredByViewer(t *testing.T) {
	t.Parallel()
	b := newBroker(t, brokerOpts{})
	cr := b.create("ask", "")
	id := cr.Session.ID
	u := "ws" + strings.TrimPrefix(b.srv.URL, "http") + cr.EventsPath + "?after=0"
	ws, _, err := websocket.DefaultDialer.Dial(u, http.Header{"Authorization": {"Bearer " + cr.ViewerToken}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.WriteJSON(ClientMessage{Type: "prompt", Text: b.getTaskPrompt()}); err != nil {
		t.Fatal(err)
	}
	req := frameData(t, wsRead(t, ws, func(f Frame) bool { return f.Type == EventPermissionRequest }))
	rid, _ := req["request_id"].(string)
	if rid == "" || len(req["options"].([]any)) != 3 {
		t.Fatalf("permission request = %v", req)
	}
	if err := ws.WriteJSON(ClientMessage{Type: "permission", RequestID: rid, OptionID: "proceed"}); err != nil {
		t.Fatal(err)
	}
	ans := frameData(t, wsRead(t, ws, func(f Frame) bool { return f.Type == EventPermissionAnswer }))
	if ans["request_id"] != rid || ans["option_id"] != "proceed" || !strings.Contains(fmt.Sprint(ans["answered_by"]), "tester") {
		t.Fatalf("answer = %v", ans)
	}
	wsRead(t, ws, func(f Frame) bool {
		return f.Type == EventUpdate && bytes.Contains(f.Data, []byte("agent_message_chunk")) &&
			bytes.Contains(f.Data, []byte("Fix the flux capacitor"))
	})
	end := frameData(t, wsRead(t, ws, func(f Frame) bool { return f.Type == EventTurnEnd }))
	if end["stop_reason"] != "end_turn" {
		t.Fatalf("turn end = %v", end)
	}
	// The first answer won: the request is gone.
	if code := b.do("POST", "/v1/sessions/"+id+"/permissions/"+rid, b.admin, PermissionAnswer{OptionID: "deny"}, nil); code != http.StatusNotFound {
		t.Fatalf("second answer: %d, want 404", code)
	}

	// Cancel a turn waiting for its permission.
	wsRead(t, ws, func(f Frame) bool { return f.Type == EventState && bytes.Contains(f.Data, []byte(`"idle"`)) })
	var started TurnResult
	if code := b.do("POST", "/v1/sessions/"+id+"/prompt", cr.ViewerToken, PromptRequest{Text: b.getTaskPrompt()}, &started); code != http.StatusAccepted || started.Turn != 2 {
		t.Fatalf("prompt: %d %+v", code, started)
	}
	req = frameData(t, wsRead(t, ws, func(f Frame) bool { return f.Type == EventPermissionRequest }))
	rid, _ = req["request_id"].(string)
	if code := b.do("POST", "/v1/sessions/"+id+"/permissions/"+rid, b.admin, PermissionAnswer{OptionID: "bogus"}, nil); code != http.StatusBadRequest {
		t.Fatalf("bogus option: %d, want 400", code)
	}
	var info Info
	if b.do("GET", "/v1/sessions/"+id, b.admin, nil, &info); len(info.Pending) != 1 || info.Pending[0].RequestID != rid {
		t.Fatalf("pending = %+v", info.Pending)
	}
	if code := b.do("POST", "/v1/sessions/"+id+"/cancel", cr.ViewerToken, nil, nil); code != http.StatusAccepted {
		t.Fatalf("cancel: %d", code)
	}
	ans = frameData(t, wsRead(t, ws, func(f Frame) bool { return f.Type == EventPermissionAnswer }))
	if ans["outcome"] != "cancelled" {
		t.Fatalf("answer after cancel = %v", ans)
	}
	end = frameData(t, wsRead(t, ws, func(f Frame) bool { return f.Type == EventTurnEnd }))
	if end["stop_reason"] != "cancelled" {
		t.Fatalf("turn end after cancel = %v", end)
	}
	wsRead(t, ws, func(f Frame) bool { return f.Type == EventState && bytes.Contains(f.Data, []byte(`"idle"`)) })
	if code := b.do("POST", "/v1/sessions/"+id+"/cancel", b.admin, nil, nil); code != http.StatusConflict {
		t.Fatalf("cancel without a turn: %d", code)
	}

	if _, err := b.mgr.Stop(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	// The viewer sees the end of the session.
	wsRead(t, ws, func(f Frame) bool { return f.Type == EventState && bytes.Contains(f.Data, []byte(`"stopped"`)) })
	ws.SetReadDeadline(time.Now().Add(wait))
	if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, CloseSessionEnded) {
		t.Fatalf("after stop: %v", err)
	}
}

// The agent crashes mid-turn: the turn fails with its stderr, the agent is
// relaunched with session/load, and the session goes on.
func TestCrashMidTurnRestartsWithLoad(t *testing.T) {
	t.Parallel()
	b := newBroker(t, brokerOpts{})
	cr := b.create("allow-all", "")
	id := cr.Session.ID
	if res := b.prompt(id, b.admin, "hello"); res.Reply != "You said: hello" {
		t.Fatalf("turn 1 = %+v", res)
	}
	res := b.prompt(id, b.admin, "fault:exit-mid-turn")
	if !strings.Contains(res.Error, "exit status 4") {
		t.Fatalf("crashed turn = %+v", res)
	}
	_, failed := b.waitEvent(id, 0, EventTurnFailed, nil)
	if tail, _ := failed["stderr_tail"].([]any); len(tail) == 0 {
		t.Errorf("turn_failed has no stderr tail: %v", failed)
	}
	b.waitEvent(id, 0, EventACPSession, func(d map[string]any) bool { return d["loaded"] == true })
	ready, _ := b.waitEvent(id, 0, EventState, func(d map[string]any) bool { return d["state"] == "ready" && d["resumed"] != nil })
	if res := b.prompt(id, b.admin, "again"); res.Reply != "You said: again" {
		t.Fatalf("turn after restart = %+v", res)
	}
	replayed := 0
	for _, e := range b.events(id) {
		if e.Type == EventReplay && e.Seq < ready.Seq {
			replayed++
		}
	}
	if replayed == 0 {
		t.Error("no replayed history after session/load")
	}
	if n := b.mgr.launches.Load(); n != 2 {
		t.Errorf("launches = %d, want 2", n)
	}
	want := []State{StateStarting, StateReady, StatePrompting, StateIdle, StatePrompting, StateStarting, StateReady,
		StatePrompting, StateIdle}
	if got := b.states(id); !slices.Equal(got, want) {
		t.Fatalf("states = %v, want %v", got, want)
	}
	// The transcript did not take the replay as new messages.
	msgs, _ := b.db.SessionMessages(context.Background(), b.project.ID, id, 0, 0)
	n := 0
	for _, m := range msgs {
		if m.Role == store.RoleAssistant && m.Content == "You said: hello" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the first reply is %d times in the transcript", n)
	}
}

// A second Manager on the same store and data directory: Recover relaunches
// the session the first one left at its shutdown with session/load, and
// marks one it cannot resume interrupted.
func TestBrokerRestartRecovers(t *testing.T) {
	t.Parallel()
	b1 := newBroker(t, brokerOpts{})
	cr := b1.create("allow-all", "first")
	id := cr.Session.ID
	b1.waitEvent(id, 0, EventTurnEnd, nil)
	b1.waitEvent(id, 0, EventState, func(d map[string]any) bool { return d["state"] == "idle" })
	oldToken := b1.mcpToken(id)
	ctx := context.Background()
	// A session a crashed broker left "idle" with nothing recorded about it.
	if err := b1.db.PutSession(ctx, store.SessionRecord{ID: "ses_orphan", ProjectID: b1.project.ID, Agent: "custom", State: "idle"}); err != nil {
		t.Fatal(err)
	}
	if err := b1.mgr.Close(ctx); err != nil {
		t.Fatal(err)
	}
	rec, _ := b1.db.GetSession(ctx, b1.project.ID, id)
	if rec.State != string(StateInterrupted) {
		t.Fatalf("after Close: %s", rec.State)
	}
	lastSeq := b1.events(id)[len(b1.events(id))-1].Seq

	b2 := newBroker(t, brokerOpts{db: b1.db, dataDir: b1.dataDir, project: &b1.project})
	got, err := b2.mgr.Recover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b Recovered) int { // ses_orphan first
		return strings.Compare(strings.Replace(a.ID, "ses_orphan", "", 1), strings.Replace(b.ID, "ses_orphan", "", 1))
	})
	if len(got) != 2 || got[0].ID != "ses_orphan" || got[0].State != StateInterrupted || got[0].Error == "" ||
		got[1].ID != id || got[1].From != StateInterrupted || got[1].State != StateReady || got[1].Error != "" {
		t.Fatalf("recovered = %+v", got)
	}
	if res := b2.prompt(id, cr.ViewerToken, "second"); res.Reply != "You said: second" {
		t.Fatalf("turn after recovery = %+v", res)
	}
	if code := b2.mcpStatus(oldToken); code != http.StatusUnauthorized {
		t.Errorf("the first broker's MCP token: %d, want 401", code)
	}
	// Nothing lost: the log continued after its last event, with no gap.
	evs := b2.events(id)
	for i, e := range evs {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
	}
	if evs[len(evs)-1].Seq <= lastSeq {
		t.Fatal("no events after recovery")
	}
	want := []State{StateStarting, StateReady, StatePrompting, StateIdle, StateInterrupted, StateStarting, StateReady,
		StatePrompting, StateIdle}
	if got := b2.states(id); !slices.Equal(got, want) {
		t.Fatalf("states = %v, want %v", got, want)
	}
	// An interruption that could not be resumed is not tried again.
	if again, err := b2.mgr.Recover(ctx); err != nil || len(again) != 0 {
		t.Fatalf("second Recover = %+v, %v", again, err)
	}
	if _, err := b2.mgr.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
}

// A model the catalog refuses is refused before anything is minted,
// recorded or started.
func TestModelRefusedBeforeStart(t *testing.T) {
	t.Parallel()
	b := newBroker(t, brokerOpts{})
	for _, tc := range []struct{ agent, model, want string }{
		{"custom", "claude-nope-9", "unknown model"},
		{"custom", "claude-opus-4-1", `use "claude-opus-4-8"`},
		{"claude-code", "claude-opus-4-1", "retired"},
		{"claude-code", "gpt-5.5", "may not use"},
		{"claude-code", "made-up", "unknown model"},
		// Allowed for Codex, but Zed's codex-acp has no metadata for it
		// and no way to be given any.
		{"codex-zed", "gpt-5.1", "no metadata for gpt-5.1"},
	} {
		body := map[string]any{"project": b.project.ID, "agent": tc.agent, "model": tc.model,
			"credential": map[string]string{"kind": "api-key", "secret": "sk-test"}}
		if tc.agent == "custom" {
			body["credential"] = map[string]string{"kind": "none"}
		}
		var e struct {
			Error            string `json:"error"`
			ErrorDescription string `json:"error_description"`
		}
		code := b.do("POST", "/v1/sessions", b.admin, body, &e)
		if code != http.StatusBadRequest || e.Error != "model_refused" || !strings.Contains(e.ErrorDescription, tc.want) {
			t.Errorf("%s %s: %d %+v", tc.agent, tc.model, code, e)
		}
	}
	if code := b.do("POST", "/v1/sessions", "", map[string]any{"project": b.project.ID}, nil); code != http.StatusUnauthorized {
		t.Errorf("without a token: %d", code)
	}
	if n := b.mgr.launches.Load(); n != 0 {
		t.Fatalf("%d agents started", n)
	}
	if recs, err := b.db.ListSessions(context.Background(), b.project.ID, 0); err != nil || len(recs) != 0 {
		t.Fatalf("sessions recorded: %+v, %v", recs, err)
	}
	if ents, _ := os.ReadDir(filepath.Join(b.dataDir, "sessions")); len(ents) != 0 {
		t.Fatalf("session directories: %v", ents)
	}
}

// An agent that never reaches our MCP server is reported, not silently
// ready.
func TestMCPNotConnectedReported(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String() + "/mcp"
	ln.Close()
	b := newBroker(t, brokerOpts{mcpURL: dead, tweak: func(o *Options) { o.ReadyTimeout = time.Second }})
	cr := b.create("allow-all", "")
	if cr.Session.MCP.Status != MCPNotConnected {
		t.Fatalf("mcp = %+v", cr.Session.MCP)
	}
	_, d := b.waitEvent(cr.Session.ID, 0, EventMCPNotConnected, nil)
	if d["token_id"] != cr.Session.MCP.TokenID {
		t.Errorf("event = %v", d)
	}
	if _, err := b.mgr.Stop(context.Background(), cr.Session.ID); err != nil {
		t.Fatal(err)
	}
}

// A permission request nobody answers is rejected after AskTimeout; an
// agent that crashes when it cannot be restarted fails the session, whose
// tokens are revoked.
func TestAskTimeoutAndCrashWithoutRestart(t *testing.T) {
	t.Parallel()
	b := newBroker(t, brokerOpts{tweak: func(o *Options) {
		o.AskTimeout = 300 * time.Millisecond
		o.RestartAttempts = -1
	}})
	cr := b.create("ask", "")
	id := cr.Session.ID
	res := b.prompt(id, b.admin, b.getTaskPrompt())
	if !strings.Contains(res.Reply, "Permission denied") {
		t.Fatalf("turn = %+v", res)
	}
	_, ans := b.waitEvent(id, 0, EventPermissionAnswer, nil)
	if ans["option_id"] != "deny" || !strings.Contains(fmt.Sprint(ans["reason"]), "timed out") {
		t.Fatalf("answer = %v", ans)
	}
	token := b.mcpToken(id)
	pid := agentPid(b, id)
	res = b.prompt(id, b.admin, "fault:crash")
	if !strings.Contains(res.Error, "exit status 3") {
		t.Fatalf("crashed turn = %+v", res)
	}
	b.waitEvent(id, 0, EventState, func(d map[string]any) bool { return d["state"] == "failed" })
	if code := b.mcpStatus(token); code != http.StatusUnauthorized {
		t.Fatalf("MCP token of the failed session: %d", code)
	}
	want := []State{StateStarting, StateReady, StatePrompting, StateIdle, StatePrompting, StateFailed}
	if got := b.states(id); !slices.Equal(got, want) {
		t.Fatalf("states = %v, want %v", got, want)
	}
	if pid == 0 || syscall.Kill(pid, 0) == nil {
		t.Fatalf("agent process %d still exists", pid)
	}
	var info Info
	if b.do("GET", "/v1/sessions/"+id, b.admin, nil, &info); info.State != StateFailed || !strings.Contains(info.LastError, "exit status 3") {
		t.Fatalf("info = %+v", info)
	}
}

// agentPid is the process ID of the session's last agent_started event.
func agentPid(b *broker, id string) int {
	pid := 0
	for _, e := range b.events(id) {
		if e.Type == EventAgentStarted {
			var d struct{ Pid int }
			_ = json.Unmarshal(e.Data, &d)
			pid = d.Pid
		}
	}
	return pid
}

// A launch that fails after the session was recorded (here: Claude Code's
// adapter is installed but exits at once) answers 502 with the failed
// session; its tokens, the platform-proxy inference token among them, are
// revoked. (An adapter not installed at all is refused before anything is
// recorded: TestCreateRefusesUnroutableSession.)
func TestStartFailureFailsSession(t *testing.T) {
	t.Parallel()
	b := newBroker(t, brokerOpts{})
	entry := filepath.Join(b.dataDir, "not-installed", "node_modules", "@agentclientprotocol", "claude-agent-acp", "dist", "index.js")
	if err := os.MkdirAll(filepath.Dir(entry), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(entry, []byte("process.exit(3)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var resp struct {
		Error   string `json:"error"`
		Session Info   `json:"session"`
	}
	code := b.do("POST", "/v1/sessions", b.admin, map[string]any{"project": b.project.ID, "agent": "claude-code",
		"model": "claude-sonnet-4-6", "credential": map[string]string{"kind": "platform-proxy"}}, &resp)
	if code != http.StatusBadGateway || resp.Error != "agent_start_failed" || resp.Session.State != StateFailed ||
		resp.Session.LastError == "" {
		t.Fatalf("create = %d %+v", code, resp)
	}
	id := resp.Session.ID
	_, cfg := b.waitEvent(id, 0, EventConfig, nil)
	infID, _ := cfg["inference_token_id"].(string)
	if infID == "" || cfg["credential"].(map[string]any)["kind"] != "platform-proxy" {
		t.Fatalf("config = %v", cfg)
	}
	if revoked, err := b.db.IsRevoked(context.Background(), infID, id); err != nil || !revoked {
		t.Fatalf("inference token revoked = %v, %v", revoked, err)
	}
	if got := b.states(id); !slices.Equal(got, []State{StateStarting, StateFailed}) {
		t.Fatalf("states = %v", got)
	}
	// A platform-proxy credential carries no secret of the caller's.
	code = b.do("POST", "/v1/sessions", b.admin, map[string]any{"project": b.project.ID, "agent": "claude-code",
		"credential": map[string]string{"kind": "platform-proxy", "secret": "sk-mine"}}, nil)
	if code != http.StatusBadRequest {
		t.Fatalf("platform-proxy with a secret: %d", code)
	}
}

// The observer queue never blocks the MCP or proxy request that reports:
// beyond its bound, events are dropped and counted.
func TestObserverQueueOverflowDrops(t *testing.T) {
	t.Parallel()
	m := &Manager{log: slog.New(slog.DiscardHandler), live: map[string]*session{}}
	s := &session{m: m, id: "ses_x", obsQ: make(chan obsEvent, observerQueue)}
	m.live[s.id] = s
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range observerQueue + 5 {
			m.ToolCalled(context.Background(), mcpserver.ToolCall{Session: s.id, Tool: "get_task"})
		}
		m.ToolCalled(context.Background(), mcpserver.ToolCall{Session: "ses_unknown", Tool: "get_task"})
	}()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("ToolCalled blocked")
	}
	if len(s.obsQ) != observerQueue || s.dropped.Load() != 5 {
		t.Fatalf("queued %d, dropped %d", len(s.obsQ), s.dropped.Load())
	}
}

// TestViaProxyKeepsUserKeyOut: an api-key credential with via_proxy
// launches the agent as for platform-proxy (an inference token, the
// proxy's base URL) while the user's key stays in the broker, where the
// proxy's UserKey hook finds it for this session and this provider only.
// The key is in neither the agent's environment nor the stored config.
// (The reference agent stands in for Claude Code: it is run as the
// profile's "node" on a fake install.)
func TestViaProxyKeepsUserKeyOut(t *testing.T) {
	t.Parallel()
	fake := t.TempDir()
	entry := filepath.Join(fake, "node_modules/@agentclientprotocol/claude-agent-acp/dist/index.js")
	if err := os.MkdirAll(filepath.Dir(entry), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(entry, []byte("// stands in for the adapter\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := newBroker(t, brokerOpts{tweak: func(o *Options) {
		o.Agents[profile.ClaudeCode] = AgentConfig{InstallDir: fake, Node: refagentBin}
	}})
	const userKey = "sk-ant-user-7f3a9c"
	var created struct {
		CreateResponse
		Error string `json:"error_description"`
	}
	code := b.do("POST", "/v1/sessions", b.admin, map[string]any{"project": b.project.ID, "agent": "claude-code",
		"model": "claude-sonnet-4-6", "permission_policy": "allow-all",
		"credential": map[string]any{"kind": "api-key", "secret": userKey, "via_proxy": true}}, &created)
	if code != http.StatusCreated {
		t.Fatalf("create = %d %s", code, created.Error)
	}
	id := created.Session.ID
	ctx := context.Background()
	claims := tokens.Claims{Session: id, Project: b.project.ID}
	if key, ok := b.mgr.UserKey(ctx, claims, catalog.ProviderAnthropic); !ok || key != userKey {
		t.Fatalf("UserKey(anthropic) = %q, %v", key, ok)
	}
	if _, ok := b.mgr.UserKey(ctx, claims, catalog.ProviderOpenAI); ok {
		t.Fatal("the user's Anthropic key was offered for OpenAI")
	}
	if _, ok := b.mgr.UserKey(ctx, tokens.Claims{Session: id, Project: "prj_other"}, catalog.ProviderAnthropic); ok {
		t.Fatal("the key was offered to a token of another project")
	}
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", agentPid(b, id)))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(environ), userKey) {
		t.Fatal("the user's key is in the agent's environment")
	}
	if !strings.Contains(string(environ), "ANTHROPIC_BASE_URL="+b.srv.URL+"/proxy/anthropic") {
		t.Fatalf("the agent is not pointed at the proxy: %q", environ)
	}
	for _, e := range b.events(id) {
		if strings.Contains(string(e.Data), userKey) {
			t.Fatalf("the user's key is in the %s event", e.Type)
		}
	}
	// A session without via_proxy gets no key from the hook.
	b.do("DELETE", "/v1/sessions/"+id, b.admin, nil, nil)
	if _, ok := b.mgr.UserKey(ctx, claims, catalog.ProviderAnthropic); ok {
		t.Fatal("the key outlived its session")
	}
	// via_proxy is for api-key credentials only.
	code = b.do("POST", "/v1/sessions", b.admin, map[string]any{"project": b.project.ID, "agent": "claude-code",
		"credential": map[string]any{"kind": "oauth-token", "secret": "x", "via_proxy": true}}, nil)
	if code != http.StatusBadRequest {
		t.Fatalf("via_proxy with oauth-token: %d", code)
	}
}

// TestRevokedMCPTokenReported: with the session's MCP token revoked before
// the prompt, the agent's tool call is refused (nothing of the project
// reaches it), and the broker reports the session's MCP connection as
// failed: an mcp_auth_failed event and MCP status "failed".
func TestRevokedMCPTokenReported(t *testing.T) {
	t.Parallel()
	b := newBroker(t, brokerOpts{})
	cr := b.create("allow-all", "")
	id := cr.Session.ID
	if cr.Session.MCP == nil || cr.Session.MCP.TokenID == "" {
		t.Fatalf("no MCP token recorded: %+v", cr.Session)
	}
	if err := b.svc.Revoke(context.Background(), cr.Session.MCP.TokenID, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	res := b.prompt(id, b.admin, b.getTaskPrompt())
	if strings.Contains(res.Reply, b.task.Description) {
		t.Fatalf("the task reached the agent through a revoked token: %q", res.Reply)
	}
	b.waitEvent(id, 0, EventMCPAuthFailed, nil)
	for _, e := range b.events(id) {
		if e.Type == EventToolCallMCP && strings.Contains(string(e.Data), `"outcome":"ok"`) {
			t.Fatalf("a tool call succeeded after the revocation: %s", e.Data)
		}
	}
	var info Info
	b.do("GET", "/v1/sessions/"+id, b.admin, nil, &info)
	if info.MCP == nil || info.MCP.Status != MCPFailed {
		t.Fatalf("MCP status = %+v; want failed", info.MCP)
	}
}

// TestCreateRefusesUnroutableSession: a session whose route cannot work
// (its adapter is not installed; platform-proxy with no platform key for
// its model's provider) is refused with a 4xx that says what to do, before
// anything is minted, recorded or started.
func TestCreateRefusesUnroutableSession(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var minted int
	b := newBroker(t, brokerOpts{tweak: func(o *Options) {
		o.PlatformKeys = map[catalog.Provider]bool{catalog.ProviderAnthropic: false, catalog.ProviderOpenAI: true}
		svc, err := tokens.New(context.Background(), o.Store.(*sqlite.DB), o.Store.(*sqlite.DB), &tokens.Options{
			RefreshInterval: -1,
			Logger: slog.New(countHandler{fn: func(msg string) {
				if msg == "token minted" {
					mu.Lock()
					minted++
					mu.Unlock()
				}
			}}),
		})
		if err != nil {
			t.Fatal(err)
		}
		o.Tokens = svc
	}})
	for _, tt := range []struct {
		name string
		body map[string]any
		want []string
	}{
		{"adapter not installed", map[string]any{"project": b.project.ID, "agent": "claude-code",
			"credential": map[string]string{"kind": "api-key", "secret": "sk-mine"}},
			[]string{"not installed", "npm install"}},
		{"no platform key", map[string]any{"project": b.project.ID, "agent": "claude-code", "model": "claude-sonnet-4-6",
			"credential": map[string]string{"kind": "platform-proxy"}},
			[]string{"no platform key for anthropic", "ANTHROPIC_API_KEY", "api-key"}},
	} {
		var resp struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		}
		var raw json.RawMessage
		code := b.do("POST", "/v1/sessions", b.admin, tt.body, &raw)
		_ = json.Unmarshal(raw, &resp)
		if code < 400 || code >= 500 {
			t.Errorf("%s: %d %s, want a 4xx", tt.name, code, raw)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(string(raw), w) {
				t.Errorf("%s: answer %s lacks %q", tt.name, raw, w)
			}
		}
	}
	recs, err := b.db.ListSessions(context.Background(), b.project.ID, 100)
	if err != nil || len(recs) != 0 {
		t.Errorf("sessions recorded: %v %v", recs, err)
	}
	if n := b.mgr.launches.Load(); n != 0 {
		t.Errorf("%d processes started", n)
	}
	mu.Lock()
	n := minted
	mu.Unlock()
	if n != 0 {
		t.Errorf("%d tokens minted", n)
	}
	if des, _ := os.ReadDir(filepath.Join(b.dataDir, "sessions")); len(des) != 0 {
		t.Errorf("session directories left: %v", des)
	}
	// The controls: with a key for anthropic the same session gets past
	// the key check (to the missing adapter), and a session that can
	// start mints tokens, so the count above proves something.
	b.mgr.opts.PlatformKeys[catalog.ProviderAnthropic] = true
	var raw json.RawMessage
	if code := b.do("POST", "/v1/sessions", b.admin, map[string]any{"project": b.project.ID, "agent": "claude-code",
		"model": "claude-sonnet-4-6", "credential": map[string]string{"kind": "platform-proxy"}}, &raw); code != http.StatusBadRequest ||
		!strings.Contains(string(raw), "not installed") {
		t.Fatalf("with a key: %d %s, want the adapter refusal", code, raw)
	}
	b.create("allow-all", "")
	mu.Lock()
	n = minted
	mu.Unlock()
	if n == 0 {
		t.Error("the control session minted no token: the count proves nothing")
	}
}

// countHandler calls fn with each record's message.
type countHandler struct{ fn func(string) }

func (h countHandler) Enabled(context.Context, slog.Level) bool      { return true }
func (h countHandler) Handle(_ context.Context, r slog.Record) error { h.fn(r.Message); return nil }
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler            { return h }
func (h countHandler) WithGroup(string) slog.Handler                 { return h }

// TestInferenceTokenNamesModel: a platform-proxy session's inference token
// carries the session's model, and a model refusal the proxy reports
// becomes a "model_refused" event next to its "usage" event.
func TestInferenceTokenNamesModel(t *testing.T) {
	t.Parallel()
	b := newBroker(t, brokerOpts{})
	ctx := context.Background()
	s := b.mgr.newSession("ses_minttest", Spec{Project: b.project.ID,
		Credential: profile.Credential{Kind: profile.KindPlatformProxy}},
		sessionConfig{Profile: profile.ClaudeCode, Model: "claude-sonnet-4-6", CatalogAgent: "claude-code", CreatedBy: "tester"})
	if err := s.mintAgentTokens(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := b.svc.Verify(ctx, s.cred.Secret.Reveal(), tokens.AudienceProxy)
	if err != nil || c.Model != "claude-sonnet-4-6" || c.Agent != "claude-code" {
		t.Fatalf("inference token claims = %+v, %v; want model claude-sonnet-4-6", c, err)
	}
	m, err := b.svc.Verify(ctx, s.mcpToken, tokens.AudienceMCP)
	if err != nil || m.Model != "" {
		t.Errorf("MCP token claims = %+v, %v; want no model claim", m, err)
	}

	id := b.create("allow-all", "").Session.ID
	b.mgr.RecordUsage(ctx, proxy.UsageRecord{Session: id, Route: proxy.RouteMessages,
		WireModel: "claude-sonnet-4-6", Status: 403, Outcome: proxy.OutcomeRefused, Reason: proxy.ReasonNotSessionModel,
		Message: "not the session's model"})
	_, ev := b.waitEvent(id, 0, EventModelRefused, nil)
	if ev["wire_model"] != "claude-sonnet-4-6" || ev["model"] != "claude-opus-4-8" || ev["reason"] != "not_session_model" {
		t.Errorf("model_refused event = %v", ev)
	}
	b.waitEvent(id, 0, EventUsage, func(d map[string]any) bool { return d["outcome"] == "refused" })
}
