//go:build linux

package supervisor

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Identity names one process beyond its pid, which the kernel reuses: its
// start time (clock ticks after boot) and the boot it started in. A broker
// records it for each agent, so that after a restart it can find and stop
// an agent that outlived it (one that ignores end of input does) without
// ever signalling an unrelated process that got the same pid.
type Identity struct {
	PID        int    `json:"pid"`
	StartTicks uint64 `json:"start_ticks"`
	BootID     string `json:"boot_id"`
}

// identify reads pid's identity from /proc; a zero Identity when it cannot.
func identify(pid int) Identity {
	ticks, err := startTicks(pid)
	boot, err2 := bootID()
	if err != nil || err2 != nil {
		return Identity{}
	}
	return Identity{PID: pid, StartTicks: ticks, BootID: boot}
}

// Identity is the process's, read when it started (zero if /proc could
// not tell).
func (p *Process) Identity() Identity { return p.identity }

// KillStale kills the process group of id's process if that very process
// is still running (same boot, same start time) and reports whether it
// did. Nothing is signalled when the pid is gone or belongs to another
// process now.
func KillStale(id Identity) (bool, error) {
	if id.PID <= 0 || id.StartTicks == 0 || id.BootID == "" {
		return false, nil
	}
	boot, err := bootID()
	if err != nil || boot != id.BootID {
		return false, nil
	}
	ticks, err := startTicks(id.PID)
	if err != nil || ticks != id.StartTicks {
		return false, nil // gone, or another process now
	}
	// It is the agent, a process group leader (Setpgid): the group goes.
	if err := syscall.Kill(-id.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return false, fmt.Errorf("kill stale agent %d: %w", id.PID, err)
	}
	return true, nil
}

// startTicks is field 22 of /proc/<pid>/stat, the process's start time.
func startTicks(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("unreadable stat")
	}
	f := strings.Fields(s[i+1:]) // field 3 onwards
	if len(f) < 20 {
		return 0, errors.New("short stat")
	}
	return strconv.ParseUint(f[19], 10, 64)
}

func bootID() (string, error) {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b)), err
}
