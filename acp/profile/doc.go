// Package profile knows how to launch and configure each ACP agent the
// broker runs: its command, its environment, its config files and the
// credentials it accepts. It starts nothing; it turns a [LaunchSpec] into a
// [Launch] (a command, a complete environment and the files to write before
// the process starts), and [Launch.Prepare] writes those files.
//
// The profiles are claude-code (@agentclientprotocol/claude-agent-acp),
// codex (@agentclientprotocol/codex-acp), codex-zed (Zed's Rust adapter,
// @zed-industries/codex-acp, which ignores stdin EOF), amp (the amp-acp
// adapter with the Amp CLI, from a configured command) and custom (any ACP
// command, such as the broker's reference agent). [Lookup] describes each:
// the catalog agent it maps to, whether it connects to the MCP server at
// session/new or only at the first prompt, and the session mode to set after
// session/new.
//
// Every session gets its own HOME (and CODEX_HOME) inside the session
// directory, so an agent never reads or writes the user's own
// configuration, and a minimal environment: PATH, LANG, TMPDIR, HOME and
// what the profile adds. Nothing of the broker's environment is passed on.
//
// Credentials are values in memory ([Secret] redacts itself in fmt, slog and
// JSON). Each kind produces one consistent shape, and a test proves, for
// every profile and every credential kind, that no generated config names an
// environment variable the process is not given ("config ⊆ env"):
//
//   - api-key: ANTHROPIC_API_KEY, OPENAI_API_KEY or AMP_API_KEY; for Codex
//     with a custom base URL, a model provider block whose env_key is
//     OPENAI_API_KEY, otherwise the ACP authenticate method "api-key".
//   - oauth-token: CLAUDE_CODE_OAUTH_TOKEN for Claude; for Codex the
//     auth.json file, written into the session's CODEX_HOME, and never an
//     API-key provider block or env_key (the bug SAM shipped).
//   - platform-proxy: the broker's inference proxy with an inference token:
//     ANTHROPIC_BASE_URL=<broker>/proxy/anthropic with the token as
//     ANTHROPIC_API_KEY for Claude; for Codex the provider block
//     [model_providers.agentbroker] with base_url <broker>/proxy/openai/v1
//     and env_key AGENTBROKER_INFERENCE_TOKEN.
//
// Codex reads our MCP server from $CODEX_HOME/config.toml, with the bearer
// token in the environment variable AGENTBROKER_MCP_TOKEN
// (bearer_token_env_var), never in the file. An existing config.toml is
// merged: the user's keys are kept, ours are replaced; comments are not
// kept (go-toml/v2 does not round-trip them). Writing twice gives the same
// bytes. Claude and Amp get the MCP server through ACP session/new and need
// no file.
//
// A missing secret, an unsupported credential kind, or a URL or token with a
// control character fails [Build] (or [Launch.Prepare]) before any process
// starts, with [ErrMissingSecret], [ErrUnsupportedCredential] or
// [ErrBadValue].
package profile
