package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentbroker/agentbroker/catalog"
	"github.com/agentbroker/agentbroker/internal/metrics"
	"github.com/agentbroker/agentbroker/tokens"
)

// Path prefixes the proxy is mounted under: each provider's PathPrefix in
// the catalog's provider table. An agent's base URL is the broker's URL
// followed by the provider's AgentBasePath (see BaseURL).
const (
	// AnthropicPrefix serves Anthropic Messages: Claude Code gets
	// ANTHROPIC_BASE_URL=<broker>/proxy/anthropic and posts
	// /proxy/anthropic/v1/messages?beta=true.
	AnthropicPrefix = "/proxy/anthropic"
	// OpenAIPrefix serves OpenAI Responses and Chat Completions: Codex gets
	// base_url = "<broker>/proxy/openai/v1" and posts
	// /proxy/openai/v1/responses.
	OpenAIPrefix = "/proxy/openai"
)

// Defaults of Options.
const (
	DefaultMaxBodyBytes          = 32 << 20
	DefaultResponseHeaderTimeout = 10 * time.Minute
	// DefaultAnthropicVersion is sent upstream when the client sends no
	// anthropic-version header.
	DefaultAnthropicVersion = "2023-06-01"
)

// BaseURLs returns the base URLs agents are configured with for a broker
// listening at brokerURL (e.g. "http://127.0.0.1:7420"): Anthropic's
// (ANTHROPIC_BASE_URL, without /v1, as Claude Code wants it) and OpenAI's
// (Codex's model provider base_url, with /v1).
func BaseURLs(brokerURL string) (anthropic, openaiV1 string) {
	return BaseURL(brokerURL, catalog.ProviderAnthropic), BaseURL(brokerURL, catalog.ProviderOpenAI)
}

// BaseURL returns the base URL an agent is given for provider p's API on a
// broker at brokerURL: the broker's URL and the provider's AgentBasePath
// ("" for a provider not in the table).
func BaseURL(brokerURL string, p catalog.Provider) string {
	info, ok := catalog.LookupProvider(p)
	if !ok {
		return ""
	}
	return strings.TrimRight(brokerURL, "/") + info.AgentBasePath
}

// Route is an API route the proxy serves.
type Route string

// The routes, relative to their prefix.
const (
	RouteMessages    Route = "messages"     // POST /proxy/anthropic/v1/messages
	RouteCountTokens Route = "count_tokens" // POST /proxy/anthropic/v1/messages/count_tokens
	RouteResponses   Route = "responses"    // POST /proxy/openai/v1/responses
	RouteChat        Route = "chat"         // POST /proxy/openai/v1/chat/completions
)

// Upstream is where a provider's models go.
type Upstream struct {
	// BaseURL is the provider API's root, to which the API paths
	// (/v1/messages, /v1/responses…) are appended, e.g.
	// "https://api.anthropic.com" or "https://api.openai.com". A path is
	// kept (a gateway's "https://gw.example/anthropic"). Required.
	BaseURL string
	// APIKey is the platform's key (see LoadKey), sent the way the
	// provider's API takes it (catalog.ProviderInfo.AuthHeader). Empty means only sessions with their own key
	// (Options.UserKey) can use this upstream.
	APIKey string
}

// Options configure a Proxy.
type Options struct {
	// Tokens verifies inference tokens (audience tokens.AudienceProxy,
	// scope tokens.ScopeInference). Required.
	Tokens *tokens.Service
	// Catalog decides what each agent may use. Nil means catalog.Embedded().
	Catalog *catalog.Catalog
	// Upstreams by provider. A model whose provider has none is refused
	// with 503 before any upstream call; nothing is ever routed to a
	// default.
	Upstreams map[catalog.Provider]Upstream
	// UserKey, when set, is asked for the session's own key for a
	// provider (passthrough): when it returns ok with a key, that key is
	// sent upstream instead of the platform's. Nil means platform keys only.
	UserKey func(ctx context.Context, c tokens.Claims, p catalog.Provider) (key string, ok bool)
	// Recorder receives one UsageRecord per authenticated request. Nil
	// means none.
	Recorder Recorder
	// Budget, when set, is asked before each upstream call whether the
	// session may still spend (see Budget). Nil means no budgets.
	Budget Budget
	// Metrics is where the proxy's series are registered (once: two
	// proxies cannot share a registry). Nil means a private registry.
	Metrics *metrics.Registry
	// Logger receives a line per request and per refusal, never a token or
	// a key. Nil means silent.
	Logger *slog.Logger
	// MaxBodyBytes caps request bodies (413 beyond). Zero means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// ResponseHeaderTimeout bounds the wait for the upstream's response
	// headers (a non-streamed answer sends them only when it is complete).
	// There is no overall timeout: a stream lasts as long as the upstream
	// and the client keep it. Zero means DefaultResponseHeaderTimeout.
	// Ignored when Transport is set.
	ResponseHeaderTimeout time.Duration
	// Transport makes the upstream requests. Nil means a clone of
	// http.DefaultTransport with ResponseHeaderTimeout.
	Transport http.RoundTripper
}

// Proxy is the inference proxy. It is safe for concurrent use.
type Proxy struct {
	tokens    *tokens.Service
	catalog   *catalog.Catalog
	upstreams map[catalog.Provider]upstream
	userKey   func(context.Context, tokens.Claims, catalog.Provider) (string, bool)
	recorder  Recorder
	budget    Budget
	log       *slog.Logger
	maxBody   int64
	transport http.RoundTripper
	ownTr     *http.Transport // the transport New made, closed by Close
	m         *meters
	bufs      sync.Pool
	handlers  map[Route]http.Handler
	policies  map[catalog.Provider]tokens.Policy // what a request's token must pass, per API family
}

type upstream struct {
	base   *url.URL
	apiKey string
}

// New returns a proxy, or an error naming what is wrong with opts.
func New(opts *Options) (*Proxy, error) {
	if opts == nil || opts.Tokens == nil {
		return nil, errors.New("proxy: new: Options.Tokens is required")
	}
	o := *opts
	p := &Proxy{tokens: o.Tokens, catalog: o.Catalog, userKey: o.UserKey, recorder: o.Recorder, budget: o.Budget, log: o.Logger,
		maxBody: o.MaxBodyBytes, transport: o.Transport, upstreams: map[catalog.Provider]upstream{}}
	if p.catalog == nil {
		p.catalog = catalog.Embedded()
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.maxBody <= 0 {
		p.maxBody = DefaultMaxBodyBytes
	}
	for prov, up := range o.Upstreams {
		if _, ok := adapterFor(prov); !ok {
			return nil, fmt.Errorf("proxy: new: upstream %s: no such provider (known: %s)", prov, providerList())
		}
		u, err := url.Parse(up.BaseURL)
		switch {
		case err != nil:
			return nil, fmt.Errorf("proxy: new: upstream %s: base URL: %w", prov, err)
		case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
			return nil, fmt.Errorf("proxy: new: upstream %s: base URL %q is not an absolute http(s) URL", prov, up.BaseURL)
		case u.User != nil || u.RawQuery != "" || u.Fragment != "":
			return nil, fmt.Errorf("proxy: new: upstream %s: base URL must have no user info, query or fragment", prov)
		}
		if up.APIKey != "" {
			if _, err := checkKey(up.APIKey); err != nil {
				return nil, fmt.Errorf("proxy: new: upstream %s: API key: %w", prov, err)
			}
		}
		u.Path = strings.TrimRight(u.Path, "/")
		u.RawPath = ""
		p.upstreams[prov] = upstream{base: u, apiKey: up.APIKey}
	}
	if p.transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = o.ResponseHeaderTimeout
		if t.ResponseHeaderTimeout <= 0 {
			t.ResponseHeaderTimeout = DefaultResponseHeaderTimeout
		}
		t.MaxIdleConnsPerHost = 64
		p.transport, p.ownTr = t, t
	}
	reg := o.Metrics
	if reg == nil {
		reg = metrics.NewRegistry()
	}
	p.m = newMeters(reg)
	p.bufs.New = func() any { b := make([]byte, 32<<10); return &b }
	p.handlers = map[Route]http.Handler{}
	p.policies = map[catalog.Provider]tokens.Policy{}
	for _, a := range adapters {
		p.policies[a.provider] = tokens.Policy{
			Audience:      tokens.AudienceProxy,
			Scopes:        []tokens.Scope{tokens.ScopeInference},
			AcceptAPIKey:  true,
			APIKeyHeaders: a.tokenHeaders,
			Realm:         "agentbroker-proxy",
		}
	}
	for _, rt := range routes {
		p.handlers[rt.name] = p.authenticated(rt)
	}
	return p, nil
}

// Mount registers the proxy's routes on mux (net/http ServeMux pattern
// syntax): POST on each API path under each provider's prefix
// (AnthropicPrefix, OpenAIPrefix…), and an API-shaped 404 (405 for another
// method) for everything else under them.
func (p *Proxy) Mount(mux interface{ Handle(string, http.Handler) }) {
	for _, a := range adapters {
		byModel := map[string]bool{}
		for _, rt := range a.routes {
			switch {
			case rt.action == "":
				mux.Handle("POST "+a.prefix+rt.path, p.handlers[rt.name])
			case !byModel[rt.path]:
				byModel[rt.path] = true
				mux.Handle("POST "+a.prefix+rt.path+"{call}", p.actions(a, rt.path))
			}
		}
		mux.Handle(a.prefix+"/", p.unrouted(a))
	}
}

// pathModelKey is the context key of the model ID read from the path.
type pathModelKey struct{}

// actions serves the routes of a whose model is in the path after path:
// "<model>:<action>" picks the route by its action.
func (p *Proxy) actions(a *adapter, path string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		call := r.PathValue("call")
		if i := strings.LastIndexByte(call, ':'); i > 0 {
			model, action := call[:i], call[i+1:]
			for _, rt := range a.routes {
				if rt.action != "" && rt.path == path && rt.action == action {
					ctx := context.WithValue(r.Context(), pathModelKey{}, model)
					p.handlers[rt.name].ServeHTTP(w, r.WithContext(ctx))
					return
				}
			}
		}
		p.unrouted(a).ServeHTTP(w, r)
	})
}

// providerList names the providers the proxy has adapters for.
func providerList() string {
	names := make([]string, len(adapters))
	for i, a := range adapters {
		names[i] = string(a.provider)
	}
	return strings.Join(names, ", ")
}

// Close closes the idle upstream connections of the transport New made.
// The proxy still works afterwards; it is for tests and shutdown.
func (p *Proxy) Close() {
	if p.ownTr != nil {
		p.ownTr.CloseIdleConnections()
	}
}

// unrouted answers a path under a's prefix that is not a route.
func (p *Proxy) unrouted(a *adapter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest := strings.TrimPrefix(r.URL.Path, a.prefix)
		for _, rt := range a.routes {
			if rt.path == rest && rt.action == "" ||
				rt.action != "" && len(rest) > len(rt.path)+1+len(rt.action) && strings.HasPrefix(rest, rt.path) && strings.HasSuffix(rest, ":"+rt.action) {
				w.Header().Set("Allow", http.MethodPost)
				p.m.refusals.With(string(ReasonMethodNotAllowed)).Inc()
				apiError{status: http.StatusMethodNotAllowed, reason: ReasonMethodNotAllowed,
					message: "agentbroker proxy: " + rest + " takes POST only"}.write(w, a)
				return
			}
		}
		p.m.refusals.With(string(ReasonNotFound)).Inc()
		apiError{status: http.StatusNotFound, reason: ReasonNotFound,
			message: "agentbroker proxy: no route " + strconv.Quote(cut(rest, 128)) + " (routes: " + routeList(a) + ")"}.write(w, a)
	})
}

func routeList(a *adapter) string {
	var out []string
	for _, rt := range a.routes {
		out = append(out, "POST "+rt.display())
	}
	return strings.Join(out, ", ")
}

// authenticated decides on the request's token (tokens.Authorize) and
// serves the route, or answers the refusal in the API's shape (with the
// refusal's status and WWW-Authenticate challenge).
func (p *Proxy) authenticated(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		if q := r.URL.Query(); len(rt.adapter.queryTokens) > 0 {
			for _, k := range rt.adapter.queryTokens {
				if q.Has(k) {
					p.m.refusals.With(string(ReasonBadAuthRequest)).Inc()
					apiError{status: http.StatusBadRequest, reason: ReasonBadAuthRequest,
						message: "agentbroker proxy: keys are not accepted in the query string (" + k + "=…): send the session's inference token in a header"}.write(w, rt.adapter)
					return
				}
			}
		}
		c, ref := p.tokens.AuthorizeRequest(r, p.policies[rt.adapter.provider])
		if ref != nil {
			p.authRefused(w, r, rt, ref)
			return
		}
		p.serve(w, r.WithContext(tokens.ContextWithClaims(r.Context(), c)), rt, start)
	})
}

func (p *Proxy) authRefused(w http.ResponseWriter, r *http.Request, rt route, ref *tokens.Refusal) {
	e := apiError{status: ref.Status, message: "agentbroker proxy: " + ref.Description}
	switch ref.Status {
	case http.StatusUnauthorized:
		e.reason, e.code = ReasonUnauthenticated, "invalid_api_key"
		if ref.Reason == tokens.ReasonMissing {
			e.message = "agentbroker proxy: no inference token: send the session's inference token as x-api-key or Authorization: Bearer"
		} else {
			e.message = "agentbroker proxy: inference token refused: " + ref.Description
		}
	case http.StatusForbidden:
		e.reason, e.code = ReasonForbidden, "insufficient_permissions"
		e.message = "agentbroker proxy: inference token refused: " + ref.Description
	case http.StatusServiceUnavailable:
		e.reason, e.retry = ReasonAuthUnavailable, true
		e.message = "agentbroker proxy: cannot verify the inference token now; retry shortly"
		w.Header().Set("Retry-After", "1")
	default:
		e.reason = ReasonBadAuthRequest
	}
	if ref.Status != http.StatusServiceUnavailable {
		w.Header().Set("WWW-Authenticate", ref.Challenge())
	}
	p.m.refusals.With(string(e.reason)).Inc()
	p.log.LogAttrs(r.Context(), slog.LevelInfo, "proxy refused a request", slog.String("route", string(rt.name)),
		slog.String("reason", string(e.reason)), slog.String("token_refusal", string(ref.Reason)),
		slog.Int("status", e.status), slog.String("message", e.message))
	e.write(w, rt.adapter)
}

// cut shortens s to at most n bytes (on a rune boundary, for messages and logs).
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
