package proxy_test

import (
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/agentbroker/agentbroker/catalog"
	"github.com/agentbroker/agentbroker/proxy"
)

// FuzzProxyRequest posts arbitrary bodies with a valid inference token to
// each route of the whole proxy (token, body, catalog, upstream): it
// never panics; a request reaches an upstream only when its body is a
// JSON object whose model the catalog resolves for the token's agent;
// every refusal is the vendor's JSON error shape with a message, and is
// recorded as refused; nothing is answered 5xx by the proxy itself.
func FuzzProxyRequest(f *testing.F) {
	w := newWorld(f, worldConfig{})
	cat := catalog.Embedded()
	routes := []struct{ path, agent string }{
		{messagesPath, "claude-code"}, {responsesPath, "codex"}, {chatPath, "codex"}, {countPath, "claude-code"},
	}
	for i, s := range []string{
		`{"model":"claude-opus-4-8","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"gpt-5.5","input":"hi"}`,
		`{"model":"o3","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"claude-opus-4-8","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"claude-opus-4-8","Model":"x"}`, `{"model":"\u0063laude-opus-4-8"}`, `{"model":"claude-99"}`,
		`[]`, `{`, ``, "{\"model\":\"\xff\"}", `{"model":"gpt-5.5","speed":"fast"}`,
	} {
		f.Add(byte(i%len(routes)), []byte(s))
	}
	toks := map[string]string{"claude-code": w.token("claude-code"), "codex": w.token("codex")}
	f.Fuzz(func(t *testing.T, route byte, body []byte) {
		w.t = t // the inputs of one process run one at a time
		rt := routes[int(route)%len(routes)]
		before := w.anth.Count() + w.oai.Count()
		records := len(w.rec.Records())
		resp := w.do(call{path: rt.path, body: string(body), token: toks[rt.agent]})
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		reached := w.anth.Count()+w.oai.Count() > before

		var m struct {
			Model *string `json:"model"`
		}
		resolves := false
		if json.Unmarshal(body, &m) == nil && m.Model != nil {
			_, err := cat.Resolve(rt.agent, *m.Model)
			resolves = err == nil
		}
		if reached && !resolves {
			t.Fatalf("%s: a body whose model does not resolve for %s reached the upstream: %q", rt.path, rt.agent, body)
		}
		if resp.StatusCode >= 500 && !reached {
			t.Fatalf("%s: the proxy answered %d itself: %s", rt.path, resp.StatusCode, data)
		}
		if reached {
			return // the fake upstream's answer, passed on
		}
		if resp.StatusCode < 400 {
			t.Fatalf("%s: %d without an upstream call for %q", rt.path, resp.StatusCode, body)
		}
		var e struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(data, &e) != nil || strings.TrimSpace(e.Error.Message) == "" {
			t.Fatalf("%s: refusal %d is not a vendor JSON error: %s", rt.path, resp.StatusCode, data)
		}
		// Records are written once a request is finished, so an earlier
		// request's may land after this one's.
		deadline := time.Now().Add(10 * time.Second)
		for {
			recs := w.rec.Records()
			found := false
			for _, r := range recs[records:] {
				found = found || r.Outcome == proxy.OutcomeRefused && r.Status == resp.StatusCode && r.Route == routeName(rt.path)
			}
			if found {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: refusal %d not recorded as refused: %+v", rt.path, resp.StatusCode, recs[records:])
			}
			time.Sleep(time.Millisecond)
		}
	})
}

func routeName(path string) proxy.Route {
	switch {
	case strings.Contains(path, "count_tokens"):
		return proxy.RouteCountTokens
	case strings.Contains(path, "/messages"):
		return proxy.RouteMessages
	case strings.Contains(path, "/responses"):
		return proxy.RouteResponses
	}
	return proxy.RouteChat
}
