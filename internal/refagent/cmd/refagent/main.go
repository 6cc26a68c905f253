// Command refagent is agentbroker's reference ACP agent on stdio (see
// package refagent). Environment: REFAGENT_MCP_HTTP=0 (advertise stdio MCP
// only), REFAGENT_REQUIRE_AUTH=1, REFAGENT_IGNORE_EOF=1, REFAGENT_STATE_DIR,
// REFAGENT_LOG=debug, REFAGENT_PROBE (a probe spec file, see package probe:
// the attempts run before ACP is served). Logs go to stderr; stdout
// carries only JSON-RPC.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/agentbroker/agentbroker/internal/refagent"
	"github.com/agentbroker/agentbroker/internal/refagent/probe"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	level := slog.LevelInfo
	if os.Getenv("REFAGENT_LOG") == "debug" {
		level = slog.LevelDebug
	}
	if spec := os.Getenv("REFAGENT_PROBE"); spec != "" {
		if err := probe.RunFile(spec); err != nil {
			fmt.Fprintln(os.Stderr, "refagent: probe:", err)
		}
	}
	opts := refagent.OptionsFromEnv(os.Getenv)
	if opts.IgnoreEOF {
		// As Node and Rust agents do: a write to a closed stderr or stdout
		// fails with EPIPE instead of killing the process, so an agent that
		// ignores EOF outlives its broker as theirs do.
		signal.Ignore(syscall.SIGPIPE)
	}
	opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	err := refagent.Run(ctx, os.Stdin, os.Stdout, opts)
	switch {
	case errors.Is(err, refagent.ErrCrash):
		os.Exit(3)
	case errors.Is(err, refagent.ErrExitMidTurn):
		os.Exit(4)
	case err != nil && ctx.Err() != nil:
		os.Exit(0) // asked to stop
	case err != nil:
		fmt.Fprintln(os.Stderr, "refagent:", err)
		os.Exit(1)
	}
}
