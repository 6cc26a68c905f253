package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentbroker/agentbroker/internal/pgtest"
	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// binary is the agentbroker built once for the tests that need a real
// process (signals, exit codes, argv); refagentBin is our reference agent.
var binary, refagentBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "agentbroker-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Agents run as another user when the tests run as root: they must
	// reach the reference agent's binary.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "agentbroker")
	refagentBin = filepath.Join(dir, "refagent")
	// A test binary run as another user, without the go toolchain (CI's
	// unprivileged run), is given the two programs already built.
	if prebuilt := os.Getenv("AGENTBROKER_TEST_PROGRAMS"); prebuilt != "" {
		binary, refagentBin = filepath.Join(prebuilt, "agentbroker"), filepath.Join(prebuilt, "refagent")
	}
	for path, pkg := range map[string]string{binary: ".", refagentBin: "../../internal/refagent/cmd/refagent"} {
		if os.Getenv("AGENTBROKER_TEST_PROGRAMS") != "" {
			break
		}
		out, err := exec.Command("go", "build", "-o", path, pkg).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	pgtest.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runCLI runs a command in-process and returns its output and error.
func runCLI(t *testing.T, environ map[string]string, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var o, e bytes.Buffer
	err = run(context.Background(), args, &env{
		stdin:  strings.NewReader(stdin),
		stdout: &o,
		stderr: &e,
		getenv: func(k string) string { return environ[k] },
	})
	return o.String(), e.String(), err
}

// broker is a running `agentbroker serve` process.
type broker struct {
	t       testing.TB
	cmd     *exec.Cmd
	addr    string
	dataDir string
	mu      sync.Mutex
	logs    bytes.Buffer
	exited  chan error
}

func startBroker(t testing.TB, dataDir string, extraEnv ...string) *broker {
	t.Helper()
	return startBrokerArgs(t, dataDir, nil, extraEnv...)
}

// startBrokerArgs is startBroker with flags after "serve".
func startBrokerArgs(t testing.TB, dataDir string, args []string, extraEnv ...string) *broker {
	t.Helper()
	b := &broker{t: t, dataDir: dataDir, exited: make(chan error, 1)}
	b.cmd = exec.Command(binary, append([]string{"serve"}, args...)...)
	b.cmd.Env = append([]string{
		"HOME=" + t.TempDir(),
		"AGENTBROKER_LISTEN=127.0.0.1:0",
		"AGENTBROKER_DATA_DIR=" + dataDir,
		"AGENTBROKER_SESSIONS_DIR=" + sessionsDirFor(t, dataDir),
		"AGENTBROKER_LOG_FORMAT=json",
	}, extraEnv...)
	stderr, err := b.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Bytes()
			b.mu.Lock()
			b.logs.Write(line)
			b.logs.WriteByte('\n')
			b.mu.Unlock()
			var rec struct{ Msg, Addr string }
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "listening" {
				addr <- rec.Addr
			}
		}
		b.exited <- b.cmd.Wait()
	}()
	t.Cleanup(func() {
		if b.cmd.ProcessState == nil {
			b.cmd.Process.Kill()
			<-b.exited
		}
	})
	select {
	case b.addr = <-addr:
	case err := <-b.exited:
		t.Fatalf("broker exited before listening: %v\n%s", err, b.log())
	case <-time.After(30 * time.Second):
		t.Fatalf("broker did not start listening in time\n%s", b.log())
	}
	return b
}

// sessionsDirs keeps one sessions directory per data directory, so that a
// restarted broker finds its sessions' homes.
var sessionsDirs sync.Map

// sessionsDirFor is the sessions directory of the broker on dataDir: in
// the system's temporary directory, which an agent user can reach (a
// t.TempDir's parent is 0700).
func sessionsDirFor(t testing.TB, dataDir string) string {
	if d, ok := sessionsDirs.Load(dataDir); ok {
		return d.(string)
	}
	d, err := os.MkdirTemp("", "agentbroker-sessions-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	actual, _ := sessionsDirs.LoadOrStore(dataDir, d)
	return actual.(string)
}

// agentDir is a working directory for a session's agent: one that the
// agent can reach and write whichever user it runs as.
func agentDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "agentbroker-cwd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o777); err != nil {
		t.Fatal(err)
	}
	return d
}

func (b *broker) log() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.logs.String()
}

func (b *broker) url(path string) string { return "http://" + b.addr + path }

func (b *broker) do(method, path, token string, body io.Reader, hdr ...string) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(method, b.url(path), body)
	if err != nil {
		b.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, string(data)
}

func (b *broker) stop(sig syscall.Signal) error {
	b.t.Helper()
	b.cmd.Process.Signal(sig)
	select {
	case err := <-b.exited:
		return err
	case <-time.After(30 * time.Second):
		b.t.Fatalf("broker did not stop on %v\n%s", sig, b.log())
		return nil
	}
}

func adminToken(t testing.TB, dataDir string) string {
	t.Helper()
	path := filepath.Join(dataDir, AdminTokenFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("admin token file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin token file mode %v; want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

func TestServeEndToEnd(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	b := startBroker(t, dataDir)
	admin := adminToken(t, dataDir)

	if resp, body := b.do("GET", "/healthz", "", nil); resp.StatusCode != 200 {
		t.Fatalf("/healthz = %d %s", resp.StatusCode, body)
	}
	if resp, body := b.do("GET", "/readyz", "", nil); resp.StatusCode != 200 || !strings.Contains(body, "ready") {
		t.Fatalf("/readyz = %d %s", resp.StatusCode, body)
	}

	// The picker is public, and cacheable by the catalog's hash.
	resp, body := b.do("GET", "/v1/models?agent=codex", "", nil)
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != 200 || etag == "" || !strings.Contains(body, "gpt-5") {
		t.Fatalf("/v1/models = %d etag %q %s", resp.StatusCode, etag, body)
	}
	if resp, _ := b.do("GET", "/v1/models?agent=codex", "", nil, "If-None-Match", etag); resp.StatusCode != 304 {
		t.Fatalf("/v1/models with If-None-Match = %d; want 304", resp.StatusCode)
	}
	if resp, body := b.do("GET", "/v1/models?agent=nobody", "", nil); resp.StatusCode != 404 {
		t.Fatalf("/v1/models?agent=nobody = %d %s; want 404", resp.StatusCode, body)
	}

	// JWKS is public and holds no private part.
	resp, body = b.do("GET", "/.well-known/jwks.json", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `"OKP"`) || strings.Contains(body, `"d"`) {
		t.Fatalf("jwks = %d %s", resp.StatusCode, body)
	}

	// Everything else under /v1/ needs an admin token.
	for _, path := range []string{"/v1/keys", "/v1/whoami", "/v1/anything"} {
		resp, _ := b.do("GET", path, "", nil)
		if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("%s without token = %d (%q); want 401 with a Bearer challenge", path, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	if resp, body := b.do("GET", "/v1/keys", admin, nil); resp.StatusCode != 200 || !strings.Contains(body, `"signing": true`) {
		t.Fatalf("/v1/keys = %d %s", resp.StatusCode, body)
	}

	// An MCP token minted by the API does not open the admin API.
	resp, body = b.do("POST", "/v1/tokens", admin, strings.NewReader(
		`{"subject":"u1","purpose":"mcp","project":"p1","session":"s1","agent":"codex","scopes":["tasks:read"],"ttl":"10m"}`))
	if resp.StatusCode != 201 {
		t.Fatalf("POST /v1/tokens = %d %s", resp.StatusCode, body)
	}
	var minted struct{ Token, JTI string }
	json.Unmarshal([]byte(body), &minted)
	if resp, _ := b.do("GET", "/v1/keys", minted.Token, nil); resp.StatusCode != 401 {
		t.Fatalf("MCP token at the admin API = %d; want 401", resp.StatusCode)
	}

	// The MCP endpoint serves the project context to a token of that project.
	checkMCP(t, b, admin)

	// Neither token is in the broker's argv.
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", b.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(cmdline), admin) || strings.Contains(string(cmdline), minted.Token) {
		t.Fatalf("a token is in the broker's argv")
	}

	// Metrics count what happened.
	_, metrics := b.do("GET", "/metrics", "", nil)
	if !strings.Contains(metrics, `agentbroker_http_requests_total{route="GET /v1/keys",method="GET",code="200"} 1`) {
		t.Fatalf("metrics do not count /v1/keys:\n%s", metrics)
	}

	if err := b.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: exit %v\n%s", err, b.log())
	}
	logs := b.log()
	for _, secret := range []string{admin, minted.Token} {
		if strings.Contains(logs, secret) {
			t.Fatalf("a token appears in the broker's log")
		}
	}
	if !strings.Contains(logs, filepath.Join(dataDir, AdminTokenFile)) {
		t.Fatalf("the log does not say where the admin token is:\n%s", logs)
	}

	// A restart keeps the same admin token and key.
	b2 := startBroker(t, dataDir)
	if got := adminToken(t, dataDir); got != admin {
		t.Fatalf("admin token changed across a restart")
	}
	if resp, _ := b2.do("GET", "/v1/keys", admin, nil); resp.StatusCode != 200 {
		t.Fatalf("admin token refused after restart: %d", resp.StatusCode)
	}
	if err := b2.stop(syscall.SIGINT); err != nil {
		t.Fatalf("SIGINT: exit %v", err)
	}
}

// TestServeBadStart: every start-up failure a person can cause exits
// non-zero with a message that says what is wrong, never a panic.
func TestServeBadStart(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	aFile := filepath.Join(tmp, "file")
	os.WriteFile(aFile, []byte("x"), 0o600)
	corrupt := filepath.Join(tmp, "corrupt")
	os.Mkdir(corrupt, 0o700)
	os.WriteFile(filepath.Join(corrupt, "agentbroker.db"), bytes.Repeat([]byte("garbage!"), 512), 0o600)
	badCatalog := filepath.Join(tmp, "catalog.json")
	os.WriteFile(badCatalog, []byte(`{"models": [{"id": 1}]`), 0o600)

	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"data dir is a file", []string{"AGENTBROKER_DATA_DIR=" + aFile}, "is not a directory"},
		{"corrupt database", []string{"AGENTBROKER_DATA_DIR=" + corrupt}, "corrupt"},
		{"bad listen address", []string{"AGENTBROKER_DATA_DIR=" + tmp + "/ok", "AGENTBROKER_LISTEN=nonsense"}, "listen on nonsense"},
		{"bad catalog file", []string{"AGENTBROKER_DATA_DIR=" + tmp + "/ok2", "AGENTBROKER_CATALOG_FILE=" + badCatalog}, "catalog file"},
		{"bad duration in env", []string{"AGENTBROKER_SHUTDOWN_TIMEOUT=soon"}, "AGENTBROKER_SHUTDOWN_TIMEOUT"},
		{"bad sandbox mode", []string{"AGENTBROKER_AGENT_SANDBOX=maybe"}, `--agent-sandbox "maybe"`},
		{"bad agent network", []string{"AGENTBROKER_AGENT_NETWORK=lan"}, `--agent-network "lan"`},
		{"agents as root", []string{"AGENTBROKER_AGENT_USER=root"}, "--agent-user root"},
		{"no such agent user", []string{"AGENTBROKER_AGENT_USER=no-such-user-here"}, "--agent-user no-such-user-here"},
		{"port with an open network", []string{"AGENTBROKER_AGENT_NETWORK=open", "AGENTBROKER_AGENT_ALLOW_PORT=22"}, "--agent-allow-port needs"},
		// Refused at start, not at the first session: the custom profile owns HOME.
		{"custom agent env sets HOME", []string{"AGENTBROKER_DATA_DIR=" + tmp + "/ok4", "AGENTBROKER_CUSTOM_AGENT=/bin/true",
			"AGENTBROKER_CUSTOM_AGENT_ENV=HOME=/root"}, "--custom-agent-env"},
	}
	if os.Geteuid() == 0 {
		// Agents run as nobody, who cannot reach a directory under a 0700 one.
		tests = append(tests, struct {
			name string
			env  []string
			want string
		}{"sessions out of the agent user's reach", []string{"AGENTBROKER_DATA_DIR=" + tmp + "/ok3", "AGENTBROKER_SESSIONS_DIR=" + tmp + "/private/sessions"},
			"cannot reach the sessions directory"})
		os.Mkdir(filepath.Join(tmp, "private"), 0o700)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary, "serve")
			cmd.Env = append([]string{"HOME=" + t.TempDir(), "AGENTBROKER_LISTEN=127.0.0.1:0"}, tt.env...)
			out, err := cmd.CombinedOutput()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() == 0 {
				t.Fatalf("serve = %v; want a failing exit\n%s", err, out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Fatalf("output lacks %q:\n%s", tt.want, out)
			}
			if strings.Contains(string(out), "panic") || strings.Contains(string(out), "goroutine ") {
				t.Fatalf("serve panicked:\n%s", out)
			}
		})
	}
}

func TestFlagsAndEnvMirror(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// The environment sets the data directory; the flag wins over it.
	// (No broker serves either: the error names the one used.)
	fromEnv, fromFlag := filepath.Join(dir, "from-env"), filepath.Join(dir, "from-flag")
	_, _, err := runCLI(t, map[string]string{"AGENTBROKER_DATA_DIR": fromEnv}, "", "project", "list")
	if err == nil || !strings.Contains(err.Error(), "no broker serves "+fromEnv) {
		t.Fatalf("project list = %v; want no broker at AGENTBROKER_DATA_DIR", err)
	}
	_, _, err = runCLI(t, map[string]string{"AGENTBROKER_DATA_DIR": fromEnv}, "", "project", "list", "--data-dir", fromFlag)
	if err == nil || !strings.Contains(err.Error(), "no broker serves "+fromFlag) {
		t.Fatalf("project list --data-dir = %v; the flag did not win over the environment", err)
	}
	// XDG default.
	if got := defaultDataDir(func(k string) string { return map[string]string{"XDG_DATA_HOME": "/x"}[k] }); got != "/x/agentbroker" {
		t.Fatalf("default data dir with XDG_DATA_HOME = %q", got)
	}
	if got := defaultDataDir(func(k string) string { return map[string]string{"HOME": "/h"}[k] }); got != "/h/.local/share/agentbroker" {
		t.Fatalf("default data dir with HOME = %q", got)
	}
	// Help lists each flag's environment twin.
	_, stderr, _ := runCLI(t, nil, "", "serve", "-h")
	for _, want := range []string{"AGENTBROKER_LISTEN", "AGENTBROKER_DATA_DIR", "127.0.0.1:7420"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("serve -h lacks %q:\n%s", want, stderr)
		}
	}
	if _, _, err := runCLI(t, nil, "", "nonsense"); err != errUsage {
		t.Fatalf("unknown command = %v; want usage error", err)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	out, _, err := runCLI(t, nil, "", "version")
	if err != nil || !strings.HasPrefix(out, "agentbroker ") {
		t.Fatalf("version = %q, %v", out, err)
	}
	got, err := exec.Command(binary, "version").Output()
	if err != nil || !strings.Contains(string(got), "go1.") {
		t.Fatalf("binary version = %q, %v", got, err)
	}
}

func TestKeysAndTokensCLI(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	b := startBroker(t, dataDir)
	env := map[string]string{"AGENTBROKER_DATA_DIR": dataDir}
	out, _, err := runCLI(t, env, "", "keys", "list")
	if err != nil || strings.Count(out, "signing") != 1 {
		t.Fatalf("keys list = %q, %v; want one signing key", out, err)
	}
	first := strings.Fields(strings.Split(out, "\n")[1])[0]
	// A token names its project by ID; the CLI takes the name too.
	if _, _, err := runCLI(t, env, "", "project", "create", "--name", "p1"); err != nil {
		t.Fatalf("project create: %v", err)
	}

	raw, _, err := runCLI(t, env, "", "token", "mint", "--purpose", "mcp", "--project", "p1", "--session", "s1",
		"--agent", "claude-code", "--scope", "tasks:read,project:read", "--ttl", "5m")
	if err != nil {
		t.Fatalf("token mint: %v", err)
	}
	raw = strings.TrimSpace(raw)

	out, _, err = runCLI(t, env, raw+"\n", "token", "inspect")
	if err != nil || !strings.Contains(out, "VALID") || !strings.Contains(out, `"sid": "s1"`) {
		t.Fatalf("token inspect = %v\n%s", err, out)
	}
	// Tokens never come from argv.
	if _, _, err := runCLI(t, env, "", "token", "inspect", raw); err != errUsage {
		t.Fatalf("token inspect with the token in argv = %v; want refused", err)
	}

	raw2, _, err := runCLI(t, env, "", "token", "mint", "--purpose", "viewer", "--project", "p1", "--session", "s2", "--scope", "session:view")
	if err != nil {
		t.Fatalf("token mint: %v", err)
	}
	if _, _, err := runCLI(t, env, "", "token", "revoke", "--session", "s2"); err != nil {
		t.Fatalf("token revoke: %v", err)
	}
	out, _, err = runCLI(t, env, raw2, "token", "inspect")
	if err != errSilent || !strings.Contains(out, "FAIL revocation") {
		t.Fatalf("revoked token = %v\n%s", err, out)
	}

	// Bad requests are refused with a clear error.
	for _, args := range [][]string{
		{"token", "mint", "--purpose", "everything", "--scope", "admin"},
		{"token", "mint", "--purpose", "mcp", "--project", "p1", "--session", "s", "--scope", "root"},
		{"token", "mint", "--purpose", "mcp", "--project", "p1", "--session", "s", "--scope", "tasks:read", "--ttl", "9999h"},
		{"token", "mint", "--purpose", "mcp", "--project", "p1", "--session", "s", "--scope", "tasks:read", "--agent", "nobody"},
		{"token", "mint", "--purpose", "mcp", "--project", "no-such-project", "--session", "s", "--scope", "tasks:read"},
	} {
		if _, _, err := runCLI(t, env, "", args...); err == nil {
			t.Errorf("%v succeeded", args)
		}
	}

	out, _, err = runCLI(t, env, "", "keys", "rotate")
	if err != nil || !strings.Contains(out, "new signing key") {
		t.Fatalf("keys rotate = %q, %v", out, err)
	}
	// The old key still verifies until it is retired.
	if out, _, err := runCLI(t, env, raw, "token", "inspect"); err != nil {
		t.Fatalf("token signed by the rotated-out key refused before retirement:\n%s", out)
	}
	// (Retiring the key that signed the admin token locks the CLI out
	// until the broker restarts and mints a new one: it is done last.)
	if _, _, err := runCLI(t, env, "", "keys", "retire", first); err != nil {
		t.Fatalf("keys retire: %v", err)
	}
	out, _, err = runCLI(t, env, raw, "token", "inspect")
	if err != errSilent || !strings.Contains(out, "FAIL kid") {
		t.Fatalf("token of a retired key = %v\n%s", err, out)
	}

	// keys, token mint and token revoke went through the broker's API.
	logs := b.log()
	for _, route := range []string{"GET /v1/keys", "POST /v1/keys/rotate", "POST /v1/keys/{kid}/retire", "POST /v1/tokens", "POST /v1/tokens/revoke"} {
		if !strings.Contains(logs, `"route":"`+route+`"`) {
			t.Errorf("the broker's log has no request to %s", route)
		}
	}
}

func TestCatalogCLI(t *testing.T) {
	t.Parallel()
	out, _, err := runCLI(t, nil, "", "catalog", "list")
	if err != nil || !strings.Contains(out, "claude-") || !strings.Contains(out, "retired") {
		t.Fatalf("catalog list = %v\n%s", err, out)
	}
	out, _, err = runCLI(t, nil, "", "catalog", "list", "--agent", "codex", "--json")
	var entries []map[string]any
	if err != nil || json.Unmarshal([]byte(out), &entries) != nil || len(entries) == 0 {
		t.Fatalf("catalog list --agent codex --json = %v\n%s", err, out)
	}
	out, _, err = runCLI(t, nil, "", "catalog", "check")
	if err != nil || !strings.Contains(out, "ok") {
		t.Fatalf("catalog check = %v\n%s", err, out)
	}

	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"models":[{"id":"x-1","provider":"nowhere"},{"id":"x-2","provider":"nowhere"}]}`), 0o600)
	out, _, err = runCLI(t, nil, "", "catalog", "check", "--file", bad)
	if err != errSilent {
		t.Fatalf("catalog check of a bad file = %v; want failure\n%s", err, out)
	}
	// Every problem, not just the first: both models are named.
	if !strings.Contains(out, "x-1") || !strings.Contains(out, "x-2") {
		t.Fatalf("catalog check did not report every problem:\n%s", out)
	}
}

// checkMCP creates a project and a task over the admin API, mints an MCP
// token for that project, and reads the task back through /mcp with
// mcp-go's streamable HTTP client.
func checkMCP(t *testing.T, b *broker, admin string) {
	t.Helper()
	if resp, body := b.do("GET", "/.well-known/oauth-protected-resource", "", nil); resp.StatusCode != 200 || !strings.Contains(body, b.url("/mcp")) {
		t.Fatalf("protected resource metadata = %d %s", resp.StatusCode, body)
	}
	if resp, _ := b.do("POST", "/mcp", "", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)); resp.StatusCode != 401 ||
		!strings.Contains(resp.Header.Get("WWW-Authenticate"), "resource_metadata") {
		t.Fatalf("/mcp without a token = %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	var p struct{ ID string }
	_, body := b.do("POST", "/v1/projects", admin, strings.NewReader(`{"name":"demo","instructions":"Be brief."}`))
	json.Unmarshal([]byte(body), &p)
	var task struct{ ID string }
	_, body = b.do("POST", "/v1/projects/"+p.ID+"/tasks", admin, strings.NewReader(`{"title":"Find the marker","description":"marker-8b1f"}`))
	json.Unmarshal([]byte(body), &task)
	var minted struct{ Token string }
	_, body = b.do("POST", "/v1/tokens", admin, strings.NewReader(fmt.Sprintf(
		`{"subject":"u","purpose":"mcp","project":%q,"session":"s1","scopes":["tasks:read","project:read"]}`, p.ID)))
	json.Unmarshal([]byte(body), &minted)
	if task.ID == "" || minted.Token == "" {
		t.Fatalf("setup failed: task %q, token set %v", task.ID, minted.Token != "")
	}

	c, err := client.NewStreamableHttpClient(b.url("/mcp"), transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + minted.Token}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = mcp.LATEST_PROTOCOL_VERSION
	init.Params.ClientInfo = mcp.Implementation{Name: "test", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatalf("MCP initialize: %v", err)
	}
	req := mcp.CallToolRequest{}
	req.Params.Name = "get_task"
	req.Params.Arguments = map[string]any{"id": task.ID}
	res, err := c.CallTool(ctx, req)
	if err != nil || res.IsError || !strings.Contains(fmt.Sprint(res.Content), "marker-8b1f") {
		t.Fatalf("get_task through /mcp = %+v, %v", res, err)
	}
}

// TestOneBrokerPerDataDir: a second serve on the data directory of a
// running one refuses to start, naming the first one's pid, and the first
// keeps working (issue 17: the second used to "recover" the first's
// sessions and break them).
func TestOneBrokerPerDataDir(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	b := startBroker(t, dataDir, "AGENTBROKER_CUSTOM_AGENT="+refagentBin)
	admin := adminToken(t, dataDir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "serve")
	cmd.Env = []string{"HOME=" + t.TempDir(), "AGENTBROKER_LISTEN=127.0.0.1:0", "AGENTBROKER_DATA_DIR=" + dataDir,
		"AGENTBROKER_SESSIONS_DIR=" + sessionsDirFor(t, dataDir)}
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 {
		t.Fatalf("second serve = %v; want a failing exit\n%s", err, out)
	}
	if want := fmt.Sprintf("another broker (pid %d) serves the data directory", b.cmd.Process.Pid); !strings.Contains(string(out), want) {
		t.Fatalf("second serve's output lacks %q:\n%s", want, out)
	}
	if resp, body := b.do("GET", "/v1/keys", admin, nil); resp.StatusCode != 200 {
		t.Fatalf("the first broker after the second's attempt: %d %s", resp.StatusCode, body)
	}
	// Once the first has stopped, the directory is free.
	if err := b.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	b2 := startBroker(t, dataDir)
	if resp, _ := b2.do("GET", "/readyz", "", nil); resp.StatusCode != 200 {
		t.Fatalf("a broker after the first stopped: %d", resp.StatusCode)
	}
}
