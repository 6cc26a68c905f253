package proxy

import (
	"bytes"
	"encoding/json"

	"github.com/agentbroker/agentbroker/catalog"
)

// Bounds on what the meter buffers. An event or a JSON body beyond them is
// passed on untouched but its usage is lost (UsageReported false).
const (
	// maxEventBytes bounds one SSE event's data: response.completed
	// carries the whole output.
	maxEventBytes = 8 << 20
	// maxJSONBytes bounds a non-streamed response body.
	maxJSONBytes = 16 << 20
)

// meter reads token usage from a response as it passes, without holding
// it: the proxy writes every chunk to the client first, then to the
// meter. For SSE it keeps only the data of the events that carry usage
// (Anthropic message_start and message_delta; OpenAI response.created,
// response.completed, response.incomplete, response.failed; every Chat
// Completions chunk), each up to maxEventBytes, copied once; for JSON the
// body, up to maxJSONBytes.
type meter struct {
	rt  route
	sse bool

	// SSE parsing state, per line: the field name is gathered in field
	// (up to maxField bytes), then the value goes where the field says.
	state      lineState
	field      []byte
	skipLF     bool // the last line ended with \r: a \n next belongs to it
	lineSeen   bool // the current line has begun
	valueStart bool // the colon was seen, not yet the value's first byte
	event      []byte
	data       []byte
	dataSeen   bool // a data line of the current event was seen
	dataOver   bool // the current event's data passed maxEventBytes
	ignore     bool // the current event's name says it carries no usage
	terminal   bool // the current event's name says it ends the answer
	pending    bool // an event is under way (not at an event boundary)
	// complete: the event that ends the answer went by (Anthropic
	// message_stop, OpenAI response.completed/incomplete/failed, Chat
	// Completions [DONE]); what may follow is the end of the stream.
	complete bool

	// JSON body.
	body     []byte
	bodyOver bool

	// Results.
	anth       anthropicUsage
	oai        *wireUsage
	reported   bool
	responseID string
}

type lineState int

const (
	stateField   lineState = iota // before the colon
	stateData                     // a data value, kept
	stateEvent                    // an event name, kept (up to maxField)
	stateDiscard                  // anything else
)

// maxField bounds field names and event names kept.
const maxField = 64

func newMeter(rt route, sse bool) *meter { return &meter{rt: rt, sse: sse} }

// Write feeds the next chunk of the response body. It never fails.
func (m *meter) Write(p []byte) {
	if !m.sse {
		if m.bodyOver {
			return
		}
		if len(m.body)+len(p) > maxJSONBytes {
			m.bodyOver, m.body = true, nil
			return
		}
		m.body = append(m.body, p...)
		return
	}
	for len(p) > 0 {
		if m.skipLF {
			m.skipLF = false
			if p[0] == '\n' {
				p = p[1:]
				continue
			}
		}
		i := bytes.IndexAny(p, "\r\n")
		if i < 0 {
			m.linePart(p)
			return
		}
		m.linePart(p[:i])
		m.skipLF = p[i] == '\r'
		p = p[i+1:]
		m.endLine()
	}
}

// linePart handles part of a line (no line break in b).
func (m *meter) linePart(b []byte) {
	if len(b) == 0 {
		return
	}
	if !m.lineSeen {
		m.lineSeen, m.pending = true, true
	}
	if m.state == stateField {
		i := bytes.IndexByte(b, ':')
		head := b
		if i >= 0 {
			head = b[:i]
		}
		if len(m.field)+len(head) <= maxField {
			m.field = append(m.field, head...)
		} else {
			m.field = append(m.field[:0], '?') // no field we know is that long
		}
		if i < 0 {
			return
		}
		b = b[i+1:]
		m.startValue()
		m.valueStart = true
	}
	if m.valueStart && len(b) > 0 {
		m.valueStart = false
		b = bytes.TrimPrefix(b, []byte(" ")) // one space after the colon is not part of the value
	}
	m.value(b)
}

// startValue picks where a value goes once its field name is known.
func (m *meter) startValue() {
	switch string(m.field) {
	case "data":
		seen := m.dataSeen
		m.state, m.dataSeen = stateDiscard, true
		if m.ignore || m.dataOver {
			return
		}
		m.state = stateData
		if seen {
			m.data = append(m.data, '\n')
		}
	case "event":
		m.state = stateEvent
		m.event = m.event[:0]
	default:
		m.state = stateDiscard
	}
}

// value handles part of a line's value.
func (m *meter) value(b []byte) {
	switch m.state {
	case stateData:
		if len(m.data)+len(b) > maxEventBytes {
			m.dataOver, m.data, m.state = true, nil, stateDiscard
			return
		}
		m.data = append(m.data, b...)
	case stateEvent:
		if room := maxField - len(m.event); room > 0 {
			m.event = append(m.event, b[:min(room, len(b))]...)
		}
	}
}

// endLine handles the end of a line (SSE: a blank line dispatches).
func (m *meter) endLine() {
	if !m.lineSeen {
		m.dispatch()
		return
	}
	switch m.state {
	case stateField: // a line without a colon: the field name with an empty value
		m.startValue()
	case stateEvent:
		m.ignore = !m.wants(string(m.event))
		m.terminal = m.ends(string(m.event))
	}
	m.state, m.field, m.lineSeen, m.valueStart = stateField, m.field[:0], false, false
}

// wants reports whether an event of that name may carry usage (or the
// response ID); unnamed events are read.
func (m *meter) wants(name string) bool {
	switch m.rt.name {
	case RouteMessages:
		return name == "message_start" || name == "message_delta" || name == "" || name == "message"
	case RouteResponses:
		switch name {
		case "response.created", "response.completed", "response.incomplete", "response.failed", "", "message":
			return true
		}
		return false
	}
	return true
}

// ends reports whether an event of that name ends the answer.
func (m *meter) ends(name string) bool {
	switch m.rt.name {
	case RouteMessages:
		return name == "message_stop"
	case RouteResponses:
		return name == "response.completed" || name == "response.incomplete" || name == "response.failed"
	}
	return false
}

// dispatch handles the event that a blank line ends.
func (m *meter) dispatch() {
	if m.dataSeen && !m.dataOver && !m.ignore && len(m.data) > 0 {
		m.handle(m.data)
	}
	if m.terminal && m.dataSeen {
		m.complete = true
	}
	m.terminal = false
	if cap(m.data) > 64<<10 {
		m.data = nil // do not keep a large buffer for the rest of the stream
	}
	m.event, m.data = m.event[:0], m.data[:0]
	m.dataSeen, m.dataOver, m.ignore, m.pending = false, false, false, false
}

// atBoundary reports whether the stream so far ends between two events,
// where an error event can be appended cleanly.
func (m *meter) atBoundary() bool { return !m.pending }

// wireUsage is a usage object of any of the three APIs.
type wireUsage struct {
	// Anthropic Messages (input excludes cache reads and writes).
	InputTokens              *int64 `json:"input_tokens"`
	OutputTokens             *int64 `json:"output_tokens"`
	CacheReadInputTokens     *int64 `json:"cache_read_input_tokens"`
	CacheCreationInputTokens *int64 `json:"cache_creation_input_tokens"`
	CacheCreation            *struct {
		Ephemeral5m *int64 `json:"ephemeral_5m_input_tokens"`
		Ephemeral1h *int64 `json:"ephemeral_1h_input_tokens"`
	} `json:"cache_creation"`
	// OpenAI Responses (input includes cached tokens).
	InputTokensDetails *struct {
		CachedTokens *int64 `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	// OpenAI Chat Completions (prompt includes cached tokens).
	PromptTokens        *int64 `json:"prompt_tokens"`
	CompletionTokens    *int64 `json:"completion_tokens"`
	PromptTokensDetails *struct {
		CachedTokens *int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}

// anthropicUsage accumulates message_start's usage and the message_delta
// updates (each field present replaces the earlier value: the counts are
// cumulative).
type anthropicUsage struct {
	input, output, cacheRead, cacheCreation, write5m, write1h *int64
	detailed                                                  bool
}

func (a *anthropicUsage) merge(u *wireUsage) {
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
}

func (a *anthropicUsage) usage() catalog.Usage {
	v := func(p *int64) int64 {
		if p == nil {
			return 0
		}
		return *p
	}
	u := catalog.Usage{InputTokens: v(a.input), OutputTokens: v(a.output), CacheReadTokens: v(a.cacheRead)}
	if a.detailed {
		u.CacheWrite5mTokens, u.CacheWrite1hTokens = v(a.write5m), v(a.write1h)
	} else {
		u.CacheWrite5mTokens = v(a.cacheCreation)
	}
	return u
}

// handle reads one event's data.
func (m *meter) handle(data []byte) {
	switch m.rt.name {
	case RouteMessages:
		var ev struct {
			Type    string `json:"type"`
			Message *struct {
				Usage *wireUsage `json:"usage"`
			} `json:"message"`
			Usage *wireUsage `json:"usage"`
		}
		if json.Unmarshal(data, &ev) != nil {
			return
		}
		switch {
		case ev.Type == "message_stop":
			m.complete = true
		case ev.Type == "message_start" && ev.Message != nil && ev.Message.Usage != nil:
			m.anth.merge(ev.Message.Usage)
			m.reported = true
		case ev.Type == "message_delta" && ev.Usage != nil:
			m.anth.merge(ev.Usage)
			m.reported = true
		}
	case RouteResponses:
		var ev struct {
			Type     string `json:"type"`
			Response *struct {
				ID    string     `json:"id"`
				Usage *wireUsage `json:"usage"`
			} `json:"response"`
		}
		if json.Unmarshal(data, &ev) != nil || ev.Response == nil {
			return
		}
		if ev.Response.ID != "" {
			m.responseID = ev.Response.ID
		}
		switch ev.Type {
		case "response.completed", "response.incomplete", "response.failed":
			m.complete = true
			if ev.Response.Usage != nil {
				m.oai, m.reported = ev.Response.Usage, true
			}
		}
	case RouteChat:
		if string(data) == "[DONE]" {
			m.complete = true
			return
		}
		var ev struct {
			Usage *wireUsage `json:"usage"`
		}
		if json.Unmarshal(data, &ev) == nil && ev.Usage != nil {
			m.oai, m.reported = ev.Usage, true
		}
	}
}

// finish reads a buffered JSON body (non-streamed answers).
func (m *meter) finish() {
	if m.sse || m.bodyOver || len(m.body) == 0 {
		return
	}
	var v struct {
		Usage *wireUsage `json:"usage"`
	}
	if json.Unmarshal(m.body, &v) != nil || v.Usage == nil {
		return
	}
	if m.rt.family == familyAnthropic {
		m.anth.merge(v.Usage)
	} else {
		m.oai = v.Usage
	}
	m.reported = true
}

// usage returns the usage read, in catalog terms: disjoint counts.
func (m *meter) usage() (catalog.Usage, bool) {
	if !m.reported {
		return catalog.Usage{}, false
	}
	if m.rt.family == familyAnthropic {
		return m.anth.usage(), true
	}
	v := func(p *int64) int64 {
		if p == nil {
			return 0
		}
		return *p
	}
	u, in, cached := catalog.Usage{}, int64(0), int64(0)
	if m.rt.name == RouteChat {
		in, u.OutputTokens = v(m.oai.PromptTokens), v(m.oai.CompletionTokens)
		if d := m.oai.PromptTokensDetails; d != nil {
			cached = v(d.CachedTokens)
		}
	} else {
		in, u.OutputTokens = v(m.oai.InputTokens), v(m.oai.OutputTokens)
		if d := m.oai.InputTokensDetails; d != nil {
			cached = v(d.CachedTokens)
		}
	}
	// OpenAI's input count includes the cached tokens; catalog.Usage's
	// InputTokens excludes them.
	u.InputTokens, u.CacheReadTokens = in-cached, cached
	return u, true
}
