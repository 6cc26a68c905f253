package proxy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentbroker/agentbroker/catalog"
	"github.com/agentbroker/agentbroker/internal/fakemodel"
	"github.com/agentbroker/agentbroker/proxy"
	"github.com/agentbroker/agentbroker/tokens"
)

// Every refused model stays in the proxy: neither fake upstream sees a
// single request, whatever the agent, route or reason, and the client
// learns why in its API's error shape.
func TestRefusedModelsNeverReachUpstream(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldConfig{})
	tests := []struct {
		agent, model, path string
		status             int
		reason             proxy.Reason
		anthType, oaiCode  string
		msg                string
	}{
		// claude-code (Anthropic Messages)
		{"claude-code", "claude-nope-9", messagesPath, 404, proxy.ReasonUnknownModel, "not_found_error", "", `"claude-nope-9" is not in the broker's model catalog`},
		{"claude-code", "", messagesPath, 404, proxy.ReasonUnknownModel, "not_found_error", "", `"" is not in`},
		{"claude-code", "CLAUDE-OPUS-4-8", messagesPath, 404, proxy.ReasonUnknownModel, "not_found_error", "", "not in the broker's model catalog"},
		{"claude-code", "claude-3-5-sonnet-20241022", messagesPath, 404, proxy.ReasonRetired, "not_found_error", "", `retired; use "claude-sonnet-5"`},
		{"claude-code", "claude-3-5-haiku-latest", messagesPath, 404, proxy.ReasonRetired, "not_found_error", "", `retired; use "claude-haiku-4-5"`},
		{"claude-code", "claude-opus-4-20250514", messagesPath, 404, proxy.ReasonRetired, "not_found_error", "", `use "claude-opus-4-8"`},
		{"claude-code", "gpt-5.5", messagesPath, 403, proxy.ReasonNotAllowed, "permission_error", "", `not allowed for agent "claude-code"`},
		{"claude-code", "claude-opus-4-8", responsesPath, 400, proxy.ReasonWrongEndpoint, "", "unsupported_endpoint", "serves messages"},
		{"claude-code", "claude-opus-4-8", countPath + "?x=1", 200, "", "", "", ""}, // control: allowed (count_tokens), see below
		// codex (OpenAI Responses)
		{"codex", "o3-pro", responsesPath, 403, proxy.ReasonNotAllowed, "", "model_not_allowed", `"o3-pro" is not allowed for agent "codex"`},
		{"codex", "o3-mini", responsesPath, 403, proxy.ReasonNotAllowed, "", "model_not_allowed", "not allowed"},
		{"codex", "gpt-5.5-pro", responsesPath, 403, proxy.ReasonNotAllowed, "", "model_not_allowed", "not allowed"},
		{"codex", "o1", responsesPath, 404, proxy.ReasonRetired, "", "model_not_found", `"o1" is retired; use`},
		{"codex", "gpt-5.1-codex", responsesPath, 404, proxy.ReasonRetired, "", "model_not_found", "retired"},
		{"codex", "o5-ultra", responsesPath, 404, proxy.ReasonUnknownModel, "", "model_not_found", "not in the broker's model catalog"},
		{"codex", "claude-opus-4-8", responsesPath, 403, proxy.ReasonNotAllowed, "", "model_not_allowed", "not allowed"},
		{"codex", "gpt-5.5", chatPath, 400, proxy.ReasonWrongEndpoint, "", "unsupported_endpoint", `speaks the responses API, not "chat"`},
		{"codex", "o3", chatPath, 400, proxy.ReasonWrongEndpoint, "", "unsupported_endpoint", "chat"},
		{"codex", "gpt-5.5", messagesPath, 400, proxy.ReasonWrongEndpoint, "invalid_request_error", "", "serves responses, chat"},
		// amp (Anthropic Messages)
		{"amp", "claude-opus-4-8", messagesPath, 403, proxy.ReasonNotAllowed, "permission_error", "", `not allowed for agent "amp"`},
		{"amp", "claude-sonnet-5", messagesPath, 403, proxy.ReasonNotAllowed, "permission_error", "", "not allowed"},
		{"amp", "claude-opus-4-6-20260205", messagesPath, 404, proxy.ReasonUnknownModel, "not_found_error", "", "not in the broker's model catalog"},
		{"amp", "claude-3-7-sonnet-20250219", messagesPath, 404, proxy.ReasonRetired, "not_found_error", "", `use "claude-sonnet-5"`},
		{"amp", "o3", responsesPath, 403, proxy.ReasonNotAllowed, "", "model_not_allowed", "not allowed"},
		// an agent the catalog does not know
		{"gemini-cli", "claude-opus-4-8", messagesPath, 403, proxy.ReasonUnknownAgent, "permission_error", "", `agent "gemini-cli" has no model policy`},
	}
	refusals := 0
	for _, tt := range tests {
		body := anthropicBody(tt.model, true)
		if strings.HasPrefix(tt.path, proxy.OpenAIPrefix) {
			body = responsesBody(tt.model, true)
		}
		resp := w.do(call{path: tt.path, body: body, token: w.token(tt.agent)})
		got := readAll(t, resp.Body)
		if resp.StatusCode != tt.status {
			t.Errorf("%s %q on %s: status %d, want %d: %s", tt.agent, tt.model, tt.path, resp.StatusCode, tt.status, got)
			continue
		}
		if tt.status == 200 {
			continue
		}
		refusals++
		e := decodeErr(t, tt.path, got)
		if tt.anthType != "" && e.Error.Type != tt.anthType {
			t.Errorf("%s %q: error type %q, want %q", tt.agent, tt.model, e.Error.Type, tt.anthType)
		}
		if tt.oaiCode != "" && (deref(e.Error.Code) != tt.oaiCode || e.Error.Type != "invalid_request_error") {
			t.Errorf("%s %q: error %+v, want code %q", tt.agent, tt.model, e.Error, tt.oaiCode)
		}
		if !strings.Contains(e.Error.Message, tt.msg) {
			t.Errorf("%s %q: message %q lacks %q", tt.agent, tt.model, e.Error.Message, tt.msg)
		}
		if r := resp.Header.Get("X-Agentbroker-Refusal"); r != string(tt.reason) {
			t.Errorf("%s %q: refusal header %q, want %q", tt.agent, tt.model, r, tt.reason)
		}
		if resp.Header.Get("X-Should-Retry") != "false" {
			t.Errorf("%s %q: x-should-retry %q", tt.agent, tt.model, resp.Header.Get("X-Should-Retry"))
		}
	}
	// Only the control request (count_tokens, allowed) reached an upstream.
	if n := w.oai.Count(); n != 0 {
		t.Errorf("the OpenAI upstream got %d requests: %+v", n, w.oai.Requests())
	}
	if reqs := w.anth.Requests(); len(reqs) != 1 || reqs[0].Route != "count_tokens" {
		t.Errorf("the Anthropic upstream got %+v", reqs)
	}
	recs := w.records(len(tests))
	n := 0
	for _, r := range recs {
		if r.Outcome == proxy.OutcomeRefused {
			n++
			if r.Session == "" || r.Status < 400 || r.Reason == "" || r.Message == "" || r.Usage != (catalog.Usage{}) || r.Cost != 0 {
				t.Errorf("refusal record %+v", r)
			}
		}
	}
	if n != refusals {
		t.Errorf("%d refusal records, want %d", n, refusals)
	}
	text := w.metricsText()
	for _, want := range []string{
		`agentbroker_proxy_refusals_total{reason="not_allowed"} 8`,
		`agentbroker_proxy_refusals_total{reason="retired"} 6`,
		`agentbroker_proxy_refusals_total{reason="wrong_endpoint"} 4`,
		`agentbroker_proxy_refusals_total{reason="unknown_model"} 5`,
		`agentbroker_proxy_refusals_total{reason="unknown_agent"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// Allowed models go to their catalog provider's upstream, under the wire
// ID the client sent, and nowhere else: o3 and o4-mini (which codex's
// policy allows; o3-pro it does not, see above) reach the OpenAI fake, and
// the Anthropic fake sees none of them.
func TestAllowedModelsRouteByProvider(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldConfig{})
	for _, model := range []string{"o3", "o4-mini", "o3-2025-04-16", "o4-mini-2025-04-16", "gpt-5.5"} {
		resp := w.do(call{path: responsesPath, body: responsesBody(model, false), token: w.token("codex")})
		if body := readAll(t, resp.Body); resp.StatusCode != 200 || !strings.Contains(body, fakemodel.DefaultText) {
			t.Fatalf("codex %s: %d %s", model, resp.StatusCode, body)
		}
	}
	if n := w.anth.Count(); n != 0 {
		t.Fatalf("the Anthropic upstream got %d requests", n)
	}
	var got []string
	for _, r := range w.oai.Requests() {
		got = append(got, r.Model)
		if r.Path != "/v1/responses" || !r.AuthOK {
			t.Errorf("OpenAI upstream request %+v", r)
		}
	}
	if want := []string{"o3", "o4-mini", "o3-2025-04-16", "o4-mini-2025-04-16", "gpt-5.5"}; !slices.Equal(got, want) {
		t.Errorf("OpenAI upstream models %v, want %v", got, want)
	}
	recs := w.records(5)
	if recs[2].WireModel != "o3-2025-04-16" || recs[2].Model != "o3" || recs[2].Provider != catalog.ProviderOpenAI {
		t.Errorf("alias record %+v", recs[2])
	}
}

// UI ⊆ proxy: every model a picker offers passes the proxy, to the right
// upstream.
func TestEveryPickerModelPasses(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldConfig{})
	cat := catalog.Embedded()
	wantAnth, wantOAI := 0, 0
	for _, agent := range []string{"claude-code", "codex", "amp"} {
		entries, err := cat.ForUI(agent)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			path, body := messagesPath, anthropicBody(e.ID, false)
			if e.Provider == catalog.ProviderOpenAI {
				path, body = responsesPath, responsesBody(e.ID, false)
				wantOAI++
			} else {
				wantAnth++
			}
			resp := w.do(call{path: path, body: body, token: w.token(agent)})
			if got := readAll(t, resp.Body); resp.StatusCode != 200 {
				t.Errorf("%s picker model %s: %d %s", agent, e.ID, resp.StatusCode, got)
			}
		}
	}
	if w.anth.Count() != wantAnth || w.oai.Count() != wantOAI || wantAnth == 0 || wantOAI == 0 {
		t.Errorf("upstreams got %d and %d requests, want %d and %d", w.anth.Count(), w.oai.Count(), wantAnth, wantOAI)
	}
}

func TestNoUpstreamOrKey(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldConfig{mod: func(o *proxy.Options, w *world) {
		o.Upstreams = map[catalog.Provider]proxy.Upstream{catalog.ProviderAnthropic: {BaseURL: w.anth.URL()}} // no key, no OpenAI
	}})
	resp := w.do(call{path: responsesPath, body: responsesBody("gpt-5.5", true), token: w.token("codex")})
	body := readAll(t, resp.Body)
	if e := decodeErr(t, responsesPath, body); resp.StatusCode != 503 || e.Error.Type != "server_error" ||
		!strings.Contains(e.Error.Message, `no upstream is configured for provider "openai"`) || resp.Header.Get("X-Should-Retry") != "false" {
		t.Errorf("no upstream: %d %s", resp.StatusCode, body)
	}
	resp = w.do(call{path: messagesPath, body: anthropicBody("claude-opus-4-8", true), token: w.token("claude-code")})
	body = readAll(t, resp.Body)
	if e := decodeErr(t, messagesPath, body); resp.StatusCode != 503 || e.Error.Type != "api_error" || !strings.Contains(e.Error.Message, "no key is configured") {
		t.Errorf("no key: %d %s", resp.StatusCode, body)
	}
	if w.anth.Count()+w.oai.Count() != 0 {
		t.Errorf("upstreams were called")
	}
}

// The session's own key goes upstream when the UserKey hook has one.
func TestUserKeyPassthrough(t *testing.T) {
	t.Parallel()
	var asked []string
	w := newWorld(t, worldConfig{
		mod: func(o *proxy.Options, w *world) {
			o.UserKey = func(_ context.Context, c tokens.Claims, p catalog.Provider) (string, bool) {
				asked = append(asked, c.Session+"/"+string(p))
				if c.Agent == "amp" {
					return "user-own-key", true
				}
				return "", false
			}
		},
	})
	// amp's session has its own key: the fake (expecting the platform key)
	// refuses it, and that 401 is the user's business, passed on as is.
	resp := w.do(call{path: messagesPath, body: anthropicBody("claude-opus-4-6", false), token: w.token("amp")})
	body := readAll(t, resp.Body)
	if resp.StatusCode != 401 || !strings.Contains(body, "fakemodel: invalid credential") {
		t.Errorf("user key: %d %s", resp.StatusCode, body)
	}
	reqs := w.anth.Requests()
	if len(reqs) != 1 || reqs[0].AuthOK || reqs[0].Header.Get("X-Api-Key") != "[other]" {
		t.Errorf("upstream saw %+v", reqs)
	}
	// claude-code's session has none: the platform key.
	resp = w.do(call{path: messagesPath, body: anthropicBody("claude-opus-4-8", false), token: w.token("claude-code")})
	if readAll(t, resp.Body); resp.StatusCode != 200 {
		t.Errorf("platform key: %d", resp.StatusCode)
	}
	recs := w.records(2)
	if !recs[0].UserKey || recs[1].UserKey || recs[0].Outcome != proxy.OutcomeUpstreamError {
		t.Errorf("records %+v", recs)
	}
	if !slices.Equal(asked, []string{"sess-amp/anthropic", "sess-claude-code/anthropic"}) {
		t.Errorf("asked %v", asked)
	}
}

// An upstream that refuses the platform key: a 502 that says so, and
// nothing of the upstream's body (it may quote part of the key).
func TestUpstreamRefusesPlatformKey(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldConfig{mod: func(o *proxy.Options, w *world) {
		o.Upstreams[catalog.ProviderOpenAI] = proxy.Upstream{BaseURL: w.oai.URL(), APIKey: "stale-key"}
	}})
	resp := w.do(call{path: responsesPath, body: responsesBody("gpt-5.5", true), token: w.token("codex")})
	body := readAll(t, resp.Body)
	if e := decodeErr(t, responsesPath, body); resp.StatusCode != 502 || !strings.Contains(e.Error.Message, "refused the broker's key") ||
		strings.Contains(body, "fakemodel") {
		t.Errorf("%d %s", resp.StatusCode, body)
	}
}

func TestAuthRefusals(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldConfig{})
	mcp := w.mint("claude-code", tokens.AudienceMCP, tokens.ScopeProjectRead)
	viewer := w.mint("codex", tokens.AudienceViewer, tokens.ScopeSessionView)
	revoked := w.mint("revoked-agent", tokens.AudienceProxy, tokens.ScopeInference)
	if err := w.tokens.RevokeSession(context.Background(), "sess-revoked-agent"); err != nil {
		t.Fatal(err)
	}
	valid := w.token("claude-code")
	tests := []struct {
		name, path string
		token      string
		bearer     bool
		header     http.Header
		status     int
		msg        string
	}{
		{"missing, anthropic", messagesPath, "", false, nil, 401, "no inference token"},
		{"missing, openai", responsesPath, "", false, nil, 401, "no inference token"},
		{"garbage", messagesPath, "not-a-token", false, nil, 401, "inference token refused: malformed token"},
		{"MCP token", messagesPath, mcp, false, nil, 401, "inference token refused: token not valid for this resource"},
		{"MCP token as bearer", responsesPath, mcp, true, nil, 401, "token not valid for this resource"},
		{"viewer token", responsesPath, viewer, false, nil, 401, "token not valid for this resource"},
		{"revoked", messagesPath, revoked, false, nil, 401, "token revoked"},
		{"two different tokens", messagesPath, valid, false, http.Header{"Authorization": {"Bearer " + mcp}}, 400, "different tokens"},
		{"token in the query", messagesPath + "&access_token=x", valid, false, nil, 400, "query string"},
	}
	for _, tt := range tests {
		resp := w.do(call{path: tt.path, body: anthropicBody("claude-opus-4-8", true), token: tt.token, bearer: tt.bearer, header: tt.header})
		body := readAll(t, resp.Body)
		if resp.StatusCode != tt.status {
			t.Errorf("%s: status %d: %s", tt.name, resp.StatusCode, body)
			continue
		}
		e := decodeErr(t, tt.path, body)
		if !strings.Contains(e.Error.Message, tt.msg) {
			t.Errorf("%s: message %q lacks %q", tt.name, e.Error.Message, tt.msg)
		}
		switch {
		case tt.status == 401 && strings.HasPrefix(tt.path, proxy.AnthropicPrefix):
			if e.Error.Type != "authentication_error" {
				t.Errorf("%s: type %q", tt.name, e.Error.Type)
			}
		case tt.status == 401:
			if deref(e.Error.Code) != "invalid_api_key" {
				t.Errorf("%s: code %q", tt.name, deref(e.Error.Code))
			}
		}
		if tt.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer ") {
			t.Errorf("%s: no challenge", tt.name)
		}
		if strings.Contains(body, tt.token) && tt.token != "" {
			t.Errorf("%s: the body echoes the token", tt.name)
		}
	}
	if w.anth.Count()+w.oai.Count() != 0 {
		t.Errorf("upstreams were called")
	}
	if !strings.Contains(w.metricsText(), `agentbroker_proxy_refusals_total{reason="unauthenticated"} 7`) {
		t.Errorf("metrics:\n%s", w.metricsText())
	}
}

// The inference token never reaches an upstream: the fakes accept only
// their platform key and refuse any second credential, whichever header
// the agent used; headers that must not travel are dropped, the API's own
// headers travel.
func TestTokenNeverReachesUpstream(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldConfig{})
	hdr := http.Header{
		"Anthropic-Beta":      {"interleaved-thinking-2025-05-14"},
		"Anthropic-Version":   {"2023-06-01"},
		"Cookie":              {"session=abc"},
		"Openai-Organization": {"org-someone-else"},
		"Accept-Encoding":     {"br"},
		"User-Agent":          {"claude-cli/2.1.318"},
		"X-Stainless-Lang":    {"js"},
	}
	for _, c := range []call{
		{path: messagesPath, body: anthropicBody("claude-opus-4-8", true), token: w.token("claude-code"), header: hdr},
		{path: messagesPath, body: anthropicBody("claude-opus-4-8", false), token: w.token("claude-code"), bearer: true, header: hdr},
		{path: countPath, body: anthropicBody("claude-opus-4-8", false), token: w.token("claude-code")},
		{path: responsesPath, body: responsesBody("gpt-5.5", true), token: w.token("codex"), header: hdr},
		{path: responsesPath, body: responsesBody("gpt-5.5", false), token: w.token("codex"), header: http.Header{"X-Api-Key": {w.token("codex")}}},
	} {
		resp := w.do(c)
		if body := readAll(t, resp.Body); resp.StatusCode != 200 {
			t.Errorf("%s: %d %s", c.path, resp.StatusCode, body)
		}
	}
	all := append(w.anth.Requests(), w.oai.Requests()...)
	if len(all) != 5 {
		t.Fatalf("%d upstream requests", len(all))
	}
	for _, r := range all {
		if !r.AuthOK {
			t.Errorf("%s: upstream auth failed: %v", r.Path, r.Header)
		}
		for name, vs := range r.Header {
			for _, v := range vs {
				for _, tok := range []string{w.token("claude-code"), w.token("codex")} {
					if strings.Contains(v, tok) {
						t.Errorf("%s: header %s carries the inference token", r.Path, name)
					}
				}
			}
		}
		for _, gone := range []string{"Cookie", "Openai-Organization"} {
			if r.Header.Get(gone) != "" {
				t.Errorf("%s: %s forwarded", r.Path, gone)
			}
		}
		if r.Header.Get("Accept-Encoding") == "br" {
			t.Errorf("%s: the client's Accept-Encoding forwarded", r.Path)
		}
		if r.API == fakemodel.APIAnthropic && (r.Header.Get("Authorization") != "" || r.Header.Get("X-Api-Key") != "[platform key]" ||
			r.Header.Get("Anthropic-Version") != "2023-06-01") {
			t.Errorf("%s: anthropic headers %v", r.Path, r.Header)
		}
		if r.API == fakemodel.APIOpenAI && (r.Header.Get("X-Api-Key") != "" || r.Header.Get("Authorization") != "[platform key]") {
			t.Errorf("%s: openai headers %v", r.Path, r.Header)
		}
		if r.Path == "/v1/messages" && (r.Header.Get("Anthropic-Beta") != "interleaved-thinking-2025-05-14" || r.Query != "beta=true" ||
			r.Header.Get("User-Agent") != "claude-cli/2.1.318") {
			t.Errorf("%s: API headers or query lost: %v %q", r.Path, r.Header, r.Query)
		}
	}
	// count_tokens had no anthropic-version from the client: the default is sent.
	if r := w.anth.Requests()[2]; r.Route != "count_tokens" || r.Header.Get("Anthropic-Version") != proxy.DefaultAnthropicVersion {
		t.Errorf("count_tokens %+v", r)
	}
}

// The body goes upstream byte for byte, whatever its layout.
func TestBodyForwardedUnchanged(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldConfig{})
	body := "  {\n\t\"messages\": [{\"role\":\"user\",\"content\":\"h\\u00e9llo \\\"model\\\": x\"}],\r\n" +
		"  \"metadata\": {\"model\": \"not-this-one\"}, \"max_tokens\": 1e3,\n  \"model\" : \"claude-haiku-4-5-20251001\" }  \n"
	resp := w.do(call{path: messagesPath, body: body, token: w.token("claude-code")})
	if got := readAll(t, resp.Body); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, got)
	}
	if r := w.anth.Requests()[0]; string(r.Body) != body || r.Model != "claude-haiku-4-5-20251001" {
		t.Fatalf("upstream body %q", r.Body)
	}
	if rec := w.records(1)[0]; rec.Model != "claude-haiku-4-5" || rec.WireModel != "claude-haiku-4-5-20251001" {
		t.Errorf("record %+v", rec)
	}
}

func TestInvalidBodies(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldConfig{})
	tests := []struct {
		name, path, body string
		reason           proxy.Reason
		msg              string
	}{
		{"not JSON", messagesPath, `{"model":"claude-opus-4-8",`, proxy.ReasonInvalidBody, "not valid JSON"},
		{"trailing data", messagesPath, `{"model":"claude-opus-4-8"} {}`, proxy.ReasonInvalidBody, "not valid JSON"},
		{"array", responsesPath, `[{"model":"gpt-5.5"}]`, proxy.ReasonInvalidBody, "not a JSON object"},
		{"empty", responsesPath, ``, proxy.ReasonInvalidBody, "not valid JSON"},
		{"no model", messagesPath, `{"messages":[],"metadata":{"model":"claude-opus-4-8"}}`, proxy.ReasonNoModel, "model: field required"},
		{"model not a string", responsesPath, `{"model":["gpt-5.5"]}`, proxy.ReasonInvalidBody, `not a string: "model"`},
		{"model null", responsesPath, `{"model":null}`, proxy.ReasonInvalidBody, `not a string: "model"`},
		{"model twice", messagesPath, `{"model":"claude-opus-4-8","model":"claude-fable-5"}`, proxy.ReasonInvalidBody, `"model" (in another spelling or twice)`},
		{"Model", responsesPath, `{"model":"gpt-5.5","Model":"o3-pro"}`, proxy.ReasonInvalidBody, "another spelling"},
		{"escaped duplicate", responsesPath, `{"mod\u0065l":"gpt-5.5","model":"o3-pro"}`, proxy.ReasonInvalidBody, "twice"},
		{"fast mode", messagesPath, `{"model":"claude-opus-4-8","speed":"fast"}`, proxy.ReasonUnpricedOption, `speed "fast" is not available`},
		{"priority tier", responsesPath, `{"model":"gpt-5.5","service_tier":"priority"}`, proxy.ReasonUnpricedOption, `service_tier "priority"`},
		{"speed not a string", messagesPath, `{"model":"claude-opus-4-8","speed":1}`, proxy.ReasonInvalidBody, `"speed"`},
	}
	for _, tt := range tests {
		agent := "claude-code"
		if strings.HasPrefix(tt.path, proxy.OpenAIPrefix) {
			agent = "codex"
		}
		resp := w.do(call{path: tt.path, body: tt.body, token: w.token(agent)})
		body := readAll(t, resp.Body)
		if resp.StatusCode != 400 || resp.Header.Get("X-Agentbroker-Refusal") != string(tt.reason) {
			t.Errorf("%s: %d %s %s", tt.name, resp.StatusCode, resp.Header.Get("X-Agentbroker-Refusal"), body)
			continue
		}
		if e := decodeErr(t, tt.path, body); !strings.Contains(e.Error.Message, tt.msg) {
			t.Errorf("%s: message %q lacks %q", tt.name, e.Error.Message, tt.msg)
		}
	}
	// Allowed values of the same fields pass.
	for _, c := range []call{
		{path: messagesPath, body: `{"model":"claude-opus-4-8","speed":"standard","service_tier":"auto","messages":[]}`, token: w.token("claude-code")},
		{path: responsesPath, body: `{"model":"gpt-5.5","service_tier":"flex","speed":null,"input":"x"}`, token: w.token("codex")},
	} {
		resp := w.do(c)
		if body := readAll(t, resp.Body); resp.StatusCode != 200 {
			t.Errorf("%s: %d %s", c.body, resp.StatusCode, body)
		}
	}
	if w.anth.Count() != 1 || w.oai.Count() != 1 {
		t.Errorf("upstreams got %d and %d requests", w.anth.Count(), w.oai.Count())
	}
}

func TestOversizeBody(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldConfig{mod: func(o *proxy.Options, _ *world) { o.MaxBodyBytes = 1024 }})
	big := `{"model":"claude-opus-4-8","messages":[{"role":"user","content":"` + strings.Repeat("x", 2000) + `"}]}`
	// With a Content-Length, and chunked (the length is only found by reading).
	resp := w.do(call{path: messagesPath, body: big, token: w.token("claude-code")})
	body := readAll(t, resp.Body)
	if e := decodeErr(t, messagesPath, body); resp.StatusCode != 413 || e.Error.Type != "request_too_large" {
		t.Errorf("content-length: %d %s", resp.StatusCode, body)
	}
	req, _ := http.NewRequest(http.MethodPost, w.srv.URL+responsesPath, io.MultiReader(strings.NewReader(big)))
	req.Header.Set("Authorization", "Bearer "+w.token("codex"))
	req.ContentLength = -1
	resp, err := w.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body = readAll(t, resp.Body)
	if e := decodeErr(t, responsesPath, body); resp.StatusCode != 413 || !strings.Contains(e.Error.Message, "larger than 1024 bytes") {
		t.Errorf("chunked: %d %s", resp.StatusCode, body)
	}
	// Just under the limit passes.
	ok := `{"model":"claude-opus-4-8","messages":[{"role":"user","content":"` + strings.Repeat("x", 900) + `"}]}`
	resp = w.do(call{path: messagesPath, body: ok, token: w.token("claude-code")})
	if readAll(t, resp.Body); resp.StatusCode != 200 {
		t.Errorf("under the limit: %d", resp.StatusCode)
	}
	if w.anth.Count() != 1 || w.oai.Count() != 0 {
		t.Errorf("upstreams got %d and %d requests", w.anth.Count(), w.oai.Count())
	}
}

func TestUnroutedPaths(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldConfig{})
	for _, tt := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, proxy.AnthropicPrefix + "/v1/messages", 405},
		{http.MethodGet, proxy.OpenAIPrefix + "/v1/models", 404},
		{http.MethodPost, proxy.OpenAIPrefix + "/v1/embeddings", 404},
		{http.MethodPost, proxy.AnthropicPrefix + "/v1/complete", 404},
	} {
		req, _ := http.NewRequest(tt.method, w.srv.URL+tt.path, nil)
		resp, err := w.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%s %s: %d %s", tt.method, tt.path, resp.StatusCode, body)
			continue
		}
		decodeErr(t, tt.path, body)
	}
}

// Streams pass through byte for byte, whatever their chunking and line
// endings, and the usage is still read from them.
func TestStreamBytesIdentical(t *testing.T) {
	t.Parallel()
	// An upstream sending awkward but valid SSE: CRLF line endings, a
	// comment, an event split across writes, a ping, two data lines.
	parts := []string{
		": keep-alive\r\n\r\n",
		"event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m1\",\"usage\":{\"input_tokens\":11,\"output_tokens\":1,\"cache_read_input_tokens\":7,\"cache_creation_input_tokens\":0}}}\r\n\r\n",
		"event: ping\r\ndata: {\"type\": \"ping\"}\r\n\r\nevent: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",",
		"\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hé\"}}\r\n\r",
		"\nevent: message_delta\r\ndata: {\"type\":\"message_delta\",\r\ndata: \"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":9}}\r\n\r\n",
		"event: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n",
	}
	var sent []byte
	for _, p := range parts {
		sent = append(sent, p...)
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Api-Key") != anthropicKey || r.Header.Get("Authorization") != "" {
			w.WriteHeader(401)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Request-Id", "req_123")
		for _, p := range parts {
			w.Write([]byte(p))
			w.(http.Flusher).Flush()
		}
	}))
	defer up.Close()
	w := newWorld(t, worldConfig{mod: func(o *proxy.Options, _ *world) {
		o.Upstreams[catalog.ProviderAnthropic] = proxy.Upstream{BaseURL: up.URL, APIKey: anthropicKey}
	}})
	resp := w.do(call{path: messagesPath, body: anthropicBody("claude-sonnet-4-6", true), token: w.token("claude-code")})
	got := readAll(t, resp.Body)
	if resp.StatusCode != 200 || got != string(sent) || resp.Header.Get("Request-Id") != "req_123" {
		t.Fatalf("status %d, header %v\n got %q\nwant %q", resp.StatusCode, resp.Header, got, sent)
	}
	rec := w.records(1)[0]
	// claude-sonnet-4-6: $3 in, $15 out, $0.30 cache read per million.
	want := catalog.Usage{InputTokens: 11, OutputTokens: 9, CacheReadTokens: 7}
	if !rec.UsageReported || rec.Usage != want || rec.Cost != 11*3_000_000+9*15_000_000+7*300_000 {
		t.Errorf("record %+v", rec)
	}
}

// The first event reaches the client while the upstream is still blocked
// before the second: nothing is buffered.
func TestFirstEventBeforeUpstreamFinishes(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		agent, path, body, first string
		fake                     func(*world) *fakemodel.Server
	}{
		{"claude-code", messagesPath, anthropicBody("claude-opus-4-8", true), "message_start", func(w *world) *fakemodel.Server { return w.anth }},
		{"codex", responsesPath, responsesBody("gpt-5.5", true), "response.created", func(w *world) *fakemodel.Server { return w.oai }},
	} {
		w := newWorld(t, worldConfig{})
		fake := tt.fake(w)
		resp := w.do(call{path: tt.path, body: tt.body, token: w.token(tt.agent), header: http.Header{fakemodel.FaultHeader: {"pause-after=1"}}})
		br := bufio.NewReader(resp.Body)
		if ev := readEventWithin(t, br, 5*time.Second); ev.name != tt.first {
			t.Fatalf("%s: first event %+v", tt.agent, ev)
		}
		// The upstream is blocked before its second event: it has not finished.
		if r := fake.Requests(); len(r) != 1 || r[0].Outcome != "" {
			t.Fatalf("%s: upstream finished before the client read the first event: %+v", tt.agent, r)
		}
		if recs := w.rec.Records(); len(recs) != 0 {
			t.Fatalf("%s: recorded before the end: %+v", tt.agent, recs)
		}
		fake.Release()
		rest := readEvents(t, br)
		if len(rest) < 3 {
			t.Fatalf("%s: rest %v", tt.agent, eventNames(rest))
		}
		if rec := w.records(1)[0]; rec.Outcome != proxy.OutcomeOK || rec.TTFB <= 0 || rec.TTFB > rec.Duration || !rec.UsageReported {
			t.Errorf("%s: record %+v", tt.agent, rec)
		}
	}
}

// Event order as the fake sends it, for both APIs, and usage read.
func TestStreamEventOrder(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldConfig{anth: &fakemodel.Options{TextChunks: 4}})
	resp := w.do(call{path: messagesPath, body: anthropicBody("claude-opus-4-8", true), token: w.token("claude-code")})
	want := []string{"message_start", "content_block_start", "content_block_delta", "content_block_delta", "content_block_delta",
		"content_block_delta", "content_block_stop", "message_delta", "message_stop"}
	if got := eventNames(readEvents(t, resp.Body)); !slices.Equal(got, want) {
		t.Errorf("anthropic events %v", got)
	}
	resp = w.do(call{path: responsesPath, body: responsesBody("gpt-5.4", true), token: w.token("codex")})
	want = []string{"response.created", "response.output_item.added", "response.output_item.done", "response.completed"}
	if got := eventNames(readEvents(t, resp.Body)); !slices.Equal(got, want) {
		t.Errorf("responses events %v", got)
	}
}

// A client that goes away mid-stream cancels the upstream request.
func TestClientCancelCancelsUpstream(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp := w.do(call{ctx: ctx, path: messagesPath, body: anthropicBody("claude-opus-4-8", true), token: w.token("claude-code"),
		header: http.Header{fakemodel.FaultHeader: {"pause-after=2"}}})
	br := bufio.NewReader(resp.Body)
	if ev := readEventWithin(t, br, 5*time.Second); ev.name != "message_start" {
		t.Fatalf("first event %+v", ev)
	}
	cancel()
	waitFake(t, w.anth, func(r []fakemodel.Request) bool { return len(r) == 1 && r[0].Outcome == fakemodel.OutcomeCanceled })
	rec := w.records(1)[0]
	if rec.Outcome != proxy.OutcomeClientGone || rec.Status != 200 {
		t.Errorf("record %+v", rec)
	}
	// The input tokens of message_start were read before the cancel.
	if !rec.UsageReported || rec.Usage.InputTokens != 20 {
		t.Errorf("partial usage %+v", rec)
	}
}

// The upstream's failures become clear errors in the API's shape.
func TestUpstreamFailures(t *testing.T) {
	t.Parallel()
	// A port with nothing listening.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()

	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, worldConfig{mod: func(o *proxy.Options, _ *world) {
			o.Upstreams[catalog.ProviderAnthropic] = proxy.Upstream{BaseURL: dead, APIKey: "k"}
			o.Upstreams[catalog.ProviderOpenAI] = proxy.Upstream{BaseURL: dead, APIKey: "k"}
		}})
		for _, c := range []call{
			{path: messagesPath, body: anthropicBody("claude-opus-4-8", true), token: w.token("claude-code")},
			{path: responsesPath, body: responsesBody("gpt-5.5", true), token: w.token("codex")},
		} {
			resp := w.do(c)
			body := readAll(t, resp.Body)
			e := decodeErr(t, c.path, body)
			if resp.StatusCode != 502 || !strings.Contains(e.Error.Message, "upstream is unreachable (connection refused)") ||
				strings.Contains(body, dead) || resp.Header.Get("X-Should-Retry") != "true" {
				t.Errorf("%s: %d %s", c.path, resp.StatusCode, body)
			}
		}
		if recs := w.records(2); recs[0].Outcome != proxy.OutcomeUnreachable || recs[0].Reason != proxy.ReasonUpstreamFailed {
			t.Errorf("records %+v", recs)
		}
		if !strings.Contains(w.metricsText(), `agentbroker_proxy_requests_total{provider="openai",model="gpt-5.5",outcome="unreachable"} 1`) {
			t.Errorf("metrics:\n%s", w.metricsText())
		}
	})

	t.Run("error status passed on", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, worldConfig{})
		resp := w.do(call{path: messagesPath, body: anthropicBody("claude-opus-4-8", true), token: w.token("claude-code"),
			header: http.Header{fakemodel.FaultHeader: {"status=529"}}})
		body := readAll(t, resp.Body)
		if e := decodeErr(t, messagesPath, body); resp.StatusCode != 529 || e.Error.Type != "overloaded_error" || !strings.Contains(e.Error.Message, "scripted fault") {
			t.Errorf("%d %s", resp.StatusCode, body)
		}
		if rec := w.records(1)[0]; rec.Outcome != proxy.OutcomeUpstreamError || rec.Status != 529 || rec.UsageReported {
			t.Errorf("record %+v", rec)
		}
	})

	t.Run("disconnect between events", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, worldConfig{})
		resp := w.do(call{path: messagesPath, body: anthropicBody("claude-opus-4-8", true), token: w.token("claude-code"),
			header: http.Header{fakemodel.FaultHeader: {"disconnect-after=2"}}})
		evs := readEvents(t, resp.Body) // a clean end: no read error
		if got := eventNames(evs); !slices.Equal(got, []string{"message_start", "content_block_start", "error"}) {
			t.Fatalf("events %v", got)
		}
		var e apiErr
		if err := json.Unmarshal([]byte(evs[2].data), &e); err != nil || e.Type != "error" || e.Error.Type != "api_error" ||
			!strings.Contains(e.Error.Message, "the anthropic upstream broke off the answer") {
			t.Errorf("error event %s", evs[2].data)
		}
		rec := w.records(1)[0]
		if rec.Outcome != proxy.OutcomeTruncated || rec.Reason != proxy.ReasonUpstreamTruncated || rec.Usage.InputTokens != 20 {
			t.Errorf("record %+v", rec)
		}

		resp = w.do(call{path: responsesPath, body: responsesBody("gpt-5.5", true), token: w.token("codex"),
			header: http.Header{fakemodel.FaultHeader: {"disconnect-after=3"}}})
		evs = readEvents(t, resp.Body)
		if got := eventNames(evs); !slices.Equal(got, []string{"response.created", "response.output_item.added", "response.output_item.done", "response.failed"}) {
			t.Fatalf("events %v", got)
		}
		var failed struct {
			Response struct {
				ID, Status string
				Error      struct{ Code, Message string }
			}
		}
		if err := json.Unmarshal([]byte(evs[3].data), &failed); err != nil || failed.Response.Status != "failed" ||
			!strings.HasPrefix(failed.Response.ID, "resp_") || !strings.Contains(failed.Response.Error.Message, "broke off") {
			t.Errorf("response.failed %s", evs[3].data)
		}
	})

	t.Run("disconnect mid-event or mid-JSON", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, worldConfig{})
		resp := w.do(call{path: messagesPath, body: anthropicBody("claude-opus-4-8", true), token: w.token("claude-code"),
			header: http.Header{fakemodel.FaultHeader: {"truncate-after=2"}}})
		raw, err := io.ReadAll(resp.Body)
		if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) || strings.Count(string(raw), "event: ") != 3 {
			t.Errorf("truncated stream: %v %q", err, raw)
		}
		resp = w.do(call{path: responsesPath, body: responsesBody("gpt-5.5", false), token: w.token("codex"),
			header: http.Header{fakemodel.FaultHeader: {"disconnect-after=0"}}})
		if _, err := io.ReadAll(resp.Body); err == nil {
			t.Errorf("truncated JSON read without error")
		}
		recs := w.records(2)
		for _, r := range recs {
			if r.Outcome != proxy.OutcomeTruncated {
				t.Errorf("record %+v", r)
			}
		}
	})

	t.Run("no response headers in time", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, worldConfig{mod: func(o *proxy.Options, _ *world) { o.ResponseHeaderTimeout = 100 * time.Millisecond }})
		start := time.Now()
		resp := w.do(call{path: responsesPath, body: responsesBody("gpt-5.5", false), token: w.token("codex"),
			header: http.Header{fakemodel.FaultHeader: {"header-delay=30s"}}})
		body := readAll(t, resp.Body)
		if e := decodeErr(t, responsesPath, body); resp.StatusCode != 504 || !strings.Contains(e.Error.Message, "no response headers in time") {
			t.Errorf("%d %s", resp.StatusCode, body)
		}
		if time.Since(start) > 10*time.Second {
			t.Errorf("took %s", time.Since(start))
		}
		waitFake(t, w.oai, func(r []fakemodel.Request) bool { return len(r) == 1 && r[0].Outcome == fakemodel.OutcomeCanceled })
	})

	t.Run("slow stream is not cut", func(t *testing.T) {
		t.Parallel()
		// Slower between events than the header timeout: only the
		// headers are timed. 500ms: the headers themselves must arrive
		// within it on a loaded machine (50ms did not, now and then).
		w := newWorld(t, worldConfig{mod: func(o *proxy.Options, _ *world) { o.ResponseHeaderTimeout = 500 * time.Millisecond }})
		resp := w.do(call{path: messagesPath, body: anthropicBody("claude-opus-4-8", true), token: w.token("claude-code"),
			header: http.Header{fakemodel.FaultHeader: {"delay=700ms"}}})
		if evs := readEvents(t, resp.Body); len(evs) != 6 || evs[5].name != "message_stop" {
			t.Errorf("events %v", eventNames(evs))
		}
	})
}

// Usage is read from streamed and plain answers of both APIs and priced at
// catalog prices (hand-computed here), then counted in the metrics.
func TestUsageAndCost(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldConfig{
		anth: &fakemodel.Options{Usage: fakemodel.Usage{Input: 1000, Output: 500, CacheRead: 2000, CacheWrite: 300}},
		oai:  &fakemodel.Options{Usage: fakemodel.Usage{Input: 1000, Output: 200, CacheRead: 4000}},
	})
	// claude-opus-4-8: $5 in, $25 out, $0.50 cache read, $6.25 5-minute cache write, per million:
	// 1000×5e6 + 500×25e6 + 2000×0.5e6 + 300×6.25e6 = 5e9 + 12.5e9 + 1e9 + 1.875e9 pico-USD.
	const opusCost = catalog.Amount(20_375_000_000) // $0.020375
	// gpt-5.5: $5 in, $30 out, $0.50 cached, per million. The fake reports
	// input_tokens 5000 of which cached_tokens 4000: 1000 uncached.
	// 1000×5e6 + 4000×0.5e6 + 200×30e6 = 5e9 + 2e9 + 6e9.
	const gptCost = catalog.Amount(13_000_000_000) // $0.013
	// o4-mini by its dated alias: $1.10 in, $4.40 out, $0.275 cached:
	// 1000×1.1e6 + 4000×0.275e6 + 200×4.4e6 = 1.1e9 + 1.1e9 + 0.88e9.
	const o4Cost = catalog.Amount(3_080_000_000)
	calls := []struct {
		c     call
		model string
		usage catalog.Usage
		cost  catalog.Amount
	}{
		{call{path: messagesPath, body: anthropicBody("claude-opus-4-8", true), token: w.token("claude-code")}, "claude-opus-4-8",
			catalog.Usage{InputTokens: 1000, OutputTokens: 500, CacheReadTokens: 2000, CacheWrite5mTokens: 300}, opusCost},
		{call{path: messagesPath, body: anthropicBody("claude-opus-4-8", false), token: w.token("claude-code")}, "claude-opus-4-8",
			catalog.Usage{InputTokens: 1000, OutputTokens: 500, CacheReadTokens: 2000, CacheWrite5mTokens: 300}, opusCost},
		{call{path: responsesPath, body: responsesBody("gpt-5.5", true), token: w.token("codex")}, "gpt-5.5",
			catalog.Usage{InputTokens: 1000, OutputTokens: 200, CacheReadTokens: 4000}, gptCost},
		{call{path: responsesPath, body: responsesBody("gpt-5.5", false), token: w.token("codex")}, "gpt-5.5",
			catalog.Usage{InputTokens: 1000, OutputTokens: 200, CacheReadTokens: 4000}, gptCost},
		{call{path: responsesPath, body: responsesBody("o4-mini-2025-04-16", true), token: w.token("codex")}, "o4-mini",
			catalog.Usage{InputTokens: 1000, OutputTokens: 200, CacheReadTokens: 4000}, o4Cost},
		{call{path: countPath, body: anthropicBody("claude-opus-4-8", false), token: w.token("claude-code")}, "claude-opus-4-8",
			catalog.Usage{}, 0},
	}
	for i, c := range calls {
		resp := w.do(c.c)
		if body := readAll(t, resp.Body); resp.StatusCode != 200 {
			t.Fatalf("call %d: %d %s", i, resp.StatusCode, body)
		}
		rec := w.records(i + 1)[i]
		if rec.Model != c.model || rec.Usage != c.usage || rec.Cost != c.cost || rec.UsageReported != (c.cost != 0) ||
			rec.Outcome != proxy.OutcomeOK || rec.Status != 200 || rec.Session == "" || rec.Project != "proj-1" {
			t.Errorf("call %d (%s): record %+v", i, c.c.path, rec)
		}
	}
	if opusCost.String() != "$0.020375" || gptCost.String() != "$0.013000" {
		t.Errorf("costs %s %s", opusCost, gptCost)
	}
	text := w.metricsText()
	for _, want := range []string{
		`agentbroker_proxy_requests_total{provider="anthropic",model="claude-opus-4-8",outcome="ok"} 3`,
		`agentbroker_proxy_requests_total{provider="openai",model="gpt-5.5",outcome="ok"} 2`,
		`agentbroker_proxy_requests_total{provider="openai",model="o4-mini",outcome="ok"} 1`,
		`agentbroker_proxy_tokens_total{model="claude-opus-4-8",kind="input"} 2000`,
		`agentbroker_proxy_tokens_total{model="claude-opus-4-8",kind="output"} 1000`,
		`agentbroker_proxy_tokens_total{model="claude-opus-4-8",kind="cache_read"} 4000`,
		`agentbroker_proxy_tokens_total{model="claude-opus-4-8",kind="cache_write_5m"} 600`,
		`agentbroker_proxy_tokens_total{model="gpt-5.5",kind="cache_read"} 8000`,
		`agentbroker_proxy_cost_picousd_total{model="claude-opus-4-8"} 40750000000`,
		`agentbroker_proxy_cost_picousd_total{model="gpt-5.5"} 26000000000`,
		`agentbroker_proxy_cost_picousd_total{model="o4-mini"} 3080000000`,
		`agentbroker_proxy_cost_usd_total{provider="anthropic",model="claude-opus-4-8"} 0.04075`,
		`agentbroker_proxy_cost_usd_total{provider="openai",model="gpt-5.5"} 0.026`,
		`agentbroker_proxy_cost_usd_total{provider="openai",model="o4-mini"} 0.00308`,
		`agentbroker_proxy_time_to_first_byte_seconds_count{provider="anthropic"} 3`,
		`agentbroker_proxy_time_to_first_byte_seconds_count{provider="openai"} 3`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", text)
	}
}

// Many concurrent streams through one proxy (for the race detector).
func TestConcurrentStreams(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldConfig{anth: &fakemodel.Options{TextChunks: 8}})
	const n = 16
	errs := make(chan error, n)
	for i := range n {
		go func() {
			path, body, tok := messagesPath, anthropicBody("claude-opus-4-8", true), w.token("claude-code")
			if i%2 == 1 {
				path, body, tok = responsesPath, responsesBody("gpt-5.5", i%4 == 1), w.token("codex")
			}
			req, _ := http.NewRequest(http.MethodPost, w.srv.URL+path, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := w.client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			if _, err := io.ReadAll(resp.Body); err != nil || resp.StatusCode != 200 {
				errs <- errors.Join(err, errors.New(resp.Status))
				return
			}
			errs <- nil
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if recs := w.records(n); len(recs) != n {
		t.Errorf("%d records", len(recs))
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	svc := tokenService(t)
	for _, o := range []*proxy.Options{
		nil,
		{},
		{Tokens: svc, Upstreams: map[catalog.Provider]proxy.Upstream{"openai": {BaseURL: "ftp://x"}}},
		{Tokens: svc, Upstreams: map[catalog.Provider]proxy.Upstream{"openai": {BaseURL: "/v1"}}},
		{Tokens: svc, Upstreams: map[catalog.Provider]proxy.Upstream{"openai": {BaseURL: "http://u:p@x"}}},
		{Tokens: svc, Upstreams: map[catalog.Provider]proxy.Upstream{"openai": {BaseURL: "http://x?a=b"}}},
		{Tokens: svc, Upstreams: map[catalog.Provider]proxy.Upstream{"openai": {BaseURL: "http://x", APIKey: "a\nb"}}},
	} {
		if _, err := proxy.New(o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}

// A base URL with a path (a gateway) keeps it.
func TestUpstreamBasePath(t *testing.T) {
	t.Parallel()
	var got string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.Path + "?" + r.URL.RawQuery
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"usage":{"input_tokens":1,"output_tokens":1}}`))
	}))
	defer up.Close()
	w := newWorld(t, worldConfig{mod: func(o *proxy.Options, _ *world) {
		o.Upstreams[catalog.ProviderAnthropic] = proxy.Upstream{BaseURL: up.URL + "/gw/acct/anthropic/", APIKey: "k"}
	}})
	resp := w.do(call{path: messagesPath, body: anthropicBody("claude-opus-4-8", false), token: w.token("claude-code")})
	readAll(t, resp.Body)
	if got != "/gw/acct/anthropic/v1/messages?beta=true" {
		t.Errorf("upstream path %q", got)
	}
}

func TestBaseURLs(t *testing.T) {
	t.Parallel()
	a, o := proxy.BaseURLs("http://127.0.0.1:7420/")
	if a != "http://127.0.0.1:7420/proxy/anthropic" || o != "http://127.0.0.1:7420/proxy/openai/v1" {
		t.Errorf("%q %q", a, o)
	}
}

// A client that hangs up once the answer's last event arrived (Codex closes
// on response.completed) got the whole answer; so did one whose upstream
// broke off after that event. Neither is a failure, and nothing is appended.
func TestHangUpAfterLastEvent(t *testing.T) {
	t.Parallel()
	const stream = "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\"}}\n\n" +
		"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"usage\":{\"input_tokens\":10,\"output_tokens\":2}}}\n\n"
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write([]byte(stream))
		w.(http.Flusher).Flush()
		if r.Header.Get("X-Then") == "break" {
			panic(http.ErrAbortHandler)
		}
		<-r.Context().Done() // keep the stream open until the client leaves
	}))
	defer up.Close()
	w := newWorld(t, worldConfig{mod: func(o *proxy.Options, _ *world) {
		o.Upstreams[catalog.ProviderOpenAI] = proxy.Upstream{BaseURL: up.URL, APIKey: "k"}
	}})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp := w.do(call{ctx: ctx, path: responsesPath, body: responsesBody("gpt-5.5", true), token: w.token("codex")})
	br := bufio.NewReader(resp.Body)
	for _, want := range []string{"response.created", "response.completed"} {
		if ev := readEventWithin(t, br, 5*time.Second); ev.name != want {
			t.Fatalf("event %+v", ev)
		}
	}
	cancel()
	rec := w.records(1)[0]
	if rec.Outcome != proxy.OutcomeOK || !rec.UsageReported || rec.Usage.InputTokens != 10 {
		t.Errorf("hang-up record %+v", rec)
	}

	resp = w.do(call{path: responsesPath, body: responsesBody("gpt-5.5", true), token: w.token("codex"), header: http.Header{"X-Then": {"break"}}})
	if got := readAll(t, resp.Body); got != stream {
		t.Errorf("after a break past the last event: %q", got)
	}
	if rec := w.records(2)[1]; rec.Outcome != proxy.OutcomeOK {
		t.Errorf("break record %+v", rec)
	}
}

// TestSessionModelBinding: an inference token that names its session's
// model is good for that model and the agent's declared side models. Any
// other model, even one the agent's policy allows, is refused in the API's
// own error shape before any upstream call, and recorded as a model
// refusal. A token without a model claim keeps the agent's allowlist.
func TestSessionModelBinding(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldConfig{})
	bound := func(agent, model string) string {
		raw, _, err := w.tokens.Mint(context.Background(), tokens.Grant{Subject: "user-1", Project: "proj-1",
			Session: "sess-bound-" + agent, Agent: agent, Model: model, Audience: tokens.AudienceProxy,
			Scopes: []tokens.Scope{tokens.ScopeInference}})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	claude, codex := bound("claude-code", "claude-sonnet-4-6"), bound("codex", "gpt-5.4")

	// Refused: models the agent may otherwise use, but not this session.
	for _, tt := range []struct {
		token, path, body, model string
		anthType, oaiCode        string
	}{
		{claude, messagesPath, anthropicBody("claude-opus-4-8", true), "claude-opus-4-8", "permission_error", ""},
		{claude, countPath, anthropicBody("claude-opus-4-8", false), "claude-opus-4-8", "permission_error", ""},
		{codex, responsesPath, responsesBody("gpt-5.4-mini", true), "gpt-5.4-mini", "", "model_not_allowed"},
	} {
		resp := w.do(call{path: tt.path, body: tt.body, token: tt.token})
		got := readAll(t, resp.Body)
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-Agentbroker-Refusal") != string(proxy.ReasonNotSessionModel) {
			t.Errorf("%s on %s: %d %s %s, want 403 not_session_model", tt.model, tt.path, resp.StatusCode,
				resp.Header.Get("X-Agentbroker-Refusal"), got)
			continue
		}
		e := decodeErr(t, tt.path, got)
		if tt.anthType != "" && e.Error.Type != tt.anthType {
			t.Errorf("%s: error type %q, want %q", tt.model, e.Error.Type, tt.anthType)
		}
		if tt.oaiCode != "" && deref(e.Error.Code) != tt.oaiCode {
			t.Errorf("%s: error code %q, want %q", tt.model, deref(e.Error.Code), tt.oaiCode)
		}
		if !strings.Contains(e.Error.Message, "this session was given") || !strings.Contains(e.Error.Message, tt.model) {
			t.Errorf("%s: message %q does not say why", tt.model, e.Error.Message)
		}
	}
	if n, m := w.anth.Count(), w.oai.Count(); n != 0 || m != 0 {
		t.Fatalf("refused requests reached the upstreams: anthropic %d, openai %d", n, m)
	}
	recs := w.records(3)
	for _, r := range recs {
		if r.Outcome != proxy.OutcomeRefused || r.Reason != proxy.ReasonNotSessionModel || !r.Reason.ModelRefusal() ||
			r.WireModel == "" || r.Session == "" {
			t.Errorf("record %+v, want a model refusal of the session's call", r)
		}
	}

	// Allowed: the chosen model, its declared side model, and an unbound
	// token's whole allowlist.
	for _, tt := range []struct{ token, path, body string }{
		{claude, messagesPath, anthropicBody("claude-sonnet-4-6", false)},
		{claude, messagesPath, anthropicBody("claude-haiku-4-5", false)},
		{claude, messagesPath, anthropicBody("claude-haiku-4-5-20251001", false)},
		{codex, responsesPath, responsesBody("gpt-5.4", false)},
		{w.token("claude-code"), messagesPath, anthropicBody("claude-opus-4-8", false)},
	} {
		resp := w.do(call{path: tt.path, body: tt.body, token: tt.token})
		if got := readAll(t, resp.Body); resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d %s, want 200", tt.body, resp.StatusCode, got)
		}
	}
	if n, m := w.anth.Count(), w.oai.Count(); n != 4 || m != 1 {
		t.Errorf("upstream calls: anthropic %d, openai %d; want 4 and 1", n, m)
	}
}
