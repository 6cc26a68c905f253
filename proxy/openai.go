package proxy

import (
	"encoding/json"
	"net/http"

	"github.com/agentbroker/agentbroker/catalog"
)

// The OpenAI Responses and Chat Completions APIs (catalog.ProviderOpenAI):
// the model in the body, the key as a bearer token, OpenAI's error shape,
// usage from response.completed or the last chunk.
func init() {
	register(&adapter{
		provider: catalog.ProviderOpenAI,
		routes: []route{
			{name: RouteResponses, endpoint: catalog.EndpointResponses, path: "/v1/responses", metered: true},
			{name: RouteChat, endpoint: catalog.EndpointChat, path: "/v1/chat/completions", metered: true},
		},
		tokenHeaders: []string{"X-Api-Key"},
		attachKey:    func(h http.Header, key string) { h.Set("Authorization", "Bearer "+key) },
		errorBody: func(e apiError) []byte {
			type inner struct {
				Message string  `json:"message"`
				Type    string  `json:"type"`
				Param   *string `json:"param"`
				Code    *string `json:"code"`
			}
			in := inner{Message: e.message, Type: openAIType(e.status)}
			if e.param != "" {
				in.Param = &e.param
			}
			if e.code != "" {
				in.Code = &e.code
			}
			return encodeError(struct {
				Error inner `json:"error"`
			}{in})
		},
		streamError: func(rt route, responseID, message string) []byte {
			if rt.name == RouteResponses {
				return sseEvent("response.failed", map[string]any{"type": "response.failed", "response": map[string]any{
					"id": responseID, "object": "response", "status": "failed",
					"error": map[string]string{"code": "server_error", "message": message}}})
			}
			return sseEvent("", map[string]any{"error": map[string]any{"message": message, "type": "server_error", "param": nil, "code": nil}})
		},
		usage: func(rt route) usageReader { return &openAIReader{chat: rt.name == RouteChat} },
	})
}

// openAIType is OpenAI's error.type for a status.
func openAIType(status int) string {
	if status == http.StatusPaymentRequired {
		return "insufficient_quota"
	}
	if status >= 500 {
		return "server_error"
	}
	return "invalid_request_error"
}

// openAIWireUsage is a usage object of Responses or Chat Completions
// (input or prompt includes cached tokens).
type openAIWireUsage struct {
	// Responses.
	InputTokens        *int64 `json:"input_tokens"`
	OutputTokens       *int64 `json:"output_tokens"`
	InputTokensDetails *struct {
		CachedTokens *int64 `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	// Chat Completions.
	PromptTokens        *int64 `json:"prompt_tokens"`
	CompletionTokens    *int64 `json:"completion_tokens"`
	PromptTokensDetails *struct {
		CachedTokens *int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}

// openAIReader reads Responses (response.completed, .incomplete, .failed)
// or Chat Completions (every chunk; the last usage wins) usage.
type openAIReader struct {
	chat bool
	u    *openAIWireUsage
	id   string
}

func (o *openAIReader) wants(name string) bool {
	if o.chat {
		return true
	}
	switch name {
	case "response.created", "response.completed", "response.incomplete", "response.failed", "", "message":
		return true
	}
	return false
}

func (o *openAIReader) ends(name string) bool {
	return !o.chat && (name == "response.completed" || name == "response.incomplete" || name == "response.failed")
}

func (o *openAIReader) event(data []byte) bool {
	if o.chat {
		if string(data) == "[DONE]" {
			return true
		}
		var ev struct {
			Usage *openAIWireUsage `json:"usage"`
		}
		if json.Unmarshal(data, &ev) == nil && ev.Usage != nil {
			o.u = ev.Usage
		}
		return false
	}
	var ev struct {
		Type     string `json:"type"`
		Response *struct {
			ID    string           `json:"id"`
			Usage *openAIWireUsage `json:"usage"`
		} `json:"response"`
	}
	if json.Unmarshal(data, &ev) != nil || ev.Response == nil {
		return false
	}
	if ev.Response.ID != "" {
		o.id = ev.Response.ID
	}
	switch ev.Type {
	case "response.completed", "response.incomplete", "response.failed":
		if ev.Response.Usage != nil {
			o.u = ev.Response.Usage
		}
		return true
	}
	return false
}

func (o *openAIReader) body(data []byte) {
	var b struct {
		Usage *openAIWireUsage `json:"usage"`
	}
	if json.Unmarshal(data, &b) == nil && b.Usage != nil {
		o.u = b.Usage
	}
}

func (o *openAIReader) usage() (catalog.Usage, bool) {
	if o.u == nil {
		return catalog.Usage{}, false
	}
	u, in, cached := catalog.Usage{}, int64(0), int64(0)
	if o.chat {
		in, u.OutputTokens = v(o.u.PromptTokens), v(o.u.CompletionTokens)
		if d := o.u.PromptTokensDetails; d != nil {
			cached = v(d.CachedTokens)
		}
	} else {
		in, u.OutputTokens = v(o.u.InputTokens), v(o.u.OutputTokens)
		if d := o.u.InputTokensDetails; d != nil {
			cached = v(d.CachedTokens)
		}
	}
	// OpenAI's input count includes the cached tokens; catalog.Usage's
	// InputTokens excludes them.
	u.InputTokens, u.CacheReadTokens = in-cached, cached
	return u, true
}

func (o *openAIReader) responseID() string { return o.id }
