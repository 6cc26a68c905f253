package proxy

import (
	"encoding/json"
	"net/http"

	"github.com/agentbroker/agentbroker/catalog"
)

// The Anthropic Messages API (catalog.ProviderAnthropic): the model in the
// body, the key in x-api-key, Anthropic's error shape, usage from
// message_start and message_delta.
func init() {
	register(&adapter{
		provider: catalog.ProviderAnthropic,
		routes: []route{
			{name: RouteMessages, endpoint: catalog.EndpointMessages, path: "/v1/messages", metered: true},
			{name: RouteCountTokens, endpoint: catalog.EndpointMessages, path: "/v1/messages/count_tokens"},
		},
		tokenHeaders: []string{"X-Api-Key"},
		attachKey: func(h http.Header, key string) {
			h.Set("X-Api-Key", key)
			if h.Get("Anthropic-Version") == "" {
				h.Set("Anthropic-Version", DefaultAnthropicVersion)
			}
		},
		errorBody: func(e apiError) []byte {
			type inner struct {
				Type    string `json:"type"`
				Message string `json:"message"`
			}
			return encodeError(struct {
				Type  string `json:"type"`
				Error inner  `json:"error"`
			}{"error", inner{anthropicType(e.status), e.message}})
		},
		streamError: func(_ route, _, message string) []byte {
			return sseEvent("error", map[string]any{"type": "error", "error": map[string]string{"type": "api_error", "message": message}})
		},
		usage: func(route) usageReader { return &anthropicReader{} },
	})
}

// anthropicType is Anthropic's error.type for a status.
func anthropicType(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusMethodNotAllowed:
		return "invalid_request_error"
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusPaymentRequired:
		return "billing_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	}
	if status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}

// anthropicWireUsage is a Messages usage object (input excludes cache
// reads and writes).
type anthropicWireUsage struct {
	InputTokens              *int64 `json:"input_tokens"`
	OutputTokens             *int64 `json:"output_tokens"`
	CacheReadInputTokens     *int64 `json:"cache_read_input_tokens"`
	CacheCreationInputTokens *int64 `json:"cache_creation_input_tokens"`
	CacheCreation            *struct {
		Ephemeral5m *int64 `json:"ephemeral_5m_input_tokens"`
		Ephemeral1h *int64 `json:"ephemeral_1h_input_tokens"`
	} `json:"cache_creation"`
}

// anthropicReader accumulates message_start's usage and the message_delta
// updates (each field present replaces the earlier value: the counts are
// cumulative).
type anthropicReader struct {
	input, output, cacheRead, cacheCreation, write5m, write1h *int64
	detailed                                                  bool
	reported                                                  bool
}

func (a *anthropicReader) merge(u *anthropicWireUsage) {
	set := func(dst **int64, v *int64) {
		if v != nil {
			*dst = v
		}
	}
	set(&a.input, u.InputTokens)
	set(&a.output, u.OutputTokens)
	set(&a.cacheRead, u.CacheReadInputTokens)
	set(&a.cacheCreation, u.CacheCreationInputTokens)
	if c := u.CacheCreation; c != nil && (c.Ephemeral5m != nil || c.Ephemeral1h != nil) {
		a.detailed = true
		set(&a.write5m, c.Ephemeral5m)
		set(&a.write1h, c.Ephemeral1h)
	}
	a.reported = true
}

func (a *anthropicReader) wants(name string) bool {
	return name == "message_start" || name == "message_delta" || name == "" || name == "message"
}

func (a *anthropicReader) ends(name string) bool { return name == "message_stop" }

func (a *anthropicReader) event(data []byte) bool {
	var ev struct {
		Type    string `json:"type"`
		Message *struct {
			Usage *anthropicWireUsage `json:"usage"`
		} `json:"message"`
		Usage *anthropicWireUsage `json:"usage"`
	}
	if json.Unmarshal(data, &ev) != nil {
		return false
	}
	switch {
	case ev.Type == "message_stop":
		return true
	case ev.Type == "message_start" && ev.Message != nil && ev.Message.Usage != nil:
		a.merge(ev.Message.Usage)
	case ev.Type == "message_delta" && ev.Usage != nil:
		a.merge(ev.Usage)
	}
	return false
}

func (a *anthropicReader) body(data []byte) {
	var b struct {
		Usage *anthropicWireUsage `json:"usage"`
	}
	if json.Unmarshal(data, &b) == nil && b.Usage != nil {
		a.merge(b.Usage)
	}
}

func (a *anthropicReader) usage() (catalog.Usage, bool) {
	if !a.reported {
		return catalog.Usage{}, false
	}
	u := catalog.Usage{InputTokens: v(a.input), OutputTokens: v(a.output), CacheReadTokens: v(a.cacheRead)}
	if a.detailed {
		u.CacheWrite5mTokens, u.CacheWrite1hTokens = v(a.write5m), v(a.write1h)
	} else {
		u.CacheWrite5mTokens = v(a.cacheCreation)
	}
	return u, true
}

func (a *anthropicReader) responseID() string { return "" }
