package proxy

import (
	"bytes"

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
// meter. For SSE it keeps only the data of the events the route's
// usageReader wants (Anthropic message_start and message_delta; OpenAI
// response.created, response.completed, response.incomplete,
// response.failed; every Chat Completions chunk…), each up to
// maxEventBytes, copied once; for JSON the body, up to maxJSONBytes.
type meter struct {
	rt  route
	sse bool
	r   usageReader

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

func newMeter(rt route, sse bool) *meter { return &meter{rt: rt, sse: sse, r: rt.adapter.usage(rt)} }

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
		m.ignore = !m.r.wants(string(m.event))
		m.terminal = m.r.ends(string(m.event))
	}
	m.state, m.field, m.lineSeen, m.valueStart = stateField, m.field[:0], false, false
}

// dispatch handles the event that a blank line ends.
func (m *meter) dispatch() {
	if m.dataSeen && !m.dataOver && !m.ignore && len(m.data) > 0 {
		if m.r.event(m.data) {
			m.complete = true
		}
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

// finish reads a buffered JSON body (non-streamed answers).
func (m *meter) finish() {
	if m.sse || m.bodyOver || len(m.body) == 0 {
		return
	}
	m.r.body(m.body)
}

// usage returns the usage read, in catalog terms: disjoint counts.
func (m *meter) usage() (catalog.Usage, bool) { return m.r.usage() }

// responseID is the answer's ID, when its API gives one.
func (m *meter) responseID() string { return m.r.responseID() }
