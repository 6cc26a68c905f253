package acp_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentbroker/agentbroker/acp"
)

type tLine struct {
	Dir string          `json:"dir"`
	Msg json.RawMessage `json:"msg"`
}

type tMsg struct {
	ID     json.RawMessage `json:"id,omitempty"`
	Method string          `json:"method,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  json.RawMessage `json:"error,omitempty"`
}

func (m tMsg) isResponse() bool { return m.Method == "" }
func (m tMsg) hasID() bool      { return len(m.ID) > 0 && string(m.ID) != "null" }

func loadTranscript(t *testing.T, name string) []tLine {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "transcripts", name))
	if err != nil {
		t.Fatal(err)
	}
	var out []tLine
	for _, l := range lines(b) {
		var tl tLine
		if err := json.Unmarshal([]byte(l), &tl); err != nil {
			t.Fatal(err)
		}
		out = append(out, tl)
	}
	return out
}

// fakeAgent replays the agent side of a transcript: it sends the agent's
// lines in order, and at each line the client sent it waits for our
// client's message and checks it (same method; same key params; for our
// answers to the agent's requests, the same outcome). Response IDs are
// rewritten to the IDs our client used.
type fakeAgent struct {
	t       *testing.T
	lines   []tLine
	in      *bufio.Reader // what our client writes
	out     io.WriteCloser
	expect  chan tMsg // the client message the agent waits for next
	idmap   map[string]json.RawMessage
	done    chan struct{}
	problem error
}

func newFakeAgent(t *testing.T, lines []tLine, in io.Reader, out io.WriteCloser) *fakeAgent {
	return &fakeAgent{t: t, lines: lines, in: bufio.NewReaderSize(in, 1<<20), out: out,
		expect: make(chan tMsg), idmap: map[string]json.RawMessage{}, done: make(chan struct{})}
}

func (f *fakeAgent) run() {
	defer close(f.done)
	defer f.out.Close()
	for i, tl := range f.lines {
		var m tMsg
		_ = json.Unmarshal(tl.Msg, &m)
		switch tl.Dir {
		case "<<":
			msg := []byte(tl.Msg)
			if m.isResponse() {
				ours, ok := f.idmap[string(m.ID)]
				if !ok {
					f.problem = fmt.Errorf("line %d: response to request %s we never got", i+1, m.ID)
					return
				}
				msg = rewriteID(f.t, msg, ours)
			}
			if _, err := f.out.Write(append(msg, '\n')); err != nil {
				f.problem = fmt.Errorf("line %d: write: %v", i+1, err)
				return
			}
		case ">>":
			select {
			case f.expect <- m:
			case <-time.After(10 * time.Second):
				f.problem = fmt.Errorf("line %d: the driver never got to %s", i+1, m.Method)
				return
			}
			if err := f.receive(i+1, m); err != nil {
				f.problem = err
				return
			}
		case "EOF", "EXIT":
			return
		}
	}
}

// receive reads our client's next message and compares it with want.
func (f *fakeAgent) receive(line int, want tMsg) error {
	type result struct {
		b   []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		b, err := f.in.ReadBytes('\n')
		ch <- result{b, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("line %d: our client sent nothing (want %s)", line, describe(want))
	}
	if r.err != nil {
		return fmt.Errorf("line %d: read: %v", line, r.err)
	}
	var got tMsg
	if err := json.Unmarshal(r.b, &got); err != nil {
		return fmt.Errorf("line %d: our client sent %q: %v", line, r.b, err)
	}
	if got.Method != want.Method || got.hasID() != want.hasID() {
		return fmt.Errorf("line %d: our client sent %s, want %s", line, describe(got), describe(want))
	}
	if want.isResponse() {
		if string(got.ID) != string(want.ID) {
			return fmt.Errorf("line %d: our answer has id %s, want %s", line, got.ID, want.ID)
		}
		if len(want.Error) > 0 {
			// An error answer (an unknown method): the same code.
			var ge, we struct {
				Code int64 `json:"code"`
			}
			if json.Unmarshal(got.Error, &ge) != nil || json.Unmarshal(want.Error, &we) != nil || ge.Code != we.Code {
				return fmt.Errorf("line %d: our answer %s %s, the transcript's client answered error %s", line, got.Result, got.Error, want.Error)
			}
			return nil
		}
		if !sameJSON(got.Result, want.Result) {
			return fmt.Errorf("line %d: our answer %s, the transcript's client answered %s", line, got.Result, want.Result)
		}
		return nil
	}
	if want.hasID() {
		f.idmap[string(want.ID)] = got.ID
	}
	switch want.Method {
	case acp.MethodInitialize:
		var p acp.InitializeRequest
		if err := json.Unmarshal(got.Params, &p); err != nil || p.ProtocolVersion != 1 || p.ClientInfo == nil || p.ClientInfo.Name != "agentbroker" {
			return fmt.Errorf("line %d: our initialize %s", line, got.Params)
		}
	default:
		if !sameJSON(got.Params, want.Params) {
			return fmt.Errorf("line %d: our %s params\n %s\nthe transcript's\n %s", line, want.Method, got.Params, want.Params)
		}
	}
	return nil
}

func describe(m tMsg) string {
	if m.isResponse() {
		return "a response to " + string(m.ID)
	}
	return m.Method
}

func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func rewriteID(t *testing.T, msg []byte, id json.RawMessage) []byte {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(msg, &m); err != nil {
		t.Fatal(err)
	}
	m["id"] = id
	b, _ := json.Marshal(m)
	return b
}

type replayCase struct {
	file string
	// asker, when set, is the Asker (policy ask); else allow-project-tools
	// with no asker, so that only our own tools get through.
	asker acp.Asker
	// wantStop is the prompt's stop reason; wantErr its error.
	wantStop    acp.StopReason
	wantErr     func(error) bool
	wantSessErr func(error) bool // session/new's error
	// wantExt are the agent's requests ("?" prefix) and notifications it
	// sends that the client does not handle: each must reach OnExtension.
	wantExt []string
}

func TestReplayTranscripts(t *testing.T) {
	t.Parallel()
	isRPC := func(code int64) func(error) bool {
		return func(err error) bool {
			var re *acp.RPCError
			return errors.As(err, &re) && re.Code == code
		}
	}
	for _, tc := range []replayCase{
		{file: "claude-agent-acp-0.101.0-e2e.jsonl", wantStop: acp.StopEndTurn},
		{file: "claude-agent-acp-cancel.jsonl", wantStop: acp.StopCancelled},
		{file: "codex-acp-2.6.0-e2e-permission.jsonl", wantStop: acp.StopEndTurn},
		{file: "codex-acp-2.6.0-e2e-CODEX_CONFIG.jsonl", wantStop: acp.StopEndTurn},
		{file: "codex-acp-2.6.0-cancel.jsonl", wantStop: acp.StopCancelled},
		{file: "zed-codex-acp-0.16.0-e2e.jsonl", wantStop: acp.StopEndTurn},
		// Qwen Code 0.24.4 (shared/reference more-agents): its non-standard
		// craft/drainMidTurnQueue request mid-turn, answered -32601 while
		// the turn goes on, and qwen/notify/… notifications.
		{file: "../nonstandard/qwen-code-0.24.4-e2e.jsonl", wantStop: acp.StopEndTurn,
			wantExt: []string{"qwen/notify/session/mode-update", "?craft/drainMidTurnQueue", "qwen/notify/session/prompt-suggestion"}},
		{file: "amp-acp-0.8.1-src.jsonl", wantErr: isRPC(acp.CodeInternalError)},
		{file: "codex-acp-2.6.0-auth-required.jsonl", wantSessErr: func(err error) bool { return errors.Is(err, acp.ErrAuthRequired) }},
		{file: "claude-agent-acp-root-error.jsonl", wantSessErr: func(err error) bool {
			return isRPC(acp.CodeInternalError)(err) && strings.Contains(err.Error(), "root")
		}},
		// Synthetic, built from the Claude transcripts: cancel while a
		// permission request is pending. session/cancel goes first, then
		// the "cancelled" answer.
		{file: "synthetic-claude-cancel-pending-permission.jsonl", wantStop: acp.StopCancelled,
			asker: acp.AskerFunc(func(ctx context.Context, req acp.PermissionRequest) (string, error) {
				<-ctx.Done()
				return "", ctx.Err()
			})},
	} {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			replay(t, tc)
		})
	}
}

func replay(t *testing.T, tc replayCase) {
	lines := loadTranscript(t, tc.file)
	toAgentR, toAgentW := io.Pipe()
	fromAgentR, fromAgentW := io.Pipe()
	agent := newFakeAgent(t, lines, toAgentR, fromAgentW)
	go agent.run()
	defer func() { toAgentR.Close(); <-agent.done }()

	col := &collector{}
	var extMu sync.Mutex
	var ext []string
	opts := &acp.ConnOptions{OnUpdate: col.OnUpdate, Logger: testLogger(t), MCPServerName: "broker",
		Permissions: acp.PolicyAllowProjectTools,
		OnExtension: func(method string, request bool, params json.RawMessage) {
			if request {
				method = "?" + method
			}
			if !json.Valid(params) {
				t.Errorf("OnExtension(%s): params %q", method, params)
			}
			extMu.Lock()
			ext = append(ext, method)
			extMu.Unlock()
		}}
	defer func() {
		if tc.wantExt == nil {
			return
		}
		extMu.Lock()
		defer extMu.Unlock()
		for _, w := range tc.wantExt {
			if !slices.Contains(ext, w) {
				t.Errorf("OnExtension saw %q, not %s", ext, w)
			}
		}
	}()
	if tc.asker != nil {
		opts.Permissions, opts.Asker = acp.PolicyAsk, tc.asker
	}
	c := acp.NewConn(context.Background(), fromAgentR, toAgentW, opts)
	defer c.Close()

	// The driver does what the transcript's client did, when the fake
	// agent waits for it.
	ctx := ctxT(t, 30*time.Second)
	var init *acp.InitializeResponse
	var sessionID string
	type promptResult struct {
		stop acp.StopReason
		err  error
	}
	prompted := make(chan promptResult, 1)
	promptRunning := false
	for {
		var want tMsg
		select {
		case want = <-agent.expect:
		case <-agent.done:
			goto end
		}
		if want.isResponse() {
			continue // our policy answers by itself
		}
		var err error
		switch want.Method {
		case acp.MethodInitialize:
			init, err = c.Initialize(ctx)
		case acp.MethodAuthenticate:
			var p acp.AuthenticateRequest
			json.Unmarshal(want.Params, &p)
			err = c.Authenticate(ctx, p.MethodID)
		case acp.MethodSessionNew:
			var p acp.NewSessionRequest
			json.Unmarshal(want.Params, &p)
			tok := strings.TrimPrefix(p.McpServers[0].Headers[0].Value, "Bearer ")
			entry, eerr := acp.NewMCPServerEntry(init.AgentCapabilities, p.McpServers[0].Name, p.McpServers[0].URL, tok, "/usr/bin/agentbroker")
			if eerr != nil {
				t.Fatal(eerr)
			}
			var resp *acp.NewSessionResponse
			resp, err = c.NewSession(ctx, acp.NewSessionRequest{Cwd: p.Cwd, McpServers: []acp.McpServer{entry}})
			if tc.wantSessErr != nil {
				if !tc.wantSessErr(err) {
					t.Fatalf("session/new = %v", err)
				}
				err = nil
				break
			}
			if err == nil {
				sessionID = resp.SessionID
			}
		case acp.MethodSessionSetMode:
			var p acp.SetSessionModeRequest
			json.Unmarshal(want.Params, &p)
			err = c.SetMode(ctx, sessionID, p.ModeID)
		case acp.MethodSessionPrompt:
			var p acp.PromptRequest
			json.Unmarshal(want.Params, &p)
			promptRunning = true
			go func() {
				stop, err := c.Prompt(ctx, sessionID, p.Prompt)
				prompted <- promptResult{stop, err}
			}()
		case acp.MethodSessionCancel:
			err = c.Cancel(ctx, sessionID)
		default:
			t.Fatalf("the driver cannot do %s", want.Method)
		}
		if err != nil {
			t.Fatalf("%s: %v", want.Method, err)
		}
	}
end:
	if agent.problem != nil {
		t.Fatal(agent.problem)
	}
	if promptRunning {
		r := <-prompted
		if tc.wantErr != nil {
			if !tc.wantErr(r.err) {
				t.Fatalf("Prompt = %q, %v", r.stop, r.err)
			}
		} else if r.err != nil || r.stop != tc.wantStop {
			t.Fatalf("Prompt = %q, %v; want %q", r.stop, r.err, tc.wantStop)
		}
	}
	<-c.Done()
	if !errors.Is(c.Err(), acp.ErrPeerClosed) {
		t.Fatalf("connection ended with %v, want ErrPeerClosed at the transcript's EOF", c.Err())
	}
	c.Close()

	// The session ID was parsed, and every update arrived, in order.
	var wantKinds []string
	var wantSession string
	for _, tl := range lines {
		var m tMsg
		json.Unmarshal(tl.Msg, &m)
		if tl.Dir == "<<" && m.Method == acp.MethodSessionUpdate {
			var n acp.SessionNotification
			json.Unmarshal(m.Params, &n)
			wantKinds = append(wantKinds, n.Update.Kind)
		}
		if tl.Dir == "<<" && bytes.Contains(m.Result, []byte(`"sessionId"`)) {
			var r acp.NewSessionResponse
			json.Unmarshal(m.Result, &r)
			wantSession = r.SessionID
		}
	}
	if sessionID != wantSession {
		t.Fatalf("session ID %q, want %q", sessionID, wantSession)
	}
	if got := col.kinds(); !slices.Equal(got, wantKinds) {
		t.Fatalf("updates %q\nwant %q", got, wantKinds)
	}
	checkSeq(t, col.all())
}
