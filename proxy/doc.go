// Package proxy is the inference proxy: the enforcement point of the model
// catalog. Agents launched by the broker reach their model through it with
// their session's inference token, so that platform keys never reach an
// agent and every model call is allowed, routed and counted by the same
// catalog that feeds the model picker.
//
// Routes (see Mount, BaseURLs):
//
//	POST /proxy/anthropic/v1/messages               Anthropic Messages (Claude Code, Amp)
//	POST /proxy/anthropic/v1/messages/count_tokens  Anthropic token counting
//	POST /proxy/openai/v1/responses                 OpenAI Responses (Codex)
//	POST /proxy/openai/v1/chat/completions          OpenAI Chat Completions
//
// For each request, in order, and before any upstream call:
//
//  1. the inference token (x-api-key or Authorization: Bearer) is verified
//     for the proxy audience and the inference scope (tokens.Service);
//  2. the body, at most Options.MaxBodyBytes, is read and scanned once for
//     its top-level "model" (and the price-changing "speed" and
//     "service_tier") without decoding anything else; it must be valid JSON
//     with each of those fields given once, in one spelling, so that the
//     upstream cannot read a different model from it;
//  3. catalog.Resolve(agent, model) and CheckEndpoint(route) decide;
//  4. the model's provider must have a configured upstream and a key (the
//     platform's, or the session's own through Options.UserKey).
//
// Every refusal is answered in the API's own error shape (Anthropic's
// {"type":"error","error":{…}}, OpenAI's {"error":{…}}) with a message that
// says what to do (the replacement of a retired model, for instance) and
// x-should-retry: false; a token refused by tokens.Authorize keeps the
// refusal's status code and challenge but gets the same shape.
//
// The body is forwarded byte for byte. The client's credentials never are:
// Authorization and x-api-key are replaced by the upstream's own header
// (x-api-key, plus anthropic-version when the client sent none, for
// Anthropic; Authorization: Bearer for OpenAI). The answer streams back as
// it comes: every read from the upstream is written and flushed at once,
// so the first byte goes out as soon as it comes in. A client that goes
// away cancels the upstream request; an upstream that breaks off a stream
// ends it with an error event in the API's shape (or, mid-event, with a
// broken connection). Only the wait for response headers has a timeout.
//
// Token usage is read from the bytes on their way (Anthropic message_start
// and message_delta, OpenAI response.completed, the final Chat Completions
// chunk, or a JSON answer's usage), priced with catalog.Cost, counted in
// the agentbroker_proxy_* metrics and handed to a Recorder with the
// session, project and agent of the token.
package proxy
