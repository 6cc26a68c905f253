package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/agentbroker/agentbroker/sessions"
)

// The CLI's behaviour (issue 18): one way to the broker, flags after
// arguments, --json on every list and get, project names for IDs, help,
// version, environment twins, durations, exit codes.

// TestCLI drives the CLI against one real broker, finding it through the
// URL file serve writes into the data directory (no AGENTBROKER_URL).
func TestCLI(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	b := startBroker(t, dataDir, "AGENTBROKER_CUSTOM_AGENT="+refagentBin)
	env := map[string]string{"AGENTBROKER_DATA_DIR": dataDir}
	cli := func(t *testing.T, args ...string) string {
		t.Helper()
		out, stderr, err := runCLI(t, env, "", args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, stderr)
		}
		return out
	}
	project := strings.TrimSpace(cli(t, "project", "create", "--name", "alpha", "--description", "the first"))
	task := strings.TrimSpace(cli(t, "task", "add", "--project", "alpha", "--title", "Paint it"))
	session := strings.TrimSpace(cli(t, "session", "start", "--project", "alpha", "--agent", "custom", "--credential", "none",
		"--policy", "allow-all", "--cwd", agentDir(t)))

	t.Run("flags after arguments", func(t *testing.T) {
		// The case: --url after the text is a flag, not text.
		out := cli(t, "session", "prompt", session, "hello", "--url", b.url(""))
		if strings.TrimSpace(out) != "You said: hello" {
			t.Fatalf("session prompt SES hello --url U replied %q; want the prompt to be just \"hello\"", out)
		}
		// The flag is used: a wrong --url after the arguments fails.
		if _, _, err := runCLI(t, env, "", "session", "prompt", session, "hello", "--url", "http://127.0.0.1:1"); err == nil ||
			!strings.Contains(err.Error(), "127.0.0.1:1") {
			t.Fatalf("a wrong --url after the arguments = %v; want a failure to reach it", err)
		}
		// "--" ends the flags: what follows is text, even --url.
		out = cli(t, "session", "prompt", session, "--", "--url", "is", "text")
		if strings.TrimSpace(out) != "You said: --url is text" {
			t.Fatalf("session prompt SES -- --url is text replied %q", out)
		}
		// Flags after the argument of a get.
		var got struct{ Task struct{ ID, Title string } }
		if err := json.Unmarshal([]byte(cli(t, "task", "show", task, "--json")), &got); err != nil || got.Task.ID != task {
			t.Fatalf("task show TASK --json = %+v, %v", got, err)
		}
	})

	t.Run("json on every list and get", func(t *testing.T) {
		cli(t, "knowledge", "add", "--project", project, "--title", "Colours", "--body", "blue", "--tag", "paint")
		for _, tt := range []struct {
			args []string
			key  string // a key the JSON object has
			want string // a value it holds
		}{
			{[]string{"project", "list", "--json"}, "projects", project},
			{[]string{"project", "show", project, "--json"}, "id", project},
			{[]string{"task", "list", "--project", project, "--json"}, "tasks", task},
			{[]string{"task", "show", task, "--json"}, "task", task},
			{[]string{"task", "runs", task, "--json"}, "runs", ""},
			{[]string{"knowledge", "list", "--project", project, "--json"}, "knowledge", "Colours"},
			{[]string{"session", "list", "--json"}, "sessions", session},
			{[]string{"session", "show", session, "--json"}, "id", session},
			{[]string{"keys", "list", "--json"}, "keys", ""},
			{[]string{"usage", "--json"}, "total", ""},
			{[]string{"usage", "--group-by", "session", "--json"}, "group_by", "session"},
			{[]string{"task", "update", task, "--notes", "n1", "--json"}, "notes", "n1"},
		} {
			out := cli(t, tt.args...)
			var obj map[string]json.RawMessage
			if err := json.Unmarshal([]byte(out), &obj); err != nil {
				t.Errorf("%v: not a JSON object: %v\n%s", tt.args, err, out)
				continue
			}
			if _, ok := obj[tt.key]; !ok || !strings.Contains(out, tt.want) {
				t.Errorf("%v: want key %q holding %q:\n%s", tt.args, tt.key, tt.want, out)
			}
		}
		out := cli(t, "catalog", "list", "--json")
		if !json.Valid([]byte(out)) {
			t.Errorf("catalog list --json is not JSON:\n%s", out)
		}
	})

	t.Run("names for IDs", func(t *testing.T) {
		var p struct{ ID string }
		if err := json.Unmarshal([]byte(cli(t, "project", "show", "alpha", "--json")), &p); err != nil || p.ID != project {
			t.Fatalf("project show alpha = %+v, %v; want %s", p, err, project)
		}
		if out := cli(t, "task", "list", "--project", "alpha"); !strings.Contains(out, task) {
			t.Errorf("task list --project alpha lacks the task:\n%s", out)
		}
		if out := cli(t, "knowledge", "list", "--project", "alpha"); !strings.Contains(out, "Colours") {
			t.Errorf("knowledge list --project alpha lacks the entry:\n%s", out)
		}
		if out := cli(t, "session", "list", "--project", "alpha"); !strings.Contains(out, session) {
			t.Errorf("session list --project alpha lacks the session:\n%s", out)
		}
		if out := cli(t, "task", "runs", task, "--project", "alpha"); !strings.Contains(out, "RUN") {
			t.Errorf("task runs --project alpha:\n%s", out)
		}
		if out := cli(t, "usage", "--project", "alpha", "--json"); !json.Valid([]byte(out)) {
			t.Errorf("usage --project alpha:\n%s", out)
		}
		cli(t, "project", "update", "alpha", "--description", "renamed below")
		if out := cli(t, "project", "show", project); !strings.Contains(out, "renamed below") {
			t.Errorf("project update alpha did not reach the project:\n%s", out)
		}
		// An unknown name, and a name two projects share, are refused.
		if _, _, err := runCLI(t, env, "", "task", "list", "--project", "nope"); err == nil || !strings.Contains(err.Error(), `no project "nope"`) {
			t.Errorf("task list --project nope = %v", err)
		}
		second := strings.TrimSpace(cli(t, "project", "create", "--name", "alpha"))
		_, _, err := runCLI(t, env, "", "task", "list", "--project", "alpha")
		if err == nil || !strings.Contains(err.Error(), "2 projects are named") || !strings.Contains(err.Error(), second) {
			t.Errorf("task list --project <shared name> = %v", err)
		}
		if out := cli(t, "task", "list", "--project", project); !strings.Contains(out, task) {
			t.Errorf("task list by ID with a shared name:\n%s", out)
		}
	})

	t.Run("task update, session cancel", func(t *testing.T) {
		if out := cli(t, "task", "update", task, "--status", "completed"); !strings.Contains(out, "completed") {
			t.Errorf("task update --status completed:\n%s", out)
		}
		if out := cli(t, "task", "show", task); !strings.Contains(out, "completed") || !strings.Contains(out, "n1") {
			t.Errorf("task show after update:\n%s", out)
		}
		if _, _, err := runCLI(t, env, "", "task", "update", task, "--status", "done-ish"); err == nil {
			t.Errorf("task update to an unknown status succeeded")
		}
		// A turn that goes on until cancelled: the permission question
		// of a session under the "ask" policy.
		ask := strings.TrimSpace(cli(t, "session", "start", "--project", project, "--agent", "custom", "--credential", "none",
			"--policy", "ask", "--cwd", agentDir(t)))
		reply := make(chan error, 1)
		go func() {
			_, _, err := runCLI(t, env, "", "session", "prompt", ask, fmt.Sprintf(`call get_task with {"id":%q}`, task))
			reply <- err
		}()
		waitSession(t, env, ask, func(in sessions.Info) bool { return len(in.Pending) > 0 })
		if out := cli(t, "session", "cancel", ask); !strings.Contains(out, "cancelled") {
			t.Errorf("session cancel:\n%s", out)
		}
		select {
		case <-reply: // the turn ended (cancelled); the prompt returned
		case <-time.After(60 * time.Second):
			t.Fatalf("session prompt did not return after session cancel")
		}
		in := waitSession(t, env, ask, func(in sessions.Info) bool { return in.State == sessions.StateIdle })
		if len(in.Pending) != 0 {
			t.Errorf("after cancel the session still has a pending permission: %+v", in.Pending)
		}
	})

	t.Run("one path to the broker", func(t *testing.T) {
		// Every command that read or changed state above went through the
		// API, at the URL serve wrote, 0600, next to the admin token.
		path := filepath.Join(dataDir, BrokerURLFile)
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, mode %v; want a 0600 file", path, err, fi.Mode())
		}
		if got, _ := os.ReadFile(path); strings.TrimSpace(string(got)) != b.url("") {
			t.Fatalf("%s holds %q; want %q", path, got, b.url(""))
		}
		logs := b.log()
		// serve says where the console is and how to sign in.
		if want := "console: open " + b.url("/") + " and sign in with the admin token in " + filepath.Join(dataDir, AdminTokenFile); !strings.Contains(logs, want) {
			t.Errorf("the broker's log lacks %q", want)
		}
		for _, route := range []string{"POST /v1/projects", "PATCH /v1/projects/{project}", "POST /v1/projects/{project}/tasks",
			"PATCH /v1/projects/{project}/tasks/{task}", "GET /v1/projects/{project}/tasks", "POST /v1/projects/{project}/knowledge",
			"GET /v1/projects/{project}/knowledge", "POST /v1/sessions/{id}/cancel", "GET /v1/sessions/{id}"} {
			if !strings.Contains(logs, `"route":"`+route+`"`) {
				t.Errorf("the broker's log has no request to %s", route)
			}
		}
	})

	if err := b.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, b.log())
	}
	// Stopped, the broker takes its URL file away; the CLI says no broker
	// serves the directory and reaches for no default address.
	if _, err := os.Stat(filepath.Join(dataDir, BrokerURLFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the URL file outlived the broker: %v", err)
	}
	if _, _, err := runCLI(t, env, "", "project", "list"); err == nil || !strings.Contains(err.Error(), "no broker serves "+dataDir) {
		t.Errorf("project list with the broker stopped = %v", err)
	}
}

// waitSession polls `session show --json` until ok.
func waitSession(t *testing.T, env map[string]string, id string, ok func(sessions.Info) bool) sessions.Info {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, stderr, err := runCLI(t, env, "", "session", "show", id, "--json")
		var in sessions.Info
		if err != nil || json.Unmarshal([]byte(out), &in) != nil {
			t.Fatalf("session show --json = %v\n%s%s", err, out, stderr)
		}
		if ok(in) {
			return in
		}
		if time.Now().After(deadline) {
			t.Fatalf("session %s never got there: %+v", id, in)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCLIStaleURLFile: a URL file that a broker no longer serving the data
// directory left (killed, say) is refused: the admin token is not sent to
// whatever now listens at that address.
func TestCLIStaleURLFile(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	impostor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte(`{"projects":[]}`))
	}))
	defer impostor.Close()
	dataDir := t.TempDir()
	os.WriteFile(filepath.Join(dataDir, AdminTokenFile), []byte("not-a-real-token\n"), 0o600)
	os.WriteFile(filepath.Join(dataDir, BrokerURLFile), []byte(impostor.URL+"\n"), 0o600)
	env := map[string]string{"AGENTBROKER_DATA_DIR": dataDir}
	for _, args := range [][]string{{"project", "list"}, {"task", "add", "--project", "p", "--title", "t"}, {"token", "revoke", "--session", "s"}} {
		_, _, err := runCLI(t, env, "", args...)
		if err == nil || !strings.Contains(err.Error(), "no longer runs") {
			t.Errorf("%v with a stale URL file = %v", args, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the CLI sent %d requests to the address of a stale URL file", n)
	}
	// Given explicitly, the URL is used: the person said where.
	if _, _, err := runCLI(t, env, "", "project", "list", "--url", impostor.URL); err != nil || hits.Load() != 1 {
		t.Fatalf("project list --url = %v, %d requests", err, hits.Load())
	}
}

// TestEveryListAndGetHasJSON: every list and get command takes --json.
func TestEveryListAndGetHasJSON(t *testing.T) {
	t.Parallel()
	var walk func(c *command, path []string)
	n := 0
	walk = func(c *command, path []string) {
		for _, child := range c.children {
			walk(child, append(append([]string{}, path...), child.name))
		}
		if len(c.children) > 0 {
			return
		}
		switch c.name {
		case "list", "show", "runs", "usage":
		default:
			return
		}
		n++
		fs := flag.NewFlagSet("", flag.ContinueOnError)
		if c.flags != nil {
			c.flags(fs, defaultConfig(func(string) string { return "" }))
		}
		if fs.Lookup("json") == nil {
			t.Errorf("%s has no --json", strings.Join(path, " "))
		}
	}
	walk(&command{children: commands()}, []string{"agentbroker"})
	if n < 9 {
		t.Fatalf("only %d list and get commands found", n)
	}
}

// TestEnvTwins: only deployment settings have environment twins: a stray
// AGENTBROKER_STATUS or AGENTBROKER_PROJECT changes nothing.
func TestEnvTwins(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"project", "json", "status", "title", "agent", "model", "limit", "session", "task", "state"} {
		if hasEnvTwin(name) {
			t.Errorf("--%s has an environment twin", name)
		}
	}
	_, stderr, _ := runCLI(t, nil, "", "task", "list", "-h")
	for _, bad := range []string{"AGENTBROKER_STATUS", "AGENTBROKER_PROJECT", "AGENTBROKER_JSON"} {
		if strings.Contains(stderr, bad) {
			t.Errorf("task list -h names %s:\n%s", bad, stderr)
		}
	}
	if !strings.Contains(stderr, "AGENTBROKER_DATA_DIR") || !strings.Contains(stderr, "AGENTBROKER_URL") {
		t.Errorf("task list -h lacks the deployment twins:\n%s", stderr)
	}

	dataDir := filepath.Join(t.TempDir(), "data")
	startBroker(t, dataDir)
	env := map[string]string{"AGENTBROKER_DATA_DIR": dataDir}
	out, _, err := runCLI(t, env, "", "project", "create", "--name", "p")
	if err != nil {
		t.Fatal(err)
	}
	task, _, err := runCLI(t, env, "", "task", "add", "--project", "p", "--title", "queued one")
	if err != nil {
		t.Fatal(err)
	}
	env["AGENTBROKER_STATUS"] = "completed"
	env["AGENTBROKER_PROJECT"] = strings.TrimSpace(out)
	env["AGENTBROKER_JSON"] = "true"
	out, _, err = runCLI(t, env, "", "task", "list", "--project", "p")
	if err != nil || !strings.Contains(out, strings.TrimSpace(task)) || strings.HasPrefix(out, "{") {
		t.Fatalf("task list with AGENTBROKER_STATUS and AGENTBROKER_JSON set = %v\n%s", err, out)
	}
	if _, _, err := runCLI(t, env, "", "task", "list"); err != errUsage {
		t.Fatalf("task list without --project but AGENTBROKER_PROJECT set = %v; want a usage error", err)
	}
}

// TestDurationInEnvironment: AGENTBROKER_SHUTDOWN_TIMEOUT=soon says the
// format it wants (cliflag tests the parser; TestServeShutdownDuringTurn
// sets it to bare seconds).
func TestDurationInEnvironment(t *testing.T) {
	t.Parallel()
	// Through the environment, as the issue had it.
	_, stderr, err := runCLI(t, map[string]string{"AGENTBROKER_SHUTDOWN_TIMEOUT": "soon", "AGENTBROKER_LISTEN": "127.0.0.1:0",
		"AGENTBROKER_DATA_DIR": t.TempDir()}, "", "serve")
	if err != errUsage || !strings.Contains(stderr, "AGENTBROKER_SHUTDOWN_TIMEOUT") || !strings.Contains(stderr, "number of seconds") {
		t.Fatalf("serve with AGENTBROKER_SHUTDOWN_TIMEOUT=soon = %v\n%s", err, stderr)
	}
}

// TestHelpCommand: `help CMD` prints that command's help, not the root's.
func TestHelpCommand(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"help", "serve"}, []string{"Usage: agentbroker serve", "--listen", "--shutdown-timeout"}},
		{[]string{"help", "session", "start"}, []string{"Usage: agentbroker session start", "--agent", "--project"}},
		{[]string{"help", "session"}, []string{"Usage: agentbroker session <command>", "cancel"}},
		{[]string{"session", "help", "prompt"}, []string{"Usage: agentbroker session prompt", "ID TEXT"}},
		{[]string{"help"}, []string{"Usage: agentbroker <command>", "serve"}},
	} {
		out, _, err := runCLI(t, nil, "", tt.args...)
		if err != nil {
			t.Errorf("%v: %v", tt.args, err)
		}
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v lacks %q:\n%s", tt.args, w, out)
			}
		}
	}
	if out, _, _ := runCLI(t, nil, "", "help", "serve"); strings.Contains(out, "Commands:") {
		t.Errorf("help serve printed the root help:\n%s", out)
	}
	if _, _, err := runCLI(t, nil, "", "help", "nonsense"); err != errUsage {
		t.Errorf("help nonsense = %v; want a usage error", err)
	}
}

// TestVersionFromBuildInfo: the stamped version wins; else the module's
// version from the build info (a tag for go install …@v1.2.3).
func TestVersionFromBuildInfo(t *testing.T) {
	t.Parallel()
	bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/agentbroker/agentbroker", Version: "v1.2.3"}}
	if got := versionFrom("dev", bi); !strings.HasPrefix(got, "agentbroker v1.2.3 go") {
		t.Errorf("versionFrom(dev, v1.2.3) = %q", got)
	}
	if got := versionFrom("v2.0.0", bi); !strings.HasPrefix(got, "agentbroker v2.0.0 ") {
		t.Errorf("versionFrom(v2.0.0, v1.2.3) = %q", got)
	}
	bi.Main.Version = "(devel)"
	bi.Settings = []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"}}
	if got := versionFrom("dev", bi); !strings.HasPrefix(got, "agentbroker dev (0123456789ab, modified) ") {
		t.Errorf("versionFrom(dev, devel) = %q", got)
	}
	bi.Main.Version = "v0.0.0-20260101000000-0123456789ab"
	if got := versionFrom("dev", bi); !strings.HasPrefix(got, "agentbroker v0.0.0-20260101000000-0123456789ab go") {
		t.Errorf("versionFrom(dev, pseudo-version) = %q; the revision once is enough", got)
	}
}

// TestVersionStamped: -ldflags -X main.version stamps the binary, which
// says it to --version and version alike.
func TestVersionStamped(t *testing.T) {
	t.Parallel()
	if os.Getenv("AGENTBROKER_TEST_PROGRAMS") != "" {
		t.Skip("no go toolchain for this user: the binary is prebuilt")
	}
	bin := filepath.Join(t.TempDir(), "agentbroker")
	out, err := exec.Command("go", "build", "-ldflags", "-X main.version=v9.8.7", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, arg := range []string{"--version", "version"} {
		got, err := exec.Command(bin, arg).Output()
		if err != nil || !strings.HasPrefix(string(got), "agentbroker v9.8.7 ") {
			t.Errorf("%s = %q, %v", arg, got, err)
		}
	}
}

// TestExitCodes: 0, 2 for a usage error, 1 for a failure, 130 for Ctrl-C.
func TestExitCodes(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	code := func(args ...string) int {
		t.Helper()
		cmd := exec.Command(binary, args...)
		cmd.Env = []string{"HOME=" + home}
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	}
	for _, tt := range []struct {
		args []string
		want int
	}{
		{[]string{"--version"}, 0},
		{[]string{"help", "serve"}, 0},
		{[]string{"nonsense"}, 2},
		{[]string{"task", "list", "--bogus"}, 2},
		{[]string{"project", "list"}, 1}, // no broker
	} {
		if got := code(tt.args...); got != tt.want {
			t.Errorf("agentbroker %v exited %d; want %d", tt.args, got, tt.want)
		}
	}

	// Ctrl-C while a command waits on the broker: 130.
	// The command also cancels the turn it was waiting on.
	arrived := make(chan struct{}, 1)
	cancelled := make(chan string, 1)
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // then the server sees the client go
		if strings.HasSuffix(r.URL.Path, "/cancel") {
			cancelled <- r.Method + " " + r.URL.Path
			w.WriteHeader(http.StatusAccepted)
			return
		}
		arrived <- struct{}{}
		<-r.Context().Done()
	}))
	defer hang.Close()
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("t\n"), 0o600)
	cmd := exec.Command(binary, "session", "prompt", "ses_x", "hello", "--url", hang.URL, "--token-file", tokenFile)
	cmd.Env = []string{"HOME=" + home}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-arrived:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("the prompt never reached the server\n%s", stderr.String())
	}
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("Ctrl-C during session prompt: %v; want exit 130\n%s", err, stderr.String())
	}
	select {
	case got := <-cancelled:
		if got != "POST /v1/sessions/ses_x/cancel" {
			t.Errorf("Ctrl-C sent %s", got)
		}
	default:
		t.Errorf("Ctrl-C during session prompt did not cancel the turn\n%s", stderr.String())
	}
}

// TestServeShutdownDuringTurn: SIGTERM while a turn is in flight (an
// agent waiting on a permission answer, a client waiting on the turn)
// cancels the turn, answers the waiting client and exits 0 within the
// shutdown timeout (a shutdown that overran it exits 1). The timeout is
// given as bare seconds, as the issue tried.
func TestServeShutdownDuringTurn(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	b := startBroker(t, dataDir, "AGENTBROKER_CUSTOM_AGENT="+refagentBin, "AGENTBROKER_SHUTDOWN_TIMEOUT=20")
	admin := adminToken(t, dataDir)
	var p struct{ ID string }
	_, body := b.do("POST", "/v1/projects", admin, strings.NewReader(`{"name":"stop"}`))
	json.Unmarshal([]byte(body), &p)
	resp, body := b.do("POST", "/v1/sessions", admin, strings.NewReader(fmt.Sprintf(
		`{"project":%q,"agent":"custom","credential":{"kind":"none"},"cwd":%q,"permission_policy":"ask"}`, p.ID, agentDir(t))))
	var created sessions.CreateResponse
	if resp.StatusCode != 201 || json.Unmarshal([]byte(body), &created) != nil {
		t.Fatalf("create session = %d %s", resp.StatusCode, body)
	}
	s := &sessionOn{b: b, admin: admin, id: created.Session.ID}

	type answer struct {
		code int
		body string
		err  error
	}
	waiting := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest("POST", b.url("/v1/sessions/"+s.id+"/prompt?wait=true"),
			strings.NewReader(`{"text":"call get_task with {\"id\":\"tsk_none\"}"}`))
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			waiting <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		waiting <- answer{code: resp.StatusCode, body: buf.String()}
	}()
	s.waitFor(t, "asked for permission", func(in sessions.Info) bool { return in.Prompting && len(in.Pending) > 0 })

	if err := b.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM during a turn: %v; want exit 0\n%s", err, b.log())
	}
	logs := b.log()
	if strings.Contains(logs, "did not finish") {
		t.Fatalf("the shutdown overran its timeout:\n%s", logs)
	}
	select {
	case a := <-waiting:
		if a.err != nil {
			t.Fatalf("the client waiting on the turn got no answer: %v", a.err)
		}
		t.Logf("the waiting client got %d %s", a.code, a.body)
	default:
		t.Fatalf("the broker exited before answering the client waiting on the turn")
	}
	// The turn was cancelled, and the session left resumable.
	if !strings.Contains(logs, `"msg":"stopped"`) {
		t.Errorf("the log does not say the server stopped:\n%s", logs)
	}
}

// TestServeSecondSignal: a second SIGTERM while the first one's stop
// waits on an agent that ignores cancel exits at once.
func TestServeSecondSignal(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	b := startBroker(t, dataDir, "AGENTBROKER_CUSTOM_AGENT="+refagentBin, "AGENTBROKER_SHUTDOWN_TIMEOUT=60")
	admin := adminToken(t, dataDir)
	var p struct{ ID string }
	_, body := b.do("POST", "/v1/projects", admin, strings.NewReader(`{"name":"stall"}`))
	json.Unmarshal([]byte(body), &p)
	s := newSessionOn(t, b, admin, p.ID, "")
	if code, _ := s.prompt(t, "fault:stall", false); code != 202 {
		t.Fatalf("prompt = %d", code)
	}
	s.waitFor(t, "prompting", func(in sessions.Info) bool { return in.Prompting })
	b.cmd.Process.Signal(syscall.SIGTERM)
	// The stop is under way (it waits on the stalled agent) …
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(b.log(), "shutting down") {
		if time.Now().After(deadline) {
			t.Fatalf("no shutdown under way after SIGTERM\n%s", b.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// … and a second signal ends it.
	err := b.stop(syscall.SIGTERM)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 128+int(syscall.SIGTERM) {
		t.Fatalf("second SIGTERM: %v; want exit %d\n%s", err, 128+int(syscall.SIGTERM), b.log())
	}
	if !strings.Contains(b.log(), "again: exiting now") {
		t.Errorf("the broker did not say why it exited at once:\n%s", b.log())
	}
}

// TestOnePathToTheBroker: every command that names a data directory
// reaches the broker through its API (it takes --url), but serve itself,
// the demo (which runs one) and token inspect, which must work with the
// broker stopped and says so in its help.
func TestOnePathToTheBroker(t *testing.T) {
	t.Parallel()
	direct := map[string]bool{"agentbroker serve": true, "agentbroker demo": true, "agentbroker token inspect": true,
		"agentbroker agents list": true, "agentbroker agents install": true}
	var walk func(c *command, path []string)
	walk = func(c *command, path []string) {
		for _, child := range c.children {
			walk(child, append(append([]string{}, path...), child.name))
		}
		if len(c.children) > 0 || c.flags == nil {
			return
		}
		name := strings.Join(path, " ")
		fs := flag.NewFlagSet("", flag.ContinueOnError)
		c.flags(fs, defaultConfig(func(string) string { return "" }))
		if fs.Lookup("data-dir") == nil {
			return
		}
		if direct[name] {
			if name != "agentbroker serve" && name != "agentbroker demo" && !strings.Contains(c.summary, "works with the broker stopped") {
				t.Errorf("%s opens the data directory but its help does not say why", name)
			}
			return
		}
		if fs.Lookup("url") == nil {
			t.Errorf("%s names a data directory but takes no --url: does it open the store?", name)
		}
	}
	walk(&command{children: commands()}, []string{"agentbroker"})
}
