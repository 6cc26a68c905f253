package supervisor

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The test binary doubles as the agent: with peerEnv set it runs a fake
// agent instead of the tests.
const peerEnv = "SUPERVISOR_TEST_PEER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(peerEnv); mode != "" {
		os.Exit(runPeer(mode))
	}
	goleak.VerifyTestMain(m)
}

func runPeer(mode string) int {
	stdin := bufio.NewScanner(os.Stdin)
	switch mode {
	case "echo": // echo lines; "crash" crashes; EOF exits 0
		for stdin.Scan() {
			if stdin.Text() == "crash" {
				fmt.Fprintln(os.Stderr, "fatal: crashing on request")
				return 3
			}
			fmt.Println(stdin.Text())
		}
		return 0
	case "ignore-eof-term":
		signal.Ignore(syscall.SIGTERM)
		fallthrough
	case "ignore-eof": // like Zed's codex-acp
		fmt.Println("up")
		for stdin.Scan() {
		}
		fmt.Fprintln(os.Stderr, "stdin closed, staying up")
		time.Sleep(time.Hour)
		return 0
	case "crash-early":
		for i := 1; i <= 30; i++ {
			fmt.Fprintf(os.Stderr, "boom %d\n", i)
		}
		return 3
	case "sleep":
		time.Sleep(60 * time.Second)
		return 0
	case "grandchild", "grandchild-exit":
		exe, err := os.Executable()
		if err != nil {
			return 10
		}
		gc := exec.Command(exe)
		gc.Env = []string{peerEnv + "=sleep"}
		gc.Stderr = os.Stderr // holds our stderr pipe open, as node children do
		if err := gc.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 11
		}
		fmt.Println(gc.Process.Pid)
		if mode == "grandchild-exit" {
			stdin.Scan() // exit when told, leaving the grandchild behind
			return 0
		}
		time.Sleep(time.Hour)
		return 0
	case "flood":
		stdin.Scan() // wait until the test is ready
		w := bufio.NewWriter(os.Stderr)
		line := strings.Repeat("x", 200)
		for i := range 5000 {
			fmt.Fprintf(w, "%d %s\n", i, line)
		}
		w.WriteString(strings.Repeat("y", 1<<20))
		w.WriteString("\nlast line\n")
		w.Flush()
		fmt.Println("done")
		return 0
	case "env":
		keys := []string{}
		for _, kv := range os.Environ() {
			k, _, _ := strings.Cut(kv, "=")
			keys = append(keys, k)
		}
		slices.Sort(keys)
		out, _ := json.Marshal(map[string]any{
			"keys":     keys,
			"token_ok": strings.HasPrefix(os.Getenv("AGENT_TOKEN"), "tok-"), // never echo the token
		})
		fmt.Println(string(out))
		fmt.Fprintln(os.Stderr, "env peer ready")
		for stdin.Scan() {
		}
		return 0
	}
	fmt.Fprintln(os.Stderr, "unknown peer mode", mode)
	return 2
}

// logBuffer collects JSON log records.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(b.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func peerSpec(t *testing.T, mode string, logs *logBuffer, env ...string) Spec {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	s := Spec{
		Path: exe,
		Args: []string{"-test.run=^$"},
		// A race-enabled binary otherwise sleeps 1s at exit.
		Env:        append([]string{peerEnv + "=" + mode, "GORACE=atexit_sleep_ms=0"}, env...),
		StdinGrace: 300 * time.Millisecond,
		TermGrace:  300 * time.Millisecond,
		LogAttrs:   []slog.Attr{slog.String("session", "sess-test")},
		StderrTail: 5,
	}
	if logs != nil {
		s.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	}
	return s
}

func start(t *testing.T, s Spec) *Process {
	t.Helper()
	p, err := Start(t.Context(), s)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(p.Kill)
	return p
}

func waitDone(t *testing.T, p *Process) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("process not done after 20s")
	}
}

func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("read stdout: %q, %v", line, err)
	}
	return strings.TrimSuffix(line, "\n")
}

func TestEchoAndGracefulStop(t *testing.T) {
	t.Parallel()
	p := start(t, peerSpec(t, "echo", nil))
	if err := p.MarkReady(); err != nil {
		t.Fatal(err)
	}
	out := bufio.NewReader(p.Stdout())
	if _, err := io.WriteString(p.Stdin(), `{"jsonrpc":"2.0","id":1}`+"\n"); err != nil {
		t.Fatal(err)
	}
	if got := readLine(t, out); got != `{"jsonrpc":"2.0","id":1}` {
		t.Errorf("echo = %q", got)
	}
	if err := p.Stop(t.Context()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := p.ExitErr(); err != nil {
		t.Errorf("ExitErr after a clean EOF exit = %v, want nil", err)
	}
	if _, err := out.ReadString('\n'); err != io.EOF {
		t.Errorf("stdout after Stop: %v, want io.EOF", err)
	}
	if err := p.MarkReady(); !errors.Is(err, ErrNotRunning) {
		t.Errorf("MarkReady after exit = %v, want ErrNotRunning", err)
	}
	p.Kill() // idempotent after Stop
}

// TestStopStages: an agent that exits on EOF needs no signal; one that
// ignores EOF (Zed's codex-acp) gets SIGTERM; one that also ignores SIGTERM
// gets SIGKILL.
func TestStopStages(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mode       string
		wantSignal syscall.Signal
	}{
		{"echo", 0},
		{"ignore-eof", syscall.SIGTERM},
		{"ignore-eof-term", syscall.SIGKILL},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			s := peerSpec(t, tc.mode, nil)
			if tc.wantSignal == 0 {
				// No wall-clock bound: with graces this long, an agent
				// that exits on EOF is stopped by the closed stdin alone
				// (ExitErr nil: no signal recorded), however slow the
				// machine; a Stop that waited out a grace would hang
				// the test until its deadline instead.
				s.StdinGrace, s.TermGrace = time.Hour, time.Hour
			}
			p := start(t, s)
			if err := p.MarkReady(); err != nil {
				t.Fatal(err)
			}
			out := bufio.NewReader(p.Stdout())
			if tc.wantSignal == 0 { // wait until it is up and reading stdin
				if _, err := io.WriteString(p.Stdin(), "ping\n"); err != nil {
					t.Fatal(err)
				}
			}
			readLine(t, out) // "ping" echoed, or "up" once its signal disposition is set
			if err := p.Stop(t.Context()); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			err := p.ExitErr()
			if tc.wantSignal == 0 {
				if err != nil {
					t.Fatalf("ExitErr = %v, want nil (exited on EOF, no signal sent)", err)
				}
				return
			}
			var ee *ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("ExitErr = %v, want *ExitError", err)
			}
			if ee.Signal != tc.wantSignal || !ee.Killed || ee.Early || !errors.Is(err, ErrStopped) {
				t.Errorf("ExitErr = %+v, want killed by %v with ErrStopped", ee, tc.wantSignal)
			}
			if !strings.Contains(err.Error(), "agent killed") || !strings.Contains(err.Error(), "staying up") {
				t.Errorf("Error() = %q, want 'agent killed' and the stderr tail", err)
			}
		})
	}
}

func TestStopContextEndsEarly(t *testing.T) {
	t.Parallel()
	s := peerSpec(t, "ignore-eof-term", nil)
	s.StdinGrace, s.TermGrace = time.Minute, time.Minute
	p := start(t, s)
	readLine(t, bufio.NewReader(p.Stdout()))
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := p.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stop = %v, want DeadlineExceeded", err)
	}
	waitDone(t, p) // SIGKILL was sent on the way out
	var ee *ExitError
	if !errors.As(p.ExitErr(), &ee) || ee.Signal != syscall.SIGKILL {
		t.Errorf("ExitErr = %v, want SIGKILL", p.ExitErr())
	}
}

func TestExitedEarlyKeepsTail(t *testing.T) {
	t.Parallel()
	logs := &logBuffer{}
	p := start(t, peerSpec(t, "crash-early", logs))
	waitDone(t, p)
	err := p.ExitErr()
	var ee *ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("ExitErr = %v", err)
	}
	if !ee.Early || ee.Killed || ee.Code != 3 || ee.Signal != 0 {
		t.Errorf("ExitErr = %+v, want early exit status 3", ee)
	}
	if want := []string{"boom 26", "boom 27", "boom 28", "boom 29", "boom 30"}; !slices.Equal(ee.Tail, want) {
		t.Errorf("Tail = %q, want %q", ee.Tail, want)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "agent exited early (exit status 3): ") || !strings.HasSuffix(msg, "boom 30") {
		t.Errorf("Error() = %q", msg)
	}
	if err := p.MarkReady(); !errors.Is(err, ErrNotRunning) {
		t.Errorf("MarkReady = %v, want ErrNotRunning", err)
	}
	// Every stderr line reached the log, with the session attribute.
	n := 0
	for _, r := range logs.records(t) {
		if r["msg"] == "agent stderr" {
			n++
			if r["session"] != "sess-test" {
				t.Errorf("stderr record without session attr: %v", r)
			}
		}
	}
	if n != 30 {
		t.Errorf("%d stderr records, want 30", n)
	}
}

func TestCrashAfterReady(t *testing.T) {
	t.Parallel()
	p := start(t, peerSpec(t, "echo", nil))
	if err := p.MarkReady(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(p.Stdin(), "crash\n")
	waitDone(t, p)
	var ee *ExitError
	if !errors.As(p.ExitErr(), &ee) || ee.Early || ee.Killed || ee.Code != 3 {
		t.Fatalf("ExitErr = %#v", p.ExitErr())
	}
	if got := p.ExitErr().Error(); got != "agent crashed (exit status 3): fatal: crashing on request" {
		t.Errorf("Error() = %q", got)
	}
}

func TestStartTimeoutAndContext(t *testing.T) {
	t.Parallel()
	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		s := peerSpec(t, "sleep", nil)
		s.StartTimeout = 200 * time.Millisecond
		p := start(t, s)
		waitDone(t, p)
		err := p.ExitErr()
		var ee *ExitError
		if !errors.As(err, &ee) || !ee.Killed || ee.Signal != syscall.SIGKILL || !errors.Is(err, ErrStartTimeout) {
			t.Errorf("ExitErr = %v, want killed by the start timeout", err)
		}
		if err := p.MarkReady(); !errors.Is(err, ErrNotRunning) {
			t.Errorf("MarkReady after the timeout = %v", err)
		}
	})
	t.Run("context", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancelCause(t.Context())
		p, err := Start(ctx, peerSpec(t, "sleep", nil))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Kill()
		why := errors.New("person cancelled")
		cancel(why)
		waitDone(t, p)
		if err := p.ExitErr(); !errors.Is(err, why) {
			t.Errorf("ExitErr = %v, want the context's cause", err)
		}
	})
	t.Run("ready in time", func(t *testing.T) {
		t.Parallel()
		s := peerSpec(t, "echo", nil)
		s.StartTimeout = 200 * time.Millisecond
		p := start(t, s)
		if err := p.MarkReady(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(400 * time.Millisecond)
		select {
		case <-p.Done():
			t.Fatalf("killed after MarkReady: %v", p.ExitErr())
		default:
		}
	})
}

// pidAlive reports whether pid exists and is not a zombie (PID 1 here may
// not reap orphans).
func pidAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	state := b[i+2]
	return state != 'Z' && state != 'X'
}

func TestGrandchildDoesNotOutlive(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"kill", "stop", "leader-exits"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			mode := "grandchild"
			if how == "leader-exits" {
				mode = "grandchild-exit"
			}
			p := start(t, peerSpec(t, mode, nil))
			if err := p.MarkReady(); err != nil {
				t.Fatal(err)
			}
			gc, err := strconv.Atoi(readLine(t, bufio.NewReader(p.Stdout())))
			if err != nil {
				t.Fatal(err)
			}
			if !pidAlive(gc) {
				t.Fatalf("grandchild %d not running before the test", gc)
			}
			t.Cleanup(func() { syscall.Kill(gc, syscall.SIGKILL) })
			switch how {
			case "kill":
				p.Kill()
			case "stop":
				if err := p.Stop(t.Context()); err != nil {
					t.Fatal(err)
				}
			case "leader-exits":
				io.WriteString(p.Stdin(), "exit\n")
				waitDone(t, p) // would take drainTimeout if the grandchild kept stderr open
				if err := p.ExitErr(); err != nil {
					t.Errorf("ExitErr = %v, want nil", err)
				}
			}
			deadline := time.Now().Add(5 * time.Second)
			for pidAlive(gc) {
				if time.Now().After(deadline) {
					t.Fatalf("grandchild %d outlived the agent (%s)", gc, how)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

func TestStderrFloodIsBounded(t *testing.T) {
	t.Parallel()
	logs := &logBuffer{}
	s := peerSpec(t, "flood", logs)
	s.MaxLineBytes = 512
	p := start(t, s)
	if err := p.MarkReady(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(p.Stdin(), "go\n")
	if got := readLine(t, bufio.NewReader(p.Stdout())); got != "done" {
		t.Fatalf("stdout = %q", got)
	}
	waitDone(t, p)
	if err := p.ExitErr(); err != nil {
		t.Fatalf("ExitErr = %v", err)
	}
	tail := p.StderrTail()
	if len(tail) != 5 || tail[4] != "last line" || len(tail[3]) != 512 {
		t.Errorf("tail: %d lines, last %q, long line %d bytes", len(tail), tail[len(tail)-1], len(tail[3]))
	}
	n, truncated := 0, 0
	for _, r := range logs.records(t) {
		if r["msg"] != "agent stderr" {
			continue
		}
		n++
		if l := len(r["line"].(string)); l > 512 {
			t.Fatalf("logged a %d-byte line", l)
		}
		if d, ok := r["truncated_bytes"]; ok {
			truncated++
			if d.(float64) != 1<<20-512 {
				t.Errorf("truncated_bytes = %v", d)
			}
		}
	}
	if n != 5002 || truncated != 1 {
		t.Errorf("%d stderr records (%d truncated), want 5002 (1)", n, truncated)
	}
}

// TestSecretOnlyInEnvironment: a token given in Env reaches the agent's
// environment and nothing else: not its argv, not a log line. And nothing
// of the broker's own environment is inherited.
func TestSecretOnlyInEnvironment(t *testing.T) {
	t.Parallel()
	const token = "tok-3f9a1c7e5b2d4068-SECRET"
	logs := &logBuffer{}
	s := peerSpec(t, "env", logs, "AGENT_TOKEN="+token, "PATH=/usr/bin:/bin")
	p := start(t, s)
	if err := p.MarkReady(); err != nil {
		t.Fatal(err)
	}
	var report struct {
		Keys    []string `json:"keys"`
		TokenOK bool     `json:"token_ok"`
	}
	if err := json.Unmarshal([]byte(readLine(t, bufio.NewReader(p.Stdout()))), &report); err != nil {
		t.Fatal(err)
	}
	if want := []string{"AGENT_TOKEN", "GORACE", "PATH", peerEnv}; !slices.Equal(report.Keys, want) || !report.TokenOK {
		t.Errorf("agent environment keys %v (token ok %v), want exactly %v", report.Keys, report.TokenOK, want)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(cmdline, []byte(token)) {
		t.Errorf("token in argv: %q", cmdline)
	}
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(environ, []byte("AGENT_TOKEN="+token)) {
		t.Error("token not in the agent's environment: the test proves nothing")
	}
	if err := p.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if strings.Contains(out, token) {
		t.Errorf("token in the log:\n%s", out)
	}
	for _, want := range []string{`"msg":"agent started"`, `"line":"env peer ready"`, `"msg":"agent exited"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}

func TestLookPathUsesAgentPATH(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(exe, filepath.Join(dir, "fake-agent")); err != nil {
		t.Fatal(err)
	}
	s := peerSpec(t, "echo", nil, "PATH=relative/dir:"+dir)
	s.Path = "fake-agent"
	p := start(t, s)
	if err := p.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}

	s.Env = []string{"PATH=/nonexistent"}
	if _, err := Start(t.Context(), s); !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("Start with fake-agent off PATH = %v, want ErrNotFound", err)
	}
}

func TestKillIsIdempotentAndConcurrent(t *testing.T) {
	t.Parallel()
	p := start(t, peerSpec(t, "sleep", nil))
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(p.Kill)
	}
	wg.Go(func() { p.Stop(context.Background()) })
	wg.Wait()
	var ee *ExitError
	if !errors.As(p.ExitErr(), &ee) || !ee.Killed || ee.Early {
		t.Errorf("ExitErr = %#v, want killed, not early", p.ExitErr())
	}
	if !errors.Is(p.ExitErr(), ErrKilled) && !errors.Is(p.ExitErr(), ErrStopped) {
		t.Errorf("cause = %v", ee.Cause)
	}
	if _, err := p.Stdin().Write([]byte("x\n")); err == nil {
		t.Error("write to a killed agent's stdin succeeded")
	}
}

func TestExitErrorMessages(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("z", 3000)
	for _, tc := range []struct {
		e    ExitError
		want string
	}{
		{ExitError{Code: -1, Signal: syscall.SIGKILL, Killed: true, Early: true, Cause: ErrStartTimeout},
			"agent killed (signal: SIGKILL): agent not ready before the start timeout"},
		{ExitError{Code: 1, Early: true, Tail: []string{"a", "b", "c", "d", "e", "f"}},
			"agent exited early (exit status 1): b | c | d | e | f"},
		{ExitError{Code: -1, Signal: syscall.SIGSEGV}, "agent crashed (signal: SIGSEGV)"},
		{ExitError{Code: 2, Tail: []string{long}}, "agent crashed (exit status 2): …" + long[:1000]},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

func TestLineReader(t *testing.T) {
	t.Parallel()
	in := "short\r\n" + strings.Repeat("a", 10000) + "\n\nno newline"
	r := newLineReader(strings.NewReader(in), 8)
	type got struct {
		line    string
		dropped int
	}
	var all []got
	for {
		line, dropped, err := r.next()
		if line != nil {
			all = append(all, got{string(line), dropped})
		}
		if err != nil {
			if err != io.EOF {
				t.Fatal(err)
			}
			break
		}
	}
	want := []got{{"short", 0}, {"aaaaaaaa", 9992}, {"", 0}, {"no newli", 2}}
	if !slices.Equal(all, want) {
		t.Errorf("lines = %v, want %v", all, want)
	}
}
