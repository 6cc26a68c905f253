package proxy

import (
	"encoding/json"
	"net/http"

	"github.com/agentbroker/agentbroker/catalog"
)

// The Gemini API (catalog.ProviderGoogle): POST
// /v1beta/models/{model}:generateContent, :streamGenerateContent (SSE with
// ?alt=sse, else a JSON array) and :countTokens. The model is in the path;
// the key in x-goog-api-key (never ?key=, which the proxy refuses); errors
// in Google's shape; usage from usageMetadata, cumulative in every chunk.
func init() {
	register(&adapter{
		provider: catalog.ProviderGoogle,
		routes: []route{
			{name: RouteGenerateContent, endpoint: catalog.EndpointGenerateContent, path: "/v1beta/models/", action: "generateContent", metered: true},
			{name: RouteStreamGenerateContent, endpoint: catalog.EndpointGenerateContent, path: "/v1beta/models/", action: "streamGenerateContent", metered: true},
			{name: RouteCountGeminiTokens, endpoint: catalog.EndpointGenerateContent, path: "/v1beta/models/", action: "countTokens"},
		},
		tokenHeaders: []string{"X-Goog-Api-Key"},
		queryTokens:  []string{"key"},
		attachKey:    func(h http.Header, key string) { h.Set("X-Goog-Api-Key", key) },
		errorBody: func(e apiError) []byte {
			return encodeError(geminiError(e.status, e.message))
		},
		streamError: func(_ route, _, message string) []byte {
			return sseEvent("", geminiError(http.StatusInternalServerError, message))
		},
		usage: func(route) usageReader { return &geminiReader{} },
	})
}

// The Gemini routes.
const (
	RouteGenerateContent       Route = "generate_content"        // POST /proxy/gemini/v1beta/models/{model}:generateContent
	RouteStreamGenerateContent Route = "stream_generate_content" // POST /proxy/gemini/v1beta/models/{model}:streamGenerateContent
	RouteCountGeminiTokens     Route = "count_gemini_tokens"     // POST /proxy/gemini/v1beta/models/{model}:countTokens
)

// geminiError is Google's error object: {"error":{"code","message","status"}}.
func geminiError(status int, message string) any {
	type inner struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
	}
	return struct {
		Error inner `json:"error"`
	}{inner{status, message, googleStatus(status)}}
}

// googleStatus is the google.rpc.Code name Google answers with a status.
func googleStatus(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusMethodNotAllowed:
		return "INVALID_ARGUMENT"
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusTooManyRequests, http.StatusPaymentRequired:
		return "RESOURCE_EXHAUSTED"
	case http.StatusServiceUnavailable, http.StatusBadGateway:
		return "UNAVAILABLE"
	case http.StatusGatewayTimeout:
		return "DEADLINE_EXCEEDED"
	}
	if status >= 500 {
		return "INTERNAL"
	}
	return "INVALID_ARGUMENT"
}

// geminiUsage is a usageMetadata object. promptTokenCount includes the
// cached tokens; thoughts are billed as output.
type geminiUsage struct {
	PromptTokenCount        *int64 `json:"promptTokenCount"`
	CachedContentTokenCount *int64 `json:"cachedContentTokenCount"`
	CandidatesTokenCount    *int64 `json:"candidatesTokenCount"`
	ThoughtsTokenCount      *int64 `json:"thoughtsTokenCount"`
	ToolUsePromptTokenCount *int64 `json:"toolUsePromptTokenCount"`
}

// geminiResponse is the part of a GenerateContentResponse the meter reads.
type geminiResponse struct {
	Candidates []struct {
		FinishReason string `json:"finishReason"`
	} `json:"candidates"`
	UsageMetadata *geminiUsage `json:"usageMetadata"`
	ResponseID    string       `json:"responseId"`
}

// geminiReader keeps the last usageMetadata (each chunk's is the total so
// far); a chunk with a finishReason ends the answer.
type geminiReader struct {
	u  *geminiUsage
	id string
}

func (g *geminiReader) wants(string) bool { return true }

func (g *geminiReader) ends(string) bool { return false }

func (g *geminiReader) read(r *geminiResponse) (complete bool) {
	if r.UsageMetadata != nil {
		g.u = r.UsageMetadata
	}
	if r.ResponseID != "" {
		g.id = r.ResponseID
	}
	for _, c := range r.Candidates {
		if c.FinishReason != "" {
			complete = true
		}
	}
	return complete
}

func (g *geminiReader) event(data []byte) bool {
	var r geminiResponse
	if json.Unmarshal(data, &r) != nil {
		return false
	}
	return g.read(&r)
}

// body reads a generateContent answer (an object) or a
// streamGenerateContent answer without alt=sse (an array of them).
func (g *geminiReader) body(data []byte) {
	var one geminiResponse
	if json.Unmarshal(data, &one) == nil {
		g.read(&one)
		return
	}
	var many []geminiResponse
	if json.Unmarshal(data, &many) == nil {
		for i := range many {
			g.read(&many[i])
		}
	}
}

func (g *geminiReader) usage() (catalog.Usage, bool) {
	if g.u == nil {
		return catalog.Usage{}, false
	}
	// The prompt count includes the cached tokens; catalog.Usage's
	// InputTokens excludes them (never below zero, whatever is reported).
	cached := v(g.u.CachedContentTokenCount)
	return catalog.Usage{
		InputTokens:     max(v(g.u.PromptTokenCount)+v(g.u.ToolUsePromptTokenCount)-cached, 0),
		CacheReadTokens: cached,
		OutputTokens:    v(g.u.CandidatesTokenCount) + v(g.u.ThoughtsTokenCount),
	}, true
}

func (g *geminiReader) responseID() string { return g.id }
