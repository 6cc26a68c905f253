package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentbroker/agentbroker/internal/fakemodel"
)

// TestServeProxy: serve routes an allowed model to the configured upstream
// with the platform key, and refuses a retired one before any upstream
// call, in the API's own error shape.
func TestServeProxy(t *testing.T) {
	t.Parallel()
	up := fakemodel.New(nil)
	url, err := up.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	dataDir := filepath.Join(t.TempDir(), "data")
	b := startBroker(t, dataDir, "AGENTBROKER_OPENAI_UPSTREAM="+url, "OPENAI_API_KEY="+fakemodel.DefaultAPIKey)
	admin := adminToken(t, dataDir)

	var minted struct{ Token string }
	_, body := b.do("POST", "/v1/tokens", admin, strings.NewReader(
		`{"subject":"u","purpose":"proxy","project":"p","session":"s","agent":"codex","scopes":["inference"]}`))
	json.Unmarshal([]byte(body), &minted)
	if minted.Token == "" {
		t.Fatalf("mint: %s", body)
	}
	ask := func(model string) (int, string) {
		resp, body := b.do("POST", "/proxy/openai/v1/responses", minted.Token, strings.NewReader(
			fmt.Sprintf(`{"model":%q,"input":"hello","stream":false}`, model)), "Content-Type", "application/json")
		return resp.StatusCode, body
	}
	if code, body := ask("gpt-5.5"); code != 200 || up.Count() != 1 {
		t.Fatalf("gpt-5.5 = %d %s; upstream saw %d requests", code, body, up.Count())
	}
	code, body := ask("codex-mini-latest")
	if code != 404 || !strings.Contains(body, "retired") || !strings.Contains(body, `"error"`) {
		t.Fatalf("retired model = %d %s", code, body)
	}
	if code, _ := ask("claude-opus-4-8"); code == 200 {
		t.Fatalf("a Claude model on the OpenAI route was served")
	}
	if up.Count() != 1 {
		t.Fatalf("refused models reached the upstream: %d requests", up.Count())
	}
	if strings.Contains(b.log(), minted.Token) || strings.Contains(b.log(), fakemodel.DefaultAPIKey) {
		t.Fatalf("a token or key is in the broker's log")
	}
}
