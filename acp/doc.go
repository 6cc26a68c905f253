// Package acp is agentbroker's client side of the Agent Client Protocol
// (ACP v1: JSON-RPC 2.0, one JSON object a line, over an agent's stdio),
// built on github.com/sourcegraph/jsonrpc2.
//
// # API
//
// Connection ([NewConn] over any reader/writer: the agent's stdout and stdin):
//
//	c := acp.NewConn(ctx, stdout, stdin, &acp.ConnOptions{Logger: log, OnUpdate: appendToLog, ...})
//	defer c.Close()
//	sess, err := c.Handshake(ctx, acp.HandshakeOptions{Cwd: dir, MCP: &acp.MCPConfig{...}, ChooseAuth: pick})
//	stop, err := c.Prompt(ctx, sess.ID, []acp.ContentBlock{acp.TextBlock("…")})
//	err = c.Cancel(ctx, sess.ID)
//	<-c.Done(); c.Err() // why it ended: ErrClosed, ErrPeerClosed, ErrLineTooLong, ErrSubscriberTooSlow…
//
// Conn methods: Initialize, Authenticate, NewSession, LoadSession,
// Handshake, Prompt, Turn, Cancel, SetMode, SetConfigOption, SetModel,
// ConfigOptions, Initialized, Stats, Done, Err, Close.
// Helpers: [NewMCPServerEntry] (our MCP server entry from the agent's
// capabilities), [ChooseOption], [ParsePermissionPolicy], [TextBlock].
// Wire types: [InitializeRequest]/[InitializeResponse], [NewSessionRequest],
// [LoadSessionRequest], [PromptRequest]/[PromptResponse], [SessionNotification]
// with the [SessionUpdate] union, [RequestPermissionRequest], [ReadTextFileRequest],
// [WriteTextFileRequest], [McpServer], [ContentBlock], [ToolCall]… Every
// object type keeps the members it does not declare in Extra, so that a
// message decoded and encoded again says the same thing (golden tests
// check this against recorded transcripts of real agents).
//
// # Reading the agent
//
// The agent's stdout goes through a line filter before the JSON-RPC
// decoder: blank lines, non-JSON lines and JSON that is not a JSON-RPC
// message the decoder accepts are skipped and logged (counted in
// Stats().SkippedLines), because one bad line would otherwise end
// sourcegraph/jsonrpc2's stream. Lines are bounded (ConnOptions.MaxLineBytes,
// 8 MiB): an over-long line that starts with '{' is a message we cannot
// process (a lost update, or a response a caller would wait for forever),
// so the connection fails with ErrLineTooLong; an over-long line that does
// not look like JSON is discarded as noise without being buffered.
// Request IDs may be numbers or strings. Unknown notifications are
// ignored; unknown requests are answered -32601.
//
// # Updates, in order, nothing lost
//
// jsonrpc2 runs its handler on the read loop. session/update
// notifications go, in the agent's order, through one bounded queue
// (ConnOptions.UpdateQueue) to ConnOptions.OnUpdate, called from one
// goroutine. When the queue is full the reader waits (back-pressure: the
// agent's writes block) for up to ConnOptions.UpdateWait and then fails
// the connection with ErrSubscriberTooSlow. An update is never dropped:
// the session's event log either has every update or the session ends
// with a clear cause. Updates received before the connection ended are
// still delivered. Prompt returns after the turn's updates were delivered.
//
// The agent's requests (session/request_permission, fs/*) are answered on
// their own goroutines, which Close waits for; the read loop never blocks
// on them.
//
// # Permissions
//
// Options are chosen by kind (allow_once, allow_always, reject_once,
// reject_always), never by optionId. Policies: [PolicyAsk] (the Asker,
// with AskTimeout; no answer rejects), [PolicyAllowProjectTools] (calls to
// our MCP server's tools are allowed, the rest asked), [PolicyAllowAll].
// Allowing picks allow_once, else allow_always, else (no allow option)
// rejects; rejecting picks reject_once, else reject_always, else answers
// "cancelled". After [Conn.Cancel] every pending permission request of the
// session is answered {"outcome":{"outcome":"cancelled"}}, after the
// session/cancel notification, as are any that arrive before the next turn.
//
// # Files
//
// With ConnOptions.WorkDir set we advertise fs.readTextFile and
// fs.writeTextFile. Requests are confined to the working directory of the
// session they name (symlinks resolved, then opened through os.Root), and
// bounded (4 MiB read, 4 MiB write); line and limit are honoured.
//
// # Errors
//
// This package is where errors meet JSON-RPC codes: the agent's error
// answers become *[RPCError] (errors.Is(err, ErrAuthRequired) for -32000,
// ErrMethodNotFound for -32601, ...), and our answers to the agent map
// ErrOutsideWorkDir, ErrTooLarge, ErrInvalidParams to -32602,
// ErrResourceNotFound and missing files to -32002, ErrMethodNotFound to
// -32601, anything else to -32603.
//
// Logging goes only to ConnOptions.Logger (nil: silent). Tokens never reach
// it: McpServer and NameValue redact values in String, GoString and LogValue.
package acp
