package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/agentbroker/agentbroker/internal/termtext"
	"github.com/agentbroker/agentbroker/sessions"
)

// renderer prints a session's events as a person watching wants them:
// the agent's text as it streams, tool calls with their status, plans,
// permission questions, state changes. Anything it does not know it skips.
// Everything it prints of an event goes through w, which escapes terminal
// controls (termtext); only its own spinner is drawn on raw.
type renderer struct {
	w        io.Writer
	raw      io.Writer
	midText  bool // the last thing printed was streamed text without a newline
	thinking bool
	working  bool // a turn is running
	tty      bool // w is a terminal: a spinner may be drawn
	spinning bool // a spinner frame is on the screen
	spin     int
}

func newRenderer(w io.Writer) *renderer {
	safe := termtext.NewWriter(w)
	r := &renderer{w: safe, raw: safe.Unwrap()}
	if f, ok := r.raw.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			r.tty = true
		}
	}
	return r
}

var spinnerFrames = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// tick draws the next spinner frame while a turn runs and nothing else
// is being printed; only on a terminal.
func (r *renderer) tick() {
	if !r.tty || !r.working {
		return
	}
	if r.midText {
		return // the agent is mid-sentence; do not break its line
	}
	r.spin = (r.spin + 1) % len(spinnerFrames)
	fmt.Fprintf(r.raw, "\r%s working…", spinnerFrames[r.spin])
	r.spinning = true
}

// clearSpinner removes a spinner frame before real output.
func (r *renderer) clearSpinner() {
	if r.spinning {
		fmt.Fprint(r.raw, "\r\033[K")
		r.spinning = false
	}
}

func (r *renderer) line(s string) {
	r.clearSpinner()
	if r.midText {
		fmt.Fprintln(r.w)
		r.midText = false
	}
	fmt.Fprintln(r.w, s)
}

type permissionQuestion struct {
	id      string
	options []struct {
		ID   string `json:"optionId"`
		Name string `json:"name"`
		Kind string `json:"kind"`
	}
}

func (q *permissionQuestion) pick(line string) (string, bool) {
	n, err := strconv.Atoi(line)
	if err != nil || n < 1 || n > len(q.options) {
		return "", false
	}
	return q.options[n-1].ID, true
}

// frame renders one frame; a permission question is returned to be asked.
func (r *renderer) frame(f sessions.Frame) *permissionQuestion {
	r.clearSpinner()
	if f.Type == "error" {
		r.line("! " + f.Error)
		return nil
	}
	var d map[string]any
	json.Unmarshal(f.Data, &d)
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	switch f.Type {
	case "state":
		r.working = str(d, "state") == "prompting"
		r.line(fmt.Sprintf("— state: %s", str(d, "state")))
	case "prompt":
		r.line("> " + str(d, "text"))
	case "update":
		r.update(d)
	case "tool_call_mcp":
		r.line(fmt.Sprintf("  ↳ MCP %s: %s", str(d, "tool"), str(d, "outcome")))
	case "permission_request":
		var q permissionQuestion
		q.id = str(d, "request_id")
		if raw, err := json.Marshal(d["options"]); err == nil {
			json.Unmarshal(raw, &q.options)
		}
		tc, _ := d["tool_call"].(map[string]any)
		r.line(fmt.Sprintf("? permission for %s:", str(tc, "title")))
		for i, o := range q.options {
			r.line(fmt.Sprintf("  %d) %s (%s)", i+1, o.Name, o.Kind))
		}
		return &q
	case "permission_answer":
		r.line(fmt.Sprintf("  permission %s: %s", str(d, "outcome"), str(d, "kind")))
	case "turn_end":
		r.line(fmt.Sprintf("— turn ended: %s", str(d, "stop_reason")))
	case "turn_failed", "agent_exited", "mcp_not_connected", "warning":
		r.line(fmt.Sprintf("! %s %s", f.Type, string(f.Data)))
	case "usage":
		r.line(usageLine(d))
	case "model_refused":
		r.line(fmt.Sprintf("! model refused: %s asked for %s (the session's model is %s): %s",
			str(d, "route"), str(d, "wire_model"), str(d, "model"), str(d, "message")))
	}
	return nil
}

func (r *renderer) update(d map[string]any) {
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	switch str(d, "sessionUpdate") {
	case "agent_message_chunk":
		c, _ := d["content"].(map[string]any)
		if r.thinking {
			r.thinking = false
			r.line("")
		}
		fmt.Fprint(r.w, str(c, "text"))
		r.midText = true
	case "agent_thought_chunk":
		c, _ := d["content"].(map[string]any)
		if !r.thinking {
			r.line("")
			fmt.Fprint(r.w, "  (thinking) ")
			r.thinking = true
		}
		fmt.Fprint(r.w, str(c, "text"))
		r.midText = true
	case "tool_call":
		r.thinking = false
		r.line(fmt.Sprintf("⚙ %s [%s]", str(d, "title"), str(d, "status")))
	case "tool_call_update":
		if s := str(d, "status"); s != "" {
			r.line(fmt.Sprintf("  ⚙ %s: %s", str(d, "toolCallId"), s))
		}
	case "plan":
		entries, _ := d["entries"].([]any)
		var b strings.Builder
		for _, e := range entries {
			m, _ := e.(map[string]any)
			fmt.Fprintf(&b, "\n  - [%s] %s", str(m, "status"), str(m, "content"))
		}
		r.line("plan:" + b.String())
	}
}

// usageLine describes a usage event: the model call, its tokens and cost.
func usageLine(d map[string]any) string {
	str := func(k string) string { s, _ := d[k].(string); return s }
	num := func(m map[string]any, k string) float64 { v, _ := m[k].(float64); return v }
	line := "  model call: " + str("model") + " " + str("outcome")
	if u, ok := d["usage"].(map[string]any); ok {
		line += fmt.Sprintf(", %.0f tokens in, %.0f out", num(u, "input_tokens"), num(u, "output_tokens"))
	}
	if _, ok := d["cost_micro_usd"]; ok {
		line += fmt.Sprintf(", $%.6f", num(d, "cost_micro_usd")/1e6)
	}
	if m := str("message"); m != "" {
		line += ": " + m
	}
	return line
}
