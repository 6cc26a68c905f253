package refagent_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/sourcegraph/jsonrpc2"
	"go.uber.org/goleak"

	"github.com/agentbroker/agentbroker/acp"
	"github.com/agentbroker/agentbroker/internal/refagent"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"))
}

// client is a bare JSON-RPC client for the agent, independent of acp.Conn.
type client struct {
	conn    *jsonrpc2.Conn
	mu      sync.Mutex
	updates []acp.SessionNotification
	onPerm  func(acp.RequestPermissionRequest) acp.RequestPermissionResponse
	raw     *bytes.Buffer // everything the agent wrote
	done    chan error
}

type tee struct {
	r   io.Reader
	buf *bytes.Buffer
	mu  *sync.Mutex
}

func (t tee) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.mu.Lock()
	t.buf.Write(p[:n])
	t.mu.Unlock()
	return n, err
}

func start(t *testing.T, opts refagent.Options) *client {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	c := &client{raw: &bytes.Buffer{}, done: make(chan error, 1)}
	go func() {
		err := refagent.Run(ctx, inR, outW, opts)
		outW.Close()
		inR.Close()
		c.done <- err
	}()
	stream := jsonrpc2.NewPlainObjectStream(rwc{tee{outR, c.raw, &c.mu}, inW})
	c.conn = jsonrpc2.NewConn(context.Background(), stream, jsonrpc2.HandlerWithError(c.handle))
	t.Cleanup(func() {
		c.conn.Close()
		cancel()
		<-c.done
	})
	return c
}

type rwc struct {
	r io.Reader
	w io.WriteCloser
}

func (x rwc) Read(p []byte) (int, error)  { return x.r.Read(p) }
func (x rwc) Write(p []byte) (int, error) { return x.w.Write(p) }
func (x rwc) Close() error                { return x.w.Close() }

func (c *client) handle(ctx context.Context, conn *jsonrpc2.Conn, req *jsonrpc2.Request) (any, error) {
	switch req.Method {
	case acp.MethodSessionUpdate:
		var n acp.SessionNotification
		json.Unmarshal(*req.Params, &n)
		c.mu.Lock()
		c.updates = append(c.updates, n)
		c.mu.Unlock()
		return nil, nil
	case acp.MethodRequestPermission:
		var p acp.RequestPermissionRequest
		json.Unmarshal(*req.Params, &p)
		if !req.ID.IsString {
			return nil, errors.New("the agent should use string ids")
		}
		return c.onPerm(p), nil
	}
	return nil, &jsonrpc2.Error{Code: acp.CodeMethodNotFound, Message: "no"}
}

func (c *client) text() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, n := range c.updates {
		if n.Update.Kind == acp.UpdateAgentMessageChunk {
			b.WriteString(n.Update.Text())
		}
	}
	return b.String()
}

func (c *client) call(t *testing.T, method string, params, result any) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return c.conn.Call(ctx, method, params, result)
}

func (c *client) session(t *testing.T, servers []acp.McpServer) string {
	t.Helper()
	var init acp.InitializeResponse
	if err := c.call(t, acp.MethodInitialize, acp.InitializeRequest{ProtocolVersion: 1}, &init); err != nil {
		t.Fatal(err)
	}
	var s acp.NewSessionResponse
	if err := c.call(t, acp.MethodSessionNew, acp.NewSessionRequest{Cwd: t.TempDir(), McpServers: servers}, &s); err != nil {
		t.Fatal(err)
	}
	return s.SessionID
}

func (c *client) prompt(t *testing.T, sid, text string) acp.StopReason {
	t.Helper()
	var r acp.PromptResponse
	if err := c.call(t, acp.MethodSessionPrompt, acp.PromptRequest{SessionID: sid, Prompt: []acp.ContentBlock{acp.TextBlock(text)}}, &r); err != nil {
		t.Fatal(err)
	}
	return r.StopReason
}

func mcpServer(t *testing.T) (string, *int) {
	t.Helper()
	calls := new(int)
	var mu sync.Mutex
	s := server.NewMCPServer("t", "0")
	s.AddTool(mcp.NewTool("get_task", mcp.WithString("task_id")), func(ctx context.Context, r mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		mu.Lock()
		*calls++
		mu.Unlock()
		return mcp.NewToolResultText("task " + r.GetString("task_id", "")), nil
	})
	srv := httptest.NewServer(server.NewStreamableHTTPServer(s, server.WithStateLess(true)))
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
	return srv.URL, calls
}

func TestInitializeCapabilities(t *testing.T) {
	t.Parallel()
	for _, noHTTP := range []bool{false, true} {
		c := start(t, refagent.Options{NoHTTPMCP: noHTTP, RequireAuth: true})
		var r acp.InitializeResponse
		if err := c.call(t, acp.MethodInitialize, acp.InitializeRequest{ProtocolVersion: 1}, &r); err != nil {
			t.Fatal(err)
		}
		if r.ProtocolVersion != 1 || !r.AgentCapabilities.LoadSession || r.AgentCapabilities.McpCapabilities.HTTP == noHTTP || len(r.AuthMethods) != 1 {
			t.Fatalf("initialize: %+v", r)
		}
		err := c.call(t, acp.MethodSessionNew, acp.NewSessionRequest{Cwd: "/"}, nil)
		var je *jsonrpc2.Error
		if !errors.As(err, &je) || je.Code != acp.CodeAuthRequired {
			t.Fatalf("session/new before authenticate: %v", err)
		}
		err = c.call(t, "session/fly", nil, nil)
		if !errors.As(err, &je) || je.Code != acp.CodeMethodNotFound {
			t.Fatalf("unknown method: %v", err)
		}
	}
}

// Unreachable MCP servers do not fail session/new (as with real agents);
// the tool is then reported missing.
func TestUnreachableMCP(t *testing.T) {
	t.Parallel()
	c := start(t, refagent.Options{})
	sid := c.session(t, []acp.McpServer{{Type: acp.MCPTransportHTTP, Name: "gone", URL: "http://127.0.0.1:1/mcp"}})
	if stop := c.prompt(t, sid, `call get_task with {"task_id":"t1"}`); stop != acp.StopEndTurn {
		t.Fatal(stop)
	}
	if got := c.text(); !strings.Contains(got, "not available") {
		t.Fatalf("reply %q", got)
	}
}

func TestPermissionOutcomes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		answer    acp.RequestPermissionOutcome
		wantStop  acp.StopReason
		wantText  string
		wantCalls int
	}{
		{"proceed", acp.RequestPermissionOutcome{Outcome: acp.OutcomeSelected, OptionID: refagent.OptionProceed}, acp.StopEndTurn, "get_task returned: task t1", 1},
		{"deny", acp.RequestPermissionOutcome{Outcome: acp.OutcomeSelected, OptionID: refagent.OptionDeny}, acp.StopEndTurn, "Permission denied", 0},
		{"cancelled", acp.RequestPermissionOutcome{Outcome: acp.OutcomeCancelled}, acp.StopCancelled, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url, calls := mcpServer(t)
			c := start(t, refagent.Options{})
			var seen acp.RequestPermissionRequest
			c.onPerm = func(p acp.RequestPermissionRequest) acp.RequestPermissionResponse {
				seen = p
				return acp.RequestPermissionResponse{Outcome: tc.answer}
			}
			sid := c.session(t, []acp.McpServer{{Type: acp.MCPTransportHTTP, Name: "broker", URL: url}})
			if stop := c.prompt(t, sid, `call get_task with {"task_id":"t1"}`); stop != tc.wantStop {
				t.Fatalf("stop %q", stop)
			}
			if !strings.Contains(c.text(), tc.wantText) || *calls != tc.wantCalls {
				t.Fatalf("reply %q, %d calls", c.text(), *calls)
			}
			kinds := map[string]acp.PermissionOptionKind{}
			for _, o := range seen.Options {
				kinds[o.OptionID] = o.Kind
			}
			if kinds[refagent.OptionProceed] != acp.AllowOnce || kinds[refagent.OptionAlways] != acp.AllowAlways || kinds[refagent.OptionDeny] != acp.RejectOnce {
				t.Fatalf("options %+v", seen.Options)
			}
			if seen.ToolCall.Title != "mcp__broker__get_task" || seen.ToolCall.Kind != acp.ToolKindOther {
				t.Fatalf("tool call %+v", seen.ToolCall)
			}
		})
	}
}

// session/cancel during a turn that waits for permission: the agent ends
// the turn "cancelled" once the client answers "cancelled".
func TestCancel(t *testing.T) {
	t.Parallel()
	url, calls := mcpServer(t)
	c := start(t, refagent.Options{})
	var sid string
	c.onPerm = func(p acp.RequestPermissionRequest) acp.RequestPermissionResponse {
		c.conn.Notify(context.Background(), acp.MethodSessionCancel, acp.CancelNotification{SessionID: sid})
		time.Sleep(10 * time.Millisecond)
		return acp.RequestPermissionResponse{Outcome: acp.RequestPermissionOutcome{Outcome: acp.OutcomeCancelled}}
	}
	sid = c.session(t, []acp.McpServer{{Type: acp.MCPTransportHTTP, Name: "broker", URL: url}})
	if stop := c.prompt(t, sid, `call get_task with {"task_id":"t1"}`); stop != acp.StopCancelled || *calls != 0 {
		t.Fatalf("stop %q, %d calls", stop, *calls)
	}
}

// stdout carries only JSON-RPC (outside fault:garbage).
func TestStdoutIsJSONOnly(t *testing.T) {
	t.Parallel()
	url, _ := mcpServer(t)
	c := start(t, refagent.Options{Logger: nil})
	c.onPerm = func(p acp.RequestPermissionRequest) acp.RequestPermissionResponse {
		return acp.RequestPermissionResponse{Outcome: acp.RequestPermissionOutcome{Outcome: acp.OutcomeSelected, OptionID: refagent.OptionAlways}}
	}
	sid := c.session(t, []acp.McpServer{{Type: acp.MCPTransportHTTP, Name: "broker", URL: url}})
	c.prompt(t, sid, `call get_task with {"task_id":"t1"}`)
	c.prompt(t, sid, "hello")
	c.prompt(t, sid, "fault:flood 5")
	c.mu.Lock()
	defer c.mu.Unlock()
	s := bufio.NewScanner(bytes.NewReader(c.raw.Bytes()))
	n := 0
	for s.Scan() {
		if !json.Valid(s.Bytes()) || s.Bytes()[0] != '{' {
			t.Fatalf("stdout line %q is not a JSON object", s.Text())
		}
		n++
	}
	if n < 15 {
		t.Fatalf("only %d lines", n)
	}
}

func TestOptionsFromEnv(t *testing.T) {
	t.Parallel()
	env := map[string]string{"REFAGENT_MCP_HTTP": "0", "REFAGENT_REQUIRE_AUTH": "1", "REFAGENT_IGNORE_EOF": "1", "REFAGENT_STATE_DIR": "/x"}
	o := refagent.OptionsFromEnv(func(k string) string { return env[k] })
	if !o.NoHTTPMCP || !o.RequireAuth || !o.IgnoreEOF || o.StateDir != "/x" {
		t.Fatalf("%+v", o)
	}
	if o := refagent.OptionsFromEnv(func(string) string { return "" }); o.NoHTTPMCP || o.RequireAuth || o.IgnoreEOF {
		t.Fatalf("%+v", o)
	}
}
