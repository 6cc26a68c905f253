package main

import (
	"context"
	"flag"
	"os"

	"github.com/agentbroker/agentbroker/internal/mcpbridge"
)

// mcpTokenEnv holds the bridge's bearer token: the environment, never argv.
const mcpTokenEnv = "AGENTBROKER_MCP_TOKEN"

func bridgeCommand() *command {
	var url string
	return &command{
		name:    "mcp-bridge",
		stdio:   true,
		summary: "relay MCP between stdio and the broker's HTTP endpoint (for agents without HTTP MCP); token in " + mcpTokenEnv,
		flags: func(fs *flag.FlagSet, c *config) {
			logFlags(fs, c)
			fs.StringVar(&url, "mcp-url", "", "the MCP endpoint, e.g. http://127.0.0.1:7420/mcp")
		},
		run: func(ctx context.Context, c *config, e *env, args []string) error {
			if len(args) > 0 {
				return usageError(e, "mcp-bridge takes flags only; the token comes from %s", mcpTokenEnv)
			}
			log, err := c.logger(e.stderr)
			if err != nil {
				return err
			}
			token := e.getenv(mcpTokenEnv)
			// Children of the bridge (none today) must not inherit the token.
			os.Unsetenv(mcpTokenEnv)
			return mcpbridge.Run(ctx, e.stdin, e.stdout, mcpbridge.Options{URL: url, Token: token, Logger: log})
		},
	}
}
