package acp_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentbroker/agentbroker/acp"
	"github.com/agentbroker/agentbroker/internal/refagent"
)

// peekBody copies what is read of a request body.
type peekBody struct {
	rc  io.ReadCloser
	buf bytes.Buffer
}

func (p *peekBody) Read(b []byte) (int, error) {
	n, err := p.rc.Read(b)
	if p.buf.Len() < 64<<10 {
		p.buf.Write(b[:n])
	}
	return n, err
}
func (p *peekBody) Close() error { return p.rc.Close() }

// testLogger logs to the test (visible with -v or on failure).
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// collector gathers delivered updates.
type collector struct {
	mu      sync.Mutex
	updates []acp.Update
	block   chan struct{} // if set, OnUpdate waits on it
}

func (c *collector) OnUpdate(u acp.Update) {
	if c.block != nil {
		<-c.block
	}
	c.mu.Lock()
	c.updates = append(c.updates, u)
	c.mu.Unlock()
}

func (c *collector) all() []acp.Update {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]acp.Update(nil), c.updates...)
}

func (c *collector) kinds() []string {
	var out []string
	for _, u := range c.all() {
		out = append(out, u.Update.Kind)
	}
	return out
}

func (c *collector) text(kind string) string {
	var b strings.Builder
	for _, u := range c.all() {
		if u.Update.Kind == kind {
			b.WriteString(u.Update.Text())
		}
	}
	return b.String()
}

// checkSeq checks that updates are numbered 1, 2, 3… with no gap.
func checkSeq(t *testing.T, ups []acp.Update) {
	t.Helper()
	for i, u := range ups {
		if u.Seq != uint64(i+1) {
			t.Fatalf("update %d has seq %d: a gap or reordering", i+1, u.Seq)
		}
	}
}

// recorder keeps every line the client writes to the agent.
type recorder struct {
	w  io.WriteCloser
	mu sync.Mutex
	b  bytes.Buffer
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.b.Write(p)
	r.mu.Unlock()
	return r.w.Write(p)
}
func (r *recorder) Close() error { return r.w.Close() }

// messages returns the client's messages, decoded.
func (r *recorder) messages(t *testing.T) []map[string]json.RawMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]json.RawMessage
	for _, l := range bytes.Split(bytes.TrimSpace(r.b.Bytes()), []byte("\n")) {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("client wrote a bad line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// agentProc is an agent the client talks to: in-process or a process.
type agentProc struct {
	stdout io.ReadCloser  // the agent's output, for the client
	stdin  io.WriteCloser // the agent's input, for the client
	rec    *recorder
	done   chan error // Run's result / the process's exit
	cmd    *exec.Cmd
	stderr *bytes.Buffer
}

// startInProcess runs refagent.Run over pipes.
func startInProcess(t *testing.T, opts refagent.Options) *agentProc {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t).With("side", "refagent")
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	p := &agentProc{stdout: outR, rec: &recorder{w: inW}, done: make(chan error, 1)}
	p.stdin = p.rec
	go func() {
		err := refagent.Run(ctx, inR, outW, opts)
		outW.Close()
		inR.Close()
		p.done <- err
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Error("refagent.Run did not return")
		}
	})
	return p
}

// startProcess runs the refagent binary.
func startProcess(t *testing.T, env ...string) *agentProc {
	t.Helper()
	cmd := exec.Command(buildRefagent(t))
	cmd.Env = append(os.Environ(), env...)
	return startCmd(t, cmd)
}

// startCmd runs an agent command.
func startCmd(t *testing.T, cmd *exec.Cmd) *agentProc {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	// Not StdoutPipe: Wait would close it when the process exits, before
	// we have read everything.
	stdout, stdoutW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = stdoutW
	p := &agentProc{stdout: stdout, rec: &recorder{w: stdin}, done: make(chan error, 1), cmd: cmd, stderr: &bytes.Buffer{}}
	p.stdin = p.rec
	cmd.Stderr = &syncWriter{w: p.stderr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stdoutW.Close()
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("refagent stderr:\n%s", p.stderr)
		}
	})
	return p
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// connect starts a client on an agent and closes it at the end.
func connect(t *testing.T, p *agentProc, opts *acp.ConnOptions) *acp.Conn {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t).With("side", "client")
	}
	c := acp.NewConn(context.Background(), p.stdout, p.stdin, opts)
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func selfExe(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// lines splits a transcript-ish buffer.
func lines(b []byte) []string {
	var out []string
	s := bufio.NewScanner(bytes.NewReader(b))
	s.Buffer(nil, 16<<20)
	for s.Scan() {
		out = append(out, s.Text())
	}
	return out
}
