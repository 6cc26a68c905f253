package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/agentbroker/agentbroker/acp/sandbox"
	"github.com/agentbroker/agentbroker/internal/refagent/probe"
	"github.com/agentbroker/agentbroker/sessions"
	"github.com/agentbroker/agentbroker/store/sqlite"
)

// TestConfinementProbe runs an attacker as the agent of a session on the
// real serve: the reference agent with a probe spec (package probe), which
// tries, before it answers ACP, everything an agent must not do to the
// broker and to another session, and a few things it must be able to do.
// Every attack must fail and every control succeed. With
// AGENTBROKER_PROBE_SANDBOX=off the same test runs with confinement off,
// and fails: that is how to see it is not vacuous (TestConfinementProbeOff
// checks the same in every run).
func TestConfinementProbe(t *testing.T) {
	if s := sandbox.Probe(); s.ABI == 0 {
		t.Skipf("agents cannot be confined here: %s", s)
	}
	mode := os.Getenv("AGENTBROKER_PROBE_SANDBOX")
	if mode == "" {
		mode = "on"
	}
	run := runProbe(t, mode)
	for name := range run.attacks {
		r, ok := run.results[name]
		switch {
		case !ok:
			t.Errorf("attack %q: no result", name)
		case r.OK:
			t.Errorf("attack %q SUCCEEDED from inside the agent", name)
		default:
			t.Logf("attack %-34q refused: %s", name, r.Err)
		}
	}
	for name := range run.controls {
		if r := run.results[name]; !r.OK {
			t.Errorf("control %q failed: the agent cannot do what it needs: %s", name, r.Err)
		}
	}
	if !strings.HasPrefix(run.info.Sandbox, "on: landlock ABI") {
		t.Errorf("the session's record says sandbox %q", run.info.Sandbox)
	}
	if !strings.HasPrefix(run.ready["agent_sandbox"].(string), "on: landlock ABI") {
		t.Errorf("/readyz does not say agents are confined: %s", run.ready)
	}
	if os.Geteuid() == 0 && !strings.Contains(run.info.Sandbox, "agents run as nobody") {
		t.Errorf("a root broker's agents do not run as nobody: %q", run.info.Sandbox)
	}
}

// TestConfinementProbeOff: the same probe with --agent-sandbox=off gets
// through where only confinement stops it, and the broker says so.
func TestConfinementProbeOff(t *testing.T) {
	run := runProbe(t, "off")
	for _, name := range []string{"read another session's home file", "write another session's cwd", "connect to another port"} {
		if r := run.results[name]; !r.OK {
			t.Errorf("with confinement off, %q still failed (%s): the probe does not test what it claims", name, r.Err)
		}
	}
	if os.Geteuid() != 0 {
		if r := run.results["read the admin token"]; !r.OK {
			t.Errorf("with confinement off and one user, reading the admin token failed: %s", r.Err)
		}
	}
	if !strings.HasPrefix(run.info.Sandbox, "off: turned off") {
		t.Errorf("the session's record says sandbox %q", run.info.Sandbox)
	}
	if w, _ := json.Marshal(run.ready["warnings"]); !strings.Contains(string(w), "AGENTS ARE NOT CONFINED") {
		t.Errorf("/readyz does not warn: %s", run.ready)
	}
	if !strings.Contains(run.b.log(), "AGENTS ARE NOT CONFINED") {
		t.Errorf("serve did not say so at start")
	}
}

type probeRun struct {
	b                 *broker
	attacks, controls map[string]probe.Attempt
	results           map[string]probe.Result
	info              sessions.Info
	ready             map[string]any // /readyz's body
}

func runProbe(t *testing.T, mode string) probeRun {
	t.Helper()
	dataDir := filepath.Join(t.TempDir(), "data")
	keyFile := filepath.Join(t.TempDir(), "openai.key")
	if err := os.WriteFile(keyFile, []byte("sk-platform-key-the-agent-must-not-see"), 0o600); err != nil {
		t.Fatal(err)
	}
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	go func() {
		for {
			c, err := other.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	b := startBrokerArgs(t, dataDir, []string{
		"--custom-agent", refagentBin, "--custom-agent-env", "REFAGENT_PROBE=probe-spec.json",
		"--agent-sandbox", mode, "--openai-key-file", keyFile,
	}, "ANTHROPIC_API_KEY=sk-ant-platform-key-in-the-brokers-environment")
	admin := adminToken(t, dataDir)
	resp, body := b.do("POST", "/v1/projects", admin, strings.NewReader(`{"name":"probe"}`))
	var project struct{ ID string }
	if resp.StatusCode != 201 || json.Unmarshal([]byte(body), &project) != nil {
		t.Fatalf("create project = %d %s", resp.StatusCode, body)
	}
	start := func(cwd string) sessions.Info {
		resp, body := b.do("POST", "/v1/sessions", admin, strings.NewReader(fmt.Sprintf(
			`{"project":%q,"agent":"custom","credential":{"kind":"none"},"cwd":%q}`, project.ID, cwd)))
		var created sessions.CreateResponse
		if resp.StatusCode != 201 || json.Unmarshal([]byte(body), &created) != nil {
			t.Fatalf("create session = %d %s\n%s", resp.StatusCode, body, b.log())
		}
		return created.Session
	}

	// Another session, with something to steal in its home and its cwd.
	cwdB := agentDir(t)
	writeFile(t, filepath.Join(cwdB, "secret.txt"), "B's work")
	sessB := start(cwdB)
	sessionsDir := sessionsDirFor(t, dataDir)
	homeB := filepath.Join(sessionsDir, sessB.ID, "home")
	writeFile(t, filepath.Join(homeB, "secret.txt"), "B's credentials")

	pid := b.cmd.Process.Pid
	proc := "/proc/" + strconv.Itoa(pid)
	db := filepath.Join(dataDir, sqlite.FileName)
	attacks := []probe.Attempt{
		{Name: "read the admin token", Op: "read", Path: filepath.Join(dataDir, AdminTokenFile)},
		{Name: "read the database (keys' seeds)", Op: "read", Path: db},
		{Name: "read the database's -wal", Op: "read", Path: db + "-wal"},
		{Name: "read the change counters", Op: "read", Path: db + sqlite.ChangesSuffix},
		{Name: "read the platform key file", Op: "read", Path: keyFile},
		{Name: "list the data directory", Op: "list", Path: dataDir},
		{Name: "read the broker's environ", Op: "read", Path: proc + "/environ"},
		{Name: "open the broker's mem", Op: "open", Path: proc + "/mem"},
		{Name: "list the broker's fds", Op: "list", Path: proc + "/fd"},
		{Name: "list the sessions", Op: "list", Path: sessionsDir},
		{Name: "list another session's home", Op: "list", Path: homeB},
		{Name: "read another session's home file", Op: "read", Path: filepath.Join(homeB, "secret.txt")},
		{Name: "list another session's cwd", Op: "list", Path: cwdB},
		{Name: "read another session's cwd file", Op: "read", Path: filepath.Join(cwdB, "secret.txt")},
		{Name: "write the data directory", Op: "write", Path: filepath.Join(dataDir, "probe")},
		{Name: "write another session's cwd", Op: "write", Path: filepath.Join(cwdB, "probe")},
		{Name: "write another session's home", Op: "write", Path: filepath.Join(homeB, "probe")},
		{Name: "write the sessions root", Op: "write", Path: filepath.Join(sessionsDir, "probe")},
		{Name: "write /tmp", Op: "write", Path: filepath.Join(os.TempDir(), "agentbroker-probe-"+strconv.Itoa(pid))},
		{Name: "signal the broker (0)", Op: "signal", PID: pid},
		{Name: "signal the broker (SIGCONT)", Op: "signal", PID: pid, Signal: int(syscall.SIGCONT)},
		{Name: "ptrace the broker", Op: "ptrace", PID: pid},
		{Name: "connect to another port", Op: "connect", Addr: other.Addr().String()},
	}
	t.Cleanup(func() { os.Remove(filepath.Join(os.TempDir(), "agentbroker-probe-"+strconv.Itoa(pid))) })
	controls := []probe.Attempt{
		{Name: "read its own cwd", Op: "read", Path: "probe-spec.json"},
		{Name: "write its own cwd", Op: "write", Path: "own-file"},
		{Name: "write its own home", Op: "write", Path: "$HOME/own-file"},
		{Name: "write its own TMPDIR", Op: "write", Path: "$TMPDIR/own-file"},
		{Name: "read the system", Op: "read", Path: "/etc/passwd"},
		{Name: "list the system", Op: "list", Path: "/usr/bin"},
		{Name: "connect to the broker", Op: "connect", Addr: b.addr},
		{Name: "inherit no descriptor but stdio", Op: "fds"},
		{Name: "inherit no platform key (environment)", Op: "env-lacks", Value: "sk-ant-platform-key"},
		{Name: "inherit no platform key (file's)", Op: "env-lacks", Value: "sk-platform-key"},
	}
	cwdA := agentDir(t)
	spec := probe.Spec{Attempts: append(append([]probe.Attempt(nil), attacks...), controls...), Out: filepath.Join(cwdA, "probe-out.json")}
	data, _ := json.Marshal(spec)
	writeFile(t, filepath.Join(cwdA, "probe-spec.json"), string(data))
	sessA := start(cwdA)

	out, err := os.ReadFile(spec.Out)
	if err != nil {
		t.Fatalf("the probe wrote no results: %v\n%s", err, b.log())
	}
	run := probeRun{b: b, attacks: map[string]probe.Attempt{}, controls: map[string]probe.Attempt{}}
	if err := json.Unmarshal(out, &run.results); err != nil {
		t.Fatal(err)
	}
	for _, a := range attacks {
		run.attacks[a.Name] = a
	}
	for _, a := range controls {
		run.controls[a.Name] = a
	}
	_, body = b.do("GET", "/v1/sessions/"+sessA.ID, admin, nil)
	if err := json.Unmarshal([]byte(body), &run.info); err != nil {
		t.Fatalf("session: %v: %s", err, body)
	}
	_, body = b.do("GET", "/readyz", "", nil)
	if err := json.Unmarshal([]byte(body), &run.ready); err != nil {
		t.Fatalf("/readyz: %v: %s", err, body)
	}
	return run
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestConfinementCwdApartFromBroker: an agent may write its working
// directory, so a session whose cwd is the data directory, holds it, lies
// in the sessions' root, or links to one of those is refused, with why.
func TestConfinementCwdApartFromBroker(t *testing.T) {
	top := t.TempDir()
	dataDir := filepath.Join(top, "data")
	b := startBroker(t, dataDir, "AGENTBROKER_CUSTOM_AGENT="+refagentBin)
	admin := adminToken(t, dataDir)
	resp, body := b.do("POST", "/v1/projects", admin, strings.NewReader(`{"name":"cwd"}`))
	var project struct{ ID string }
	if resp.StatusCode != 201 || json.Unmarshal([]byte(body), &project) != nil {
		t.Fatalf("create project = %d %s", resp.StatusCode, body)
	}
	link := filepath.Join(agentDir(t), "link")
	if err := os.Symlink(dataDir, link); err != nil {
		t.Fatal(err)
	}
	sessionsDir := sessionsDirFor(t, dataDir)
	for name, cwd := range map[string]string{
		"the data directory":           dataDir,
		"a directory holding it":       top,
		"/":                            "/",
		"the sessions' root":           sessionsDir,
		"a link to the data directory": link,
	} {
		resp, body := b.do("POST", "/v1/sessions", admin, strings.NewReader(fmt.Sprintf(
			`{"project":%q,"agent":"custom","credential":{"kind":"none"},"cwd":%q}`, project.ID, cwd)))
		if resp.StatusCode != 400 || !strings.Contains(body, "holds the broker's own files") {
			t.Errorf("cwd %s (%s) = %d %s; want 400 saying why", name, cwd, resp.StatusCode, body)
		}
	}
	// And an ordinary directory still works.
	resp, body = b.do("POST", "/v1/sessions", admin, strings.NewReader(fmt.Sprintf(
		`{"project":%q,"agent":"custom","credential":{"kind":"none"},"cwd":%q}`, project.ID, agentDir(t))))
	if resp.StatusCode != 201 {
		t.Fatalf("an ordinary cwd = %d %s", resp.StatusCode, body)
	}
}
