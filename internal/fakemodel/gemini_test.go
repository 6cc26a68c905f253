package fakemodel_test

import (
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/agentbroker/agentbroker/internal/fakemodel"
)

type geminiResp struct {
	Candidates []struct {
		Content struct {
			Role  string `json:"role"`
			Parts []struct {
				Text         string `json:"text"`
				FunctionCall *struct {
					Name string         `json:"name"`
					Args map[string]any `json:"args"`
				} `json:"functionCall"`
			} `json:"parts"`
		} `json:"content"`
		FinishReason string `json:"finishReason"`
	} `json:"candidates"`
	UsageMetadata struct {
		PromptTokenCount        int64 `json:"promptTokenCount"`
		CachedContentTokenCount int64 `json:"cachedContentTokenCount"`
		CandidatesTokenCount    int64 `json:"candidatesTokenCount"`
	} `json:"usageMetadata"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
	} `json:"error"`
}

func (f *fixture) gemini(path, body string, hdr ...string) *fakemodelResp {
	f.t.Helper()
	resp := f.post(path, body, append([]string{"Authorization", "", "x-goog-api-key", fakemodel.DefaultAPIKey}, hdr...)...)
	b, _ := io.ReadAll(resp.Body)
	return &fakemodelResp{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), body: string(b)}
}

type fakemodelResp struct {
	status int
	ctype  string
	body   string
}

// A Gemini turn: the tool asked for as a functionCall (streamed, SSE),
// then the functionResponse quoted; the model is the path's.
func TestGeminiToolTurn(t *testing.T) {
	t.Parallel()
	f := newFixture(t, &fakemodel.Options{Rules: []fakemodel.Rule{{Tool: "get_task", Prompt: regexp.MustCompile(`(tsk_[a-z0-9]+)`),
		Arguments: []byte(`{"id":"$1"}`), Reply: "The task says: "}}, Usage: fakemodel.Usage{Input: 7, Output: 5, CacheRead: 3}})
	first := `{"contents":[{"role":"user","parts":[{"text":"look up tsk_abc1"}]}],
		"tools":[{"functionDeclarations":[{"name":"mcp_agentbroker_get_task","parameters":{"type":"object"}}]}]}`
	r := f.gemini("/v1beta/models/gemini-3.8-flash:streamGenerateContent?alt=sse", first)
	if r.status != 200 || !strings.HasPrefix(r.ctype, "text/event-stream") {
		t.Fatalf("status %d %q: %s", r.status, r.ctype, r.body)
	}
	evs, err := readEvents(strings.NewReader(r.body))
	if err != nil || len(evs) != 1 {
		t.Fatalf("events %v %v", evs, err)
	}
	g := decode[geminiResp](t, evs[0].Data)
	call := g.Candidates[0].Content.Parts[0].FunctionCall
	if call == nil || call.Name != "mcp_agentbroker_get_task" || call.Args["id"] != "tsk_abc1" || g.Candidates[0].FinishReason != "STOP" {
		t.Errorf("first answer %s", evs[0].Data)
	}
	if u := g.UsageMetadata; u.PromptTokenCount != 10 || u.CachedContentTokenCount != 3 || u.CandidatesTokenCount != 5 {
		t.Errorf("usage %+v", u)
	}
	second := `{"contents":[{"role":"user","parts":[{"text":"look up tsk_abc1"}]},
		{"role":"model","parts":[{"functionCall":{"name":"mcp_agentbroker_get_task","args":{"id":"tsk_abc1"}}}]},
		{"role":"user","parts":[{"functionResponse":{"name":"mcp_agentbroker_get_task","response":{"content":[{"type":"text","text":"MARKER-1"}]}}}]}],
		"tools":[{"functionDeclarations":[{"name":"mcp_agentbroker_get_task"}]}]}`
	r = f.gemini("/v1beta/models/gemini-3.8-flash:generateContent", second)
	g = decode[geminiResp](t, r.body)
	if r.status != 200 || g.Candidates[0].Content.Parts[0].Text != "The task says: MARKER-1" {
		t.Errorf("second answer %d %s", r.status, r.body)
	}
	reqs := f.fake.Requests()
	if len(reqs) != 2 || reqs[0].API != fakemodel.APIGemini || reqs[0].Model != "gemini-3.8-flash" || reqs[0].Route != "stream" ||
		reqs[1].Route != "generate" || reqs[0].Action != fakemodel.ActionToolCall || reqs[1].Action != fakemodel.ActionToolAnswer {
		t.Errorf("recorded %+v", reqs)
	}
	if h := reqs[0].Header.Get("X-Goog-Api-Key"); h != "[platform key]" {
		t.Errorf("recorded key header %q", h)
	}
}

// A side call that asks for JSON of a schema gets the first choice of
// each enum; streamGenerateContent without alt=sse is a JSON array;
// countTokens counts; a wrong key or route gets Google's error shape.
func TestGeminiSideCallsAndErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	r := f.gemini("/v1beta/models/gemini-3.5-flash:generateContent", `{"contents":[{"role":"user","parts":[{"text":"who speaks next?"}]}],
		"generationConfig":{"responseMimeType":"application/json","responseJsonSchema":{"type":"object","properties":{"next_speaker":{"type":"string","enum":["user","model"]},"reasoning":{"type":"string"}}}}}`)
	g := decode[geminiResp](t, r.body)
	got := decode[map[string]any](t, g.Candidates[0].Content.Parts[0].Text)
	if got["next_speaker"] != "user" || got["reasoning"] != "fake" {
		t.Errorf("schema answer %s", r.body)
	}
	r = f.gemini("/v1beta/models/gemini-3.5-flash:streamGenerateContent", `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`)
	if arr := decode[[]geminiResp](t, r.body); len(arr) != 1 || arr[0].Candidates[0].Content.Parts[0].Text != fakemodel.DefaultText {
		t.Errorf("array stream %s", r.body)
	}
	r = f.gemini("/v1beta/models/gemini-3.5-flash:countTokens", `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`)
	if c := decode[map[string]int](t, r.body); r.status != 200 || c["totalTokens"] != 20 {
		t.Errorf("countTokens %d %s", r.status, r.body)
	}
	for _, tt := range []struct {
		path, key string
		status    int
		gstatus   string
	}{
		{"/v1beta/models/gemini-3.5-flash:generateContent", "wrong", 401, "UNAUTHENTICATED"},
		{"/v1beta/models/gemini-3.5-flash:embedStuff", fakemodel.DefaultAPIKey, 404, "NOT_FOUND"},
	} {
		r := f.gemini(tt.path, `{}`, "x-goog-api-key", tt.key)
		g := decode[geminiResp](t, r.body)
		if r.status != tt.status || g.Error == nil || g.Error.Status != tt.gstatus || g.Error.Code != tt.status {
			t.Errorf("%s key %s: %d %s", tt.path, tt.key, r.status, r.body)
		}
	}
	// An x-api-key (another API's header) is not the Gemini credential.
	if r := f.gemini("/v1beta/models/gemini-3.5-flash:generateContent", `{}`, "x-api-key", fakemodel.DefaultAPIKey); r.status != 401 {
		t.Errorf("x-api-key on a Gemini route: %d", r.status)
	}
}
