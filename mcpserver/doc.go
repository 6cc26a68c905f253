// Package mcpserver is the agents' window onto their project: an MCP server
// (streamable HTTP at /mcp, on github.com/mark3labs/mcp-go) serving the
// project-context tools an agent session calls back with its MCP token —
// what the project is and wants (get_project, get_instructions), its tasks
// (list_tasks, get_task, search_tasks, update_task), what earlier sessions
// learnt (search_knowledge, get_knowledge, add_knowledge) and what they said
// (list_sessions, get_session_messages, search_messages).
//
// # The HTTP front
//
// mcp-go has no authentication, Origin check or body limit of its own, so
// the handler Mount installs wraps it (see http.go for the order):
//
//   - Origin: a request carrying an Origin header that is not the server's
//     own (ResourceURL's origin, and its other loopback spellings when it is
//     a loopback address) nor in Options.AllowedOrigins is refused with 403
//     (DNS-rebinding protection). Requests without Origin, as CLI agents
//     send them, pass. mcp-go's own Host check on loopback stays on.
//   - Bearer tokens of audience tokens.AudienceMCP, checked by
//     tokens.Authorize on every request (so a revocation holds from the next
//     one) and every 500ms while a GET stream is open (the stream ends when
//     its token is revoked or expires): 401 with a WWW-Authenticate
//     challenge naming the RFC 9728
//     metadata (resource_metadata="…"). The metadata is served, without a
//     token, at /.well-known/oauth-protected-resource and at the RFC 9728
//     path-suffixed /.well-known/oauth-protected-resource/mcp; its
//     authorization_servers are Options.AuthorizationServers (`serve`: the
//     broker itself, internal/oauth, where clients it did not launch sign
//     in with an admin's consent). The 401's challenge carries scope="…"
//     (every MCP scope: the consent decides which are given).
//   - A tools/call of a tool the token's scopes do not open is refused with
//     403 and an insufficient_scope challenge (MCP authorization, 2025-11-25);
//     tools/list never shows such a tool. A resources/read or prompts/get
//     the scopes do not open gets the same answer.
//   - A 401 or 403 to a POST carrying a JSON-RPC request has a JSON-RPC
//     error response to it as body (the OAuth error in its data): the
//     official Go SDK keeps its session on such an answer.
//   - A GET without Mcp-Protocol-Version is 405, before authentication: it
//     is a legacy HTTP+SSE client, which then fails at once instead of
//     waiting for an "endpoint" event.
//   - A per-token rate limit (a token bucket keyed by the jti; 50 requests
//     per second, bursts of 100, by default): 429 with Retry-After.
//   - A body limit (1 MiB by default): 413.
//
// # Protocol choices
//
// The server is stateless: no Mcp-Session-Id is issued, each POST is served
// on its own, with the claims of its own token. Protocol versions with the
// initialize handshake are served (2025-11-25 for Claude Code, 2025-06-18
// for Codex, …); server/discover, which Claude Code sends first, is
// answered -32601 (so it falls back to initialize), like any unknown method.
// A JSON-RPC batch is served under 2025-03-26 (or with no version header,
// which the spec says to take as 2025-03-26), at most 32 messages, each
// checked as if alone, and refused with a message saying why under later
// versions. initialize without a protocolVersion is refused (-32602).
// GET opens an SSE stream that only carries keep-alive comments (Codex,
// Claude and Amp open one; every message of this server belongs to a
// request and goes on that POST's response). DELETE is 405: there is no
// session to end (Codex sends one on exit and accepts it).
//
// Progress notifications (notifications/progress, for a request carrying a
// progressToken) go on the POST's own SSE response, all of them and in
// order, whether or not the client holds a GET stream: mcp-go v1.2.1 lost
// some in both cases, and the front works around both (see serveStream and
// progressWriter).
//
// # Prompts and resources
//
// The project's instructions are the prompt project_instructions
// (project:read); the project (agentbroker://project, project:read), its
// tasks (agentbroker://tasks/{id}, tasks:read) and knowledge entries
// (agentbroker://knowledge/{id}, knowledge:read) are resources, listed,
// read and templated for the scopes the token holds (see resources.go).
// The capabilities declare tools, prompts and resources, without list
// changes or subscriptions, and nothing else.
//
// # Tools
//
// Every tool needs a scope (see tokens.Scope) and sees only the token's
// project: an ID of another project is "not found", never data.
// update_task changes only the task bound to the token's session, unless
// the token holds tasks:manage. Inputs are closed JSON Schemas with limits
// (testdata/toolsnaps holds every tool's published definition; refresh with
// go test ./mcpserver -run TestToolSnapshots -update), enforced on every
// call; string limits count bytes of UTF-8 as well as characters, as the
// store does. Results carry structured content, described by an output
// schema, and the same JSON as text. Domain failures (not found, invalid
// arguments, a task not bound to the session, a store failure) are isError
// results the model can read; only protocol faults are JSON-RPC errors.
//
// Each tool call is counted (agentbroker_mcp_tool_calls_total{tool,outcome},
// agentbroker_mcp_tool_call_duration_seconds{tool}) and reported to the
// Observer with its session and outcome; a successful tools/list is reported
// too, as the session's readiness signal. Refusals at the front are counted
// in agentbroker_mcp_auth_failures_total{reason} and
// agentbroker_mcp_requests_refused_total{reason}.
//
// Options.InsecureFixedIdentity exists for protocol conformance suites only;
// `agentbroker serve` never sets it.
package mcpserver
