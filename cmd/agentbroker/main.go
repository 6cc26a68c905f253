// Command agentbroker runs coding agents (Claude Code, Codex, Amp) against a
// project, safely: it mints scoped tokens, serves project-context MCP tools,
// launches agents over ACP and enforces one model catalog at its inference
// proxy. `agentbroker help` lists the subcommands.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/agentbroker/agentbroker/acp/sandbox"
	"github.com/agentbroker/agentbroker/internal/termtext"
)

func main() {
	// A confined agent's launcher is this binary: it never returns.
	sandbox.MaybeRunLauncher()
	ctx, cancel := context.WithCancel(context.Background())
	var caught atomic.Value // the first signal
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		first := <-sigs
		caught.Store(first)
		cancel()
		// A second signal does not wait for the graceful stop.
		second := <-sigs
		fmt.Fprintf(os.Stderr, "agentbroker: %v again: exiting now\n", second)
		os.Exit(signalExitCode(second))
	}()
	var daemon bool
	err := run(ctx, os.Args[1:], &env{
		stdin:  os.Stdin,
		stdout: os.Stdout,
		stderr: os.Stderr,
		getenv: os.Getenv,
		daemon: &daemon,
	})
	sig, _ := caught.Load().(os.Signal)
	os.Exit(exitCode(err, sig, daemon))
}

// exitCode is the process's exit status: 0, 2 for a usage error, 1 for a
// failure, and 128+signal for a command a signal stopped (130 for
// Ctrl-C), but for a daemon (serve), which stops cleanly on it.
func exitCode(err error, sig os.Signal, daemon bool) int {
	if sig != nil && !daemon {
		return signalExitCode(sig)
	}
	switch {
	case err == nil, errors.Is(err, context.Canceled):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.Is(err, errSilent):
		return 1
	default:
		fmt.Fprintln(os.Stderr, "agentbroker:", termtext.Escape(err.Error())) // it may echo the broker or an agent
		return 1
	}
}

func signalExitCode(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return 1
}
