package fakemodel_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/agentbroker/agentbroker/internal/fakemodel"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sse is one server-sent event as a client sees it.
type sse struct {
	Name string
	Data string
}

// readEvents reads every event of an SSE body until EOF or an error.
func readEvents(r io.Reader) ([]sse, error) {
	var out []sse
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	var cur sse
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.Data != "" || cur.Name != "" {
				out = append(out, cur)
			}
			cur = sse{}
		case strings.HasPrefix(line, "event: "):
			cur.Name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.Data += strings.TrimPrefix(line, "data: ")
		}
	}
	return out, sc.Err()
}

func names(evs []sse) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Name)
	}
	return out
}

// fixture is a fake on an httptest server with a client.
type fixture struct {
	t    *testing.T
	fake *fakemodel.Server
	url  string
}

func newFixture(t *testing.T, opts *fakemodel.Options) *fixture {
	t.Helper()
	fake := fakemodel.New(opts)
	srv := httptest.NewServer(fake)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		fake.Close()
	})
	return &fixture{t: t, fake: fake, url: srv.URL}
}

// post sends body to path with the default Anthropic or OpenAI credential
// header and extra headers (name, value pairs).
func (f *fixture) post(path, body string, hdr ...string) *http.Response {
	f.t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.url+path, strings.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if strings.HasPrefix(path, "/v1/messages") {
		req.Header.Set("x-api-key", fakemodel.DefaultAPIKey)
		req.Header.Set("anthropic-version", "2023-06-01")
	} else {
		req.Header.Set("Authorization", "Bearer "+fakemodel.DefaultAPIKey)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return v
}

func TestAnthropicStreamText(t *testing.T) {
	t.Parallel()
	f := newFixture(t, &fakemodel.Options{Text: "hello there", TextChunks: 3, Usage: fakemodel.Usage{Input: 7, Output: 5, CacheRead: 3, CacheWrite: 2}})
	resp := f.post("/v1/messages?beta=true", `{"model":"claude-opus-4-8","stream":true,"max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	evs, err := readEvents(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"message_start", "content_block_start", "content_block_delta", "content_block_delta",
		"content_block_delta", "content_block_stop", "message_delta", "message_stop"}
	if !slices.Equal(names(evs), want) {
		t.Fatalf("events %v, want %v", names(evs), want)
	}
	var text string
	for _, e := range evs {
		d := decode[struct {
			Type  string `json:"type"`
			Delta struct {
				Type, Text string
			} `json:"delta"`
		}](t, e.Data)
		if d.Type != e.Name {
			t.Errorf("event %q has data type %q", e.Name, d.Type)
		}
		if d.Delta.Type == "text_delta" {
			text += d.Delta.Text
		}
	}
	if text != "hello there" {
		t.Errorf("text %q", text)
	}
	start := decode[struct {
		Message struct {
			Model string         `json:"model"`
			Usage map[string]int `json:"usage"`
		} `json:"message"`
	}](t, evs[0].Data)
	if start.Message.Model != "claude-opus-4-8" || start.Message.Usage["input_tokens"] != 7 ||
		start.Message.Usage["cache_read_input_tokens"] != 3 || start.Message.Usage["cache_creation_input_tokens"] != 2 {
		t.Errorf("message_start %s", evs[0].Data)
	}
	delta := decode[struct {
		Delta struct {
			StopReason string `json:"stop_reason"`
		} `json:"delta"`
		Usage map[string]int `json:"usage"`
	}](t, evs[6].Data)
	if delta.Delta.StopReason != "end_turn" || delta.Usage["output_tokens"] != 5 {
		t.Errorf("message_delta %s", evs[6].Data)
	}
	reqs := f.fake.Requests()
	if len(reqs) != 1 || reqs[0].Route != "messages" || reqs[0].Model != "claude-opus-4-8" || !reqs[0].Stream ||
		reqs[0].HasTools() || reqs[0].Query != "beta=true" || reqs[0].Action != fakemodel.ActionText ||
		reqs[0].Outcome != fakemodel.OutcomeOK || !reqs[0].AuthOK {
		t.Errorf("recorded %+v", reqs)
	}
}

// The broker_ping exchange of the recorded Claude Code e2e run
// (shared/reference/acp-transcripts/claude-agent-acp-0.101.0-e2e.jsonl):
// the model asks for mcp__broker__broker_ping, then quotes its result.
func TestAnthropicToolRoundTrip(t *testing.T) {
	t.Parallel()
	f := newFixture(t, &fakemodel.Options{Rules: []fakemodel.Rule{{
		Tool: "broker_ping", Prompt: regexp.MustCompile(`(?i)ping the broker`),
		Arguments: json.RawMessage(`{"message":"hello from fake model"}`), Reply: "FINAL ANSWER. tool result was: ",
	}}})
	tools := `"tools":[{"name":"Bash","input_schema":{}},{"name":"mcp__broker__broker_ping","input_schema":{}}]`
	prompt := `{"role":"user","content":[{"type":"text","text":"<system-reminder>x</system-reminder>"},{"type":"text","text":"Please ping the broker using the broker_ping tool."}]}`

	// Turn 1: the tool call, streamed.
	resp := f.post("/v1/messages?beta=true", `{"model":"claude-opus-4-8","stream":true,`+tools+`,"messages":[`+prompt+`]}`)
	evs, err := readEvents(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"}
	if !slices.Equal(names(evs), want) {
		t.Fatalf("events %v", names(evs))
	}
	block := decode[struct {
		ContentBlock struct {
			Type, ID, Name string
		} `json:"content_block"`
	}](t, evs[1].Data)
	if block.ContentBlock.Type != "tool_use" || block.ContentBlock.Name != "mcp__broker__broker_ping" || block.ContentBlock.ID == "" {
		t.Fatalf("content_block_start %s", evs[1].Data)
	}
	delta := decode[struct {
		Delta struct {
			Type        string `json:"type"`
			PartialJSON string `json:"partial_json"`
		} `json:"delta"`
	}](t, evs[2].Data)
	if delta.Delta.Type != "input_json_delta" || delta.Delta.PartialJSON != `{"message":"hello from fake model"}` {
		t.Fatalf("delta %s", evs[2].Data)
	}
	if !strings.Contains(evs[4].Data, `"stop_reason":"tool_use"`) {
		t.Fatalf("message_delta %s", evs[4].Data)
	}

	// Turn 2: the tool result, answered without streaming this time.
	id := block.ContentBlock.ID
	body := `{"model":"claude-opus-4-8",` + tools + `,"messages":[` + prompt +
		`,{"role":"assistant","content":[{"type":"tool_use","id":"` + id + `","name":"mcp__broker__broker_ping","input":{"message":"hello from fake model"}}]}` +
		`,{"role":"user","content":[{"type":"tool_result","tool_use_id":"` + id + `","content":[{"type":"text","text":"PONG from broker: hello from fake model"}]}]}]}`
	resp = f.post("/v1/messages", body)
	msg := decode[struct {
		Type       string `json:"type"`
		StopReason string `json:"stop_reason"`
		Content    []struct {
			Type, Text string
		} `json:"content"`
		Usage map[string]int `json:"usage"`
	}](t, readAll(t, resp.Body))
	if msg.Type != "message" || msg.StopReason != "end_turn" || len(msg.Content) != 1 ||
		msg.Content[0].Text != "FINAL ANSWER. tool result was: PONG from broker: hello from fake model" ||
		msg.Usage["input_tokens"] != 20 || msg.Usage["output_tokens"] != 10 {
		t.Fatalf("answer %+v", msg)
	}
	reqs := f.fake.Requests()
	if reqs[0].Action != fakemodel.ActionToolCall || reqs[0].Tool != "mcp__broker__broker_ping" ||
		reqs[1].Action != fakemodel.ActionToolAnswer || reqs[1].Tool != "mcp__broker__broker_ping" || !reqs[1].HasTools() {
		t.Errorf("recorded %+v", reqs)
	}
}

func readAll(t *testing.T, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAnthropicNoRuleNoTool(t *testing.T) {
	t.Parallel()
	f := newFixture(t, &fakemodel.Options{Rules: []fakemodel.Rule{{Tool: "get_task", Prompt: regexp.MustCompile("task")}}})
	for _, body := range []string{
		// The prompt matches but the tool is not offered (a title side call).
		`{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"summarise the task"}]}`,
		// The tool is offered but the prompt does not match.
		`{"model":"claude-haiku-4-5","tools":[{"name":"mcp__b__get_task"}],"messages":[{"role":"user","content":"hello"}]}`,
	} {
		resp := f.post("/v1/messages", body)
		if got := readAll(t, resp.Body); !strings.Contains(got, fakemodel.DefaultText) || resp.StatusCode != 200 {
			t.Errorf("%s: %d %s", body, resp.StatusCode, got)
		}
	}
}

func TestCountTokens(t *testing.T) {
	t.Parallel()
	f := newFixture(t, &fakemodel.Options{Usage: fakemodel.Usage{Input: 42, Output: 1}})
	resp := f.post("/v1/messages/count_tokens", `{"model":"claude-opus-4-8","messages":[{"role":"user","content":"hi"}]}`)
	if got := strings.TrimSpace(readAll(t, resp.Body)); got != `{"input_tokens":42}` {
		t.Fatalf("count_tokens %q", got)
	}
	if r := f.fake.Requests()[0]; r.Route != "count_tokens" || r.Action != fakemodel.ActionCountTokens {
		t.Errorf("recorded %+v", r)
	}
}

// The broker_ping exchange of the recorded Codex e2e run
// (shared/reference/acp-transcripts/codex-acp-2.6.0-e2e-CODEX_CONFIG.jsonl):
// the MCP tool is offered inside a namespace tool, the function_call
// carries the namespace and the bare name, and the answer quotes the
// function_call_output as Codex wrote it.
func TestResponsesToolRoundTrip(t *testing.T) {
	t.Parallel()
	f := newFixture(t, &fakemodel.Options{Usage: fakemodel.Usage{Input: 15, CacheRead: 5, Output: 10}, Rules: []fakemodel.Rule{{
		Tool: "broker_ping", Arguments: json.RawMessage(`{"message":"hello from fake model"}`), Reply: "FINAL ANSWER. tool result was: ",
	}}})
	tools := `"tools":[{"type":"function","name":"shell","parameters":{}},{"type":"namespace","name":"mcp__broker","description":"x","tools":[{"type":"function","name":"broker_ping","parameters":{}}]}]`
	user := `{"type":"message","role":"user","content":[{"type":"input_text","text":"Please ping the broker using the broker_ping tool."}]}`
	resp := f.post("/v1/responses", `{"model":"gpt-5.5","stream":true,`+tools+`,"input":[`+user+`]}`)
	evs, err := readEvents(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"response.created", "response.output_item.added", "response.output_item.done", "response.completed"}
	if !slices.Equal(names(evs), want) {
		t.Fatalf("events %v", names(evs))
	}
	done := decode[struct {
		Item struct {
			Type, Name, Namespace, Arguments string
			CallID                           string `json:"call_id"`
		} `json:"item"`
	}](t, evs[2].Data)
	if done.Item.Type != "function_call" || done.Item.Name != "broker_ping" || done.Item.Namespace != "mcp__broker" ||
		done.Item.Arguments != `{"message":"hello from fake model"}` || done.Item.CallID == "" {
		t.Fatalf("output_item.done %s", evs[2].Data)
	}
	completed := decode[struct {
		Response struct {
			Status string `json:"status"`
			Usage  struct {
				InputTokens        int `json:"input_tokens"`
				OutputTokens       int `json:"output_tokens"`
				InputTokensDetails struct {
					CachedTokens int `json:"cached_tokens"`
				} `json:"input_tokens_details"`
			} `json:"usage"`
		} `json:"response"`
	}](t, evs[3].Data)
	if u := completed.Response.Usage; completed.Response.Status != "completed" || u.InputTokens != 20 ||
		u.InputTokensDetails.CachedTokens != 5 || u.OutputTokens != 10 {
		t.Fatalf("completed %s", evs[3].Data)
	}

	call := `{"type":"function_call","call_id":"` + done.Item.CallID + `","name":"broker_ping","namespace":"mcp__broker","arguments":"{}"}`
	output := `{"type":"function_call_output","call_id":"` + done.Item.CallID + `","output":"Wall time: 0.0055 seconds\nOutput: PONG from broker: hello from fake model"}`
	resp = f.post("/v1/responses", `{"model":"gpt-5.5","stream":true,`+tools+`,"input":[`+user+`,`+call+`,`+output+`]}`)
	evs, err = readEvents(resp.Body)
	if err != nil || len(evs) != 4 {
		t.Fatalf("events %v, %v", names(evs), err)
	}
	msg := decode[struct {
		Item struct {
			Type    string
			Content []struct{ Type, Text string }
		} `json:"item"`
	}](t, evs[2].Data)
	wantText := "FINAL ANSWER. tool result was: Wall time: 0.0055 seconds\nOutput: PONG from broker: hello from fake model"
	if msg.Item.Type != "message" || len(msg.Item.Content) != 1 || msg.Item.Content[0].Type != "output_text" || msg.Item.Content[0].Text != wantText {
		t.Fatalf("answer %s", evs[2].Data)
	}
	reqs := f.fake.Requests()
	if reqs[0].Tool != "mcp__broker/broker_ping" || !slices.Contains(reqs[0].Tools, "mcp__broker/broker_ping") || reqs[1].Action != fakemodel.ActionToolAnswer {
		t.Errorf("recorded %+v", reqs)
	}
}

func TestResponsesNonStream(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	resp := f.post("/v1/responses", `{"model":"gpt-5.4-mini","input":"write a title"}`)
	r := decode[struct {
		Object, Status string
		Output         []struct {
			Type    string
			Content []struct{ Text string }
		}
		Usage struct {
			TotalTokens int `json:"total_tokens"`
		}
	}](t, readAll(t, resp.Body))
	if r.Object != "response" || r.Status != "completed" || len(r.Output) != 1 || r.Output[0].Content[0].Text != fakemodel.DefaultText || r.Usage.TotalTokens != 30 {
		t.Fatalf("response %+v", r)
	}
}

func TestChatCompletions(t *testing.T) {
	t.Parallel()
	f := newFixture(t, &fakemodel.Options{Text: "abc", Rules: []fakemodel.Rule{{Tool: "lookup", Prompt: regexp.MustCompile("look")}}})
	resp := f.post("/v1/chat/completions", `{"model":"gpt-5.4","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	evs, err := readEvents(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 5 || evs[4].Data != "[DONE]" || !strings.Contains(evs[3].Data, `"prompt_tokens":20`) || !strings.Contains(evs[1].Data, `"content":"abc"`) {
		t.Fatalf("chunks %+v", evs)
	}
	resp = f.post("/v1/chat/completions", `{"model":"gpt-5.4","tools":[{"type":"function","function":{"name":"lookup"}}],"messages":[{"role":"user","content":"look it up"}]}`)
	if got := readAll(t, resp.Body); !strings.Contains(got, `"finish_reason":"tool_calls"`) || !strings.Contains(got, `"name":"lookup"`) {
		t.Fatalf("tool call %s", got)
	}
	resp = f.post("/v1/chat/completions", `{"model":"gpt-5.4","messages":[{"role":"user","content":"look it up"},{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"lookup","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":"42"}]}`)
	if got := readAll(t, resp.Body); !strings.Contains(got, `"content":"`+fakemodel.DefaultReply+`42"`) {
		t.Fatalf("tool answer %s", got)
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	anth := `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	oai := `{"model":"m","input":"hi"}`
	tests := []struct {
		name, path, body string
		hdr              []string
		status           int
		errType          string
	}{
		{"anthropic x-api-key", "/v1/messages", anth, nil, 200, ""},
		{"anthropic bearer", "/v1/messages", anth, []string{"x-api-key", "", "Authorization", "Bearer " + fakemodel.DefaultAPIKey}, 200, ""},
		{"anthropic wrong key", "/v1/messages", anth, []string{"x-api-key", "inference-token"}, 401, "authentication_error"},
		{"anthropic no key", "/v1/messages", anth, []string{"x-api-key", ""}, 401, "authentication_error"},
		{"anthropic second credential", "/v1/messages", anth, []string{"Authorization", "Bearer inference-token"}, 401, "authentication_error"},
		{"openai bearer", "/v1/responses", oai, nil, 200, ""},
		{"openai wrong key", "/v1/responses", oai, []string{"Authorization", "Bearer inference-token"}, 401, "invalid_request_error"},
		{"openai x-api-key as well", "/v1/responses", oai, []string{"x-api-key", fakemodel.DefaultAPIKey}, 401, "invalid_request_error"},
		{"openai basic", "/v1/responses", oai, []string{"Authorization", "Basic eDp5"}, 401, "invalid_request_error"},
	}
	for _, tt := range tests {
		resp := f.post(tt.path, tt.body, tt.hdr...)
		body := readAll(t, resp.Body)
		if resp.StatusCode != tt.status {
			t.Errorf("%s: status %d %s", tt.name, resp.StatusCode, body)
			continue
		}
		if tt.errType == "" {
			continue
		}
		if tt.path == "/v1/messages" {
			e := decode[struct {
				Type  string
				Error struct{ Type, Message string }
			}](t, body)
			if e.Type != "error" || e.Error.Type != tt.errType || e.Error.Message == "" {
				t.Errorf("%s: body %s", tt.name, body)
			}
		} else {
			e := decode[struct {
				Error struct{ Type, Message, Code string }
			}](t, body)
			if e.Error.Type != tt.errType || e.Error.Code != "invalid_api_key" {
				t.Errorf("%s: body %s", tt.name, body)
			}
		}
	}
	for _, r := range f.fake.Requests() {
		for _, name := range []string{"X-Api-Key", "Authorization"} {
			for _, v := range r.Header.Values(name) {
				if v != "[platform key]" && v != "[other]" {
					t.Errorf("request %d: %s not redacted: %q", r.Seq, name, v)
				}
			}
		}
		if r.AuthOK == (r.Action == fakemodel.ActionUnauthorized) {
			t.Errorf("request %d: AuthOK %v, action %s", r.Seq, r.AuthOK, r.Action)
		}
	}
	if f.fake.Count() != len(tests) {
		t.Errorf("count %d", f.fake.Count())
	}
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	for _, tt := range []struct {
		path, body string
		status     int
	}{
		{"/v1/messages", `not json`, 400},
		{"/v1/messages", `{"messages":[]}`, 400},
		{"/v1/responses", `{"model":"x","input":5}`, 400},
		{"/v1/models", `{}`, 404},
		{"/v1/messages", `{"model":"m"}`, 400}, // X-Fake-Fault below is invalid
	} {
		var hdr []string
		if tt.body == `{"model":"m"}` {
			hdr = []string{fakemodel.FaultHeader, "explode=1"}
		}
		resp := f.post(tt.path, tt.body, hdr...)
		if body := readAll(t, resp.Body); resp.StatusCode != tt.status || !strings.Contains(body, "error") {
			t.Errorf("%s %s: %d %s", tt.path, tt.body, resp.StatusCode, body)
		}
	}
}

func TestParseFault(t *testing.T) {
	t.Parallel()
	f, err := fakemodel.ParseFault(" status=503, delay=5ms,header-delay=1s, pause-after=1,disconnect-after=0,truncate-after=2 ")
	want := fakemodel.Fault{Status: 503, Delay: 5 * time.Millisecond, HeaderDelay: time.Second, PauseAfter: 1, DisconnectAfter: 0, TruncateAfter: 2}
	if err != nil || f != want {
		t.Fatalf("got %+v, %v", f, err)
	}
	if f, err := fakemodel.ParseFault(""); err != nil || f != (fakemodel.Fault{PauseAfter: -1, DisconnectAfter: -1, TruncateAfter: -1}) {
		t.Fatalf("empty: %+v, %v", f, err)
	}
	for _, bad := range []string{"status", "status=99", "status=x", "delay=soon", "pause-after=-1", "nope=1"} {
		if _, err := fakemodel.ParseFault(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestFaultStatus(t *testing.T) {
	t.Parallel()
	f := newFixture(t, &fakemodel.Options{Fault: "status=529"})
	resp := f.post("/v1/messages", `{"model":"m","stream":true,"messages":[]}`)
	if body := readAll(t, resp.Body); resp.StatusCode != 529 || !strings.Contains(body, `"overloaded_error"`) {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	// The header overrides the option.
	resp = f.post("/v1/responses", `{"model":"m","input":"x"}`, fakemodel.FaultHeader, "status=500")
	if body := readAll(t, resp.Body); resp.StatusCode != 500 || !strings.Contains(body, `"server_error"`) {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if r := f.fake.Requests(); r[0].Action != fakemodel.ActionFault || r[1].Fault != "status=500" {
		t.Errorf("recorded %+v", r)
	}
}

func TestFaultDisconnect(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	body := `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`

	resp := f.post("/v1/messages", body, fakemodel.FaultHeader, "disconnect-after=2")
	evs, err := readEvents(resp.Body)
	if err == nil || !slices.Equal(names(evs), []string{"message_start", "content_block_start"}) {
		t.Fatalf("disconnect-after=2: %v, %v", names(evs), err)
	}
	resp = f.post("/v1/messages", body, fakemodel.FaultHeader, "truncate-after=1")
	raw, err := io.ReadAll(resp.Body)
	if err == nil || strings.Count(string(raw), "event: ") != 2 || strings.HasSuffix(string(raw), "\n\n") {
		t.Fatalf("truncate-after=1: %q, %v", raw, err)
	}
	resp = f.post("/v1/responses", `{"model":"m","input":"x"}`, fakemodel.FaultHeader, "disconnect-after=0")
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("JSON disconnect: read the whole body")
	}
	for _, r := range f.fake.Requests() {
		if r.Outcome != fakemodel.OutcomeDisconnected {
			t.Errorf("request %d outcome %q", r.Seq, r.Outcome)
		}
	}
}

func TestFaultPauseAndRelease(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	resp := f.post("/v1/messages", `{"model":"m","stream":true,"messages":[]}`, fakemodel.FaultHeader, "pause-after=1")
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadString('\n')
	if err != nil || first != "event: message_start\n" {
		t.Fatalf("first line %q, %v", first, err)
	}
	if r := f.fake.Requests()[0]; r.Outcome != "" {
		t.Fatalf("finished while paused: %+v", r)
	}
	f.fake.Release()
	evs, err := readEvents(br)
	if err != nil || len(evs) != 6 || evs[len(evs)-1].Name != "message_stop" {
		t.Fatalf("after release: %v, %v", names(evs), err)
	}
}

// A client that goes away while the fake is paused shows up as a canceled
// request (what the proxy's cancellation test relies on).
func TestFaultPauseCanceled(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.url+"/v1/responses", strings.NewReader(`{"model":"m","stream":true,"input":"x"}`))
	req.Header.Set("Authorization", "Bearer "+fakemodel.DefaultAPIKey)
	req.Header.Set(fakemodel.FaultHeader, "pause-after=2,delay=1ms")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "event: response.created\n" {
		t.Fatalf("%q %v", line, err)
	}
	cancel()
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := f.fake.WaitFor(wctx, func(rs []fakemodel.Request) bool { return rs[0].Outcome == fakemodel.OutcomeCanceled }); err != nil {
		t.Fatal(err)
	}
}

func TestFaultHeaderDelay(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.url+"/v1/responses", strings.NewReader(`{"model":"m","input":"x"}`))
	req.Header.Set("Authorization", "Bearer "+fakemodel.DefaultAPIKey)
	req.Header.Set(fakemodel.FaultHeader, "header-delay=1m")
	start := time.Now()
	_, err := http.DefaultClient.Do(req)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("err %v after %s", err, time.Since(start))
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := f.fake.WaitFor(wctx, func(rs []fakemodel.Request) bool { return rs[0].Outcome == fakemodel.OutcomeCanceled }); err != nil {
		t.Fatal(err)
	}
}

func TestStartClose(t *testing.T) {
	t.Parallel()
	fake := fakemodel.New(&fakemodel.Options{APIKey: "k"})
	url, err := fake.Start()
	if err != nil || !strings.HasPrefix(url, "http://127.0.0.1:") || fake.URL() != url {
		t.Fatalf("start: %q %v", url, err)
	}
	// A request left paused does not keep Close from returning.
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/messages", strings.NewReader(`{"model":"m","stream":true,"messages":[]}`))
	req.Header.Set("x-api-key", "k")
	req.Header.Set(fakemodel.FaultHeader, "pause-after=0")
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	defer resp.Body.Close()
	if err := fake.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fake.Close(); err != nil {
		t.Fatal("second close:", err)
	}
	if r := fake.Requests(); len(r) != 1 || r[0].Outcome != fakemodel.OutcomeCanceled {
		t.Fatalf("recorded %+v", r)
	}
}

func TestNewPanicsOnBadOptions(t *testing.T) {
	t.Parallel()
	for _, o := range []fakemodel.Options{
		{Fault: "bogus"},
		{Rules: []fakemodel.Rule{{}}},
		{Rules: []fakemodel.Rule{{Tool: "x", Arguments: json.RawMessage(`[1]`)}}},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%+v) did not panic", o)
				}
			}()
			fakemodel.New(&o)
		}()
	}
}

// Claude Code appends a "system" message after the user's: the latest user
// message is still the one the rules read.
func TestAnthropicTrailingSystemMessage(t *testing.T) {
	t.Parallel()
	f := newFixture(t, &fakemodel.Options{Rules: []fakemodel.Rule{{Tool: "get_task", Prompt: regexp.MustCompile("T-1")}}})
	resp := f.post("/v1/messages", `{"model":"m","tools":[{"name":"mcp__broker__get_task"}],"messages":[`+
		`{"role":"user","content":[{"type":"text","text":"read T-1"}]},{"role":"system","content":"# Environment"}]}`)
	if got := readAll(t, resp.Body); !strings.Contains(got, `"name":"mcp__broker__get_task"`) {
		t.Fatalf("%s", got)
	}
	// An assistant turn last: nothing to answer from the rules.
	resp = f.post("/v1/messages", `{"model":"m","tools":[{"name":"mcp__broker__get_task"}],"messages":[`+
		`{"role":"user","content":"read T-1"},{"role":"assistant","content":"ok"},{"role":"system","content":"x"}]}`)
	if got := readAll(t, resp.Body); !strings.Contains(got, fakemodel.DefaultText) {
		t.Fatalf("%s", got)
	}
}

// Codex defers MCP tools behind a client-executed tool_search for models
// that support it: the fake searches once, then calls the namespaced tool
// the search returned, then quotes its result.
func TestResponsesToolSearch(t *testing.T) {
	t.Parallel()
	f := newFixture(t, &fakemodel.Options{Rules: []fakemodel.Rule{{Tool: "get_task", Prompt: regexp.MustCompile("T-1"),
		Arguments: json.RawMessage(`{"id":"T-1"}`), Reply: "The task says: "}}})
	user := `{"type":"message","role":"user","content":[{"type":"input_text","text":"read T-1"}]}`
	tools := `"tools":[{"type":"function","name":"exec_command"},{"type":"tool_search","execution":"client","description":"x","parameters":{}}]`

	resp := f.post("/v1/responses", `{"model":"gpt-5.5","stream":true,`+tools+`,"input":[`+user+`]}`)
	evs, err := readEvents(resp.Body)
	if err != nil || len(evs) != 4 {
		t.Fatalf("%v %v", names(evs), err)
	}
	search := decode[struct {
		Item struct {
			Type, Execution string
			CallID          string `json:"call_id"`
			Arguments       struct{ Query string }
		} `json:"item"`
	}](t, evs[2].Data)
	if search.Item.Type != "tool_search_call" || search.Item.Execution != "client" || search.Item.Arguments.Query != "get_task" {
		t.Fatalf("search %s", evs[2].Data)
	}
	found := `{"type":"tool_search_call","call_id":"` + search.Item.CallID + `","execution":"client","arguments":{"query":"get_task"}},` +
		`{"type":"tool_search_output","call_id":"` + search.Item.CallID + `","execution":"client","status":"completed",` +
		`"tools":[{"type":"namespace","name":"mcp__broker","tools":[{"type":"function","name":"get_task"}]}]}`
	resp = f.post("/v1/responses", `{"model":"gpt-5.5","stream":true,`+tools+`,"input":[`+user+`,`+found+`]}`)
	evs, _ = readEvents(resp.Body)
	if len(evs) != 4 || !strings.Contains(evs[2].Data, `"namespace":"mcp__broker"`) || !strings.Contains(evs[2].Data, `"name":"get_task"`) {
		t.Fatalf("call %v", evs)
	}
	// A search that found nothing is not repeated.
	empty := `{"type":"tool_search_output","call_id":"c","execution":"client","status":"completed","tools":[]}`
	resp = f.post("/v1/responses", `{"model":"gpt-5.5",`+tools+`,"input":[`+user+`,`+empty+`]}`)
	if got := readAll(t, resp.Body); !strings.Contains(got, fakemodel.DefaultText) {
		t.Fatalf("after an empty search: %s", got)
	}
	reqs := f.fake.Requests()
	if reqs[0].Action != fakemodel.ActionToolSearch || reqs[1].Action != fakemodel.ActionToolCall || reqs[1].Tool != "mcp__broker/get_task" ||
		reqs[2].Action != fakemodel.ActionText || !slices.Contains(reqs[0].Tools, "tool_search") {
		t.Errorf("recorded %+v", reqs)
	}
}

func TestRuleArgumentsFromPrompt(t *testing.T) {
	t.Parallel()
	r := fakemodel.Rule{Tool: "get_task", Prompt: regexp.MustCompile(`task (tsk_[a-z0-9]+)`), Arguments: json.RawMessage(`{"id":"$1"}`)}
	if got := string(fakemodel.RuleArguments(r, "please look up task tsk_abc123 now")); got != `{"id":"tsk_abc123"}` {
		t.Fatalf("arguments = %s", got)
	}
	if got := string(fakemodel.RuleArguments(r, "no task here")); got != `{"id":"$1"}` {
		t.Fatalf("arguments without a match = %s", got)
	}
}
