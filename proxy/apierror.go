package proxy

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
)

// Reason says why the proxy refused a request; the values are the
// agentbroker_proxy_refusals_total reason label.
type Reason string

// The reasons.
const (
	ReasonUnauthenticated   Reason = "unauthenticated"    // 401: no token, or one Verify refused (wrong audience, expired, revoked…)
	ReasonForbidden         Reason = "forbidden"          // 403: a proxy token without the inference scope
	ReasonBadAuthRequest    Reason = "bad_auth_request"   // 400: token in the query string, two different tokens…
	ReasonAuthUnavailable   Reason = "auth_unavailable"   // 503: the revocation store did not answer
	ReasonTooLarge          Reason = "too_large"          // 413: body over Options.MaxBodyBytes
	ReasonInvalidBody       Reason = "invalid_body"       // 400: not a JSON object, ambiguous or mistyped fields
	ReasonNoModel           Reason = "no_model"           // 400: no model field
	ReasonUnknownModel      Reason = "unknown_model"      // 404: not in the catalog
	ReasonRetired           Reason = "retired"            // 404: retired; the message names the replacement
	ReasonNotAllowed        Reason = "not_allowed"        // 403: the agent's policy does not allow it
	ReasonUnknownAgent      Reason = "unknown_agent"      // 403: the token's agent has no policy
	ReasonNotSessionModel   Reason = "not_session_model"  // 403: the token's session was given another model, and this is no side model
	ReasonWrongEndpoint     Reason = "wrong_endpoint"     // 400: the model or agent does not speak this route's API
	ReasonUnpricedOption    Reason = "unpriced_option"    // 400: speed or service_tier the catalog cannot price
	ReasonNoUpstream        Reason = "no_upstream"        // 503: no upstream configured for the model's provider
	ReasonNoKey             Reason = "no_key"             // 503: no platform key and no user key for the provider
	ReasonNotFound          Reason = "not_found"          // 404: no such route under the prefix
	ReasonMethodNotAllowed  Reason = "method_not_allowed" // 405: a route asked with another method than POST
	ReasonUpstreamAuth      Reason = "upstream_auth"      // 502: the upstream refused the platform key (its body is not passed on)
	ReasonUpstreamFailed    Reason = "upstream_failed"    // 502: the upstream could not be reached
	ReasonUpstreamTimeout   Reason = "upstream_timeout"   // 504: no response headers within Options.ResponseHeaderTimeout
	ReasonUpstreamTruncated Reason = "upstream_truncated" // the upstream broke off mid-body (an error event ends the stream)
)

// ModelRefusal reports a refusal of the model asked for: unknown, retired,
// not allowed for the agent, not the session's, or not on this API. The
// session broker records these as "model_refused" events.
func (r Reason) ModelRefusal() bool {
	switch r {
	case ReasonUnknownModel, ReasonRetired, ReasonNotAllowed, ReasonNotSessionModel, ReasonWrongEndpoint:
		return true
	}
	return false
}

// apiError is an error answered in the API's own shape.
type apiError struct {
	status  int
	reason  Reason
	message string
	// code is OpenAI's error.code ("" means null); param is OpenAI's
	// error.param ("" means null).
	code  string
	param string
	// retry sets x-should-retry, which the Anthropic and OpenAI SDKs obey:
	// refusals are final, so the client does not retry them.
	retry bool
}

// encodeError encodes an error body (plain strings: it cannot fail).
func encodeError(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return buf.Bytes()
}

// write sends e to the client.
func (e apiError) write(w http.ResponseWriter, a *adapter) {
	b := a.errorBody(e)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("X-Should-Retry", strconv.FormatBool(e.retry))
	if e.reason != "" {
		h.Set("X-Agentbroker-Refusal", string(e.reason))
	}
	w.WriteHeader(e.status)
	_, _ = w.Write(b)
}

// sseEvent frames one server-sent event (name "" for an unnamed one).
func sseEvent(name string, v any) []byte {
	data, _ := json.Marshal(v)
	var b []byte
	if name != "" {
		b = append(b, "event: "+name+"\n"...)
	}
	b = append(b, "data: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}
