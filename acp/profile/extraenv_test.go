package profile

import (
	"errors"
	"testing"
)

// The custom profile reserves only what it sets: OPENAI_BASE_URL and the
// like are the operator's to give a custom agent; HOME and AGENTBROKER_*
// are not. The check runs without a session (serve calls it at start).
func TestCheckExtraEnv(t *testing.T) {
	t.Parallel()
	for _, ok := range [][]string{
		{"OPENAI_BASE_URL=http://127.0.0.1:9/v1", "OPENAI_API_KEY=x", "ANTHROPIC_BASE_URL=http://x", "GEMINI_API_KEY=y"},
		{"REFAGENT_STATE_DIR={session_dir}", "PATH=/opt/bin:/usr/bin"},
		nil,
	} {
		if err := CheckExtraEnv(Custom, ok); err != nil {
			t.Errorf("CheckExtraEnv(custom, %q) = %v", ok, err)
		}
	}
	for _, bad := range [][]string{
		{"HOME=/root"},
		{"AGENTBROKER_MCP_TOKEN=x"},
		{"NOT A KEY=1"},
		{"A=1", "A=2"},
		{"A=line\nbreak"},
	} {
		if err := CheckExtraEnv(Custom, bad); !errors.Is(err, ErrBadValue) {
			t.Errorf("CheckExtraEnv(custom, %q) = %v, want ErrBadValue", bad, err)
		}
	}
	// A profile that sets the OpenAI variables itself still owns them.
	for _, name := range []Name{Qwen, Codex, OpenCode, Copilot, ClaudeCode} {
		if err := CheckExtraEnv(name, []string{"OPENAI_BASE_URL=http://x"}); !errors.Is(err, ErrBadValue) {
			t.Errorf("CheckExtraEnv(%s, OPENAI_BASE_URL) = %v, want ErrBadValue", name, err)
		}
		if err := CheckExtraEnv(name, []string{"RUST_LOG=info"}); err != nil {
			t.Errorf("CheckExtraEnv(%s, RUST_LOG) = %v", name, err)
		}
	}
	if err := CheckExtraEnv("no-such-agent", nil); !errors.Is(err, ErrUnknownProfile) {
		t.Errorf("unknown profile: %v", err)
	}
}
