package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/agentbroker/agentbroker/acp/sandbox"
)

// Defaults for the zero values of [Spec].
const (
	// DefaultStartTimeout bounds the time from Start to MarkReady: a cold
	// Node start plus the ACP handshake takes one to three seconds; a first
	// start on a slow disk can take much longer.
	DefaultStartTimeout = 60 * time.Second
	// DefaultStdinGrace is how long Stop waits after closing stdin.
	DefaultStdinGrace = 3 * time.Second
	// DefaultTermGrace is how long Stop waits after SIGTERM.
	DefaultTermGrace = 3 * time.Second
	// DefaultStderrTail is how many stderr lines are kept.
	DefaultStderrTail = 20
	// DefaultMaxLineBytes bounds one relayed stderr line; the rest of a
	// longer line is dropped and counted.
	DefaultMaxLineBytes = 4096
)

// drainTimeout bounds the wait for stderr's EOF once the process group is
// gone; a descendant that escaped the group could otherwise hold it open.
const drainTimeout = 2 * time.Second

// Sentinel causes, found with errors.Is on an [*ExitError] or on an error
// returned by a method.
var (
	// ErrStartTimeout: MarkReady was not called within Spec.StartTimeout.
	ErrStartTimeout = errors.New("agent not ready before the start timeout")
	// ErrStopped: Stop had to signal the process group.
	ErrStopped = errors.New("stop requested")
	// ErrKilled: Kill was called.
	ErrKilled = errors.New("kill requested")
	// ErrNotRunning: the process has exited or is being killed.
	ErrNotRunning = errors.New("agent process is not running")
)

// Spec describes one agent process.
type Spec struct {
	// Path is the program. A name without a slash is looked up in the PATH
	// of Env (the agent's PATH, not the broker's); a relative path with a
	// slash is relative to Dir, as in os/exec.
	Path string
	// Args are the arguments after the program name. They are visible to
	// every local user (/proc/<pid>/cmdline): never put a secret here.
	Args []string
	// Env is the complete environment of the process, "KEY=value" entries.
	// Nothing is inherited from the broker: nil or empty means an empty
	// environment. Secrets belong here (or in files), never in Args.
	Env []string
	// Dir is the working directory; empty means the broker's.
	Dir string
	// StartTimeout bounds the time until MarkReady. Zero means
	// DefaultStartTimeout; negative means no timeout.
	StartTimeout time.Duration
	// StdinGrace is how long Stop waits after closing stdin before SIGTERM.
	// Zero means DefaultStdinGrace.
	StdinGrace time.Duration
	// TermGrace is how long Stop waits after SIGTERM before SIGKILL. Zero
	// means DefaultTermGrace.
	TermGrace time.Duration
	// Logger receives the lifecycle records and every stderr line. Nil
	// means silent.
	Logger *slog.Logger
	// LogAttrs are added to every record (the session ID, the profile).
	LogAttrs []slog.Attr
	// StderrTail is how many of the last stderr lines are kept. Zero means
	// DefaultStderrTail; negative means none.
	StderrTail int
	// MaxLineBytes bounds one stderr line. Zero means DefaultMaxLineBytes.
	MaxLineBytes int
	// Sandbox, when set, confines the process and everything it starts:
	// it is started through Launcher, which applies the policy and then
	// executes the program in its own place (same pid, same pipes). Nil
	// runs the program as it is.
	Sandbox *sandbox.Policy
	// Launcher is the binary that runs sandbox.MaybeRunLauncher (the
	// broker's own). Required with Sandbox.
	Launcher string
}

// Process is one running (or finished) agent process. Its methods are safe
// for concurrent use. Call Stop or Kill exactly when the session ends, even
// if the process has already exited: that releases its pipes.
type Process struct {
	spec     Spec
	cmd      *exec.Cmd
	pid      int
	identity Identity
	log      *slog.Logger
	stdin    *onceCloser
	stdout   *stdoutPipe
	stderr   *onceCloser

	ready      chan struct{} // closed by MarkReady
	exited     chan struct{} // closed once reaped
	done       chan struct{} // closed once reaped, drained and classified
	stderrDone chan struct{}
	watchDone  chan struct{}

	mu       sync.Mutex
	isReady  bool
	reaped   bool
	signaled bool  // we sent a signal to the group before it was reaped
	stopping bool  // Stop or Kill closed stdin
	cause    error // why we signaled, the first reason wins
	lastSig  syscall.Signal
	tail     []string // ring buffer of the last stderr lines
	tailNext int
	tailFull bool
	exitErr  error
}

// Start launches the process described by spec. ctx bounds the start only:
// if it ends before MarkReady the process group is killed, and once ready
// the process lives until it exits, Stop or Kill. Start returns an error,
// and starts nothing, when the program cannot be found or executed.
func Start(ctx context.Context, spec Spec) (*Process, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start agent: %w", context.Cause(ctx))
	}
	if spec.Path == "" {
		return nil, errors.New("start agent: empty Path")
	}
	spec = withDefaults(spec)
	path, err := lookPath(spec.Path, spec.Env)
	if err != nil {
		return nil, fmt.Errorf("start agent: %w", err)
	}
	env := spec.Env
	if env == nil {
		env = []string{} // a nil Env would make os/exec inherit the broker's environment
	}
	argv0, args := path, append([]string{spec.Path}, spec.Args...)
	var extra []*os.File
	if spec.Sandbox != nil {
		if spec.Launcher == "" {
			return nil, errors.New("start agent: a Sandbox needs a Launcher")
		}
		program := path
		if !filepath.IsAbs(program) {
			program = filepath.Join(spec.Dir, program)
		}
		// The agent may read and run its own program.
		policy := spec.Sandbox.Clone()
		if !slices.Contains(policy.Read, program) {
			policy.Read = append(policy.Read, filepath.Clean(program))
		}
		c, err := sandbox.Wrap(spec.Launcher, policy, program, spec.Args)
		if err != nil {
			return nil, fmt.Errorf("start agent: %w", err)
		}
		defer c.PolicyFile.Close() // the child has its own copy once started
		argv0, args, extra = c.Path, append([]string{c.Path}, c.Args...), []*os.File{c.PolicyFile}
	}

	var parentEnds, childEnds []*os.File
	closeAll := func(fs []*os.File) {
		for _, f := range fs {
			_ = f.Close()
		}
	}
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err != nil {
			closeAll(parentEnds)
			closeAll(childEnds)
			return nil, nil, fmt.Errorf("start agent: pipe: %w", err)
		}
		return r, w, nil
	}
	stdinR, stdinW, err := pipe()
	if err != nil {
		return nil, err
	}
	parentEnds, childEnds = append(parentEnds, stdinW), append(childEnds, stdinR)
	stdoutR, stdoutW, err := pipe()
	if err != nil {
		return nil, err
	}
	parentEnds, childEnds = append(parentEnds, stdoutR), append(childEnds, stdoutW)
	stderrR, stderrW, err := pipe()
	if err != nil {
		return nil, err
	}
	parentEnds, childEnds = append(parentEnds, stderrR), append(childEnds, stderrW)

	// The pipes are *os.File, so os/exec hands them to the child as they
	// are and starts no copying goroutines: the agent writes straight into
	// pipes we read, and Wait never closes a pipe a reader still uses.
	cmd := &exec.Cmd{
		Path:        argv0,
		Args:        args,
		Env:         env,
		Dir:         spec.Dir,
		Stdin:       stdinR,
		Stdout:      stdoutW,
		Stderr:      stderrW,
		ExtraFiles:  extra,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	err = cmd.Start()
	closeAll(childEnds) // the child holds its own copies now
	if err != nil {
		closeAll(parentEnds)
		return nil, fmt.Errorf("start agent %s: %w", spec.Path, err)
	}

	logger := spec.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	} else if len(spec.LogAttrs) > 0 {
		logger = slog.New(logger.Handler().WithAttrs(spec.LogAttrs))
	}
	p := &Process{
		spec:       spec,
		cmd:        cmd,
		pid:        cmd.Process.Pid,
		identity:   identify(cmd.Process.Pid),
		log:        logger,
		stdin:      &onceCloser{f: stdinW},
		stdout:     &stdoutPipe{onceCloser{f: stdoutR}},
		stderr:     &onceCloser{f: stderrR},
		ready:      make(chan struct{}),
		exited:     make(chan struct{}),
		done:       make(chan struct{}),
		stderrDone: make(chan struct{}),
		watchDone:  make(chan struct{}),
	}
	if spec.StderrTail > 0 {
		p.tail = make([]string, spec.StderrTail)
	}
	// Args are logged: by contract they carry no secret. Env is not.
	confined := "no"
	if spec.Sandbox != nil {
		confined = spec.Sandbox.Summary()
	}
	p.log.LogAttrs(context.Background(), slog.LevelInfo, "agent started",
		slog.Int("pid", p.pid), slog.String("path", path), slog.Any("args", spec.Args), slog.String("sandbox", confined))

	go p.relayStderr()
	go p.watchStart(ctx)
	go p.wait()
	return p, nil
}

func withDefaults(s Spec) Spec {
	if s.StartTimeout == 0 {
		s.StartTimeout = DefaultStartTimeout
	}
	if s.StdinGrace <= 0 {
		s.StdinGrace = DefaultStdinGrace
	}
	if s.TermGrace <= 0 {
		s.TermGrace = DefaultTermGrace
	}
	if s.StderrTail == 0 {
		s.StderrTail = DefaultStderrTail
	}
	if s.MaxLineBytes <= 0 {
		s.MaxLineBytes = DefaultMaxLineBytes
	}
	return s
}

// lookPath resolves a bare program name in the agent's own PATH (the last
// PATH entry of env), skipping empty and relative directories, which would
// search the working directory.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	pathEnv := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv = v
		}
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%q not found in the agent's PATH %q: %w", name, pathEnv, exec.ErrNotFound)
}

// Pid returns the process ID, which is also its process group ID.
func (p *Process) Pid() int { return p.pid }

// Stdin is the agent's standard input. Closing it sends EOF; Stop and Kill
// close it too, and it is closed once the process has exited.
func (p *Process) Stdin() io.WriteCloser { return p.stdin }

// Stdout is the agent's standard output. It reads to EOF once the agent and
// its process group are gone; after Stop or Kill, a read returns io.EOF.
// Exactly one reader should use it.
func (p *Process) Stdout() io.Reader { return p.stdout }

// Done is closed once the process has exited, the rest of its group has
// been killed and its stderr has been drained.
func (p *Process) Done() <-chan struct{} { return p.done }

// ExitErr says why the process ended. It is nil while the process runs and
// nil when it exited with status 0 after MarkReady (or after Stop closed
// its stdin) without being signalled; otherwise it is an [*ExitError].
func (p *Process) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitErr
}

// StderrTail returns a copy of the last stderr lines, oldest first. It may
// be called while the process runs, to enrich a handshake error.
func (p *Process) StderrTail() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tailLocked()
}

func (p *Process) tailLocked() []string {
	if len(p.tail) == 0 {
		return nil
	}
	if !p.tailFull {
		return append([]string(nil), p.tail[:p.tailNext]...)
	}
	out := make([]string, 0, len(p.tail))
	out = append(out, p.tail[p.tailNext:]...)
	return append(out, p.tail[:p.tailNext]...)
}

// MarkReady records that the handshake succeeded and stops the start
// timeout. It is idempotent, and returns an error wrapping ErrNotRunning if
// the process has already exited or is being killed (the start timeout won
// the race, for instance).
func (p *Process) MarkReady() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped || p.signaled {
		return fmt.Errorf("mark agent ready: %w", ErrNotRunning)
	}
	if !p.isReady {
		p.isReady = true
		close(p.ready)
	}
	return nil
}

// Stop shuts the process down in stages: close stdin, wait StdinGrace,
// SIGTERM the process group, wait TermGrace, SIGKILL the group, and wait
// for Done. If ctx ends first, Stop skips to SIGKILL and returns without
// waiting, with an error wrapping the context's cause. Stop returns nil once
// the process is gone, however it went: ExitErr says how. Safe to call
// concurrently, repeatedly and after the process has exited.
func (p *Process) Stop(ctx context.Context) error {
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	_ = p.stdin.Close()

	stages := []struct {
		grace time.Duration
		sig   syscall.Signal
	}{
		{p.spec.StdinGrace, syscall.SIGTERM},
		{p.spec.TermGrace, syscall.SIGKILL},
	}
	for _, st := range stages {
		t := time.NewTimer(st.grace)
		select {
		case <-p.done:
			t.Stop()
			p.release()
			return nil
		case <-ctx.Done():
			t.Stop()
			p.signal(syscall.SIGKILL, ErrStopped)
			return fmt.Errorf("stop agent: %w", context.Cause(ctx))
		case <-t.C:
			p.signal(st.sig, ErrStopped)
		}
	}
	select {
	case <-p.done:
		p.release()
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop agent: %w", context.Cause(ctx))
	}
}

// Kill kills the process group at once and waits for Done. It is
// idempotent and safe to call after the process has exited.
func (p *Process) Kill() {
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	_ = p.stdin.Close()
	p.signal(syscall.SIGKILL, ErrKilled)
	<-p.done
	p.release()
}

// release closes what the process no longer needs once it is done.
func (p *Process) release() {
	_ = p.stdin.Close()
	_ = p.stdout.Close()
}

// signal sends sig to the whole process group, unless the leader has
// already been reaped (then the group was killed by wait). The first cause
// recorded is the one ExitErr reports.
func (p *Process) signal(sig syscall.Signal, cause error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		return
	}
	if !p.signaled {
		p.signaled = true
		p.cause = cause
	}
	p.lastSig = sig
	p.log.LogAttrs(context.Background(), slog.LevelInfo, "signalling agent process group",
		slog.Int("pid", p.pid), slog.String("signal", sigName(sig)), slog.String("cause", cause.Error()))
	// The leader is not reaped yet (wait sets reaped under mu before it
	// reaps), so its pid, which is the group ID, cannot have been reused.
	_ = syscall.Kill(-p.pid, sig)
}

// watchStart enforces the start timeout and the start context until
// MarkReady or exit.
func (p *Process) watchStart(ctx context.Context) {
	defer close(p.watchDone)
	var timeout <-chan time.Time
	if p.spec.StartTimeout > 0 {
		t := time.NewTimer(p.spec.StartTimeout)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-p.ready:
	case <-p.exited:
	case <-timeout:
		p.signal(syscall.SIGKILL, ErrStartTimeout)
	case <-ctx.Done():
		p.signal(syscall.SIGKILL, fmt.Errorf("start cancelled: %w", context.Cause(ctx)))
	}
}

// wait reaps the process, kills what is left of its group, drains stderr
// and records why it ended.
func (p *Process) wait() {
	// Wait for the leader to exit without reaping it: as a zombie it keeps
	// its pid, so the group can still be signalled safely.
	blockUntilExited(p.pid)
	p.mu.Lock()
	p.reaped = true // from here on, signal is a no-op
	// The leader is gone but its group may not be: grandchildren must not
	// outlive it.
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	p.mu.Unlock()
	waitErr := p.cmd.Wait()
	close(p.exited)
	_ = p.stdin.Close()

	t := time.NewTimer(drainTimeout)
	select {
	case <-p.stderrDone:
	case <-t.C:
		// Something outside the group still holds stderr open.
		_ = p.stderr.Close()
		<-p.stderrDone
	}
	t.Stop()
	_ = p.stderr.Close()
	<-p.watchDone

	p.mu.Lock()
	p.exitErr = p.classifyLocked(waitErr)
	exitErr := p.exitErr
	p.mu.Unlock()
	attrs := []slog.Attr{slog.Int("pid", p.pid)}
	level := slog.LevelInfo
	if exitErr != nil {
		attrs = append(attrs, slog.String("err", exitErr.Error()))
		var ee *ExitError
		if errors.As(exitErr, &ee) && !ee.Killed {
			level = slog.LevelWarn
		}
	}
	p.log.LogAttrs(context.Background(), level, "agent exited", attrs...)
	close(p.done)
}

func (p *Process) classifyLocked(waitErr error) error {
	e := &ExitError{
		Code:   -1,
		Killed: p.signaled,
		Early:  !p.isReady && !p.stopping,
		Cause:  p.cause,
		Tail:   p.tailLocked(),
	}
	if ps := p.cmd.ProcessState; ps != nil {
		e.Code = ps.ExitCode()
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			e.Signal = ws.Signal()
		}
	} else if waitErr != nil && e.Cause == nil {
		e.Cause = waitErr
	}
	if !e.Killed && !e.Early && e.Code == 0 && e.Signal == 0 {
		return nil
	}
	return e
}

// relayStderr logs stderr line by line and keeps the tail.
func (p *Process) relayStderr() {
	defer close(p.stderrDone)
	r := newLineReader(p.stderr, p.spec.MaxLineBytes)
	for {
		line, dropped, err := r.next()
		if len(line) > 0 || dropped > 0 {
			s := strings.ToValidUTF8(string(line), "\uFFFD")
			p.mu.Lock()
			if len(p.tail) > 0 {
				p.tail[p.tailNext] = s
				p.tailNext = (p.tailNext + 1) % len(p.tail)
				if p.tailNext == 0 {
					p.tailFull = true
				}
			}
			p.mu.Unlock()
			attrs := []slog.Attr{slog.String("line", s)}
			if dropped > 0 {
				attrs = append(attrs, slog.Int("truncated_bytes", dropped))
			}
			p.log.LogAttrs(context.Background(), slog.LevelInfo, "agent stderr", attrs...)
		}
		if err != nil {
			return
		}
	}
}

// onceCloser is an *os.File whose Close may be called any number of times.
type onceCloser struct {
	f    *os.File
	once sync.Once
	err  error
}

func (c *onceCloser) Read(b []byte) (int, error)  { return c.f.Read(b) }
func (c *onceCloser) Write(b []byte) (int, error) { return c.f.Write(b) }

func (c *onceCloser) Close() error {
	c.once.Do(func() { c.err = c.f.Close() })
	return c.err
}

// stdoutPipe closes itself at the end of the stream and reports a pipe
// closed by Stop or Kill as io.EOF.
type stdoutPipe struct{ onceCloser }

func (s *stdoutPipe) Read(b []byte) (int, error) {
	n, err := s.f.Read(b)
	if err != nil {
		_ = s.Close()
		if errors.Is(err, os.ErrClosed) {
			err = io.EOF
		}
	}
	return n, err
}
