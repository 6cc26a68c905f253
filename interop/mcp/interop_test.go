// Package mcpinterop tests agentbroker's MCP server against real MCP
// clients: the official TypeScript SDK, the MCP Inspector's CLI and the MCP
// conformance suite, each pinned in package.json and package-lock.json.
//
// The tests need those npm packages and a Node 22 binary, which
// interop/mcp/run installs before it runs this test with
// AGENTBROKER_INTEROP=1. Without that variable (a plain `go test ./...`) the
// test skips.
//
// The test starts internal/mcpfixture (a seeded throwaway server), hands its
// one-line JSON description (URL, tokens, seeded IDs) to each Node suite in a
// 0600 file named by MCP_FIXTURE_FILE, runs the suite with `node --test`, and
// fails with the suite's output when the suite fails.
package mcpinterop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

const skipMessage = "MCP interop tests against real clients are off: run interop/mcp/run " +
	"(installs the pinned npm packages and Node 22, then runs this test with AGENTBROKER_INTEROP=1)"

// suite is one Node test file.
type suite struct {
	name    string
	file    string
	timeout time.Duration
}

var suites = []suite{
	{name: "sdk", file: "sdk.test.mjs", timeout: 2 * time.Minute},
	{name: "inspector", file: "inspector.test.mjs", timeout: 4 * time.Minute},
	{name: "conformance", file: "conformance.test.mjs", timeout: 8 * time.Minute},
}

// fixture is the part of the fixture's description the Go side checks; the
// Node suites read the whole line.
type fixture struct {
	URL         string            `json:"url"`
	InsecureURL string            `json:"insecure_url"`
	Tokens      map[string]string `json:"tokens"`
	TaskID      string            `json:"task_id"`
	Marker      string            `json:"marker"`
}

func TestInterop(t *testing.T) {
	if os.Getenv("AGENTBROKER_INTEROP") == "" {
		t.Skip(skipMessage)
	}
	for _, dir := range []string{
		"node_modules/@modelcontextprotocol/sdk",
		"node_modules/@modelcontextprotocol/inspector",
		"node_modules/@modelcontextprotocol/conformance",
	} {
		if _, err := os.Stat(dir); err != nil {
			t.Fatalf("AGENTBROKER_INTEROP is set but %s is missing (%v): run interop/mcp/run", dir, err)
		}
	}
	node22 := os.Getenv("AGENTBROKER_NODE22")
	if node22 == "" {
		t.Fatal("AGENTBROKER_INTEROP is set but AGENTBROKER_NODE22 (a Node 22 binary) is not: run interop/mcp/run")
	}
	node := os.Getenv("AGENTBROKER_NODE")
	if node == "" {
		node = "node"
	}

	desc, fx := startFixture(t)
	descFile := filepath.Join(t.TempDir(), "fixture.json")
	if err := os.WriteFile(descFile, desc, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("fixture: %s (conformance instance %s), task %s", fx.URL, fx.InsecureURL, fx.TaskID)

	var total tally
	for _, s := range suites {
		t.Run(s.name, func(t *testing.T) {
			env := []string{
				"MCP_FIXTURE_FILE=" + descFile,
				"AGENTBROKER_NODE22=" + node22,
				"TMPDIR=" + t.TempDir(), // the suites' scratch files go where the test removes them
			}
			runNodeSuite(t, node, s, env, &total)
		})
	}
	// One plain line for CI logs, after the suites' own summaries.
	// (Expected failures, TODO in the suites, count as skipped.)
	fmt.Printf("mcp-interop: %d passed, %d failed, %d skipped\n", total.pass, total.fail+total.cancelled, total.skip+total.todo)
}

// startFixture builds (or takes from AGENTBROKER_MCPFIXTURE) and starts the
// fixture, and returns its description line. The process is stopped when the
// test ends: stdin closed, then SIGTERM, then SIGKILL to its process group.
func startFixture(t *testing.T) ([]byte, fixture) {
	t.Helper()
	bin := os.Getenv("AGENTBROKER_MCPFIXTURE")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "mcpfixture")
		build := exec.Command("go", "build", "-o", bin, "github.com/agentbroker/agentbroker/internal/mcpfixture")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build the fixture: %v\n%s", err, out)
		}
	}
	cmd := exec.Command(bin, "--insecure-fixed-identity")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the fixture: %v", err)
	}

	var relay sync.WaitGroup
	relay.Go(func() { relayLines(t, "fixture stderr", stderr) })
	waited := make(chan error, 1)
	go func() {
		relay.Wait()
		waited <- cmd.Wait()
	}()
	t.Cleanup(func() { stopProcess(t, cmd, stdin, waited) })

	type line struct {
		b   []byte
		err error
	}
	first := make(chan line, 1)
	go func() {
		r := bufio.NewReader(stdout)
		b, err := r.ReadBytes('\n')
		first <- line{b, err}
		io.Copy(io.Discard, r) // nothing else is expected; never block the child
	}()
	var got line
	select {
	case got = <-first:
	case <-time.After(60 * time.Second):
		t.Fatal("the fixture printed no description within 60s")
	}
	if got.err != nil {
		t.Fatalf("read the fixture's description: %v", got.err)
	}
	var fx fixture
	if err := json.Unmarshal(got.b, &fx); err != nil {
		t.Fatalf("the fixture's first line is not its JSON description: %v", err)
	}
	if fx.URL == "" || fx.InsecureURL == "" || fx.TaskID == "" || fx.Marker == "" || len(fx.Tokens) == 0 {
		t.Fatal("the fixture's description lacks url, insecure_url, task_id, marker or tokens")
	}
	return bytes.TrimSpace(got.b), fx
}

// stopProcess ends the fixture in stages and reports an unclean exit.
func stopProcess(t *testing.T, cmd *exec.Cmd, stdin io.Closer, waited <-chan error) {
	stdin.Close()
	var err error
	select {
	case err = <-waited:
	case <-time.After(5 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case err = <-waited:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-waited
			t.Errorf("the fixture ignored stdin EOF and SIGTERM; killed")
			return
		}
		t.Errorf("the fixture ignored stdin EOF; stopped by SIGTERM (%v)", err)
		return
	}
	if err != nil {
		t.Errorf("the fixture exited uncleanly: %v", err)
	}
}

// relayLines logs r line by line until EOF.
func relayLines(t *testing.T, prefix string, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		t.Logf("%s: %s", prefix, sc.Text())
	}
}

// tally is a node test runner summary (TAP "# pass N" lines).
type tally struct{ tests, pass, fail, skip, todo, cancelled int }

func (t *tally) add(o tally) {
	t.tests += o.tests
	t.pass += o.pass
	t.fail += o.fail
	t.skip += o.skip
	t.todo += o.todo
	t.cancelled += o.cancelled
}

var summaryLine = regexp.MustCompile(`(?m)^# (tests|pass|fail|skipped|todo|cancelled) (\d+)$`)

func parseTally(out []byte) (tally, bool) {
	var c tally
	ms := summaryLine.FindAllSubmatch(out, -1)
	for _, m := range ms {
		n, _ := strconv.Atoi(string(m[2]))
		switch string(m[1]) {
		case "tests":
			c.tests = n
		case "pass":
			c.pass = n
		case "fail":
			c.fail = n
		case "skipped":
			c.skip = n
		case "todo":
			c.todo = n
		case "cancelled":
			c.cancelled = n
		}
	}
	return c, len(ms) > 0
}

// runNodeSuite runs one suite with `node --test` (TAP output, streamed to
// stdout when verbose so that its summary lines reach the CI log) and fails
// the test with the output when the suite fails or counts no test.
func runNodeSuite(t *testing.T, node string, s suite, env []string, total *tally) {
	ctx, cancel := context.WithTimeout(t.Context(), s.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=tap", s.file)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Kill the whole group: the suites start Node 22 children.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	var w io.Writer = &out
	if testing.Verbose() {
		fmt.Printf("=== node --test %s\n", s.file)
		w = io.MultiWriter(&out, os.Stdout)
	}
	cmd.Stdout = w
	cmd.Stderr = w
	err := cmd.Run()
	c, ok := parseTally(out.Bytes())
	total.add(c)
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		t.Fatalf("%s: timed out after %s\n%s", s.file, s.timeout, out.Bytes())
	case err != nil:
		if !testing.Verbose() {
			t.Errorf("%s output:\n%s", s.file, out.Bytes())
		}
		t.Fatalf("%s failed: %v (%d passed, %d failed)", s.file, err, c.pass, c.fail)
	case !ok || c.tests == 0:
		t.Fatalf("%s ran no test:\n%s", s.file, out.Bytes())
	}
	t.Logf("%s: %d tests, %d passed, %d failed, %d todo (expected failures), %d skipped",
		s.file, c.tests, c.pass, c.fail, c.todo, c.skip)
	if c.fail > 0 || c.cancelled > 0 {
		t.Fatalf("%s exited 0 but reported %d failed, %d cancelled", s.file, c.fail, c.cancelled)
	}
}
