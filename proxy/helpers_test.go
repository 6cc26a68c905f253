package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/agentbroker/agentbroker/catalog"
	"github.com/agentbroker/agentbroker/internal/fakemodel"
	"github.com/agentbroker/agentbroker/internal/metrics"
	"github.com/agentbroker/agentbroker/proxy"
	"github.com/agentbroker/agentbroker/store/sqlite"
	"github.com/agentbroker/agentbroker/tokens"
)

// The platform keys the fake upstreams expect.
const (
	anthropicKey = "anthropic-platform-key"
	openAIKey    = "openai-platform-key"
)

// shared is one store and token service for the whole test binary (opening
// SQLite per test would dominate the run time).
var shared struct {
	once sync.Once
	dir  string
	db   *sqlite.DB
	svc  *tokens.Service
	err  error
}

func tokenService(tb testing.TB) *tokens.Service {
	tb.Helper()
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "proxy-test-")
		if shared.err != nil {
			return
		}
		ctx := context.Background()
		shared.db, shared.err = sqlite.Open(ctx, sqlite.Options{Dir: shared.dir})
		if shared.err != nil {
			return
		}
		shared.svc, shared.err = tokens.New(ctx, shared.db, shared.db, nil)
	})
	if shared.err != nil {
		tb.Fatalf("token service: %v", shared.err)
	}
	return shared.svc
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.db != nil {
		shared.db.Close()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// world is a proxy in front of two fake upstreams, one per provider.
type world struct {
	t      testing.TB
	anth   *fakemodel.Server
	oai    *fakemodel.Server
	rec    *proxy.MemoryRecorder
	reg    *metrics.Registry
	p      *proxy.Proxy
	srv    *httptest.Server
	client *http.Client
	tokens *tokens.Service
	mu     sync.Mutex
	minted map[string]string
}

type worldConfig struct {
	anth, oai *fakemodel.Options           // the fakes' options (APIKey is set)
	mod       func(*proxy.Options, *world) // adjusts the proxy's options
}

func newWorld(t testing.TB, cfg worldConfig) *world {
	t.Helper()
	w := &world{t: t, rec: &proxy.MemoryRecorder{}, reg: metrics.NewRegistry(), tokens: tokenService(t), minted: map[string]string{}}
	start := func(o *fakemodel.Options, key string) *fakemodel.Server {
		var opts fakemodel.Options
		if o != nil {
			opts = *o
		}
		opts.APIKey = key
		f := fakemodel.New(&opts)
		if _, err := f.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	w.anth = start(cfg.anth, anthropicKey)
	w.oai = start(cfg.oai, openAIKey)
	opts := &proxy.Options{
		Tokens: w.tokens,
		Upstreams: map[catalog.Provider]proxy.Upstream{
			catalog.ProviderAnthropic: {BaseURL: w.anth.URL(), APIKey: anthropicKey},
			catalog.ProviderOpenAI:    {BaseURL: w.oai.URL(), APIKey: openAIKey},
		},
		Recorder: w.rec,
		Metrics:  w.reg,
	}
	if cfg.mod != nil {
		cfg.mod(opts, w)
	}
	p, err := proxy.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	w.p = p
	mux := http.NewServeMux()
	p.Mount(mux)
	w.srv = httptest.NewServer(mux)
	tr := &http.Transport{}
	w.client = &http.Client{Transport: tr}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		w.srv.CloseClientConnections()
		w.srv.Close()
		p.Close()
	})
	return w
}

// token mints (once per world) an inference token for agent, session
// "sess-<agent>".
func (w *world) token(agent string) string {
	w.t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if raw, ok := w.minted[agent]; ok {
		return raw
	}
	raw := w.mint(agent, tokens.AudienceProxy, tokens.ScopeInference)
	w.minted[agent] = raw
	return raw
}

func (w *world) mint(agent string, aud tokens.Audience, scopes ...tokens.Scope) string {
	w.t.Helper()
	raw, _, err := w.tokens.Mint(context.Background(), tokens.Grant{Subject: "user-1", Project: "proj-1",
		Session: "sess-" + agent, Agent: agent, Audience: aud, Scopes: scopes})
	if err != nil {
		w.t.Fatal(err)
	}
	return raw
}

// call is one request to the proxy.
type call struct {
	path   string // under the broker, e.g. "/proxy/anthropic/v1/messages?beta=true"
	body   string
	token  string // sent as x-api-key on Anthropic paths, Bearer on OpenAI paths, unless bearer/apiKey say otherwise
	bearer bool   // force Authorization: Bearer
	header http.Header
	ctx    context.Context
}

func (w *world) do(c call) *http.Response {
	w.t.Helper()
	ctx := c.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.srv.URL+c.path, strings.NewReader(c.body))
	if err != nil {
		w.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, vs := range c.header {
		req.Header[k] = vs
	}
	if c.token != "" {
		if strings.HasPrefix(c.path, proxy.AnthropicPrefix) && !c.bearer {
			req.Header.Set("X-Api-Key", c.token)
		} else {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
	}
	resp, err := w.client.Do(req)
	if err != nil {
		w.t.Fatalf("POST %s: %v", c.path, err)
	}
	w.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func readAll(t testing.TB, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

// Request bodies.
func anthropicBody(model string, stream bool) string {
	return fmt.Sprintf(`{"model":%q,"max_tokens":64,"stream":%v,"messages":[{"role":"user","content":"hello"}]}`, model, stream)
}

func responsesBody(model string, stream bool) string {
	return fmt.Sprintf(`{"model":%q,"stream":%v,"input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"hello"}]}]}`, model, stream)
}

const (
	messagesPath  = proxy.AnthropicPrefix + "/v1/messages?beta=true"
	countPath     = proxy.AnthropicPrefix + "/v1/messages/count_tokens"
	responsesPath = proxy.OpenAIPrefix + "/v1/responses"
	chatPath      = proxy.OpenAIPrefix + "/v1/chat/completions"
)

// apiErr is either API's error body, decoded.
type apiErr struct {
	// Anthropic
	Type  string `json:"type"`
	Error struct {
		Type    string  `json:"type"`
		Message string  `json:"message"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

// decodeErr decodes an error body and checks its shape for the path's API.
func decodeErr(t testing.TB, path, body string) apiErr {
	t.Helper()
	var e apiErr
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	if strings.HasPrefix(path, proxy.AnthropicPrefix) {
		if e.Type != "error" || e.Error.Type == "" || e.Error.Message == "" || e.Error.Code != nil || e.Error.Param != nil {
			t.Fatalf("not an Anthropic error: %s", body)
		}
	} else {
		if e.Type != "" || e.Error.Type == "" || e.Error.Message == "" || !strings.Contains(body, `"param":`) || !strings.Contains(body, `"code":`) {
			t.Fatalf("not an OpenAI error: %s", body)
		}
	}
	return e
}

func deref(s *string) string {
	if s == nil {
		return "<null>"
	}
	return *s
}

// event is one server-sent event.
type event struct{ name, data string }

// readEvent reads the next event from br (nil at a clean EOF).
func readEvent(br *bufio.Reader) (*event, error) {
	var ev event
	started := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if err == io.EOF && !started && line == "" {
				return nil, nil
			}
			return nil, fmt.Errorf("read event: %w (partial %q)", err, line)
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if started {
				return &ev, nil
			}
		case strings.HasPrefix(line, "event:"):
			ev.name, started = strings.TrimSpace(strings.TrimPrefix(line, "event:")), true
		case strings.HasPrefix(line, "data:"):
			ev.data, started = strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "), true
		}
	}
}

// readEventWithin is readEvent, failing the test if no event comes within d
// (a proxy that buffers would hang the read).
func readEventWithin(t testing.TB, br *bufio.Reader, d time.Duration) *event {
	t.Helper()
	type result struct {
		ev  *event
		err error
	}
	ch := make(chan result, 1)
	go func() {
		ev, err := readEvent(br)
		ch <- result{ev, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil || r.ev == nil {
			t.Fatalf("read event: %+v, %v", r.ev, r.err)
		}
		return r.ev
	case <-time.After(d):
		t.Fatalf("no event within %s: the proxy holds the stream back", d)
		return nil
	}
}

func readEvents(t testing.TB, r io.Reader) []event {
	t.Helper()
	br := bufio.NewReader(r)
	var out []event
	for {
		ev, err := readEvent(br)
		if err != nil {
			t.Fatal(err)
		}
		if ev == nil {
			return out
		}
		out = append(out, *ev)
	}
}

func eventNames(evs []event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.name)
	}
	return out
}

// records waits for n usage records.
func (w *world) records(n int) []proxy.UsageRecord {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	recs, err := w.rec.Wait(ctx, n)
	if err != nil {
		w.t.Fatal(err)
	}
	return recs
}

// metricsText is the registry's exposition.
func (w *world) metricsText() string {
	var b bytes.Buffer
	w.reg.WriteText(&b)
	return b.String()
}

// waitFake waits until cond holds on the fake's requests.
func waitFake(t testing.TB, f *fakemodel.Server, cond func([]fakemodel.Request) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.WaitFor(ctx, cond); err != nil {
		t.Fatalf("%v; requests: %+v", err, f.Requests())
	}
}
