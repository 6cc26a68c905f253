//go:build !linux

package sandbox

import (
	"fmt"
	"os"
	"runtime"
)

// Probe reports that this system cannot confine agents.
func Probe() Support {
	return Support{Reason: fmt.Sprintf("agents are confined with Landlock, which %s does not have", runtime.GOOS)}
}

// MaybeRunLauncher refuses to run an agent: there is nothing to confine it
// with here, and the launcher never runs one unconfined.
func MaybeRunLauncher() {
	if len(os.Args) < 2 || os.Args[1] != LauncherArg {
		return
	}
	fmt.Fprintf(os.Stderr, "agentbroker sandbox: %v\n", ErrUnavailable)
	os.Exit(exitLauncherFailed)
}

// ProtectSelf does nothing here.
func ProtectSelf() error { return nil }
