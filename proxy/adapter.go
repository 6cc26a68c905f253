package proxy

import (
	"fmt"
	"net/http"

	"github.com/agentbroker/agentbroker/catalog"
)

// adapter is one API family, the proxy's side of one row of the catalog's
// provider table (catalog.Providers): the routes it serves under the
// provider's PathPrefix, where a request's model ID is read from, how the
// upstream key is attached, how errors look and how usage is read. Each
// lives in its own file (anthropic.go, openai.go…) and registers itself.
type adapter struct {
	provider catalog.Provider
	prefix   string // catalog.ProviderInfo.PathPrefix
	routes   []route
	// tokenHeaders are the request headers besides Authorization that may
	// carry the session's inference token (never forwarded upstream).
	tokenHeaders []string
	// queryTokens are query parameters the API's clients may put a key in
	// (Google's "key"): a request with one is refused before anything
	// else, as the token would reach logs and the upstream.
	queryTokens []string
	// attachKey sets the upstream key on an outgoing request.
	attachKey func(h http.Header, key string)
	// errorBody renders e in the API's error shape.
	errorBody func(e apiError) []byte
	// streamError is the SSE event that ends a stream the upstream broke
	// off, in the shape the API's clients read mid-stream.
	streamError func(rt route, responseID, message string) []byte
	// usage returns a fresh reader of one answer's usage on rt.
	usage func(rt route) usageReader
}

// route is one API route an adapter serves.
type route struct {
	name     Route
	adapter  *adapter
	endpoint catalog.Endpoint
	// path is the API path, upstream and under the prefix.
	path string
	// metered: the answer carries usage that is billed (not count_tokens).
	metered bool
	// action, when set, makes a route whose model is in its URL: path is
	// then the part before the model ("/v1beta/models/") and the request
	// is path + <model> + ":" + action (the Gemini API's
	// /v1beta/models/{model}:generateContent). The model is read from the
	// path, never from the body, and the upstream gets the model checked.
	action string
}

// apiPath is the route's API path (unescaped, as url.URL.Path holds it)
// for a request for model, which the catalog resolved (an exact ID).
func (rt route) apiPath(model string) string {
	if rt.action == "" {
		return rt.path
	}
	return rt.path + model + ":" + rt.action
}

// display is how the route is named in messages.
func (rt route) display() string {
	if rt.action == "" {
		return rt.path
	}
	return rt.path + "{model}:" + rt.action
}

// usageReader reads the token usage of one answer, fed by the meter: the
// events of an SSE stream one by one, or a whole JSON body.
type usageReader interface {
	// wants reports whether an SSE event of that name may carry usage or
	// the response's ID (unnamed events are asked with "").
	wants(event string) bool
	// ends reports whether an SSE event of that name ends the answer.
	ends(event string) bool
	// event reads one SSE event's data and reports whether it ends the
	// answer.
	event(data []byte) (complete bool)
	// body reads a non-streamed answer.
	body(data []byte)
	// usage returns what was read, in catalog terms (disjoint counts), and
	// whether the answer reported any usage.
	usage() (catalog.Usage, bool)
	// responseID is the answer's ID, when the API gives one ("" otherwise).
	responseID() string
}

// adapters are the registered API families, in registration order.
var adapters []*adapter

// routes are every adapter's routes.
var routes []route

// register adds a's routes; each adapter file calls it from init. The
// provider must be in the catalog's table.
func register(a *adapter) {
	info, ok := catalog.LookupProvider(a.provider)
	if !ok {
		panic(fmt.Sprintf("proxy: adapter for %q, which is not in catalog.Providers", a.provider))
	}
	a.prefix = info.PathPrefix
	for i := range a.routes {
		a.routes[i].adapter = a
		if !info.Serves(a.routes[i].endpoint) {
			panic(fmt.Sprintf("proxy: route %s serves %s, which provider %s does not", a.routes[i].name, a.routes[i].endpoint, a.provider))
		}
	}
	adapters = append(adapters, a)
	routes = append(routes, a.routes...)
}

// adapterFor returns the adapter of provider p.
func adapterFor(p catalog.Provider) (*adapter, bool) {
	for _, a := range adapters {
		if a.provider == p {
			return a, true
		}
	}
	return nil, false
}

// v dereferences a count that may be absent.
func v(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}
