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
	"syscall"

	"github.com/agentbroker/agentbroker/acp/sandbox"
	"github.com/agentbroker/agentbroker/internal/termtext"
)

func main() {
	// A confined agent's launcher is this binary: it never returns.
	sandbox.MaybeRunLauncher()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], &env{
		stdin:  os.Stdin,
		stdout: os.Stdout,
		stderr: os.Stderr,
		getenv: os.Getenv,
	})
	stop()
	switch {
	case err == nil, errors.Is(err, context.Canceled):
		os.Exit(0)
	case errors.Is(err, errUsage):
		os.Exit(2)
	case errors.Is(err, errSilent):
		os.Exit(1)
	default:
		fmt.Fprintln(os.Stderr, "agentbroker:", termtext.Escape(err.Error())) // it may echo the broker or an agent
		os.Exit(1)
	}
}
