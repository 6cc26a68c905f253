package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentbroker/agentbroker/sessions"
)

// TestSessionCLI runs a session with the reference agent through a real
// broker, driven by the session commands: start, prompt (the agent calls
// our MCP tool and its reply carries the task), list, attach (the live
// view), stop.
func TestSessionCLI(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	b := startBroker(t, dataDir, "AGENTBROKER_CUSTOM_AGENT="+refagentBin)
	admin := adminToken(t, dataDir)

	var p, task struct{ ID string }
	_, body := b.do("POST", "/v1/projects", admin, strings.NewReader(`{"name":"cli","instructions":"Be brief."}`))
	json.Unmarshal([]byte(body), &p)
	_, body = b.do("POST", "/v1/projects/"+p.ID+"/tasks", admin, strings.NewReader(`{"title":"t","description":"the answer is marker-c41e"}`))
	json.Unmarshal([]byte(body), &task)

	env := map[string]string{"AGENTBROKER_DATA_DIR": dataDir, "AGENTBROKER_URL": b.url("")}
	out, stderr, err := runCLI(t, env, "", "session", "start", "--project", p.ID, "--agent", "custom", "--credential", "none", "--policy", "allow-all", "--cwd", agentDir(t))
	if err != nil {
		t.Fatalf("session start: %v\n%s\n%s", err, stderr, b.log())
	}
	id := strings.TrimSpace(out)

	// Watch it live while it works.
	attached := make(chan string, 1)
	go func() {
		out, _, err := runCLI(t, env, "", "session", "attach", id)
		if err != nil {
			out += "\nattach error: " + err.Error()
		}
		attached <- out
	}()

	out, _, err = runCLI(t, env, "", "session", "prompt", id, fmt.Sprintf(`call get_task with {"id":%q}`, task.ID))
	if err != nil || !strings.Contains(out, "marker-c41e") {
		t.Fatalf("session prompt = %v\n%s", err, out)
	}
	out, _, err = runCLI(t, env, "", "session", "list")
	if err != nil || !strings.Contains(out, id) || !strings.Contains(out, "idle") {
		t.Fatalf("session list = %v\n%s", err, out)
	}
	if out, _, err := runCLI(t, env, "", "session", "stop", id); err != nil || !strings.Contains(out, "stopped") {
		t.Fatalf("session stop = %v\n%s", err, out)
	}
	select {
	case view := <-attached:
		t.Logf("attach view:\n%s", view)
		for _, want := range []string{"— state: ready", "get_task", "marker-c41e", "— state: stopped", "log has ended"} {
			if !strings.Contains(view, want) {
				t.Errorf("attach view lacks %q:\n%s", want, view)
			}
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("attach did not end with the session")
	}
	if _, _, err := runCLI(t, env, "", "session", "prompt", id, "hello"); err == nil {
		t.Fatalf("a prompt to a stopped session succeeded")
	}
	out, _, err = runCLI(t, env, "", "session", "events", id)
	if err != nil || !strings.Contains(out, `"type":"tool_call_mcp"`) || !strings.Contains(out, `"type":"config"`) {
		t.Fatalf("session events = %v\n%s", err, out)
	}
	if err := b.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
}

// TestRendererSpinner: on a terminal a spinner turns while a turn runs,
// and is wiped before the next output; elsewhere nothing is drawn.
func TestRendererSpinner(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	r := newRenderer(&b)
	r.frame(sessions.Frame{Seq: 1, Type: "state", Data: []byte(`{"state":"prompting"}`)})
	r.tick()
	if strings.Contains(b.String(), "working") {
		t.Fatalf("spinner drawn on a non-terminal: %q", b.String())
	}
	r.tty = true
	r.tick()
	r.tick()
	r.frame(sessions.Frame{Seq: 2, Type: "state", Data: []byte(`{"state":"idle"}`)})
	r.tick()
	out := b.String()
	if strings.Count(out, "working…") != 2 || !strings.Contains(out, "\r\033[K— state: idle") {
		t.Fatalf("spinner output %q", out)
	}
}

// TestSessionAttachAnswersPermission: under the "ask" policy the agent's
// permission question appears in `session attach`, and typing an option's
// number there answers it.
func TestSessionAttachAnswersPermission(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	b := startBroker(t, dataDir, "AGENTBROKER_CUSTOM_AGENT="+refagentBin)
	admin := adminToken(t, dataDir)
	var p, task struct{ ID string }
	_, body := b.do("POST", "/v1/projects", admin, strings.NewReader(`{"name":"ask"}`))
	json.Unmarshal([]byte(body), &p)
	_, body = b.do("POST", "/v1/projects/"+p.ID+"/tasks", admin, strings.NewReader(`{"title":"t","description":"marker-a5k"}`))
	json.Unmarshal([]byte(body), &task)
	vars := map[string]string{"AGENTBROKER_DATA_DIR": dataDir, "AGENTBROKER_URL": b.url("")}
	out, _, err := runCLI(t, vars, "", "session", "start", "--project", p.ID, "--agent", "custom", "--credential", "none",
		"--policy", "ask", "--cwd", agentDir(t))
	if err != nil {
		t.Fatalf("session start: %v", err)
	}
	id := strings.TrimSpace(out)

	stdinR, stdinW := io.Pipe()
	screen := &syncBuffer{}
	attached := make(chan error, 1)
	go func() {
		attached <- run(context.Background(), []string{"session", "attach", id}, &env{
			stdin: stdinR, stdout: screen, stderr: io.Discard, getenv: func(k string) string { return vars[k] }})
	}()
	replied := make(chan string, 1)
	go func() {
		out, _, err := runCLI(t, vars, "", "session", "prompt", id, fmt.Sprintf(`call get_task with {"id":%q}`, task.ID))
		if err != nil {
			out += err.Error()
		}
		replied <- out
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(screen.String(), "? permission for") {
		if time.Now().After(deadline) {
			t.Fatalf("no permission question on the screen:\n%s", screen.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Pick the option whose kind is allow_once, by its number on screen.
	choice := ""
	for _, l := range strings.Split(screen.String(), "\n") {
		if strings.Contains(l, "(allow_once)") {
			choice = strings.TrimSpace(strings.SplitN(l, ")", 2)[0])
		}
	}
	if choice == "" {
		t.Fatalf("no allow_once option shown:\n%s", screen.String())
	}
	io.WriteString(stdinW, choice+"\n")
	select {
	case reply := <-replied:
		if !strings.Contains(reply, "marker-a5k") {
			t.Fatalf("reply after allowing = %q\n%s", reply, screen.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the turn did not end after the answer:\n%s", screen.String())
	}
	runCLI(t, vars, "", "session", "stop", id)
	stdinW.Close()
	if err := <-attached; err != nil {
		t.Fatalf("attach: %v", err)
	}
	if !strings.Contains(screen.String(), "permission selected: allow_once") {
		t.Fatalf("the answer is not on the screen:\n%s", screen.String())
	}
}

// syncBuffer is a strings.Builder safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDemo runs `agentbroker demo` as a person would: it needs no network
// and no key, and says OK only when the agent called our MCP tool and its
// reply carried the task.
func TestDemo(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "demo", "--data-dir", filepath.Join(t.TempDir(), "demo"))
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	for _, want := range []string{"— state: ready", "⚙ mcp__agentbroker__get_task", "↳ MCP get_task: ok", demoMarker, "— state: stopped", "OK: the agent called get_task"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}

// TestDemoVerdict: the demo fails whenever the tool call or its result is
// missing, whatever else went right.
func TestDemoVerdict(t *testing.T) {
	t.Parallel()
	good := "get_task returned: ... " + demoMarker + " ..."
	boom := fmt.Errorf("boom")
	for _, tt := range []struct {
		name             string
		promptErr, evErr error
		calls            int
		reply            string
		stopErr          error
		want             string
	}{
		{"all good", nil, nil, 1, good, nil, ""},
		{"no tool call", nil, nil, 0, good, nil, "never called the MCP tool"},
		{"reply without the task", nil, nil, 1, "I could not look it up", nil, "does not carry"},
		{"prompt failed", boom, nil, 1, good, nil, "the prompt failed"},
		{"events unreadable", nil, boom, 1, good, nil, "reading the session's events"},
		{"stop failed", nil, nil, 1, good, boom, "stopping the session"},
	} {
		err := demoVerdict(tt.promptErr, tt.evErr, tt.calls, tt.reply, tt.stopErr)
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: demoVerdict = %v; want %q", tt.name, err, tt.want)
		}
	}
}

func TestUsageLine(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		data string
		want string
	}{
		{`{"model":"gpt-5.5","outcome":"ok","usage":{"input_tokens":1000,"output_tokens":200},"cost_micro_usd":12345}`,
			"  model call: gpt-5.5 ok, 1000 tokens in, 200 out, $0.012345"},
		{`{"model":"o3","outcome":"refused","reason":"model_not_allowed","message":"o3 is not offered to codex"}`,
			"  model call: o3 refused: o3 is not offered to codex"},
	} {
		var d map[string]any
		if err := json.Unmarshal([]byte(c.data), &d); err != nil {
			t.Fatal(err)
		}
		if got := usageLine(d); got != c.want {
			t.Errorf("usageLine(%s) = %q; want %q", c.data, got, c.want)
		}
	}
}

// TestRendererModelRefused: `session attach` shows the proxy's refusal of
// a model, with the model asked, the session's, and why.
func TestRendererModelRefused(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	r := newRenderer(&b)
	r.frame(sessions.Frame{Seq: 1, Type: "model_refused", Data: []byte(`{"route":"messages","wire_model":"claude-opus-4-8",` +
		`"model":"claude-sonnet-4-6","reason":"not_session_model","message":"agentbroker proxy: this session was given \"claude-sonnet-4-6\""}`)})
	out := b.String()
	for _, want := range []string{"model refused", "claude-opus-4-8", "claude-sonnet-4-6", "this session was given"} {
		if !strings.Contains(out, want) {
			t.Errorf("attach output %q lacks %q", out, want)
		}
	}
}
