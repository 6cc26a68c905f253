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
	"syscall"
	"time"
)

// Attempt is one thing to try.
type Attempt struct {
	Name string `json:"name"`
	// Op: read (open and read a byte), open (open for reading), list
	// (read a directory), write (create a new file and write to it),
	// signal (kill with Signal, 0 for the permission check), ptrace
	// (attach and detach), connect (TCP).
	Op string `json:"op"`
	// Path may name the agent's own variables ($HOME, $TMPDIR).
	Path   string `json:"path,omitempty"`
	PID    int    `json:"pid,omitempty"`
	Signal int    `json:"signal,omitempty"`
	Addr   string `json:"addr,omitempty"`
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
	defer f.Close()
	var spec Spec
	if err := json.NewDecoder(io.LimitReader(f, maxSpec)).Decode(&spec); err != nil {
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
	}
	return fmt.Errorf("unknown op %q", a.Op)
}
