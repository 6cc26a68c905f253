package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentbroker/agentbroker/sessions"
)

// hostile is what an agent, a tool or a store record might carry to take
// over the operator's terminal: an OSC 52 clipboard write, a window title,
// a clear screen, a cursor move, a carriage return, a C1 CSI and a bidi
// override.
const hostile = "A\x1b]52;c;cm0gLXJmIH4=\x07B\x1b]0;pwned\x07C\x1b[2J\x1b[HD\x1b[1A\rE\u009b2JF\u202eG"

// assertNoControls fails when out holds a terminal control character
// other than newline and tab.
func assertNoControls(t *testing.T, what, out string) {
	t.Helper()
	for i, r := range out {
		if (r < 0x20 && r != '\n' && r != '\t') || (r >= 0x7f && r <= 0x9f) || (r >= 0x202a && r <= 0x202e) {
			t.Errorf("%s holds %U at byte %d:\n%q", what, r, i, out)
			return
		}
	}
}

// TestSessionCLIEscapesControls: on a real broker with the reference
// agent, a prompt whose text (echoed back by the agent) and a task whose
// title and description (returned by the MCP tool) carry terminal control
// sequences print escaped in `session prompt` and `session attach`: no
// ESC, BEL, CR or C1 byte reaches stdout, and the escapes show.
func TestSessionCLIEscapesControls(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	b := startBroker(t, dataDir, "AGENTBROKER_CUSTOM_AGENT="+refagentBin)
	admin := adminToken(t, dataDir)
	var p, task struct{ ID string }
	body, _ := json.Marshal(map[string]string{"name": "p" + hostile, "instructions": hostile})
	_, resp := b.do("POST", "/v1/projects", admin, strings.NewReader(string(body)))
	json.Unmarshal([]byte(resp), &p)
	body, _ = json.Marshal(map[string]string{"title": "t" + hostile, "description": "marker-e5c " + hostile})
	_, resp = b.do("POST", "/v1/projects/"+p.ID+"/tasks", admin, strings.NewReader(string(body)))
	json.Unmarshal([]byte(resp), &task)
	if p.ID == "" || task.ID == "" {
		t.Fatalf("project %q, task %q: %s", p.ID, task.ID, resp)
	}

	env := map[string]string{"AGENTBROKER_DATA_DIR": dataDir, "AGENTBROKER_URL": b.url("")}
	out, stderr, err := runCLI(t, env, "", "session", "start", "--project", p.ID, "--agent", "custom", "--credential", "none",
		"--policy", "allow-all", "--cwd", agentDir(t), "--title", "s"+hostile)
	if err != nil {
		t.Fatalf("session start: %v\n%s\n%s", err, stderr, b.log())
	}
	id := strings.TrimSpace(out)
	attached := make(chan string, 1)
	go func() {
		out, stderr, err := runCLI(t, env, "", "session", "attach", id)
		if err != nil {
			out += "\nattach error: " + err.Error()
		}
		attached <- out + stderr
	}()

	out, stderr, err = runCLI(t, env, "", "session", "prompt", id, "say "+hostile)
	if err != nil {
		t.Fatalf("session prompt: %v\n%s", err, stderr)
	}
	assertNoControls(t, "session prompt's stdout", out)
	assertNoControls(t, "session prompt's stderr", stderr)
	if want := `You said: say A\x1b]52;c;cm0gLXJmIH4=\x07B\x1b]0;pwned\x07C\x1b[2J\x1b[HD\x1b[1A\x0dE\u009b2JF\u202eG`; !strings.Contains(out, want) {
		t.Errorf("session prompt's reply lacks the escaped text %q:\n%s", want, out)
	}
	out, _, err = runCLI(t, env, "", "session", "prompt", id, fmt.Sprintf(`call get_task with {"id":%q}`, task.ID))
	if err != nil || !strings.Contains(out, "marker-e5c") {
		t.Fatalf("session prompt (tool) = %v\n%s", err, out)
	}
	assertNoControls(t, "session prompt's tool reply", out)
	if !strings.Contains(out, `\u001b]52;c;`) && !strings.Contains(out, `\x1b]52;c;`) {
		t.Errorf("the tool reply does not show the escaped OSC 52:\n%s", out)
	}
	if out, _, err := runCLI(t, env, "", "session", "stop", id); err != nil {
		t.Fatalf("session stop = %v\n%s", err, out)
	}
	select {
	case view := <-attached:
		assertNoControls(t, "session attach's screen", view)
		for _, want := range []string{`> say A\x1b]52;c;`, `You said: say A\x1b]52;c;`, "get_task", "marker-e5c", "log has ended"} {
			if !strings.Contains(view, want) {
				t.Errorf("attach view lacks %q:\n%s", want, view)
			}
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("attach did not end with the session")
	}

	// An error that echoes what the broker said is escaped too, as the
	// binary prints it: here the broker's 404 names the decoded path.
	cmd := exec.Command(binary, "session", "prompt", id, "hi")
	cmd.Env = []string{"AGENTBROKER_DATA_DIR=" + dataDir, "AGENTBROKER_URL=" + b.url("/v1/x%1B]0;pwned%07%1B[2J"), "HOME=" + t.TempDir()}
	msg, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(msg), "no such endpoint") {
		t.Fatalf("a prompt to no endpoint = %v:\n%s", err, msg)
	}
	assertNoControls(t, "the error the binary printed", string(msg))
	if !strings.Contains(string(msg), `/v1/x\x1b]0;pwned\x07\x1b[2J`) {
		t.Errorf("the error does not show the escaped path:\n%s", msg)
	}
	if err := b.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
}

// TestRendererEscapesControls: every field of an event that the renderer
// prints (text, thinking, tool titles and results, permission questions
// and their options, plans, errors, usage messages) comes out escaped.
func TestRendererEscapesControls(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	r := newRenderer(&b)
	h, _ := json.Marshal(hostile)
	frames := []sessions.Frame{
		{Seq: 1, Type: "prompt", Data: []byte(`{"text":` + string(h) + `}`)},
		{Seq: 2, Type: "update", Data: []byte(`{"sessionUpdate":"agent_thought_chunk","content":{"type":"text","text":` + string(h) + `}}`)},
		{Seq: 3, Type: "update", Data: []byte(`{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":` + string(h) + `}}`)},
		{Seq: 4, Type: "update", Data: []byte(`{"sessionUpdate":"tool_call","toolCallId":"c1","title":` + string(h) + `,"status":` + string(h) + `}`)},
		{Seq: 5, Type: "update", Data: []byte(`{"sessionUpdate":"tool_call_update","toolCallId":` + string(h) + `,"status":"completed"}`)},
		{Seq: 6, Type: "update", Data: []byte(`{"sessionUpdate":"plan","entries":[{"status":"pending","content":` + string(h) + `}]}`)},
		{Seq: 7, Type: "permission_request", Data: []byte(`{"request_id":"q1","tool_call":{"title":` + string(h) +
			`},"options":[{"optionId":"o1","name":` + string(h) + `,"kind":` + string(h) + `}]}`)},
		{Seq: 8, Type: "permission_answer", Data: []byte(`{"outcome":` + string(h) + `,"kind":"allow_once"}`)},
		{Seq: 9, Type: "tool_call_mcp", Data: []byte(`{"tool":` + string(h) + `,"outcome":"ok"}`)},
		{Seq: 10, Type: "usage", Data: []byte(`{"model":` + string(h) + `,"outcome":"refused","message":` + string(h) + `}`)},
		{Seq: 11, Type: "warning", Data: []byte(`{"message":` + string(h) + `}`)},
		{Seq: 12, Type: "turn_end", Data: []byte(`{"stop_reason":` + string(h) + `}`)},
		{Type: "error", Error: hostile},
	}
	for _, f := range frames {
		r.frame(f)
	}
	out := b.String()
	assertNoControls(t, "the rendered events", out)
	if n := strings.Count(out, `A\x1b]52;c;cm0gLXJmIH4=\x07B`); n < len(frames) {
		t.Errorf("the escaped text shows %d times, want at least %d:\n%s", n, len(frames), out)
	}
}

// TestStoreListsEscapeControls: project and task names with control
// sequences, stored through the CLI (and the broker's API), print escaped in `project list` and
// `task list`.
func TestStoreListsEscapeControls(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	startBroker(t, dataDir)
	env := map[string]string{"AGENTBROKER_DATA_DIR": dataDir}
	out, stderr, err := runCLI(t, env, "", "project", "create", "--name", "p"+hostile, "--description", "d"+hostile)
	if err != nil {
		t.Fatalf("project create: %v\n%s", err, stderr)
	}
	project := strings.TrimSpace(out)
	if _, stderr, err := runCLI(t, env, "", "task", "add", "--project", project, "--title", "t"+hostile); err != nil {
		t.Fatalf("task add: %v\n%s", err, stderr)
	}
	for _, args := range [][]string{{"project", "list"}, {"task", "list", "--project", project}} {
		out, stderr, err := runCLI(t, env, "", args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, stderr)
		}
		assertNoControls(t, strings.Join(args, " "), out)
		if !strings.Contains(out, `A\x1b]52;c;cm0gLXJmIH4=\x07B\x1b]0;pwned`) {
			t.Errorf("%v does not show the escaped name:\n%s", args, out)
		}
	}
}

// TestTokenInspectEscapesControls: `token inspect` shows an untrusted
// token's claims; control characters in them print escaped.
func TestTokenInspectEscapesControls(t *testing.T) {
	t.Parallel()
	enc := base64.RawURLEncoding.EncodeToString
	header, _ := json.Marshal(map[string]string{"alg": "EdDSA", "typ": "at+jwt", "kid": "k" + hostile})
	payload, _ := json.Marshal(map[string]any{"sub": "s" + hostile, "aud": "agentbroker:admin", "exp": 1})
	raw := enc(header) + "." + enc(payload) + "." + enc([]byte("sig"))
	env := map[string]string{"AGENTBROKER_DATA_DIR": filepath.Join(t.TempDir(), "data")}
	out, stderr, err := runCLI(t, env, raw+"\n", "token", "inspect")
	if err == nil || !strings.Contains(out, "INVALID") {
		t.Fatalf("token inspect = %v\n%s\n%s", err, out, stderr)
	}
	assertNoControls(t, "token inspect", out+stderr)
	if !strings.Contains(out, `\u009b2J`) || !strings.Contains(out, `\u202eG`) {
		t.Errorf("token inspect does not show the escaped claims:\n%s", out)
	}
}
