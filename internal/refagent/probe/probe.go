// Package probe is an attacker inside an agent, for the confinement tests:
// given a list of attempts (read the broker's files, signal or ptrace it,
// write outside the session, connect elsewhere), it tries each and records
// what happened. The reference agent's test binary runs it before it
// serves ACP, when REFAGENT_PROBE names a spec file.
package probe

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Attempt is one thing to try.
type Attempt struct {
	Name string `json:"name"`
	// Op: read (open and read a byte), open (open for reading), list
	// (read a directory), write (create a new file and write to it),
	// signal (kill with Signal, 0 for the permission check), ptrace
	// (attach and detach), connect (TCP), fds (succeeds when the process
	// holds no descriptor beyond stdin, stdout and stderr), env-lacks
	// (succeeds when no environment variable contains Value).
	Op string `json:"op"`
	// Path may name the agent's own variables ($HOME, $TMPDIR).
	Path   string `json:"path,omitempty"`
	PID    int    `json:"pid,omitempty"`
	Signal int    `json:"signal,omitempty"`
	Addr   string `json:"addr,omitempty"`
	Value  string `json:"value,omitempty"`
}

// Spec is the probe's input.
type Spec struct {
	Attempts []Attempt `json:"attempts"`
	// Out is where the results are written, as JSON.
	Out string `json:"out"`
}

// Result is what one attempt did.
type Result struct {
	OK  bool   `json:"ok"`
	Err string `json:"err,omitempty"`
}

// maxSpec bounds the spec file.
const maxSpec = 1 << 20

// RunFile reads the spec at path, runs it and writes the results. A
// missing spec is not an error: the agent then is not a probe.
func RunFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var spec Spec
	err = json.NewDecoder(io.LimitReader(f, maxSpec)).Decode(&spec)
	f.Close() // before the attempts, one of which counts open descriptors
	if err != nil {
		return fmt.Errorf("probe spec %s: %w", path, err)
	}
	out := map[string]Result{}
	for _, a := range spec.Attempts {
		a.Path = os.ExpandEnv(a.Path) // $HOME, $TMPDIR: the agent's own
		r := Result{OK: true}
		if err := try(a); err != nil {
			r = Result{Err: err.Error()}
		}
		out[a.Name] = r
	}
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(spec.Out, data, 0o644)
}

func try(a Attempt) error {
	switch a.Op {
	case "read":
		f, err := os.Open(a.Path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = f.Read(make([]byte, 1))
		if errors.Is(err, io.EOF) {
			err = nil
		}
		return err
	case "open":
		f, err := os.Open(a.Path)
		if err != nil {
			return err
		}
		return f.Close()
	case "list":
		_, err := os.ReadDir(a.Path)
		return err
	case "write":
		f, err := os.OpenFile(a.Path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		_, err = f.WriteString("probe")
		f.Close()
		return err
	case "signal":
		return syscall.Kill(a.PID, syscall.Signal(a.Signal))
	case "ptrace":
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := syscall.PtraceAttach(a.PID); err != nil {
			return err
		}
		// Attached: the attack worked. Let the process go on.
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(a.PID, &ws, syscall.WALL, nil)
		_ = syscall.PtraceDetach(a.PID)
		return nil
	case "connect":
		c, err := net.DialTimeout("tcp", a.Addr, 3*time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	case "fds":
		d, err := os.Open("/proc/self/fd")
		if err != nil {
			return err
		}
		defer d.Close()
		names, err := d.Readdirnames(-1)
		if err != nil {
			return err
		}
		for _, n := range names {
			if n == "0" || n == "1" || n == "2" || n == strconv.Itoa(int(d.Fd())) {
				continue
			}
			target, _ := os.Readlink("/proc/self/fd/" + n)
			// The Go runtime's own: its poller (epoll, eventfd) and the
			// cgroup CPU limit files it keeps open to follow GOMAXPROCS.
			// What a broker could leak is a file, a socket or a pipe.
			if strings.HasPrefix(target, "/sys/fs/cgroup/") || strings.HasPrefix(target, "anon_inode:") {
				continue
			}
			return fmt.Errorf("inherited descriptor %s → %s", n, target)
		}
		return nil
	case "env-lacks":
		for _, kv := range os.Environ() {
			if a.Value != "" && strings.Contains(kv, a.Value) {
				k, _, _ := strings.Cut(kv, "=")
				return fmt.Errorf("%s holds it", k)
			}
		}
		return nil
	}
	return fmt.Errorf("unknown op %q", a.Op)
}
