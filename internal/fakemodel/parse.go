package fakemodel

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
)

// turn is what the model needs to know of a request.
type turn struct {
	model    string
	stream   bool
	tools    []offeredTool
	userText string      // the text of the latest user message
	result   *toolResult // a tool result to answer, if the request ends with one
	// searchable: the request offers OpenAI's client-executed tool_search
	// (Codex defers MCP tools behind it for models that support it);
	// searched: a search already ran since the latest user message.
	searchable bool
	searched   bool
	// jsonSchema: the request asks for a JSON answer of this shape (a
	// Gemini side call); nil otherwise.
	jsonSchema *geminiSchema
}

// offeredTool is a tool the request offers. namespace is set for a tool
// inside an OpenAI namespace tool (Codex's MCP tools).
type offeredTool struct {
	name      string
	namespace string
}

func (t offeredTool) display() string {
	if t.namespace != "" {
		return t.namespace + "/" + t.name
	}
	return t.name
}

type toolResult struct {
	tool string // the tool's name, "" if the call is not in the history
	text string
}

func (t turn) toolNames() []string {
	var out []string
	for _, tool := range t.tools {
		out = append(out, tool.display())
	}
	if t.searchable {
		out = append(out, "tool_search")
	}
	return out
}

// parseTurn decodes the parts of a request body the model cares about.
func parseTurn(route string, body []byte) (turn, error) {
	switch route {
	case "messages", "count_tokens":
		return parseAnthropic(body)
	case "responses":
		return parseResponses(body)
	case "chat":
		return parseChat(body)
	}
	return turn{}, errors.New("unknown route")
}

// --- Anthropic Messages ---

type anthropicBlock struct {
	Type      string          `json:"type"`
	Text      string          `json:"text"`
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	ToolUseID string          `json:"tool_use_id"`
	Content   json.RawMessage `json:"content"`
}

type anthropicMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

func parseAnthropic(body []byte) (turn, error) {
	var req struct {
		Model    string             `json:"model"`
		Stream   bool               `json:"stream"`
		Messages []anthropicMessage `json:"messages"`
		Tools    []struct {
			Name string `json:"name"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return turn{}, errors.New("body is not a Messages request: " + err.Error())
	}
	if req.Model == "" {
		return turn{}, errors.New("model is required")
	}
	t := turn{model: req.Model, stream: req.Stream}
	for _, tool := range req.Tools {
		t.tools = append(t.tools, offeredTool{name: tool.Name})
	}
	// Tool names by tool_use id, from the assistant turns; the blocks of
	// the latest user or assistant message (Claude Code appends messages
	// of other roles, "system", after the user's).
	names := map[string]string{}
	var last []anthropicBlock
	lastRole := ""
	for _, m := range req.Messages {
		blocks, err := anthropicBlocks(m.Content)
		if err != nil {
			return turn{}, err
		}
		if m.Role == "assistant" {
			for _, b := range blocks {
				if b.Type == "tool_use" {
					names[b.ID] = b.Name
				}
			}
		}
		if m.Role == "user" || m.Role == "assistant" {
			last, lastRole = blocks, m.Role
		}
	}
	if lastRole != "user" {
		last = nil
	}
	var text []string
	for _, b := range last {
		switch b.Type {
		case "text":
			text = append(text, b.Text)
		case "tool_result":
			t.result = &toolResult{tool: names[b.ToolUseID], text: anthropicResultText(b.Content)}
		}
	}
	t.userText = strings.Join(text, "\n")
	return t, nil
}

// anthropicBlocks decodes message content: a string or an array of blocks.
func anthropicBlocks(raw json.RawMessage) ([]anthropicBlock, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] == 'n' {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return []anthropicBlock{{Type: "text", Text: s}}, nil
	}
	var blocks []anthropicBlock
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return nil, errors.New("message content: " + err.Error())
	}
	return blocks, nil
}

// anthropicResultText is the text of a tool_result's content: a string or
// text blocks.
func anthropicResultText(raw json.RawMessage) string {
	blocks, err := anthropicBlocks(raw)
	if err != nil {
		return string(raw)
	}
	var parts []string
	for _, b := range blocks {
		if b.Type == "text" {
			parts = append(parts, b.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// --- OpenAI Responses ---

type responsesTool struct {
	Type  string          `json:"type"`
	Name  string          `json:"name"`
	Tools []responsesTool `json:"tools"`
}

type responsesItem struct {
	Type      string          `json:"type"`
	Role      string          `json:"role"`
	Content   json.RawMessage `json:"content"`
	CallID    string          `json:"call_id"`
	Name      string          `json:"name"`
	Namespace string          `json:"namespace"`
	Output    json.RawMessage `json:"output"`
	Tools     []responsesTool `json:"tools"` // tool_search_output: the tools found
}

// addResponsesTools appends the callable tools of a Responses tools list.
func (t *turn) addResponsesTools(tools []responsesTool) {
	for _, tool := range tools {
		switch tool.Type {
		case "namespace":
			for _, inner := range tool.Tools {
				t.tools = append(t.tools, offeredTool{name: inner.Name, namespace: tool.Name})
			}
		case "function", "":
			t.tools = append(t.tools, offeredTool{name: tool.Name})
		case "tool_search":
			t.searchable = true
		}
	}
}

func parseResponses(body []byte) (turn, error) {
	var req struct {
		Model  string          `json:"model"`
		Stream bool            `json:"stream"`
		Input  json.RawMessage `json:"input"`
		Tools  []responsesTool `json:"tools"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return turn{}, errors.New("body is not a Responses request: " + err.Error())
	}
	if req.Model == "" {
		return turn{}, errors.New("model is required")
	}
	t := turn{model: req.Model, stream: req.Stream}
	t.addResponsesTools(req.Tools)
	in := bytes.TrimSpace(req.Input)
	if len(in) > 0 && in[0] == '"' {
		if err := json.Unmarshal(in, &t.userText); err != nil {
			return turn{}, err
		}
		return t, nil
	}
	var items []responsesItem
	if len(in) > 0 {
		if err := json.Unmarshal(in, &items); err != nil {
			return turn{}, errors.New("input: " + err.Error())
		}
	}
	names := map[string]string{}
	lastUser := -1
	for i, it := range items {
		switch {
		case it.Type == "function_call":
			names[it.CallID] = it.Name
		case (it.Type == "message" || it.Type == "") && it.Role == "user":
			lastUser = i
		}
	}
	if lastUser >= 0 {
		t.userText = openAIText(items[lastUser].Content)
	}
	// A tool result after the latest user message is what to answer; the
	// tools a tool search found are offered from then on.
	for i, it := range items {
		switch {
		case it.Type == "tool_search_output":
			t.addResponsesTools(it.Tools)
			if i > lastUser {
				t.searched = true
			}
		case it.Type == "function_call_output" && i > lastUser:
			t.result = &toolResult{tool: names[it.CallID], text: openAIText(it.Output)}
		}
	}
	return t, nil
}

// openAIText is the text of a content or output value: a string or an
// array of parts with a text field.
func openAIText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	if raw[0] == '"' {
		var s string
		_ = json.Unmarshal(raw, &s)
		return s
	}
	var parts []struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return string(raw)
	}
	var out []string
	for _, p := range parts {
		if p.Text != "" {
			out = append(out, p.Text)
		}
	}
	return strings.Join(out, "\n")
}

// --- OpenAI Chat Completions ---

func parseChat(body []byte) (turn, error) {
	var req struct {
		Model    string `json:"model"`
		Stream   bool   `json:"stream"`
		Messages []struct {
			Role       string          `json:"role"`
			Content    json.RawMessage `json:"content"`
			ToolCallID string          `json:"tool_call_id"`
			ToolCalls  []struct {
				ID       string `json:"id"`
				Function struct {
					Name string `json:"name"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"messages"`
		Tools []struct {
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return turn{}, errors.New("body is not a Chat Completions request: " + err.Error())
	}
	if req.Model == "" {
		return turn{}, errors.New("model is required")
	}
	t := turn{model: req.Model, stream: req.Stream}
	for _, tool := range req.Tools {
		t.tools = append(t.tools, offeredTool{name: tool.Function.Name})
	}
	names := map[string]string{}
	lastUser := -1
	for i, m := range req.Messages {
		for _, c := range m.ToolCalls {
			names[c.ID] = c.Function.Name
		}
		if m.Role == "user" {
			lastUser = i
		}
	}
	if lastUser >= 0 {
		t.userText = openAIText(req.Messages[lastUser].Content)
	}
	for _, m := range req.Messages[lastUser+1:] {
		if m.Role == "tool" {
			t.result = &toolResult{tool: names[m.ToolCallID], text: openAIText(m.Content)}
		}
	}
	return t, nil
}
