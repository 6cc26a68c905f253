// Package fakemodel is a scripted model upstream: an HTTP server that speaks
// enough of Anthropic's Messages API, OpenAI's Responses and Chat
// Completions APIs (tool calls included) and Google's Gemini API for tests,
// the demo and end-to-end proofs with the real agents.
//
// Routes (at the root, like the real APIs; the base URL is the server's URL):
//
//	POST /v1/messages               Anthropic Messages, streamed (SSE) or JSON; ?beta=true is accepted
//	POST /v1/messages/count_tokens  Anthropic token counting
//	POST /v1/responses              OpenAI Responses, streamed (SSE) or JSON
//	POST /v1/chat/completions       OpenAI Chat Completions, streamed or JSON, with tool calls
//	POST /v1beta/models/<model>:generateContent        Gemini, JSON
//	POST /v1beta/models/<model>:streamGenerateContent  Gemini, SSE with ?alt=sse, else a JSON array
//	POST /v1beta/models/<model>:countTokens            Gemini token counting
//
// Gemini offers tools as functionDeclarations and gets a functionCall part;
// a functionResponse part is quoted. A request asking for JSON of a schema
// (generationConfig.responseMimeType application/json: Gemini CLI's router
// and next-speaker check) is answered with an object of that schema, each
// enum's first value.
//
// The streams carry exactly the events the real adapters need (see
// shared/reference/agents.md): for Anthropic message_start,
// content_block_start, content_block_delta (text_delta, or input_json_delta
// for a tool_use block), content_block_stop, message_delta (stop_reason
// tool_use or end_turn, usage) and message_stop; for OpenAI Responses
// response.created, response.output_item.added, response.output_item.done
// and response.completed (with usage).
//
// What the model says is scripted by [Rule]s. When the request offers a tool
// whose name ends with a rule's Tool and the latest user message matches the
// rule's Prompt, the model asks for that tool with the rule's Arguments.
// Claude sees MCP tools as mcp__<server>__<tool>; Codex offers them inside a
// tool of type "namespace" named mcp__<server>, so the function_call carries
// that namespace and the bare tool name. For models Codex knows to support
// tool search (gpt-5.5 among them) it offers no MCP tool at first, only a
// client-executed tool of type "tool_search": the model then emits a
// tool_search_call for the rule's Tool, once, and calls the namespaced tool
// when Codex returns it in a tool_search_output. Given a tool result (an Anthropic
// tool_result block, an OpenAI function_call_output item or a chat "tool"
// message) the model answers with text quoting it (the rule's Reply
// followed by the result). Otherwise it answers Options.Text. Every
// answer, streamed or not, is valid for the API asked.
//
// Every request is recorded ([Server.Requests], [Server.Count]) with its
// path, model, whether it offered tools, its headers with the credentials
// redacted, and its body. The server checks the credential it expects
// (Options.APIKey: x-api-key or Authorization: Bearer on the Anthropic
// routes, Authorization: Bearer on the OpenAI routes, x-goog-api-key or
// Authorization: Bearer on the Gemini routes) and refuses any other
// with 401, and refuses a request carrying a second, different credential:
// a proxy that leaks its client's token upstream fails against it.
//
// Faults are served on demand, per request with the X-Fake-Fault header or
// for every request with Options.Fault (see [ParseFault]): an error status
// with an API-shaped body, a delay between events, a pause until
// [Server.Release], a disconnect after some events (at an event boundary or
// in the middle of one), a delay before the response headers.
package fakemodel
