package sessions

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/agentbroker/agentbroker/acp"
	"github.com/agentbroker/agentbroker/store"
)

// transcript turns a turn's updates into transcript messages: streamed
// text accumulated per role (assistant from agent_message_chunk, thinking
// from agent_thought_chunk) and closed when another kind of output comes,
// a tool message per tool call and per tool result, and the turn's last
// plan. The user's prompt is saved when the turn starts.
type transcript struct {
	mu        sync.Mutex
	role      store.MessageRole // of the open text buffer, "" when none
	buf       strings.Builder
	msgs      []store.Message
	titles    map[string]string // tool call ID → title
	plan      string
	savedPlan string
	reply     strings.Builder
}

func newTranscript() *transcript { return &transcript{titles: map[string]string{}} }

// maxReply bounds the reply kept for TurnResult.
const maxReply = 1 << 20

func (t *transcript) beginTurn() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.reply.Reset()
}

// endTurn returns the turn's messages and reply text, and starts afresh.
func (t *transcript) endTurn() ([]store.Message, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.flush()
	if t.plan != "" && t.plan != t.savedPlan {
		t.msgs = append(t.msgs, store.Message{Role: store.RolePlan, Content: t.plan})
		t.savedPlan = t.plan
	}
	msgs := t.msgs
	t.msgs = nil
	clear(t.titles)
	return msgs, t.reply.String()
}

func (t *transcript) flush() {
	if t.role != "" && strings.TrimSpace(t.buf.String()) != "" {
		t.msgs = append(t.msgs, store.Message{Role: t.role, Content: t.buf.String()})
	}
	t.role = ""
	t.buf.Reset()
}

func (t *transcript) text(role store.MessageRole, s string) {
	if s == "" {
		return
	}
	if t.role != role {
		t.flush()
		t.role = role
	}
	if t.buf.Len() < store.MaxTextLen {
		t.buf.WriteString(s)
	}
}

func (t *transcript) update(u acp.SessionUpdate) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch u.Kind {
	case acp.UpdateAgentMessageChunk:
		t.text(store.RoleAssistant, u.Text())
		if t.reply.Len() < maxReply {
			t.reply.WriteString(u.Text())
		}
	case acp.UpdateAgentThoughtChunk:
		t.text(store.RoleThinking, u.Text())
	case acp.UpdateToolCall:
		if u.ToolCall == nil {
			return
		}
		tc := u.ToolCall
		t.flush()
		title := tc.Title
		if title == "" {
			title = tc.ToolCallID
		}
		t.titles[tc.ToolCallID] = title
		t.msgs = append(t.msgs, store.Message{Role: store.RoleTool, Content: strings.TrimSpace(
			fmt.Sprintf("call %s %s", title, compactJSON(tc.RawInput)))})
		if done(tc.Status) {
			t.result(tc, title)
		}
	case acp.UpdateToolCallUpdate:
		if u.ToolCall == nil || !done(u.ToolCall.Status) {
			return
		}
		tc := u.ToolCall
		title := tc.Title
		if title == "" {
			title = t.titles[tc.ToolCallID]
		}
		if title == "" {
			title = tc.ToolCallID
		}
		t.flush()
		t.result(tc, title)
	case acp.UpdatePlan:
		if u.Plan == nil {
			return
		}
		var b strings.Builder
		for _, e := range u.Plan.Entries {
			fmt.Fprintf(&b, "- [%s] %s\n", e.Status, e.Content)
		}
		t.plan = strings.TrimSpace(b.String())
	}
}

func done(status string) bool {
	return status == acp.ToolStatusCompleted || status == acp.ToolStatusFailed
}

func (t *transcript) result(tc *acp.ToolCall, title string) {
	var out []string
	for _, c := range tc.Content {
		if c.Content != nil && c.Content.Type == acp.ContentText {
			out = append(out, c.Content.Text)
		}
	}
	text := strings.Join(out, "\n")
	if text == "" {
		text = compactJSON(tc.RawOutput)
	}
	t.msgs = append(t.msgs, store.Message{Role: store.RoleTool,
		Content: strings.TrimSpace(fmt.Sprintf("result %s (%s): %s", title, tc.Status, text))})
}

func compactJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}
