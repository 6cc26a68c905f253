// Package sessions is the session broker: session lifecycle, each session's
// event log, the viewers who watch it over WebSocket, the HTTP API, and
// recovery after crashes and restarts.
//
// # Using it
//
//	m, err := sessions.New(sessions.Options{Store: db, Tokens: svc, SessionsDir: dir,
//		MCPURL: "http://127.0.0.1:7420/mcp", Agents: agents, ProxyBaseURL: base})
//	mcp, err := mcpserver.New(&mcpserver.Options{..., Observer: m}) // readiness, tool calls
//	px, err := proxy.New(&proxy.Options{..., Recorder: m})         // usage
//	finish, err := m.BeginRecovery(ctx)                              // once, before serving
//	m.Mount(mux)                                                     // the routes below
//	go serve(mux)
//	recovered, err := finish()                                       // relaunches: /mcp must be served
//	...
//	m.Close(shutdownCtx)                                             // stops every agent
//
// The Manager also offers the API as methods (Create, Prompt, Cancel,
// AnswerPermission, Stop, Get, List) for in-process callers.
//
// # Lifecycle
//
// Create checks the project, the profile, the permission policy and the
// model (catalog.Resolve with the profile's catalog agent; an empty model is
// the agent's catalog default; the custom profile takes a model only when
// configured with AgentConfig.CatalogAgent) and builds the launch once with
// placeholder secrets: a refusal here happens before anything is minted,
// recorded or started. It then mints the session's tokens (MCP: project:read
// tasks:read tasks:write knowledge:read knowledge:write sessions:read;
// inference, for platform-proxy credentials; viewer: session:view
// session:control, returned to the caller), records the session
// (store.PutSession, ID "ses_…") and, as the first event of its log, a
// "config" event with its MCP server configuration — URL, server name and
// the token's ID (jti), never the token — before the launch. The launch
// writes the agent's files through its profile in SessionsDir/<id>
// (0700), starts it under the supervisor, confined (Options.Confinement:
// the session's directory and working directory writable, its adapter
// readable, TCP to the broker only; see acp/sandbox), runs the ACP handshake with our
// MCP server entry, records the ACP session ID ("acp_session" event), sets
// the profile's initial mode, and waits up to ReadyTimeout for the readiness
// signal: the session's MCP token reaching tools/list (ToolsListed). An
// agent that does not connect is reported ("mcp_not_connected" event,
// Info.MCP.Status "not_connected") but the session is still ready: its
// tools are missing, not its agent. Agents that connect only when a prompt
// starts (profile.MCPAtFirstPrompt: Amp) are marked "first_prompt" and
// judged at the end of the first turn.
//
// States (each change is a "state" event {state, from, reason, …} and the
// record's State): starting → ready → prompting ⇄ idle → stopping →
// stopped; failed (the agent could not start, or crashed and could not be
// restarted); interrupted (the broker shut down: resumable; or Recover
// could not resume it: final).
//
// A crash (the process exits, or its connection fails) during a turn fails
// the turn ("turn_failed" with the exit error and the stderr tail), then
// the agent is relaunched with session/load (state starting, then ready) up
// to RestartAttempts times with exponential backoff; an agent without
// loadSession, or one that keeps failing, makes the session failed. Stop
// cancels the turn, stops the agent in stages (stdin, SIGTERM, SIGKILL),
// revokes every token of the session (tokens.RevokeSession: the MCP
// endpoint and the viewers refuse them from the next request) and closes
// the log. Failed sessions' tokens are revoked too.
//
// Close (at broker shutdown) stops every agent in stages and marks the
// sessions interrupted with resumable true, without revoking their
// tokens (their viewers see the log end, code CloseSessionEnded, and may
// reconnect after the restart with ?after=SEQ). Recover, at the next start, relaunches those and any session a
// crashed broker left live, with session/load, under new MCP (and
// inference) tokens, revoking the old ones one by one; a session it cannot
// resume (no configuration, its agent cannot load sessions, an api-key or
// oauth-token credential — secrets are never stored, so they are gone —,
// no ACP session yet, or a failed relaunch) becomes interrupted for good
// and its tokens are revoked. A session left "stopping" is stopped.
//
// # Events
//
// Every event is committed to the store before any viewer can read it.
// Types: "config", "state", "agent_started" {pid, attempt}, "acp_session",
// "update" (data: the ACP session/update's update object, as received),
// "replay" (the history an agent replays on session/load: not new
// activity), "prompt" {turn, text, by}, "turn_end" {turn, stop_reason, skipped_lines (non-JSON-RPC lines the agent printed so far, when any),
// model_calls and failed_model_calls (the turn's calls through the proxy, when any)},
// "turn_failed" {turn, error, reason, …} (instead of turn_end: see Failed turns), "cancel", "permission_request" {request_id, tool_call,
// options, project_tool, expires_at}, "permission_answer" {request_id,
// option_id, kind, outcome, reason, answered_by}, "mcp_connected",
// "mcp_not_connected", "tool_call_mcp" (mcpserver's ToolCalled), "usage"
// (the proxy's RecordUsage), "model_refused" {route, wire_model, model,
// reason, status, message, token_id} (the proxy refused the model asked
// for: not the session's model nor a side model, unknown, retired),
// "agent_exited", "warning". MCP and proxy
// notifications pass through a bounded queue per session (they must not
// block the request that reports them); when it is full they are dropped
// and counted (Info.DroppedEvents). Updates the store refuses (its disk is
// full) are counted there too: a prompt that cannot be recorded is
// refused (store.ErrNoSpace, 507), but a disk that fills during a turn
// loses that turn's later updates.
//
// # Failed turns
//
// A turn fails, and its end is a "turn_failed" event whose "error" says
// why and whose "reason" is one of: "agent_exited" (the agent went away
// mid-turn, with its stderr_tail), "agent_error" (it answered the prompt
// with an error), "model_calls_failed" (it made model calls through the
// proxy and every one of them failed — refused by the proxy, an upstream
// error, unreachable… —, whatever stop reason it then gave: with
// stop_reason, model_calls and failed_model_calls), "broker_restarted".
// One call that went through is enough for a turn to stand; a turn the
// person cancelled is not failed. An agent may end its turn as soon as it
// has read an answer, a moment before the proxy records the call, so the
// turn's end first waits (up to 5 s) until every call the proxy admitted
// (Allow) is recorded (RecordUsage, proxy.UsageRecord.Admitted). TurnResult says
// the same (failed, error, model_calls, failed_model_calls);
// Info.LastError keeps the last failure.
//
// # Usage and budgets
//
// Each model call through the proxy is a "usage" event {route, model,
// status, outcome (ok, refused, upstream_error, unreachable, truncated,
// client_gone), usage, cost_usd, reason, message} and a usage record in
// the store (GET /v1/usage adds them up). A session's budget (budget_usd)
// and its task's are checked by the proxy before each upstream call
// (Manager.Allow); once one is spent the call is refused with 402, the
// session records "budget_exceeded" {turn, message, model, route} once
// per turn, the broker cancels the turn and it ends with stop reason
// "budget_exceeded".
//
// Transcripts (store.AppendMessages, for search_messages and
// get_session_messages): the user's prompt when the turn starts; at the end
// of the turn the assistant's text (agent_message_chunk) and thinking
// (agent_thought_chunk) accumulated per run, one tool message per tool call
// and per result, and the turn's last plan. Replayed history is not
// transcribed again.
//
// # Permissions
//
// Under "ask" (and for other servers' tools under "allow-project-tools")
// a permission request becomes a "permission_request" event with a request
// ID and the agent's options; the first valid answer — a viewer's
// {"type":"permission","request_id":…,"option_id":…} or POST
// …/permissions/{rid} — wins; after AskTimeout the request is rejected; a
// cancel answers it "cancelled". Every decision, by a person or a policy,
// is a "permission_answer" event.
//
// # HTTP API
//
// Admin routes need an admin-audience token with the admin scope (the
// tokens middleware: 401/403 with a challenge). Session routes take that
// admin token, or the session's viewer token with the scope named, decided
// by tokens.Authorize and refused the same way (401 invalid_token, 403
// insufficient_scope, with the RFC 6750 challenge).
// Errors are {"error": kind, "error_description": text}.
//
//	POST   /v1/sessions                          admin
//	    {"project","agent","model","credential":{"kind","secret","base_url","via_proxy"},
//	     "cwd","permission_policy","prompt","title"}
//	    (via_proxy, with an api-key credential: the agent's model calls go
//	    through the broker's inference proxy, which uses the user's key;
//	    the key stays in the broker's memory — Manager.UserKey)
//	    201 {"session": Info, "viewer_token", "viewer_token_expires_at",
//	         "events_path", "first_prompt_error"?} once the session is ready
//	         (its first prompt, if any, then runs: state "prompting")
//	    400 invalid_request | model_refused (unknown, retired — naming the
//	        replacement —, not allowed): nothing was started or recorded
//	    502 agent_start_failed {"session": Info}: recorded as failed
//	GET    /v1/sessions[?project=&state=]        admin   200 {"sessions": [Info]}
//	GET    /v1/sessions/watch                    admin (WebSocket, subprotocol
//	    agentbroker.sessions.v1, token as "bearer.<token>" or Authorization)
//	    pushes {"type":"sessions","sessions":[Info]} at once and after each
//	    change (any session's committed event, at most every 250 ms)
//	POST   /v1/sessions/{id}/render              session:view  {"markdown":[text]}
//	    200 {"html":[sanitized HTML]} (internal/markdown; at most 64 texts)
//	GET    /v1/sessions/{id}                     session:view     200 Info
//	POST   /v1/sessions/{id}/prompt[?wait=true]  session:control  {"text","wait"?}
//	    202 {"turn","running":true}; with wait 200 {"turn","stop_reason",
//	    "reply","failed"?,"error"?,"model_calls"?,"failed_model_calls"?}
//	    once the turn ends; 409 busy | session_ended
//	POST   /v1/sessions/{id}/cancel              session:control  202; 409 no_turn
//	POST   /v1/sessions/{id}/permissions/{rid}   session:control  {"option_id"}
//	    200; 404 not pending (never asked, answered, timed out); 400 invalid_option
//	DELETE /v1/sessions/{id}                     admin   200 Info (stopped)
//	GET    /v1/sessions/{id}/events?after=SEQ    session:view     WebSocket
//	    (ViewerHandler; viewers with session:control may send
//	    {"type":"prompt","text"}, {"type":"cancel"},
//	    {"type":"permission","request_id","option_id"})
//	    The token comes from Authorization or, for browsers, a
//	    "bearer.<token>" subprotocol. A browser's Origin must be the
//	    broker's public URL's or an allowed one (Options.AllowedOrigins),
//	    else 403 before the upgrade; the Host header plays no part. The
//	    token is checked again on every message and every 500ms: once it is
//	    expired or revoked the socket is closed with CloseTokenInvalid
//	    (4401, reason "token expired" / "token revoked") and the message is
//	    not acted on. Other close codes: CloseSessionEnded (4000),
//	    CloseSlowViewer (4008, "resume after N"), CloseAuthUnavailable
//	    (4503).
//
// Info carries id, project, agent (the profile), catalog_agent, model,
// state, title, live, cwd, permission_policy, credential (the kind),
// acp_session_id, mcp {name, url, token_id, status}, turn, prompting,
// pending_permissions, restarts, last_error (kept after the session ends:
// a failed state event carries it), dropped_events, last_event_seq,
// created_at, last_activity_at.
//
// POST /v1/sessions blocks for the launch (up to StartTimeout plus
// ReadyTimeout): a serve without a write timeout is assumed.
//
// # What the store keeps of a session
//
// A session's record (store.SessionRecord) carries in its Config what the
// session's log said when the record was written: its configuration (the
// latest "config" event), its ACP session, turns, last agent, last state
// (see scanned). A session is found by its ID alone (store.SessionByID)
// and the live ones by state (store.SessionsByState): Get of an ended
// session and Recover read only the events written after its record.
package sessions
