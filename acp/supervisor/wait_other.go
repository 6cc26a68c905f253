//go:build !linux

package supervisor

// blockUntilExited is a no-op where waitid is not wired: the group is then
// killed right after the leader is reaped, which leaves a tiny window for
// pid reuse.
func blockUntilExited(int) {}
