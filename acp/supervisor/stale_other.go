//go:build !linux

package supervisor

// Identity names one process beyond its pid (see the Linux version); it is
// always zero here.
type Identity struct {
	PID        int    `json:"pid"`
	StartTicks uint64 `json:"start_ticks"`
	BootID     string `json:"boot_id"`
}

func identify(int) Identity { return Identity{} }

// Identity is zero here.
func (p *Process) Identity() Identity { return p.identity }

// KillStale cannot tell a stale agent from a reused pid here: it does
// nothing.
func KillStale(Identity) (bool, error) { return false, nil }
