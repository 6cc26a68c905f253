package catalog

import (
	"errors"
	"testing"
)

func TestDetectProvider(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id   string
		want Provider // "" means ErrUnknownProvider
	}{
		// Anthropic.
		{"claude-opus-4-6", ProviderAnthropic},
		{"claude-3-opus-20240229", ProviderAnthropic},
		{"claude-3-5-haiku-latest", ProviderAnthropic},
		{"claude-sonnet-4-5-20250929", ProviderAnthropic},
		{"claude", ""},
		{"claude-", ""},
		{"claudex-1", ""},
		// OpenAI GPT, Codex, ChatGPT.
		{"gpt-5.5", ProviderOpenAI},
		{"gpt-5.5-2026-04-23", ProviderOpenAI},
		{"gpt-4o-mini", ProviderOpenAI},
		{"gpt-3.5-turbo-0125", ProviderOpenAI},
		{"codex-mini-latest", ProviderOpenAI},
		{"chatgpt-4o-latest", ProviderOpenAI},
		{"gpt", ""},
		{"gpt-", ""},
		{"gpt5", ""},
		{"codex", ""},
		// The o-series, with token boundaries (the SAM bug: o3 was missed).
		{"o1", ProviderOpenAI},
		{"o3", ProviderOpenAI},
		{"o3-pro", ProviderOpenAI},
		{"o3-mini", ProviderOpenAI},
		{"o3-mini-2025-01-31", ProviderOpenAI},
		{"o4-mini", ProviderOpenAI},
		{"o1-preview", ProviderOpenAI},
		{"o3-deep-research", ProviderOpenAI},
		{"o10", ProviderOpenAI},
		{"o", ""},
		{"ox", ""},
		{"o3x", ""},
		{"o3.5", ""},
		{"o-3", ""},
		{"o3-", ""},
		{"o3--mini", ""},
		{"oo3", ""},
		// omni-moderation is OpenAI's, but not through the o rule.
		{"omni-moderation-latest", ProviderOpenAI},
		{"omni-moderation-2024-09-26", ProviderOpenAI},
		{"omni", ""},
		{"omni-latest", ""},
		{"omni3", ""},
		// Never a default.
		{"", ""},
		{"llama-3", ""},
		// Gemini's, by the provider table's ID prefix.
		{"gemini-2.5-pro", ProviderGoogle},
		{"gemini-3.8-flash", ProviderGoogle},
		{"gemini", ""},
		{"gemma-3-27b-it", ""},
		{"mistral-large", ""},
		{"GPT-5.5", ""},
		{"Claude-opus-4-6", ""},
		{" gpt-5.5", ""},
		{"gpt-5.5\n", ""},
		{"gpt_5", ""},
		{"-gpt-5", ""},
		// Cloud-platform shapes are refused.
		{"anthropic.claude-opus-4-6-v1", ""},
		{"us.anthropic.claude-sonnet-4-5-20250929-v1:0", ""},
		{"global.anthropic.claude-opus-4-6-v1", ""},
		{"claude-opus-4-6@default", ""},
		{"claude-3-5-sonnet-v2@20241022", ""},
	}
	for _, tt := range tests {
		got, err := DetectProvider(tt.id)
		if tt.want == "" {
			if !errors.Is(err, ErrUnknownProvider) || got != "" {
				t.Errorf("DetectProvider(%q) = %q, %v; want ErrUnknownProvider", tt.id, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("DetectProvider(%q) = %q, %v; want %q", tt.id, got, err, tt.want)
		}
	}
}
