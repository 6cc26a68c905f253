package supervisor

import (
	"fmt"
	"strings"
	"syscall"
)

// ExitError says why an agent process ended. Find it with errors.As; its
// Cause, when set, is one of the sentinels (ErrStartTimeout, ErrStopped,
// ErrKilled) or the start context's cause, and errors.Is sees through it.
type ExitError struct {
	// Code is the exit status, or -1 if a signal ended the process.
	Code int
	// Signal is the signal that ended the process, or 0.
	Signal syscall.Signal
	// Killed reports that we signalled the process group (Stop, Kill, the
	// start timeout or the start context) before it exited.
	Killed bool
	// Early reports that the process exited before MarkReady without being
	// asked to stop: the handshake never completed.
	Early bool
	// Cause is why we signalled it, or nil.
	Cause error
	// Tail is the last lines of stderr, oldest first.
	Tail []string
}

// maxTailInError bounds how much of the tail Error includes.
const (
	maxTailLinesInError = 5
	maxTailBytesInError = 1000
)

// Error reads "agent killed (signal: killed): agent not ready before the
// start timeout", "agent exited early (exit status 1): <tail>" or "agent
// crashed (exit status 3): <tail>".
func (e *ExitError) Error() string {
	var b strings.Builder
	switch {
	case e.Killed:
		b.WriteString("agent killed")
	case e.Early:
		b.WriteString("agent exited early")
	default:
		b.WriteString("agent crashed")
	}
	if e.Signal != 0 {
		fmt.Fprintf(&b, " (signal: %s)", sigName(e.Signal))
	} else {
		fmt.Fprintf(&b, " (exit status %d)", e.Code)
	}
	if e.Cause != nil {
		b.WriteString(": ")
		b.WriteString(e.Cause.Error())
	}
	if len(e.Tail) > 0 {
		lines := e.Tail
		if len(lines) > maxTailLinesInError {
			lines = lines[len(lines)-maxTailLinesInError:]
		}
		tail := strings.Join(lines, " | ")
		if len(tail) > maxTailBytesInError {
			tail = "…" + strings.ToValidUTF8(tail[len(tail)-maxTailBytesInError:], "")
		}
		b.WriteString(": ")
		b.WriteString(tail)
	}
	return b.String()
}

// Unwrap returns Cause.
func (e *ExitError) Unwrap() error { return e.Cause }

func sigName(s syscall.Signal) string {
	switch s {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGSEGV:
		return "SIGSEGV"
	case syscall.SIGABRT:
		return "SIGABRT"
	}
	return s.String()
}
