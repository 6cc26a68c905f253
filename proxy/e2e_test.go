package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/agentbroker/agentbroker/internal/fakemodel"
	"github.com/agentbroker/agentbroker/proxy"
)

// The end-to-end proofs with the real agents: their ACP adapter talks to
// the fake model through the proxy, with the session's inference token as
// its API key, the model asks for an MCP tool, the agent calls it, and the
// model's answer quotes the result. They need the adapters installed
// (npm) and are skipped unless pointed at them:
//
//	AGENTBROKER_E2E_CLAUDE_ACP=…/node_modules/@agentclientprotocol/claude-agent-acp/dist/index.js
//	AGENTBROKER_E2E_CODEX_ACP=…/node_modules/@agentclientprotocol/codex-acp/dist/index.js
//	AGENTBROKER_E2E_GEMINI_CLI=…/node_modules/@google/gemini-cli/bundle/gemini.js (TestE2EGemini)

// e2eMCP is a one-tool MCP server (get_task) that remembers its calls.
type e2eMCP struct {
	srv   *httptest.Server
	mu    sync.Mutex
	calls []string
}

const e2eMarker = "MARKER-7f3a: ship the proxy before Friday"

func newE2EMCP(t *testing.T) *e2eMCP {
	m := &e2eMCP{}
	s := server.NewMCPServer("broker", "1", server.WithToolCapabilities(false))
	s.AddTool(mcp.NewTool("get_task", mcp.WithDescription("Read one task of the project by its id."),
		mcp.WithString("id", mcp.Required(), mcp.Description("the task id"))),
		func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			id := req.GetString("id", "")
			m.mu.Lock()
			m.calls = append(m.calls, id)
			m.mu.Unlock()
			return mcp.NewToolResultText("Task " + id + ": " + e2eMarker), nil
		})
	h := server.NewStreamableHTTPServer(s, server.WithStateLess(true))
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		t.Logf("mcp: %s %s %.300s", r.Method, r.URL.Path, body)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *e2eMCP) Calls() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.calls...)
}

// acpClient drives an ACP agent over stdio: requests out, responses
// matched by id, permission requests answered allow_once, notifications
// kept.
type acpClient struct {
	t       *testing.T
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	mu      sync.Mutex
	nextID  int
	waiting map[int]chan json.RawMessage
	updates []json.RawMessage
	done    chan struct{}
}

type rpcMsg struct {
	ID     json.RawMessage `json:"id,omitempty"`
	Method string          `json:"method,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  json.RawMessage `json:"error,omitempty"`
}

func startACP(t *testing.T, env []string, args ...string) *acpClient {
	t.Helper()
	cmd := exec.Command("node", args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr strings.Builder
	cmd.Stderr = &lockedWriter{w: &stderr}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &acpClient{t: t, cmd: cmd, stdin: stdin, waiting: map[int]chan json.RawMessage{}, done: make(chan struct{})}
	go c.read(stdout)
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-c.done:
		case <-time.After(3 * time.Second):
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		<-c.done
		if t.Failed() {
			t.Logf("agent stderr:\n%s", cut(stderr.String(), 8000))
		}
	})
	return c
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (c *acpClient) read(r io.Reader) {
	defer close(c.done)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 32<<20)
	for sc.Scan() {
		var m rpcMsg
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue // not JSON-RPC
		}
		switch {
		case m.Method != "" && m.ID != nil:
			c.answer(m)
		case m.Method != "":
			if m.Method == "session/update" {
				c.mu.Lock()
				c.updates = append(c.updates, append(json.RawMessage(nil), m.Params...))
				c.mu.Unlock()
			}
		default:
			var id int
			if json.Unmarshal(m.ID, &id) != nil {
				continue
			}
			c.mu.Lock()
			ch := c.waiting[id]
			delete(c.waiting, id)
			c.mu.Unlock()
			if ch != nil {
				if m.Error != nil {
					ch <- json.RawMessage(`{"__error":` + string(m.Error) + `}`)
				} else {
					ch <- m.Result
				}
			}
		}
	}
}

// answer replies to an agent's request: permission by kind allow_once,
// anything else "method not found".
func (c *acpClient) answer(m rpcMsg) {
	var reply string
	if m.Method == "session/request_permission" {
		var p struct {
			Options []struct {
				OptionID string `json:"optionId"`
				Kind     string `json:"kind"`
			} `json:"options"`
		}
		_ = json.Unmarshal(m.Params, &p)
		for _, o := range p.Options {
			if o.Kind == "allow_once" {
				reply = fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"outcome":{"outcome":"selected","optionId":%q}}}`, m.ID, o.OptionID)
				break
			}
		}
	}
	if reply == "" {
		reply = fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"not supported by the test client"}}`, m.ID)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, _ = io.WriteString(c.stdin, reply+"\n")
}

// call sends a request and waits for its result.
func (c *acpClient) call(method string, params any, timeout time.Duration) json.RawMessage {
	c.t.Helper()
	p, err := json.Marshal(params)
	if err != nil {
		c.t.Fatal(err)
	}
	ch := make(chan json.RawMessage, 1)
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	c.waiting[id] = ch
	_, err = fmt.Fprintf(c.stdin, `{"jsonrpc":"2.0","id":%d,"method":%q,"params":%s}`+"\n", id, method, p)
	c.mu.Unlock()
	if err != nil {
		c.t.Fatalf("%s: %v", method, err)
	}
	select {
	case r := <-ch:
		if strings.HasPrefix(string(r), `{"__error":`) {
			c.t.Fatalf("%s: error %s", method, r)
		}
		return r
	case <-c.done:
		c.t.Fatalf("%s: the agent exited", method)
	case <-time.After(timeout):
		c.t.Fatalf("%s: no answer in %s", method, timeout)
	}
	return nil
}

// agentText is the concatenated text of the agent_message_chunk updates.
func (c *acpClient) agentText() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, u := range c.updates {
		var p struct {
			Update struct {
				SessionUpdate string `json:"sessionUpdate"`
				Content       struct {
					Text string `json:"text"`
				} `json:"content"`
			} `json:"update"`
		}
		if json.Unmarshal(u, &p) == nil && p.Update.SessionUpdate == "agent_message_chunk" {
			b.WriteString(p.Update.Content.Text)
		}
	}
	return b.String()
}

func baseEnv(home string) []string {
	env := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "IS_SANDBOX=1", "NO_COLOR=1"}
	for _, k := range []string{"TMPDIR", "LANG"} {
		if v := os.Getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	return env
}

func TestE2EClaudeCode(t *testing.T) {
	adapter := os.Getenv("AGENTBROKER_E2E_CLAUDE_ACP")
	if adapter == "" {
		t.Skip("AGENTBROKER_E2E_CLAUDE_ACP is not set")
	}
	mcpSrv := newE2EMCP(t)
	w := newWorld(t, worldConfig{anth: &fakemodel.Options{Rules: []fakemodel.Rule{{
		Tool: "get_task", Prompt: regexp.MustCompile(`(?i)get_task`),
		Arguments: json.RawMessage(`{"id":"T-1"}`), Reply: "The task says: ",
	}}}})
	anthropicURL, _ := proxy.BaseURLs(w.srv.URL)
	home := t.TempDir()
	env := append(baseEnv(home),
		"ANTHROPIC_BASE_URL="+anthropicURL,
		"ANTHROPIC_API_KEY="+w.token("claude-code"),
		"ANTHROPIC_MODEL=claude-opus-4-8",
		"ANTHROPIC_DEFAULT_OPUS_MODEL=claude-opus-4-8",
		"ANTHROPIC_DEFAULT_SONNET_MODEL=claude-sonnet-4-6",
		"ANTHROPIC_DEFAULT_HAIKU_MODEL=claude-haiku-4-5",
		"ANTHROPIC_SMALL_FAST_MODEL=claude-haiku-4-5",
		"CLAUDE_CODE_SUBAGENT_MODEL=claude-opus-4-8",
		"ENABLE_TOOL_SEARCH=false",
		"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1", "DISABLE_TELEMETRY=1", "DISABLE_AUTOUPDATER=1",
	)
	c := startACP(t, env, adapter)
	c.call("initialize", map[string]any{"protocolVersion": 1,
		"clientCapabilities": map[string]any{"fs": map[string]bool{"readTextFile": false, "writeTextFile": false}, "terminal": false},
		"clientInfo":         map[string]string{"name": "proxy-e2e", "version": "0"}}, 60*time.Second)
	work := filepath.Join(home, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	res := c.call("session/new", map[string]any{"cwd": work, "mcpServers": []any{map[string]any{
		"type": "http", "name": "broker", "url": mcpSrv.srv.URL, "headers": []any{}}}}, 60*time.Second)
	var sess struct {
		SessionID string `json:"sessionId"`
	}
	if err := json.Unmarshal(res, &sess); err != nil || sess.SessionID == "" {
		t.Fatalf("session/new: %s", res)
	}
	c.call("session/set_mode", map[string]any{"sessionId": sess.SessionID, "modeId": "default"}, 30*time.Second)
	res = c.call("session/prompt", map[string]any{"sessionId": sess.SessionID,
		"prompt": []any{map[string]string{"type": "text", "text": "Please read task T-1 with the get_task tool."}}}, 120*time.Second)
	logE2E(t, w)
	var stop struct {
		StopReason string `json:"stopReason"`
	}
	_ = json.Unmarshal(res, &stop)
	text := c.agentText()
	if stop.StopReason != "end_turn" || !strings.Contains(text, "The task says: Task T-1: "+e2eMarker) {
		t.Fatalf("prompt: %s; agent said %q", res, text)
	}
	if calls := mcpSrv.Calls(); len(calls) != 1 || calls[0] != "T-1" {
		t.Errorf("MCP calls %v", calls)
	}
	assertE2EUpstream(t, w, w.anth, "mcp__broker__get_task")
}

func TestE2ECodex(t *testing.T) {
	adapter := os.Getenv("AGENTBROKER_E2E_CODEX_ACP")
	if adapter == "" {
		t.Skip("AGENTBROKER_E2E_CODEX_ACP is not set")
	}
	mcpSrv := newE2EMCP(t)
	w := newWorld(t, worldConfig{oai: &fakemodel.Options{Rules: []fakemodel.Rule{{
		Tool: "get_task", Prompt: regexp.MustCompile(`(?i)get_task`),
		Arguments: json.RawMessage(`{"id":"T-1"}`), Reply: "The task says: ",
	}}}})
	_, openaiURL := proxy.BaseURLs(w.srv.URL)
	home := t.TempDir()
	codexHome := filepath.Join(home, ".codex")
	if err := os.MkdirAll(codexHome, 0o700); err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`model = "gpt-5.5"
model_provider = "agentbroker"

[model_providers.agentbroker]
name = "agentbroker"
base_url = %q
env_key = "AGENTBROKER_INFERENCE_TOKEN"
wire_api = "responses"
`, openaiURL)
	if err := os.WriteFile(filepath.Join(codexHome, "config.toml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(baseEnv(home), "CODEX_HOME="+codexHome, "AGENTBROKER_INFERENCE_TOKEN="+w.token("codex"))
	c := startACP(t, env, adapter)
	c.call("initialize", map[string]any{"protocolVersion": 1,
		"clientCapabilities": map[string]any{"fs": map[string]bool{"readTextFile": false, "writeTextFile": false}, "terminal": false},
		"clientInfo":         map[string]string{"name": "proxy-e2e", "version": "0"}}, 60*time.Second)
	work := filepath.Join(home, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	res := c.call("session/new", map[string]any{"cwd": work, "mcpServers": []any{map[string]any{
		"type": "http", "name": "broker", "url": mcpSrv.srv.URL, "headers": []any{}}}}, 60*time.Second)
	var sess struct {
		SessionID string `json:"sessionId"`
	}
	if err := json.Unmarshal(res, &sess); err != nil || sess.SessionID == "" {
		t.Fatalf("session/new: %s", res)
	}
	c.call("session/set_mode", map[string]any{"sessionId": sess.SessionID, "modeId": "workspace-write"}, 30*time.Second)
	res = c.call("session/prompt", map[string]any{"sessionId": sess.SessionID,
		"prompt": []any{map[string]string{"type": "text", "text": "Please read task T-1 with the get_task tool."}}}, 120*time.Second)
	logE2E(t, w)
	var stop struct {
		StopReason string `json:"stopReason"`
	}
	_ = json.Unmarshal(res, &stop)
	text := c.agentText()
	if stop.StopReason != "end_turn" || !strings.Contains(text, "The task says: ") || !strings.Contains(text, e2eMarker) {
		t.Fatalf("prompt: %s; agent said %q", res, text)
	}
	if calls := mcpSrv.Calls(); len(calls) != 1 || calls[0] != "T-1" {
		t.Errorf("MCP calls %v", calls)
	}
	assertE2EUpstream(t, w, w.oai, "mcp__broker/get_task")
}

// logE2E logs what went through the proxy (the model IDs the agent sent
// are what its profile must pin).
func logE2E(t *testing.T, w *world) {
	for _, r := range w.rec.Records() {
		t.Logf("proxy: %s %s wire=%q model=%q status=%d outcome=%s reason=%s usage=%+v cost=%s",
			r.Session, r.Route, r.WireModel, r.Model, r.Status, r.Outcome, r.Reason, r.Usage, r.Cost)
	}
	for _, f := range []*fakemodel.Server{w.anth, w.oai} {
		for _, r := range f.Requests() {
			t.Logf("upstream: %s %s model=%s stream=%v tools=%v action=%s tool=%s auth=%v outcome=%s",
				r.Method, r.Path, r.Model, r.Stream, r.Tools, r.Action, r.Tool, r.AuthOK, r.Outcome)
		}
	}
}

// assertE2EUpstream checks the upstream saw the tool call and its answer,
// always with the platform key, and that the proxy counted every request
// for the session.
func assertE2EUpstream(t *testing.T, w *world, f *fakemodel.Server, tool string) {
	var called, answered bool
	for _, r := range f.Requests() {
		if !r.AuthOK {
			t.Errorf("upstream request %d without the platform key", r.Seq)
		}
		called = called || r.Action == fakemodel.ActionToolCall && r.Tool == tool
		answered = answered || r.Action == fakemodel.ActionToolAnswer
	}
	if !called || !answered {
		t.Errorf("upstream: tool call %v, answer %v", called, answered)
	}
	for _, r := range w.rec.Records() {
		if r.Outcome != proxy.OutcomeOK {
			t.Errorf("proxy record %+v", r)
		}
	}
}
