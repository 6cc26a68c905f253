package proxy_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentbroker/agentbroker/catalog"
	"github.com/agentbroker/agentbroker/internal/fakemodel"
	"github.com/agentbroker/agentbroker/proxy"
	"github.com/agentbroker/agentbroker/tokens"
)

const googleKey = "google-platform-key"

// geminiWorld is the proxy in front of a fake Gemini upstream.
type geminiWorld struct {
	fake *fakemodel.Server
	rec  *proxy.MemoryRecorder
	url  string
	tok  func(agent string) string
}

func newGeminiWorld(t *testing.T) *geminiWorld {
	t.Helper()
	return newGeminiWorldWith(t, &fakemodel.Options{Usage: fakemodel.Usage{Input: 7, Output: 5, CacheRead: 3},
		Rules: []fakemodel.Rule{{Tool: "get_task", Prompt: regexp.MustCompile(`(tsk_[a-z0-9]+)`), Arguments: []byte(`{"id":"$1"}`)}}})
}

// newGeminiWorldWith starts the fake upstream with opts (APIKey is set).
func newGeminiWorldWith(t *testing.T, opts *fakemodel.Options) *geminiWorld {
	t.Helper()
	o := *opts
	o.APIKey = googleKey
	fake := fakemodel.New(&o)
	if _, err := fake.Start(); err != nil {
		t.Fatal(err)
	}
	svc := tokenService(t)
	rec := &proxy.MemoryRecorder{}
	p, err := proxy.New(&proxy.Options{Tokens: svc, Recorder: rec,
		Upstreams: map[catalog.Provider]proxy.Upstream{catalog.ProviderGoogle: {BaseURL: fake.URL(), APIKey: googleKey}}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	p.Mount(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		p.Close()
		fake.Close()
	})
	return &geminiWorld{fake: fake, rec: rec, url: srv.URL, tok: func(agent string) string {
		raw, _, err := svc.Mint(context.Background(), tokens.Grant{Subject: "user-1", Project: "proj-1",
			Session: "sess-gemini-" + agent, Agent: agent, Audience: tokens.AudienceProxy, Scopes: []tokens.Scope{tokens.ScopeInference}})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}}
}

type geminiReply struct {
	status int
	header http.Header
	body   string
}

func (g *geminiWorld) post(t *testing.T, method, path, token, body string) geminiReply {
	t.Helper()
	req, err := http.NewRequest(method, g.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("X-Goog-Api-Key", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return geminiReply{resp.StatusCode, resp.Header, string(b)}
}

const geminiPrefix = "/proxy/gemini/v1beta/models/"

const geminiTurn = `{"contents":[{"role":"user","parts":[{"text":"look up tsk_abc1"}]}],
	"tools":[{"functionDeclarations":[{"name":"mcp_agentbroker_get_task"}]}]}`

// The Gemini API through the proxy: the model read from the path and
// checked by the catalog, the token taken from x-goog-api-key and replaced
// by the platform key, the answer streamed (SSE) or whole, usage read from
// usageMetadata and priced, countTokens not billed.
func TestGeminiThroughProxy(t *testing.T) {
	t.Parallel()
	g := newGeminiWorld(t)
	tok := g.tok("gemini")

	r := g.post(t, http.MethodPost, geminiPrefix+"gemini-3.8-flash:streamGenerateContent?alt=sse", tok, geminiTurn)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/event-stream") || !strings.Contains(r.body, `"functionCall"`) {
		t.Fatalf("stream: %d %s", r.status, r.body)
	}
	r = g.post(t, http.MethodPost, geminiPrefix+"gemini-3.8-flash:generateContent", tok, `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`)
	if r.status != 200 || !strings.Contains(r.body, fakemodel.DefaultText) {
		t.Fatalf("generate: %d %s", r.status, r.body)
	}
	r = g.post(t, http.MethodPost, geminiPrefix+"gemini-2.5-pro:countTokens", tok, `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`)
	if r.status != 200 || !strings.Contains(r.body, `"totalTokens"`) {
		t.Fatalf("countTokens: %d %s", r.status, r.body)
	}

	reqs := g.fake.Requests()
	if len(reqs) != 3 {
		t.Fatalf("upstream saw %d requests", len(reqs))
	}
	wantPaths := []string{"/v1beta/models/gemini-3.8-flash:streamGenerateContent", "/v1beta/models/gemini-3.8-flash:generateContent", "/v1beta/models/gemini-2.5-pro:countTokens"}
	for i, q := range reqs {
		if q.Path != wantPaths[i] || !q.AuthOK || q.Header.Get("X-Goog-Api-Key") != "[platform key]" || q.Header.Get("Authorization") != "" {
			t.Errorf("upstream request %d: path %s auth %v headers %v", i, q.Path, q.AuthOK, q.Header)
		}
		if strings.Contains(string(q.Body), tok) || strings.Contains(q.Query, tok) {
			t.Errorf("upstream request %d carries the inference token", i)
		}
	}
	if reqs[0].Query != "alt=sse" {
		t.Errorf("query %q not passed on", reqs[0].Query)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	recs, err := g.rec.Wait(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := catalog.Embedded().Lookup("gemini-3.8-flash")
	wantUsage := catalog.Usage{InputTokens: 7, CacheReadTokens: 3, OutputTokens: 5}
	wantCost, _ := catalog.Cost(m, wantUsage)
	for i, want := range []struct {
		route    proxy.Route
		model    string
		reported bool
	}{
		{proxy.RouteStreamGenerateContent, "gemini-3.8-flash", true},
		{proxy.RouteGenerateContent, "gemini-3.8-flash", true},
		{proxy.RouteCountGeminiTokens, "gemini-2.5-pro", false},
	} {
		rec := recs[i]
		if rec.Route != want.route || rec.Model != want.model || rec.Provider != catalog.ProviderGoogle || rec.Outcome != proxy.OutcomeOK ||
			rec.UsageReported != want.reported || rec.Endpoint != catalog.EndpointGenerateContent {
			t.Errorf("record %d: %+v", i, rec)
		}
		if want.reported && (rec.Usage != wantUsage || rec.Cost != wantCost || wantCost == 0) {
			t.Errorf("record %d: usage %+v cost %v, want %+v %v", i, rec.Usage, rec.Cost, wantUsage, wantCost)
		}
	}
}

type googleError struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
	} `json:"error"`
}

// Refusals on the Gemini routes come in Google's error shape, before any
// upstream call.
func TestGeminiRefusals(t *testing.T) {
	t.Parallel()
	g := newGeminiWorld(t)
	tok := g.tok("gemini")
	body := `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`
	for _, tt := range []struct {
		name, method, path, token, body string
		status                          int
		gstatus, reason                 string
	}{
		{"model in no source", "POST", geminiPrefix + "gemini-3.5-flash-lite:generateContent", tok, body, 404, "NOT_FOUND", "unknown_model"},
		{"another agent's token", "POST", geminiPrefix + "gemini-3.8-flash:generateContent", g.tok("claude-code"), body, 403, "PERMISSION_DENIED", "not_allowed"},
		{"no token", "POST", geminiPrefix + "gemini-3.8-flash:generateContent", "", body, 401, "UNAUTHENTICATED", "unauthenticated"},
		{"key in the query", "POST", geminiPrefix + "gemini-3.8-flash:generateContent?key=" + tok, tok, body, 400, "INVALID_ARGUMENT", "bad_auth_request"},
		{"body names another model", "POST", geminiPrefix + "gemini-3.8-flash:generateContent", tok, `{"model":"gemini-2.5-pro","contents":[]}`, 400, "INVALID_ARGUMENT", "invalid_body"},
		{"not JSON", "POST", geminiPrefix + "gemini-3.8-flash:generateContent", tok, `{"contents":`, 400, "INVALID_ARGUMENT", "invalid_body"},
		{"unknown action", "POST", geminiPrefix + "gemini-3.8-flash:embedContent", tok, body, 404, "NOT_FOUND", "not_found"},
		{"no model", "POST", geminiPrefix + ":generateContent", tok, body, 404, "NOT_FOUND", "not_found"},
		{"GET", "GET", geminiPrefix + "gemini-3.8-flash:generateContent", tok, "", 405, "INVALID_ARGUMENT", "method_not_allowed"},
	} {
		r := g.post(t, tt.method, tt.path, tt.token, tt.body)
		var e googleError
		dec := json.NewDecoder(strings.NewReader(r.body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			t.Errorf("%s: body %q: %v", tt.name, r.body, err)
			continue
		}
		if r.status != tt.status || e.Error.Code != tt.status || e.Error.Status != tt.gstatus || e.Error.Message == "" ||
			r.header.Get("X-Agentbroker-Refusal") != tt.reason {
			t.Errorf("%s: %d %s (refusal %q)", tt.name, r.status, r.body, r.header.Get("X-Agentbroker-Refusal"))
		}
		if strings.Contains(r.body, tok) {
			t.Errorf("%s: the answer quotes the token", tt.name)
		}
	}
	if n := g.fake.Count(); n != 0 {
		t.Errorf("the upstream saw %d requests", n)
	}
}
