package acp

import (
	"encoding/json"
	"strings"
)

// ProtocolVersion is the ACP version this package speaks (an integer on
// the wire).
const ProtocolVersion = 1

// ACP method names.
const (
	MethodInitialize        = "initialize"
	MethodAuthenticate      = "authenticate"
	MethodSessionNew        = "session/new"
	MethodSessionLoad       = "session/load"
	MethodSessionPrompt     = "session/prompt"
	MethodSessionCancel     = "session/cancel"
	MethodSessionSetMode    = "session/set_mode"
	MethodSessionSetConfig  = "session/set_config_option"
	MethodSessionUpdate     = "session/update"
	MethodRequestPermission = "session/request_permission"
	MethodFSReadTextFile    = "fs/read_text_file"
	MethodFSWriteTextFile   = "fs/write_text_file"
)

// StopReason is why a prompt turn ended.
type StopReason string

const (
	StopEndTurn         StopReason = "end_turn"
	StopMaxTokens       StopReason = "max_tokens"
	StopMaxTurnRequests StopReason = "max_turn_requests"
	StopRefusal         StopReason = "refusal"
	StopCancelled       StopReason = "cancelled"
)

// Implementation names a client or an agent.
type Implementation struct {
	Name    string          `json:"name"`
	Title   string          `json:"title,omitempty"`
	Version string          `json:"version,omitempty"`
	Meta    json.RawMessage `json:"_meta,omitempty"`
	Extra   Extra           `json:"-"`
}

// FileSystemCapability says which fs/* requests the client serves.
type FileSystemCapability struct {
	ReadTextFile  bool            `json:"readTextFile"`
	WriteTextFile bool            `json:"writeTextFile"`
	Meta          json.RawMessage `json:"_meta,omitempty"`
	Extra         Extra           `json:"-"`
}

// ClientCapabilities is what we tell the agent at initialize.
type ClientCapabilities struct {
	FS       FileSystemCapability `json:"fs"`
	Terminal bool                 `json:"terminal"`
	Meta     json.RawMessage      `json:"_meta,omitempty"`
	Extra    Extra                `json:"-"`
}

// InitializeRequest is the params of initialize.
type InitializeRequest struct {
	ProtocolVersion    int                `json:"protocolVersion"`
	ClientCapabilities ClientCapabilities `json:"clientCapabilities"`
	ClientInfo         *Implementation    `json:"clientInfo,omitempty"`
	Meta               json.RawMessage    `json:"_meta,omitempty"`
	Extra              Extra              `json:"-"`
}

// PromptCapabilities says which content blocks a prompt may carry.
type PromptCapabilities struct {
	Image           bool            `json:"image,omitempty"`
	Audio           bool            `json:"audio,omitempty"`
	EmbeddedContext bool            `json:"embeddedContext,omitempty"`
	Meta            json.RawMessage `json:"_meta,omitempty"`
	Extra           Extra           `json:"-"`
}

// McpCapabilities says which MCP transports the agent takes besides stdio.
type McpCapabilities struct {
	HTTP  bool            `json:"http,omitempty"`
	SSE   bool            `json:"sse,omitempty"`
	Meta  json.RawMessage `json:"_meta,omitempty"`
	Extra Extra           `json:"-"`
}

// AgentCapabilities is what the agent tells us at initialize.
type AgentCapabilities struct {
	LoadSession         bool               `json:"loadSession,omitempty"`
	PromptCapabilities  PromptCapabilities `json:"promptCapabilities,omitzero"`
	McpCapabilities     McpCapabilities    `json:"mcpCapabilities,omitzero"`
	SessionCapabilities json.RawMessage    `json:"sessionCapabilities,omitempty"`
	Meta                json.RawMessage    `json:"_meta,omitempty"`
	Extra               Extra              `json:"-"`
}

// AuthMethod is one way the agent can authenticate.
type AuthMethod struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Type        string          `json:"type,omitempty"`
	Meta        json.RawMessage `json:"_meta,omitempty"`
	Extra       Extra           `json:"-"`
}

// InitializeResponse is the result of initialize.
type InitializeResponse struct {
	ProtocolVersion   int               `json:"protocolVersion"`
	AgentCapabilities AgentCapabilities `json:"agentCapabilities,omitzero"`
	AgentInfo         *Implementation   `json:"agentInfo,omitempty"`
	AuthMethods       []AuthMethod      `json:"authMethods,omitzero"`
	Meta              json.RawMessage   `json:"_meta,omitempty"`
	Extra             Extra             `json:"-"`
}

// AuthenticateRequest is the params of authenticate.
type AuthenticateRequest struct {
	MethodID string          `json:"methodId"`
	Meta     json.RawMessage `json:"_meta,omitempty"`
	Extra    Extra           `json:"-"`
}

// AuthenticateResponse is the result of authenticate.
type AuthenticateResponse struct {
	Meta  json.RawMessage `json:"_meta,omitempty"`
	Extra Extra           `json:"-"`
}

// NewSessionRequest is the params of session/new.
type NewSessionRequest struct {
	Cwd        string          `json:"cwd"`
	McpServers []McpServer     `json:"mcpServers"`
	Meta       json.RawMessage `json:"_meta,omitempty"`
	Extra      Extra           `json:"-"`
}

// SessionMode is one mode an agent offers.
type SessionMode struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Meta        json.RawMessage `json:"_meta,omitempty"`
	Extra       Extra           `json:"-"`
}

// SessionModeState is the modes of a session and the current one.
type SessionModeState struct {
	CurrentModeID  string          `json:"currentModeId"`
	AvailableModes []SessionMode   `json:"availableModes"`
	Meta           json.RawMessage `json:"_meta,omitempty"`
	Extra          Extra           `json:"-"`
}

// ConfigSelectOption is one value of a select config option.
type ConfigSelectOption struct {
	Value       string          `json:"value"`
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Meta        json.RawMessage `json:"_meta,omitempty"`
	Extra       Extra           `json:"-"`
}

// Config option categories that matter to us.
const (
	ConfigCategoryModel = "model"
	ConfigCategoryMode  = "mode"
)

// ConfigOption is a session setting the agent exposes (the model is one,
// with Category "model").
type ConfigOption struct {
	ID           string               `json:"id"`
	Name         string               `json:"name"`
	Description  string               `json:"description,omitempty"`
	Category     string               `json:"category,omitempty"`
	Type         string               `json:"type"`
	CurrentValue json.RawMessage      `json:"currentValue,omitempty"`
	Options      []ConfigSelectOption `json:"options,omitzero"`
	Meta         json.RawMessage      `json:"_meta,omitempty"`
	Extra        Extra                `json:"-"`
}

// Current returns CurrentValue as a string ("" when it is not one).
func (o ConfigOption) Current() string {
	var s string
	_ = json.Unmarshal(o.CurrentValue, &s)
	return s
}

// NewSessionResponse is the result of session/new.
type NewSessionResponse struct {
	SessionID     string            `json:"sessionId"`
	Modes         *SessionModeState `json:"modes,omitempty"`
	ConfigOptions []ConfigOption    `json:"configOptions,omitzero"`
	Models        json.RawMessage   `json:"models,omitempty"`
	Meta          json.RawMessage   `json:"_meta,omitempty"`
	Extra         Extra             `json:"-"`
}

// LoadSessionRequest is the params of session/load.
type LoadSessionRequest struct {
	SessionID  string          `json:"sessionId"`
	Cwd        string          `json:"cwd"`
	McpServers []McpServer     `json:"mcpServers"`
	Meta       json.RawMessage `json:"_meta,omitempty"`
	Extra      Extra           `json:"-"`
}

// LoadSessionResponse is the result of session/load.
type LoadSessionResponse struct {
	Modes         *SessionModeState `json:"modes,omitempty"`
	ConfigOptions []ConfigOption    `json:"configOptions,omitzero"`
	Models        json.RawMessage   `json:"models,omitempty"`
	Meta          json.RawMessage   `json:"_meta,omitempty"`
	Extra         Extra             `json:"-"`
}

// Content block types.
const (
	ContentText         = "text"
	ContentImage        = "image"
	ContentAudio        = "audio"
	ContentResourceLink = "resource_link"
	ContentResource     = "resource"
)

// ContentBlock is a piece of a prompt or of an agent's output.
type ContentBlock struct {
	Type        string          `json:"type"`
	Text        string          `json:"text,omitempty"`
	Data        string          `json:"data,omitempty"`
	MimeType    string          `json:"mimeType,omitempty"`
	URI         string          `json:"uri,omitempty"`
	Name        string          `json:"name,omitempty"`
	Title       string          `json:"title,omitempty"`
	Description string          `json:"description,omitempty"`
	Size        *int64          `json:"size,omitempty"`
	Resource    json.RawMessage `json:"resource,omitempty"`
	Annotations json.RawMessage `json:"annotations,omitempty"`
	Meta        json.RawMessage `json:"_meta,omitempty"`
	Extra       Extra           `json:"-"`
}

// TextBlock returns a text content block.
func TextBlock(text string) ContentBlock { return ContentBlock{Type: ContentText, Text: text} }

// MarshalJSON keeps "text" on a text block even when it is empty.
func (v ContentBlock) MarshalJSON() ([]byte, error) {
	type plain ContentBlock
	b, err := marshalObject(plain(v), v.Extra)
	if err != nil || v.Type != ContentText || v.Text != "" {
		return b, err
	}
	return append(b[:len(b)-1], `,"text":""}`...), nil
}

// UnmarshalJSON keeps unknown members in Extra.
func (v *ContentBlock) UnmarshalJSON(b []byte) error {
	type plain ContentBlock
	return unmarshalObject(b, (*plain)(v), &v.Extra)
}

// PromptRequest is the params of session/prompt.
type PromptRequest struct {
	SessionID string          `json:"sessionId"`
	Prompt    []ContentBlock  `json:"prompt"`
	Meta      json.RawMessage `json:"_meta,omitempty"`
	Extra     Extra           `json:"-"`
}

// PromptResponse is the result of session/prompt.
type PromptResponse struct {
	StopReason StopReason      `json:"stopReason"`
	Usage      json.RawMessage `json:"usage,omitempty"`
	Meta       json.RawMessage `json:"_meta,omitempty"`
	Extra      Extra           `json:"-"`
}

// CancelNotification is the params of session/cancel.
type CancelNotification struct {
	SessionID string          `json:"sessionId"`
	Meta      json.RawMessage `json:"_meta,omitempty"`
	Extra     Extra           `json:"-"`
}

// SetSessionModeRequest is the params of session/set_mode.
type SetSessionModeRequest struct {
	SessionID string          `json:"sessionId"`
	ModeID    string          `json:"modeId"`
	Meta      json.RawMessage `json:"_meta,omitempty"`
	Extra     Extra           `json:"-"`
}

// SetSessionModeResponse is the result of session/set_mode.
type SetSessionModeResponse struct {
	Meta  json.RawMessage `json:"_meta,omitempty"`
	Extra Extra           `json:"-"`
}

// SetSessionConfigOptionRequest is the params of session/set_config_option.
type SetSessionConfigOptionRequest struct {
	SessionID string          `json:"sessionId"`
	ConfigID  string          `json:"configId"`
	Value     string          `json:"value"`
	Meta      json.RawMessage `json:"_meta,omitempty"`
	Extra     Extra           `json:"-"`
}

// SetSessionConfigOptionResponse is the result of session/set_config_option.
type SetSessionConfigOptionResponse struct {
	ConfigOptions []ConfigOption  `json:"configOptions,omitzero"`
	Meta          json.RawMessage `json:"_meta,omitempty"`
	Extra         Extra           `json:"-"`
}

// Tool call kinds and statuses.
const (
	ToolKindRead    = "read"
	ToolKindEdit    = "edit"
	ToolKindDelete  = "delete"
	ToolKindMove    = "move"
	ToolKindSearch  = "search"
	ToolKindExecute = "execute"
	ToolKindThink   = "think"
	ToolKindFetch   = "fetch"
	ToolKindOther   = "other"

	ToolStatusPending    = "pending"
	ToolStatusInProgress = "in_progress"
	ToolStatusCompleted  = "completed"
	ToolStatusFailed     = "failed"
)

// ToolCallContent is an item of a tool call's content: "content" (a
// content block), "diff" or "terminal".
type ToolCallContent struct {
	Type       string          `json:"type"`
	Content    *ContentBlock   `json:"content,omitempty"`
	Path       string          `json:"path,omitempty"`
	OldText    *string         `json:"oldText,omitempty"`
	NewText    *string         `json:"newText,omitempty"`
	TerminalID string          `json:"terminalId,omitempty"`
	Meta       json.RawMessage `json:"_meta,omitempty"`
	Extra      Extra           `json:"-"`
}

// ToolCallLocation is a file a tool call touches.
type ToolCallLocation struct {
	Path  string          `json:"path"`
	Line  *int            `json:"line,omitempty"`
	Meta  json.RawMessage `json:"_meta,omitempty"`
	Extra Extra           `json:"-"`
}

// ToolCall is a tool call as reported by a tool_call update, refined by
// tool_call_update (where every field but ToolCallID is optional), and
// described in session/request_permission.
type ToolCall struct {
	ToolCallID string             `json:"toolCallId"`
	Title      string             `json:"title,omitempty"`
	Kind       string             `json:"kind,omitempty"`
	Status     string             `json:"status,omitempty"`
	Content    []ToolCallContent  `json:"content,omitzero"`
	Locations  []ToolCallLocation `json:"locations,omitzero"`
	RawInput   json.RawMessage    `json:"rawInput,omitempty"`
	RawOutput  json.RawMessage    `json:"rawOutput,omitempty"`
	Meta       json.RawMessage    `json:"_meta,omitempty"`
	Extra      Extra              `json:"-"`
}

// merge overlays the fields u sets on t (tool_call_update semantics).
func (t *ToolCall) merge(u ToolCall) {
	if u.Title != "" {
		t.Title = u.Title
	}
	if u.Kind != "" {
		t.Kind = u.Kind
	}
	if u.Status != "" {
		t.Status = u.Status
	}
	if u.Content != nil {
		t.Content = u.Content
	}
	if u.Locations != nil {
		t.Locations = u.Locations
	}
	if len(u.RawInput) > 0 {
		t.RawInput = u.RawInput
	}
	if len(u.RawOutput) > 0 {
		t.RawOutput = u.RawOutput
	}
	if len(u.Meta) > 0 {
		t.Meta = u.Meta
	}
	for k, v := range u.Extra {
		if t.Extra == nil {
			t.Extra = Extra{}
		}
		t.Extra[k] = v
	}
}

// PlanEntry is one step of an agent's plan.
type PlanEntry struct {
	Content  string          `json:"content"`
	Priority string          `json:"priority"`
	Status   string          `json:"status"`
	Meta     json.RawMessage `json:"_meta,omitempty"`
	Extra    Extra           `json:"-"`
}

// AvailableCommand is a slash command the agent offers.
type AvailableCommand struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Input       json.RawMessage `json:"input,omitempty"`
	Meta        json.RawMessage `json:"_meta,omitempty"`
	Extra       Extra           `json:"-"`
}

// PermissionOptionKind decides what a permission option means. Choose
// options by kind, never by optionId (the IDs differ by agent).
type PermissionOptionKind string

const (
	AllowOnce    PermissionOptionKind = "allow_once"
	AllowAlways  PermissionOptionKind = "allow_always"
	RejectOnce   PermissionOptionKind = "reject_once"
	RejectAlways PermissionOptionKind = "reject_always"
)

// Allows reports whether the kind allows the tool call.
func (k PermissionOptionKind) Allows() bool { return strings.HasPrefix(string(k), "allow_") }

// PermissionOption is one answer the agent offers.
type PermissionOption struct {
	OptionID string               `json:"optionId"`
	Name     string               `json:"name"`
	Kind     PermissionOptionKind `json:"kind"`
	Meta     json.RawMessage      `json:"_meta,omitempty"`
	Extra    Extra                `json:"-"`
}

// RequestPermissionRequest is the params of session/request_permission.
type RequestPermissionRequest struct {
	SessionID string             `json:"sessionId"`
	ToolCall  ToolCall           `json:"toolCall"`
	Options   []PermissionOption `json:"options"`
	Meta      json.RawMessage    `json:"_meta,omitempty"`
	Extra     Extra              `json:"-"`
}

// Permission outcomes.
const (
	OutcomeSelected  = "selected"
	OutcomeCancelled = "cancelled"
)

// RequestPermissionOutcome is "selected" with an option ID, or "cancelled".
type RequestPermissionOutcome struct {
	Outcome  string          `json:"outcome"`
	OptionID string          `json:"optionId,omitempty"`
	Meta     json.RawMessage `json:"_meta,omitempty"`
	Extra    Extra           `json:"-"`
}

// RequestPermissionResponse is our answer to session/request_permission.
type RequestPermissionResponse struct {
	Outcome RequestPermissionOutcome `json:"outcome"`
	Meta    json.RawMessage          `json:"_meta,omitempty"`
	Extra   Extra                    `json:"-"`
}

// ReadTextFileRequest is the params of fs/read_text_file. Line is 1-based.
type ReadTextFileRequest struct {
	SessionID string          `json:"sessionId"`
	Path      string          `json:"path"`
	Line      *int            `json:"line,omitempty"`
	Limit     *int            `json:"limit,omitempty"`
	Meta      json.RawMessage `json:"_meta,omitempty"`
	Extra     Extra           `json:"-"`
}

// ReadTextFileResponse is our answer to fs/read_text_file.
type ReadTextFileResponse struct {
	Content string          `json:"content"`
	Meta    json.RawMessage `json:"_meta,omitempty"`
	Extra   Extra           `json:"-"`
}

// WriteTextFileRequest is the params of fs/write_text_file.
type WriteTextFileRequest struct {
	SessionID string          `json:"sessionId"`
	Path      string          `json:"path"`
	Content   string          `json:"content"`
	Meta      json.RawMessage `json:"_meta,omitempty"`
	Extra     Extra           `json:"-"`
}

// WriteTextFileResponse is our answer to fs/write_text_file.
type WriteTextFileResponse struct {
	Meta  json.RawMessage `json:"_meta,omitempty"`
	Extra Extra           `json:"-"`
}
