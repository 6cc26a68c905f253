package fakemodel

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// event is one server-sent event; name is empty for Chat Completions
// chunks, and data is a JSON value or a raw string ("[DONE]").
type event struct {
	name string
	data any
}

func (e event) frame() []byte {
	var b []byte
	if e.name != "" {
		b = append(b, "event: "+e.name+"\n"...)
	}
	b = append(b, "data: "...)
	if s, ok := e.data.(string); ok {
		b = append(b, s...)
	} else {
		j, err := json.Marshal(e.data)
		if err != nil {
			panic("fakemodel: encode event: " + err.Error()) // plain maps and strings only
		}
		b = append(b, j...)
	}
	return append(b, "\n\n"...)
}

// emitter writes one answer, applying the request's fault.
type emitter struct {
	s     *Server
	w     http.ResponseWriter
	ctx   context.Context
	fault Fault
}

// stream writes events as SSE and returns the outcome.
func (e *emitter) stream(events []event) string {
	h := e.w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	e.w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(e.w)
	if err := rc.Flush(); err != nil {
		return OutcomeCanceled
	}
	for i, ev := range events {
		if e.fault.DisconnectAfter == i {
			return OutcomeDisconnected
		}
		if e.fault.PauseAfter == i && !e.pause() {
			return OutcomeCanceled
		}
		if i > 0 && e.fault.Delay > 0 && !sleep(e.ctx, e.fault.Delay) {
			return OutcomeCanceled
		}
		f := ev.frame()
		if e.fault.TruncateAfter == i {
			_, _ = e.w.Write(f[:len(f)/2])
			_ = rc.Flush()
			return OutcomeDisconnected
		}
		if _, err := e.w.Write(f); err != nil {
			return OutcomeCanceled
		}
		if err := rc.Flush(); err != nil {
			return OutcomeCanceled
		}
	}
	if e.ctx.Err() != nil {
		return OutcomeCanceled
	}
	return OutcomeOK
}

// json writes v as a JSON answer and returns the outcome. A disconnect or
// truncate fault sends half the body; a pause fault holds the body.
func (e *emitter) json(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic("fakemodel: encode answer: " + err.Error())
	}
	b = append(b, '\n')
	h := e.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	if e.fault.PauseAfter >= 0 && !e.pause() {
		return OutcomeCanceled
	}
	e.w.WriteHeader(http.StatusOK)
	if e.fault.DisconnectAfter >= 0 || e.fault.TruncateAfter >= 0 {
		_, _ = e.w.Write(b[:len(b)/2])
		_ = http.NewResponseController(e.w).Flush()
		return OutcomeDisconnected
	}
	if _, err := e.w.Write(b); err != nil {
		return OutcomeCanceled
	}
	return OutcomeOK
}

// pause waits for Release or the end of the request; it reports Release.
func (e *emitter) pause() bool {
	select {
	case <-e.s.gate:
		return true
	case <-e.ctx.Done():
		return false
	}
}

// --- Anthropic Messages ---

func (s *Server) anthropicUsage(final bool) map[string]any {
	u := s.opts.Usage
	out := int64(1)
	if final {
		out = u.Output
	}
	return map[string]any{
		"input_tokens":                u.Input,
		"cache_creation_input_tokens": u.CacheWrite,
		"cache_read_input_tokens":     u.CacheRead,
		"output_tokens":               out,
	}
}

func (s *Server) anthropic(e *emitter, t turn, ans answer) string {
	id := "msg_" + s.nextID()
	stop := "end_turn"
	var block map[string]any
	if ans.action == ActionToolCall {
		stop = "tool_use"
		block = map[string]any{"type": "tool_use", "id": "toolu_" + s.nextID(), "name": ans.tool.name, "input": json.RawMessage(`{}`)}
	}
	if !t.stream {
		content := []any{map[string]any{"type": "text", "text": ans.text}}
		if block != nil {
			block["input"] = ans.args
			content = []any{block}
		}
		return e.json(map[string]any{
			"id": id, "type": "message", "role": "assistant", "model": t.model, "content": content,
			"stop_reason": stop, "stop_sequence": nil, "usage": s.anthropicUsage(true),
		})
	}
	start := map[string]any{"type": "message_start", "message": map[string]any{
		"id": id, "type": "message", "role": "assistant", "model": t.model, "content": []any{},
		"stop_reason": nil, "stop_sequence": nil, "usage": s.anthropicUsage(false),
	}}
	events := []event{{"message_start", start}}
	if block != nil {
		events = append(events,
			event{"content_block_start", map[string]any{"type": "content_block_start", "index": 0, "content_block": block}},
			event{"content_block_delta", map[string]any{"type": "content_block_delta", "index": 0,
				"delta": map[string]any{"type": "input_json_delta", "partial_json": string(ans.args)}}})
	} else {
		events = append(events, event{"content_block_start", map[string]any{"type": "content_block_start", "index": 0,
			"content_block": map[string]any{"type": "text", "text": ""}}})
		for _, c := range chunks(ans.text, s.opts.TextChunks) {
			events = append(events, event{"content_block_delta", map[string]any{"type": "content_block_delta", "index": 0,
				"delta": map[string]any{"type": "text_delta", "text": c}}})
		}
	}
	events = append(events,
		event{"content_block_stop", map[string]any{"type": "content_block_stop", "index": 0}},
		event{"message_delta", map[string]any{"type": "message_delta",
			"delta": map[string]any{"stop_reason": stop, "stop_sequence": nil},
			"usage": map[string]any{"output_tokens": s.opts.Usage.Output}}},
		event{"message_stop", map[string]any{"type": "message_stop"}},
	)
	return e.stream(events)
}

// --- OpenAI Responses ---

func (s *Server) openAIUsage() map[string]any {
	u := s.opts.Usage
	return map[string]any{
		"input_tokens":          u.Input + u.CacheRead,
		"input_tokens_details":  map[string]any{"cached_tokens": u.CacheRead},
		"output_tokens":         u.Output,
		"output_tokens_details": map[string]any{"reasoning_tokens": 0},
		"total_tokens":          u.Input + u.CacheRead + u.Output,
	}
}

func (s *Server) responses(e *emitter, t turn, ans answer) string {
	id := "resp_" + s.nextID()
	created := time.Now().Unix()
	var item, added map[string]any
	switch ans.action {
	case ActionToolSearch:
		callID := "call_" + s.nextID()
		item = map[string]any{"id": "tsc_" + s.nextID(), "type": "tool_search_call", "call_id": callID,
			"execution": "client", "status": "completed", "arguments": map[string]any{"query": ans.tool.name}}
		added = map[string]any{"id": item["id"], "type": "tool_search_call", "call_id": callID,
			"execution": "client", "status": "in_progress", "arguments": map[string]any{}}
	case ActionToolCall:
		callID := "call_" + s.nextID()
		item = map[string]any{"id": "fc_" + s.nextID(), "type": "function_call", "status": "completed",
			"call_id": callID, "name": ans.tool.name, "arguments": string(ans.args)}
		added = map[string]any{"id": item["id"], "type": "function_call", "status": "in_progress",
			"call_id": callID, "name": ans.tool.name, "arguments": ""}
		if ans.tool.namespace != "" {
			item["namespace"] = ans.tool.namespace
			added["namespace"] = ans.tool.namespace
		}
	default:
		msgID := "msg_" + s.nextID()
		item = map[string]any{"id": msgID, "type": "message", "status": "completed", "role": "assistant",
			"content": []any{map[string]any{"type": "output_text", "text": ans.text, "annotations": []any{}}}}
		added = map[string]any{"id": msgID, "type": "message", "status": "in_progress", "role": "assistant", "content": []any{}}
	}
	response := func(status string, output []any, usage any) map[string]any {
		return map[string]any{"id": id, "object": "response", "created_at": created, "status": status,
			"model": t.model, "output": output, "usage": usage}
	}
	if !t.stream {
		return e.json(response("completed", []any{item}, s.openAIUsage()))
	}
	seq := 0
	ev := func(typ string, fields map[string]any) event {
		fields["type"] = typ
		fields["sequence_number"] = seq
		seq++
		return event{typ, fields}
	}
	events := []event{
		ev("response.created", map[string]any{"response": response("in_progress", []any{}, nil)}),
		ev("response.output_item.added", map[string]any{"output_index": 0, "item": added}),
	}
	if ans.action == ActionText || ans.action == ActionToolAnswer {
		if parts := chunks(ans.text, s.opts.TextChunks); len(parts) > 1 {
			for _, p := range parts {
				events = append(events, ev("response.output_text.delta", map[string]any{
					"item_id": item["id"], "output_index": 0, "content_index": 0, "delta": p}))
			}
		}
	}
	events = append(events,
		ev("response.output_item.done", map[string]any{"output_index": 0, "item": item}),
		ev("response.completed", map[string]any{"response": response("completed", []any{item}, s.openAIUsage())}),
	)
	return e.stream(events)
}

// --- OpenAI Chat Completions ---

func (s *Server) chatUsage() map[string]any {
	u := s.opts.Usage
	return map[string]any{
		"prompt_tokens":         u.Input + u.CacheRead,
		"completion_tokens":     u.Output,
		"total_tokens":          u.Input + u.CacheRead + u.Output,
		"prompt_tokens_details": map[string]any{"cached_tokens": u.CacheRead},
	}
}

func (s *Server) chat(e *emitter, t turn, ans answer) string {
	id := "chatcmpl-" + s.nextID()
	created := time.Now().Unix()
	finish := "stop"
	message := map[string]any{"role": "assistant", "content": ans.text}
	var calls []any
	if ans.action == ActionToolCall {
		finish = "tool_calls"
		calls = []any{map[string]any{"index": 0, "id": "call_" + s.nextID(), "type": "function",
			"function": map[string]any{"name": ans.tool.name, "arguments": string(ans.args)}}}
		message = map[string]any{"role": "assistant", "content": nil, "tool_calls": calls}
	}
	if !t.stream {
		return e.json(map[string]any{"id": id, "object": "chat.completion", "created": created, "model": t.model,
			"choices": []any{map[string]any{"index": 0, "message": message, "finish_reason": finish}},
			"usage":   s.chatUsage()})
	}
	chunk := func(choices []any, usage any) event {
		return event{"", map[string]any{"id": id, "object": "chat.completion.chunk", "created": created,
			"model": t.model, "choices": choices, "usage": usage}}
	}
	choice := func(delta map[string]any, finish any) []any {
		return []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}
	}
	events := []event{chunk(choice(map[string]any{"role": "assistant", "content": ""}, nil), nil)}
	if calls != nil {
		events = append(events, chunk(choice(map[string]any{"tool_calls": calls}, nil), nil))
	} else {
		for _, c := range chunks(ans.text, s.opts.TextChunks) {
			events = append(events, chunk(choice(map[string]any{"content": c}, nil), nil))
		}
	}
	events = append(events,
		chunk(choice(map[string]any{}, finish), nil),
		chunk([]any{}, s.chatUsage()),
		event{"", "[DONE]"},
	)
	return e.stream(events)
}
