package profile

import (
	"encoding/json"
	"fmt"
	"log/slog"
)

// CredentialKind is how an agent authenticates to its model provider.
type CredentialKind string

const (
	// KindNone: no credential (the custom profile).
	KindNone CredentialKind = "none"
	// KindAPIKey: a provider API key (Anthropic, OpenAI or Amp), with an
	// optional custom base URL.
	KindAPIKey CredentialKind = "api-key"
	// KindOAuthToken: a subscription login. For Claude the secret is the
	// OAuth token (CLAUDE_CODE_OAUTH_TOKEN); for Codex it is the content of
	// Codex's auth.json.
	KindOAuthToken CredentialKind = "oauth-token"
	// KindPlatformProxy: the broker's inference proxy; the secret is the
	// session's inference token and LaunchSpec.ProxyBaseURL is required.
	KindPlatformProxy CredentialKind = "platform-proxy"
)

// Secret is a credential value held in memory. It prints as [REDACTED] in
// every fmt verb, in slog and in JSON; only Reveal returns the value. Its
// value sits behind a pointer, so that even a struct printed through
// reflection shows an address, not the secret. The zero Secret is empty.
type Secret struct{ p *string }

// NewSecret wraps s.
func NewSecret(s string) Secret { return Secret{p: &s} }

// Reveal returns the value. Call it only to hand the value to the agent.
func (s Secret) Reveal() string {
	if s.p == nil {
		return ""
	}
	return *s.p
}

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.Reveal() == "" }

const redacted = "[REDACTED]"

// String returns [REDACTED] (or "" for an empty secret, so that a missing
// value still shows as missing).
func (s Secret) String() string {
	if s.IsZero() {
		return ""
	}
	return redacted
}

// GoString implements fmt.GoStringer.
func (s Secret) GoString() string { return "profile.Secret(" + s.String() + ")" }

// Format implements fmt.Formatter for every verb.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, s.GoString())
		return
	}
	fmt.Fprint(f, s.String())
}

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON writes the redacted form.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalText writes the redacted form.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Credential is what an agent authenticates with.
type Credential struct {
	Kind CredentialKind
	// Secret is the API key, the OAuth token, Codex's auth.json content or
	// the inference token, by Kind.
	Secret Secret
	// BaseURL, for KindAPIKey only, points the agent at an API-compatible
	// endpoint other than the provider's own (Claude: ANTHROPIC_BASE_URL;
	// Codex: a model provider block).
	BaseURL string
}

// String describes the credential without its secret.
func (c Credential) String() string {
	s := fmt.Sprintf("%s credential", c.kind())
	if !c.Secret.IsZero() {
		s += " " + redacted
	}
	if c.BaseURL != "" {
		s += " for " + c.BaseURL
	}
	return s
}

// GoString implements fmt.GoStringer.
func (c Credential) GoString() string {
	return fmt.Sprintf("profile.Credential{Kind:%q, Secret:%#v, BaseURL:%q}", c.Kind, c.Secret, c.BaseURL)
}

// LogValue implements slog.LogValuer.
func (c Credential) LogValue() slog.Value {
	return slog.GroupValue(slog.String("kind", string(c.kind())),
		slog.Bool("secret_set", !c.Secret.IsZero()), slog.String("base_url", c.BaseURL))
}

func (c Credential) kind() CredentialKind {
	if c.Kind == "" {
		return KindNone
	}
	return c.Kind
}
