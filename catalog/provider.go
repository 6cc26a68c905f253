package catalog

import (
	"slices"
	"strings"
)

// The Gemini API's provider and API style.
const (
	// ProviderGoogle is the Gemini API (generativelanguage.googleapis.com).
	ProviderGoogle Provider = "google"
	// EndpointGenerateContent is the Gemini API's generateContent,
	// streamGenerateContent and countTokens (POST
	// /v1beta/models/{model}:<action>; the model is in the path).
	EndpointGenerateContent Endpoint = "generate-content"
)

// AuthHeader is how an upstream API takes its key, and where the proxy
// accepts a session's inference token in that API's shape.
type AuthHeader string

// The upstream auth headers.
const (
	// AuthXAPIKey is "x-api-key: <key>" (Anthropic).
	AuthXAPIKey AuthHeader = "x-api-key"
	// AuthBearer is "Authorization: Bearer <key>" (OpenAI).
	AuthBearer AuthHeader = "authorization-bearer"
	// AuthGoogAPIKey is "x-goog-api-key: <key>" (the Gemini API).
	AuthGoogAPIKey AuthHeader = "x-goog-api-key"
)

// ErrorShape is the JSON shape an API family answers errors in.
type ErrorShape string

// The error shapes.
const (
	// ErrorShapeAnthropic: {"type":"error","error":{"type","message"}}.
	ErrorShapeAnthropic ErrorShape = "anthropic"
	// ErrorShapeOpenAI: {"error":{"message","type","param","code"}}.
	ErrorShapeOpenAI ErrorShape = "openai"
	// ErrorShapeGoogle: {"error":{"code","message","status"}}.
	ErrorShapeGoogle ErrorShape = "google"
)

// UsageReader names how the token usage of an answer is read.
type UsageReader string

// The usage readers.
const (
	// UsageAnthropic: "usage" of message_start and message_delta (input
	// excludes cache reads and writes).
	UsageAnthropic UsageReader = "anthropic-usage"
	// UsageOpenAI: "usage" of response.completed (Responses) or of the
	// last chunk (Chat Completions); input includes cached tokens.
	UsageOpenAI UsageReader = "openai-usage"
	// UsageGemini: "usageMetadata" of the last chunk (prompt includes
	// cached tokens; thoughts are output).
	UsageGemini UsageReader = "gemini-usage-metadata"
)

// ProviderInfo is one upstream API the proxy routes to: the one place that
// says what the proxy, the broker's configuration, the sessions and the
// agent profiles need to know about a provider. Adding a provider is a row
// here, an adapter in the proxy and models in the catalog data.
type ProviderInfo struct {
	Name Provider
	// APIs are the API styles its models may serve.
	APIs []Endpoint
	// PathPrefix is where the proxy serves this provider's API, under the
	// broker's URL ("/proxy/anthropic").
	PathPrefix string
	// AgentBasePath is the base URL path agents are given, under the
	// broker's URL: PathPrefix, plus the API version where the agent's
	// client expects it in the base URL ("/proxy/openai/v1").
	AgentBasePath string
	// AuthHeader is how the upstream takes its key.
	AuthHeader AuthHeader
	// ErrorShape is how the proxy answers refusals on this provider's routes.
	ErrorShape ErrorShape
	// Usage is how the proxy reads the usage of an answer.
	Usage UsageReader
	// KeyEnv is the environment variable the broker reads the platform's
	// key from (agentbroker serve); the upstream's flags are
	// --<name>-upstream and --<name>-key-file.
	KeyEnv string
	// DefaultUpstream is the vendor's API root.
	DefaultUpstream string
	// IDPrefixes are the first dash-separated tokens of this provider's
	// model IDs, for DetectProvider (diagnostics only: routing reads a
	// model's Provider).
	IDPrefixes []string
}

// Serves reports whether the provider's API includes the API style ep.
func (p ProviderInfo) Serves(ep Endpoint) bool { return slices.Contains(p.APIs, ep) }

// providers is the provider table.
var providers = []ProviderInfo{
	{
		Name: ProviderAnthropic, APIs: []Endpoint{EndpointMessages},
		PathPrefix: "/proxy/anthropic", AgentBasePath: "/proxy/anthropic",
		AuthHeader: AuthXAPIKey, ErrorShape: ErrorShapeAnthropic, Usage: UsageAnthropic,
		KeyEnv: "ANTHROPIC_API_KEY", DefaultUpstream: "https://api.anthropic.com",
		IDPrefixes: []string{"claude"},
	},
	{
		Name: ProviderOpenAI, APIs: []Endpoint{EndpointResponses, EndpointChat},
		PathPrefix: "/proxy/openai", AgentBasePath: "/proxy/openai/v1",
		AuthHeader: AuthBearer, ErrorShape: ErrorShapeOpenAI, Usage: UsageOpenAI,
		KeyEnv: "OPENAI_API_KEY", DefaultUpstream: "https://api.openai.com",
		IDPrefixes: []string{"gpt", "chatgpt", "codex"},
	},
	{
		Name: ProviderGoogle, APIs: []Endpoint{EndpointGenerateContent},
		// Gemini CLI's GOOGLE_GEMINI_BASE_URL is the root, without /v1beta.
		PathPrefix: "/proxy/gemini", AgentBasePath: "/proxy/gemini",
		AuthHeader: AuthGoogAPIKey, ErrorShape: ErrorShapeGoogle, Usage: UsageGemini,
		KeyEnv: "GEMINI_API_KEY", DefaultUpstream: "https://generativelanguage.googleapis.com",
		IDPrefixes: []string{"gemini"},
	},
}

// Providers returns the provider table, in a fixed order.
func Providers() []ProviderInfo {
	out := slices.Clone(providers)
	for i := range out {
		out[i].APIs = slices.Clone(out[i].APIs)
		out[i].IDPrefixes = slices.Clone(out[i].IDPrefixes)
	}
	return out
}

// LookupProvider returns the provider called name.
func LookupProvider(name Provider) (ProviderInfo, bool) {
	for _, p := range Providers() {
		if p.Name == name {
			return p, true
		}
	}
	return ProviderInfo{}, false
}

// ProviderOf returns the provider whose API includes the API style ep
// (an agent's policy names the API it speaks; this is who serves it).
func ProviderOf(ep Endpoint) (Provider, bool) {
	for _, p := range providers {
		if p.Serves(ep) {
			return p.Name, true
		}
	}
	return "", false
}

// providerNames lists the table's names, for messages.
func providerNames() string {
	names := make([]string, len(providers))
	for i, p := range providers {
		names[i] = string(p.Name)
	}
	return strings.Join(names, ", ")
}

// endpointNames lists every provider's API styles, for messages.
func endpointNames() string {
	var names []string
	for _, p := range providers {
		for _, ep := range p.APIs {
			names = append(names, string(ep))
		}
	}
	return strings.Join(names, ", ")
}
