package proxy

import (
	"strings"
	"testing"

	"github.com/agentbroker/agentbroker/catalog"
)

func routeNamed(n Route) route {
	for _, rt := range routes {
		if rt.name == n {
			return rt
		}
	}
	panic("no route " + n)
}

// feed gives the meter the stream in pieces of size n (0: whole).
func feed(m *meter, s string, n int) {
	if n <= 0 {
		m.Write([]byte(s))
		return
	}
	for len(s) > 0 {
		k := min(n, len(s))
		m.Write([]byte(s[:k]))
		s = s[k:]
	}
}

func TestMeterSSE(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", maxEventBytes/4)
	tests := []struct {
		name  string
		route Route
		sse   string
		want  catalog.Usage
		ok    bool
	}{
		{"anthropic start and delta", RouteMessages,
			"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":4,\"cache_creation_input_tokens\":3,\"output_tokens\":1}}}\n\n" +
				"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"" + big + "\"}}\n\n" +
				"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":42}}\n\n",
			catalog.Usage{InputTokens: 10, OutputTokens: 42, CacheReadTokens: 4, CacheWrite5mTokens: 3}, true},
		{"anthropic cumulative delta and cache detail, CRLF", RouteMessages,
			"event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":10,\"output_tokens\":1,\"cache_creation_input_tokens\":30,\"cache_creation\":{\"ephemeral_5m_input_tokens\":10,\"ephemeral_1h_input_tokens\":20}}}}\r\n\r\n" +
				"event: message_delta\r\ndata: {\"type\":\"message_delta\",\"usage\":{\"input_tokens\":12,\"output_tokens\":7}}\r\n\r\n",
			catalog.Usage{InputTokens: 12, OutputTokens: 7, CacheWrite5mTokens: 10, CacheWrite1hTokens: 20}, true},
		{"anthropic without event names, CR only", RouteMessages,
			"data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\r\r" +
				"data: {\"type\":\"message_delta\",\r" + "data: \"usage\":{\"output_tokens\":6}}\r\r",
			catalog.Usage{InputTokens: 5, OutputTokens: 6}, true},
		{"anthropic no usage", RouteMessages, "event: ping\ndata: {\"type\":\"ping\"}\n\n", catalog.Usage{}, false},
		{"responses completed", RouteResponses,
			"event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"usage\":null}}\n\n" +
				"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"" + big + "\"}\n\n" +
				"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"output\":[{\"text\":\"" + big + "\"}],\"usage\":{\"input_tokens\":100,\"input_tokens_details\":{\"cached_tokens\":60},\"output_tokens\":9,\"output_tokens_details\":{\"reasoning_tokens\":5}}}}\n\n",
			catalog.Usage{InputTokens: 40, OutputTokens: 9, CacheReadTokens: 60}, true},
		{"responses incomplete is billed", RouteResponses,
			"event: response.incomplete\ndata: {\"type\":\"response.incomplete\",\"response\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":2}}}\n\n",
			catalog.Usage{InputTokens: 3, OutputTokens: 2}, true},
		{"chat final usage chunk", RouteChat,
			"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n" +
				"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":50,\"completion_tokens\":5,\"prompt_tokens_details\":{\"cached_tokens\":20}}}\n\n" +
				"data: [DONE]\n\n",
			catalog.Usage{InputTokens: 30, OutputTokens: 5, CacheReadTokens: 20}, true},
	}
	for _, tt := range tests {
		for _, n := range []int{0, 1, 2, 7, 4096} {
			m := newMeter(routeNamed(tt.route), true)
			feed(m, tt.sse, n)
			m.finish()
			got, ok := m.usage()
			if got != tt.want || ok != tt.ok {
				t.Errorf("%s (pieces of %d): %+v %v, want %+v %v", tt.name, n, got, ok, tt.want, tt.ok)
			}
			if !m.atBoundary() {
				t.Errorf("%s (pieces of %d): not at a boundary at the end", tt.name, n)
			}
			// Ignored events are not kept.
			if cap(m.field) > maxField || cap(m.data) > 64<<10 {
				t.Errorf("%s: buffers kept: %d and %d", tt.name, cap(m.field), cap(m.data))
			}
		}
	}
}

func TestMeterBounds(t *testing.T) {
	t.Parallel()
	// An event beyond maxEventBytes loses its usage but nothing else.
	m := newMeter(routeNamed(RouteResponses), true)
	huge := strings.Repeat("y", maxEventBytes)
	feed(m, "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"x\":\""+huge+"\",\"usage\":{\"input_tokens\":1}}}\n\n", 1<<16)
	if _, ok := m.usage(); ok {
		t.Error("usage read from an oversize event")
	}
	if m.data != nil || cap(m.field) > maxField {
		t.Errorf("buffers kept after an oversize event: %d and %d", cap(m.data), cap(m.field))
	}
	// Then the next event is read again.
	feed(m, "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":2,\"output_tokens\":1}}}\n\n", 0)
	if u, ok := m.usage(); !ok || u.InputTokens != 2 {
		t.Errorf("after an oversize event: %+v %v", u, ok)
	}
	// A JSON body beyond maxJSONBytes: no usage, no buffer.
	j := newMeter(routeNamed(RouteMessages), false)
	j.Write([]byte(`{"usage":{"input_tokens":1},"x":"`))
	j.Write(make([]byte, maxJSONBytes))
	j.finish()
	if _, ok := j.usage(); ok || j.body != nil {
		t.Error("usage read from an oversize JSON body")
	}
}

func TestMeterBoundary(t *testing.T) {
	t.Parallel()
	m := newMeter(routeNamed(RouteMessages), true)
	for _, step := range []struct {
		in       string
		boundary bool
	}{
		{"", true},
		{"event: message_start\n", false},
		{"data: {}\n", false},
		{"\n", true},
		{"event: ping", false},
		{"\ndata: {}\n\n", true},
		{"data: {\"partial", false},
	} {
		m.Write([]byte(step.in))
		if m.atBoundary() != step.boundary {
			t.Errorf("after %q: boundary %v", step.in, m.atBoundary())
		}
	}
}

func TestMeterJSON(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		route Route
		body  string
		want  catalog.Usage
	}{
		{RouteMessages, `{"id":"m","usage":{"input_tokens":8,"output_tokens":3,"cache_read_input_tokens":2,"cache_creation_input_tokens":1}}`,
			catalog.Usage{InputTokens: 8, OutputTokens: 3, CacheReadTokens: 2, CacheWrite5mTokens: 1}},
		{RouteResponses, `{"usage":{"input_tokens":8,"input_tokens_details":{"cached_tokens":8},"output_tokens":3}}`,
			catalog.Usage{InputTokens: 0, OutputTokens: 3, CacheReadTokens: 8}},
		{RouteChat, `{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":4}}`,
			catalog.Usage{InputTokens: 9, OutputTokens: 4}},
	} {
		m := newMeter(routeNamed(tt.route), false)
		feed(m, tt.body, 3)
		m.finish()
		if got, ok := m.usage(); !ok || got != tt.want {
			t.Errorf("%s: %+v %v, want %+v", tt.route, got, ok, tt.want)
		}
	}
}

func TestMeterComplete(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		route    Route
		sse      string
		complete bool
	}{
		{RouteMessages, "event: message_delta\ndata: {\"type\":\"message_delta\"}\n\n", false},
		{RouteMessages, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n", false}, // not yet dispatched
		{RouteMessages, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n", true},
		{RouteMessages, "data: {\"type\":\"message_stop\"}\n\n", true},
		{RouteResponses, "event: response.output_item.done\ndata: {}\n\n", false},
		{RouteResponses, "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{}}\n\n", true},
		{RouteResponses, "event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{}}\n\n", true},
		{RouteChat, "data: {\"choices\":[]}\n\n", false},
		{RouteChat, "data: [DONE]\n\n", true},
	} {
		m := newMeter(routeNamed(tt.route), true)
		feed(m, tt.sse, 3)
		if m.complete != tt.complete {
			t.Errorf("%s %q: complete %v", tt.route, tt.sse, m.complete)
		}
	}
}
