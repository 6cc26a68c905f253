package proxy_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/agentbroker/agentbroker/catalog"
	"github.com/agentbroker/agentbroker/internal/fakemodel"
	"github.com/agentbroker/agentbroker/proxy"
	"github.com/agentbroker/agentbroker/store/sqlite"
	"github.com/agentbroker/agentbroker/tokens"
)

// The base URLs agent profiles point agents at.
func ExampleBaseURLs() {
	anthropic, openai := proxy.BaseURLs("http://127.0.0.1:7420")
	fmt.Println("ANTHROPIC_BASE_URL=" + anthropic)
	fmt.Println(`base_url = "` + openai + `"`)
	// Output:
	// ANTHROPIC_BASE_URL=http://127.0.0.1:7420/proxy/anthropic
	// base_url = "http://127.0.0.1:7420/proxy/openai/v1"
}

// A proxy in front of a scripted Anthropic upstream: the session's
// inference token opens the catalog's models for its agent, and nothing
// else.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "proxy-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := sqlite.Open(ctx, sqlite.Options{Dir: dir})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	svc, err := tokens.New(ctx, db, db, nil)
	if err != nil {
		log.Fatal(err)
	}

	upstream := fakemodel.New(&fakemodel.Options{APIKey: "platform-key", Text: "hi"})
	upURL, err := upstream.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer upstream.Close()

	rec := &proxy.MemoryRecorder{}
	p, err := proxy.New(&proxy.Options{
		Tokens:    svc,
		Upstreams: map[catalog.Provider]proxy.Upstream{catalog.ProviderAnthropic: {BaseURL: upURL, APIKey: "platform-key"}},
		Recorder:  rec,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	mux := http.NewServeMux()
	p.Mount(mux)
	broker := httptest.NewServer(mux)
	defer broker.Close()

	token, _, err := svc.Mint(ctx, tokens.Grant{Subject: "alice", Project: "proj-1", Session: "sess-1",
		Agent: "claude-code", Audience: tokens.AudienceProxy, Scopes: []tokens.Scope{tokens.ScopeInference}})
	if err != nil {
		log.Fatal(err)
	}
	anthropicURL, _ := proxy.BaseURLs(broker.URL)
	for _, model := range []string{"claude-opus-4-8", "claude-3-5-sonnet-20241022"} {
		req, _ := http.NewRequest(http.MethodPost, anthropicURL+"/v1/messages",
			strings.NewReader(`{"model":"`+model+`","max_tokens":16,"messages":[{"role":"user","content":"hello"}]}`))
		req.Header.Set("x-api-key", token) // what Claude Code sends with ANTHROPIC_API_KEY=<token>
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, strings.Contains(string(body), `"text":"hi"`), resp.Header.Get("X-Agentbroker-Refusal") != "")
	}
	recs, _ := rec.Wait(ctx, 2)
	fmt.Println(recs[0].Session, recs[0].Model, recs[0].Usage.InputTokens, recs[0].Usage.OutputTokens, recs[0].Cost)
	fmt.Println(recs[1].Outcome, recs[1].Message)
	fmt.Println("upstream requests:", upstream.Count())
	// Output:
	// 200 true false
	// 404 false true
	// sess-1 claude-opus-4-8 20 10 $0.000350
	// refused agentbroker proxy: model "claude-3-5-sonnet-20241022" is retired; use "claude-sonnet-5"
	// upstream requests: 1
}
