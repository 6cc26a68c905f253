package fakemodel

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
)

// The Gemini API (generativelanguage.googleapis.com): the model is in the
// path, POST /v1beta/models/<model>:<action>, the key in x-goog-api-key.

// APIGemini is the Gemini API family.
const APIGemini API = "gemini"

// geminiPrefix is the path before the model.
const geminiPrefix = "/v1beta/models/"

// geminiRoute reads "<model>:<action>" after geminiPrefix: the route is
// "generate" (generateContent), "stream" (streamGenerateContent) or
// "count_tokens" (countTokens).
func geminiRoute(path string) (model, route string, ok bool) {
	rest, ok := strings.CutPrefix(path, geminiPrefix)
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, ':')
	if i <= 0 || strings.Contains(rest[:i], "/") {
		return "", "", false
	}
	switch rest[i+1:] {
	case "generateContent":
		return rest[:i], "generate", true
	case "streamGenerateContent":
		return rest[:i], "stream", true
	case "countTokens":
		return rest[:i], "count_tokens", true
	}
	return "", "", false
}

type geminiPart struct {
	Text         string `json:"text"`
	FunctionCall *struct {
		Name string `json:"name"`
	} `json:"functionCall"`
	FunctionResponse *struct {
		Name     string          `json:"name"`
		Response json.RawMessage `json:"response"`
	} `json:"functionResponse"`
}

type geminiSchema struct {
	Type       string                  `json:"type"`
	Enum       []string                `json:"enum"`
	Properties map[string]geminiSchema `json:"properties"`
	Items      *geminiSchema           `json:"items"`
}

// parseGemini reads a generateContent (or countTokens) body. The model
// comes from the path.
func parseGemini(model, route string, body []byte) (turn, error) {
	var req struct {
		Contents []struct {
			Role  string       `json:"role"`
			Parts []geminiPart `json:"parts"`
		} `json:"contents"`
		Tools []struct {
			FunctionDeclarations []struct {
				Name string `json:"name"`
			} `json:"functionDeclarations"`
		} `json:"tools"`
		GenerationConfig struct {
			ResponseMimeType   string          `json:"responseMimeType"`
			ResponseSchema     *geminiSchema   `json:"responseSchema"`
			ResponseJSONSchema json.RawMessage `json:"responseJsonSchema"`
		} `json:"generationConfig"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return turn{}, errors.New("body is not a generateContent request: " + err.Error())
	}
	if model == "" {
		return turn{}, errors.New("model is required (in the path)")
	}
	t := turn{model: model, stream: route == "stream"}
	for _, tool := range req.Tools {
		for _, f := range tool.FunctionDeclarations {
			t.tools = append(t.tools, offeredTool{name: f.Name})
		}
	}
	if gc := req.GenerationConfig; gc.ResponseMimeType == "application/json" {
		t.jsonSchema = gc.ResponseSchema
		if t.jsonSchema == nil && len(gc.ResponseJSONSchema) > 0 {
			var s geminiSchema
			if json.Unmarshal(gc.ResponseJSONSchema, &s) == nil {
				t.jsonSchema = &s
			}
		}
		if t.jsonSchema == nil {
			t.jsonSchema = &geminiSchema{Type: "object"}
		}
	}
	lastUser := -1
	for i, c := range req.Contents {
		if c.Role == "user" || c.Role == "" {
			for _, p := range c.Parts {
				if p.Text != "" {
					lastUser = i
				}
			}
		}
	}
	if lastUser >= 0 {
		var text []string
		for _, p := range req.Contents[lastUser].Parts {
			if p.Text != "" {
				text = append(text, p.Text)
			}
		}
		t.userText = strings.Join(text, "\n")
	}
	for _, c := range req.Contents[lastUser+1:] {
		for _, p := range c.Parts {
			if p.FunctionResponse != nil {
				t.result = &toolResult{tool: p.FunctionResponse.Name, text: geminiResultText(p.FunctionResponse.Response)}
			}
		}
	}
	return t, nil
}

// geminiResultText is the text of a functionResponse's response: its
// "output" string, the text parts of an MCP "content" list, or the JSON.
func geminiResultText(raw json.RawMessage) string {
	var r struct {
		Output  *string `json:"output"`
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	}
	if json.Unmarshal(raw, &r) == nil {
		if r.Output != nil {
			return *r.Output
		}
		var parts []string
		for _, c := range r.Content {
			if c.Text != "" {
				parts = append(parts, c.Text)
			}
		}
		if len(parts) > 0 {
			return strings.Join(parts, "\n")
		}
	}
	return string(bytes.TrimSpace(raw))
}

// fill returns a value of schema s: the first enum value of a string, an
// object with every property, an empty list, zero, false (the side calls
// that ask for JSON, such as Gemini CLI's router and next-speaker check,
// get the first choice they offer).
func (s *geminiSchema) fill(depth int) any {
	if s == nil || depth > 8 {
		return nil
	}
	switch strings.ToLower(s.Type) {
	case "object", "":
		out := map[string]any{}
		for k, p := range s.Properties {
			out[k] = p.fill(depth + 1)
		}
		return out
	case "array":
		return []any{}
	case "number", "integer":
		return 0
	case "boolean":
		return false
	}
	if len(s.Enum) > 0 {
		return s.Enum[0]
	}
	return "fake"
}

func (s *Server) geminiUsage() map[string]any {
	u := s.opts.Usage
	return map[string]any{
		"promptTokenCount":        u.Input + u.CacheRead,
		"cachedContentTokenCount": u.CacheRead,
		"candidatesTokenCount":    u.Output,
		"totalTokenCount":         u.Input + u.CacheRead + u.Output,
	}
}

// gemini answers generateContent or streamGenerateContent: one response,
// or (streamed) a response per text chunk, each with the usage so far,
// the last with finishReason. Without ?alt=sse a stream is a JSON array.
func (s *Server) gemini(e *emitter, t turn, ans answer, sse bool) string {
	id := s.nextID()
	var parts []map[string]any
	switch {
	case t.jsonSchema != nil && ans.action != ActionToolCall:
		b, _ := json.Marshal(t.jsonSchema.fill(0))
		parts = []map[string]any{{"text": string(b)}}
	case ans.action == ActionToolCall:
		var args any
		_ = json.Unmarshal(ans.args, &args)
		parts = []map[string]any{{"functionCall": map[string]any{"name": ans.tool.name, "args": args}}}
	default:
		for _, c := range chunks(ans.text, s.opts.TextChunks) {
			parts = append(parts, map[string]any{"text": c})
		}
	}
	response := func(ps []map[string]any, last bool) map[string]any {
		cand := map[string]any{"content": map[string]any{"role": "model", "parts": ps}, "index": 0}
		if last {
			cand["finishReason"] = "STOP"
		}
		return map[string]any{"candidates": []any{cand}, "usageMetadata": s.geminiUsage(),
			"modelVersion": t.model, "responseId": id}
	}
	if !t.stream {
		return e.json(response(parts, true))
	}
	var resps []any
	var events []event
	for i, p := range parts {
		r := response([]map[string]any{p}, i == len(parts)-1)
		resps = append(resps, r)
		events = append(events, event{"", r})
	}
	if !sse {
		return e.json(resps)
	}
	return e.stream(events)
}

// geminiErrorStatus is Google's error status for an HTTP status.
func geminiErrorStatus(status int) string {
	switch status {
	case 400:
		return "INVALID_ARGUMENT"
	case 401:
		return "UNAUTHENTICATED"
	case 403:
		return "PERMISSION_DENIED"
	case 404:
		return "NOT_FOUND"
	case 429:
		return "RESOURCE_EXHAUSTED"
	case 503:
		return "UNAVAILABLE"
	case 504:
		return "DEADLINE_EXCEEDED"
	}
	if status >= 500 {
		return "INTERNAL"
	}
	return "INVALID_ARGUMENT"
}
