package profile

import "github.com/agentbroker/agentbroker/catalog"

// claude configures @agentclientprotocol/claude-agent-acp. It needs no
// file: the MCP server comes through session/new, the credential through
// the environment.
func (b *builder) claude() error {
	// As root the adapter refuses to start without IS_SANDBOX=1
	// ("--dangerously-skip-permissions cannot be used with root").
	b.set("IS_SANDBOX", "1")
	// Otherwise MCP tools hide behind a deferred ToolSearch tool.
	b.set("ENABLE_TOOL_SEARCH", "false")
	b.set("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
	b.set("DISABLE_TELEMETRY", "1")
	b.set("DISABLE_AUTOUPDATER", "1")
	if b.spec.Model != "" {
		// Claude Code picks models of its own for side calls (titles, the
		// haiku/sonnet/opus aliases, subagents), and its own default may be
		// one the catalog does not have: pin every one of them to the model
		// the session was given, the one model known to pass the proxy.
		for _, k := range []string{"ANTHROPIC_MODEL", "ANTHROPIC_DEFAULT_OPUS_MODEL", "ANTHROPIC_DEFAULT_SONNET_MODEL",
			"ANTHROPIC_DEFAULT_HAIKU_MODEL", "ANTHROPIC_SMALL_FAST_MODEL", "CLAUDE_CODE_SUBAGENT_MODEL"} {
			b.set(k, b.spec.Model)
		}
	}
	c := b.spec.Credential
	switch c.kind() {
	case KindAPIKey:
		b.setSecret("ANTHROPIC_API_KEY", c.Secret)
		if c.BaseURL != "" {
			b.set("ANTHROPIC_BASE_URL", c.BaseURL)
		}
	case KindOAuthToken:
		// No ANTHROPIC_API_KEY: it would take precedence over the login.
		b.setSecret("CLAUDE_CODE_OAUTH_TOKEN", c.Secret)
	case KindPlatformProxy:
		// The inference token goes as x-api-key (ANTHROPIC_AUTH_TOKEN would
		// send it as a Bearer header); the base URL has no /v1.
		b.set("ANTHROPIC_BASE_URL", proxyURL(b.spec.ProxyBaseURL, catalog.ProviderAnthropic))
		b.setSecret("ANTHROPIC_API_KEY", c.Secret)
		b.note("Claude Code makes side calls (titles, a classifier) with other model IDs; the proxy must route or refuse them")
	}
	b.note("send the MCP server %q in session/new (http, header Authorization: Bearer <MCP token>)", b.spec.MCP.Name)
	b.note("after session/new, session/set_mode %q (or \"bypassPermissions\"); the default \"auto\" makes an extra classifier call", b.p.InitialMode)
	return nil
}
