package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentbroker/agentbroker/internal/fakemodel"
)

// TestServeProxyGemini: serve's Gemini upstream and key come from the
// provider table (AGENTBROKER_GOOGLE_UPSTREAM, GEMINI_API_KEY); a gemini
// token's call for a catalog model reaches it with the platform key, one
// for a model in no source is refused in Google's shape before it.
func TestServeProxyGemini(t *testing.T) {
	t.Parallel()
	up := fakemodel.New(nil)
	url, err := up.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	dataDir := filepath.Join(t.TempDir(), "data")
	b := startBroker(t, dataDir, "AGENTBROKER_GOOGLE_UPSTREAM="+url, "GEMINI_API_KEY="+fakemodel.DefaultAPIKey)
	admin := adminToken(t, dataDir)

	var minted struct{ Token string }
	_, body := b.do("POST", "/v1/tokens", admin, strings.NewReader(
		`{"subject":"u","purpose":"proxy","project":"p","session":"s","agent":"gemini","scopes":["inference"]}`))
	json.Unmarshal([]byte(body), &minted)
	if minted.Token == "" {
		t.Fatalf("mint: %s", body)
	}
	ask := func(model string) (int, string) {
		resp, body := b.do("POST", "/proxy/gemini/v1beta/models/"+model+":generateContent", "", strings.NewReader(
			`{"contents":[{"role":"user","parts":[{"text":"hello"}]}]}`), "Content-Type", "application/json", "X-Goog-Api-Key", minted.Token)
		return resp.StatusCode, body
	}
	if code, body := ask("gemini-3.8-flash"); code != 200 || up.Count() != 1 || !up.Requests()[0].AuthOK {
		t.Fatalf("gemini-3.8-flash = %d %s; upstream saw %d requests", code, body, up.Count())
	}
	if code, body := ask("gemini-3.5-flash-lite"); code != 404 || !strings.Contains(body, `"status":"NOT_FOUND"`) {
		t.Fatalf("a model in no source = %d %s", code, body)
	}
	if up.Count() != 1 {
		t.Fatalf("a refused model reached the upstream: %d requests", up.Count())
	}
	if strings.Contains(b.log(), minted.Token) || strings.Contains(b.log(), fakemodel.DefaultAPIKey) {
		t.Fatalf("a token or key is in the broker's log")
	}
}
