package catalog

import (
	"fmt"
	"slices"
	"strings"
)

// DetectProvider classifies a model ID by its shape, for diagnostics only
// (a log line, a CLI hint): the proxy routes by the provider the catalog
// declares, never by this. It never guesses: an ID of no known shape is an
// error wrapping ErrUnknownProvider.
//
// An ID is a sequence of non-empty tokens of [a-z0-9.] joined by single
// dashes. The first token decides:
//
//   - "claude", followed by at least one more token: anthropic;
//   - "gpt", "chatgpt" or "codex", followed by at least one more token: openai;
//   - "o" and digits only (o1, o3, o4 …), alone or followed by more tokens
//     (o3, o3-pro, o3-mini, o4-mini): openai. The token boundary matters:
//     "o3x", "ox" and "omni" are not o-series IDs;
//   - "omni" followed by "moderation" (omni-moderation-latest): openai, by
//     its own rule: it is OpenAI's moderation model, not an o-series one.
//
// Cloud-platform shapes are refused with a message saying why: Amazon
// Bedrock's "anthropic.claude-…" (with or without a region prefix such as
// "us." or "global.") and Google Vertex AI's "claude-…@date". The broker
// speaks to the providers' own APIs, where those IDs do not exist.
func DetectProvider(id string) (Provider, error) {
	unknown := func(why string) (Provider, error) {
		return "", fmt.Errorf("%w for %q: %s", ErrUnknownProvider, id, why)
	}
	if id == "" {
		return unknown("the ID is empty")
	}
	if strings.HasPrefix(id, "anthropic.") || strings.Contains(id, ".anthropic.") {
		return unknown("this is an Amazon Bedrock model ID; the broker uses Anthropic's own API, where models are named claude-…")
	}
	if strings.HasPrefix(id, "claude-") && strings.Contains(id, "@") {
		return unknown("this is a Google Vertex AI model ID; the broker uses Anthropic's own API, where models have no @version")
	}
	tokens := strings.Split(id, "-")
	for _, t := range tokens {
		if t == "" {
			return unknown("an ID has no empty parts (leading, trailing or doubled '-')")
		}
		for _, c := range []byte(t) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.') {
				return unknown("model IDs use lowercase letters, digits, '.' and '-' only")
			}
		}
	}
	first, more := tokens[0], len(tokens) > 1
	if more {
		for _, p := range providers {
			if slices.Contains(p.IDPrefixes, first) {
				return p.Name, nil
			}
		}
	}
	switch {
	case isOSeries(first):
		return ProviderOpenAI, nil
	case first == "omni" && more && tokens[1] == "moderation":
		return ProviderOpenAI, nil
	}
	return unknown("not a shape of any provider the broker knows (claude-…, gpt-…, o<digits>…, codex-…, chatgpt-…)")
}

// isOSeries reports whether a token is "o" followed by one or more digits.
func isOSeries(t string) bool {
	if len(t) < 2 || t[0] != 'o' {
		return false
	}
	for _, c := range []byte(t[1:]) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
