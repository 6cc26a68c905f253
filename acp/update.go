package acp

import (
	"bytes"
	"encoding/json"
	"errors"
)

// Session update kinds (the "sessionUpdate" discriminator).
const (
	UpdateUserMessageChunk  = "user_message_chunk"
	UpdateAgentMessageChunk = "agent_message_chunk"
	UpdateAgentThoughtChunk = "agent_thought_chunk"
	UpdateToolCall          = "tool_call"
	UpdateToolCallUpdate    = "tool_call_update"
	UpdatePlan              = "plan"
	UpdateAvailableCommands = "available_commands_update"
	UpdateCurrentMode       = "current_mode_update"
	UpdateConfigOption      = "config_option_update"
	UpdateSessionInfo       = "session_info_update"
	UpdateUsage             = "usage_update"
)

// ContentChunk is a streamed piece of a message or of a thought.
type ContentChunk struct {
	Content   ContentBlock    `json:"content"`
	MessageID string          `json:"messageId,omitempty"`
	Meta      json.RawMessage `json:"_meta,omitempty"`
	Extra     Extra           `json:"-"`
}

// Plan is the agent's plan, replaced whole by each plan update.
type Plan struct {
	Entries []PlanEntry     `json:"entries"`
	Meta    json.RawMessage `json:"_meta,omitempty"`
	Extra   Extra           `json:"-"`
}

// AvailableCommandsUpdate lists the agent's slash commands.
type AvailableCommandsUpdate struct {
	AvailableCommands []AvailableCommand `json:"availableCommands"`
	Meta              json.RawMessage    `json:"_meta,omitempty"`
	Extra             Extra              `json:"-"`
}

// CurrentModeUpdate reports a mode change.
type CurrentModeUpdate struct {
	CurrentModeID string          `json:"currentModeId"`
	Meta          json.RawMessage `json:"_meta,omitempty"`
	Extra         Extra           `json:"-"`
}

// ConfigOptionUpdate reports the session's config options.
type ConfigOptionUpdate struct {
	ConfigOptions []ConfigOption  `json:"configOptions"`
	Meta          json.RawMessage `json:"_meta,omitempty"`
	Extra         Extra           `json:"-"`
}

// SessionInfoUpdate reports session metadata (title, time).
type SessionInfoUpdate struct {
	Title     string          `json:"title,omitempty"`
	UpdatedAt string          `json:"updatedAt,omitempty"`
	Meta      json.RawMessage `json:"_meta,omitempty"`
	Extra     Extra           `json:"-"`
}

// UsageUpdate reports context usage (tokens used of size) and cost.
type UsageUpdate struct {
	Used  int64           `json:"used"`
	Size  int64           `json:"size"`
	Cost  json.RawMessage `json:"cost,omitempty"`
	Meta  json.RawMessage `json:"_meta,omitempty"`
	Extra Extra           `json:"-"`
}

// SessionUpdate is the update of a session/update notification: a union
// discriminated by Kind. Exactly the variant that Kind names is set (the
// three chunk kinds share Chunk; tool_call and tool_call_update share
// ToolCall). Raw is the update as received (set by decoding, for every
// kind); an update of a kind this package does not know has only Kind and
// Raw, and is encoded back from Raw.
type SessionUpdate struct {
	Kind              string
	Chunk             *ContentChunk
	ToolCall          *ToolCall
	Plan              *Plan
	AvailableCommands *AvailableCommandsUpdate
	CurrentMode       *CurrentModeUpdate
	ConfigOptions     *ConfigOptionUpdate
	SessionInfo       *SessionInfoUpdate
	Usage             *UsageUpdate
	Raw               json.RawMessage
}

// Text returns the text of a chunk update ("" for other updates).
func (u SessionUpdate) Text() string {
	if u.Chunk == nil {
		return ""
	}
	return u.Chunk.Content.Text
}

func (u SessionUpdate) variant() any {
	switch u.Kind {
	case UpdateUserMessageChunk, UpdateAgentMessageChunk, UpdateAgentThoughtChunk:
		if u.Chunk != nil {
			return u.Chunk
		}
	case UpdateToolCall, UpdateToolCallUpdate:
		if u.ToolCall != nil {
			return u.ToolCall
		}
	case UpdatePlan:
		if u.Plan != nil {
			return u.Plan
		}
	case UpdateAvailableCommands:
		if u.AvailableCommands != nil {
			return u.AvailableCommands
		}
	case UpdateCurrentMode:
		if u.CurrentMode != nil {
			return u.CurrentMode
		}
	case UpdateConfigOption:
		if u.ConfigOptions != nil {
			return u.ConfigOptions
		}
	case UpdateSessionInfo:
		if u.SessionInfo != nil {
			return u.SessionInfo
		}
	case UpdateUsage:
		if u.Usage != nil {
			return u.Usage
		}
	}
	return nil
}

// MarshalJSON encodes the variant with its "sessionUpdate" member.
func (u SessionUpdate) MarshalJSON() ([]byte, error) {
	if u.Kind == "" {
		return nil, errors.New("acp: session update without a kind")
	}
	kind, _ := json.Marshal(u.Kind)
	v := u.variant()
	if v == nil {
		if len(u.Raw) > 0 {
			return u.Raw, nil
		}
		return []byte(`{"sessionUpdate":` + string(kind) + `}`), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.WriteString(`{"sessionUpdate":`)
	buf.Write(kind)
	if len(b) > 2 {
		buf.WriteByte(',')
	}
	buf.Write(b[1:])
	return buf.Bytes(), nil
}

// UnmarshalJSON decodes the variant that "sessionUpdate" names.
func (u *SessionUpdate) UnmarshalJSON(b []byte) error {
	var head struct {
		Kind string `json:"sessionUpdate"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return err
	}
	if head.Kind == "" {
		return errors.New("acp: session update without sessionUpdate")
	}
	*u = SessionUpdate{Kind: head.Kind, Raw: append(json.RawMessage(nil), b...)}
	var extra *Extra
	var err error
	switch head.Kind {
	case UpdateUserMessageChunk, UpdateAgentMessageChunk, UpdateAgentThoughtChunk:
		u.Chunk = new(ContentChunk)
		err, extra = json.Unmarshal(b, u.Chunk), &u.Chunk.Extra
	case UpdateToolCall, UpdateToolCallUpdate:
		u.ToolCall = new(ToolCall)
		err, extra = json.Unmarshal(b, u.ToolCall), &u.ToolCall.Extra
	case UpdatePlan:
		u.Plan = new(Plan)
		err, extra = json.Unmarshal(b, u.Plan), &u.Plan.Extra
	case UpdateAvailableCommands:
		u.AvailableCommands = new(AvailableCommandsUpdate)
		err, extra = json.Unmarshal(b, u.AvailableCommands), &u.AvailableCommands.Extra
	case UpdateCurrentMode:
		u.CurrentMode = new(CurrentModeUpdate)
		err, extra = json.Unmarshal(b, u.CurrentMode), &u.CurrentMode.Extra
	case UpdateConfigOption:
		u.ConfigOptions = new(ConfigOptionUpdate)
		err, extra = json.Unmarshal(b, u.ConfigOptions), &u.ConfigOptions.Extra
	case UpdateSessionInfo:
		u.SessionInfo = new(SessionInfoUpdate)
		err, extra = json.Unmarshal(b, u.SessionInfo), &u.SessionInfo.Extra
	case UpdateUsage:
		u.Usage = new(UsageUpdate)
		err, extra = json.Unmarshal(b, u.Usage), &u.Usage.Extra
	default:
		return nil
	}
	if err != nil {
		return err
	}
	delete(*extra, "sessionUpdate")
	if len(*extra) == 0 {
		*extra = nil
	}
	return nil
}

// SessionNotification is the params of session/update.
type SessionNotification struct {
	SessionID string          `json:"sessionId"`
	Update    SessionUpdate   `json:"update"`
	Meta      json.RawMessage `json:"_meta,omitempty"`
	Extra     Extra           `json:"-"`
}

// Update is a session/update as delivered to ConnOptions.OnUpdate.
type Update struct {
	// Seq numbers the updates of this connection from 1, in the order the
	// agent sent them.
	Seq uint64
	SessionNotification
}
