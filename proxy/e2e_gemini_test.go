package proxy_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentbroker/agentbroker/catalog"
	"github.com/agentbroker/agentbroker/internal/fakemodel"
	"github.com/agentbroker/agentbroker/proxy"
)

// TestE2EGemini: the real Gemini CLI (AGENTBROKER_E2E_GEMINI_CLI=…/node_modules/
// @google/gemini-cli/bundle/gemini.js) speaks the Gemini API to the fake
// model through the proxy, with the session's inference token as its key:
// the model asks for the MCP tool, Gemini calls it, and the answer quotes
// the result; the upstream saw only the platform key, the proxy refused
// nothing.
func TestE2EGemini(t *testing.T) {
	adapter := os.Getenv("AGENTBROKER_E2E_GEMINI_CLI")
	if adapter == "" {
		t.Skip("AGENTBROKER_E2E_GEMINI_CLI is not set")
	}
	mcpSrv := newE2EMCP(t)
	g := newGeminiWorldWith(t, &fakemodel.Options{Rules: []fakemodel.Rule{{
		Tool: "get_task", Prompt: regexp.MustCompile(`(?i)get_task`),
		Arguments: json.RawMessage(`{"id":"T-1"}`), Reply: "The task says: ",
	}}})
	home := t.TempDir()
	env := append(baseEnv(home),
		"GOOGLE_GEMINI_BASE_URL="+proxy.BaseURL(g.url, catalog.ProviderGoogle),
		"GEMINI_API_KEY="+g.tok("gemini"),
		"GEMINI_MODEL=gemini-3.8-flash",
		"GEMINI_CLI_TRUST_WORKSPACE=true", "GEMINI_CLI_NO_RELAUNCH=1", "GEMINI_TELEMETRY_ENABLED=false",
	)
	c := startACP(t, env, adapter, "--acp")
	c.call("initialize", map[string]any{"protocolVersion": 1,
		"clientCapabilities": map[string]any{"fs": map[string]bool{"readTextFile": false, "writeTextFile": false}, "terminal": false},
		"clientInfo":         map[string]string{"name": "proxy-e2e", "version": "0"}}, 60*time.Second)
	work := filepath.Join(home, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	res := c.call("session/new", map[string]any{"cwd": work, "mcpServers": []any{map[string]any{
		"type": "http", "name": "broker", "url": mcpSrv.srv.URL, "headers": []any{}}}}, 60*time.Second)
	var sess struct {
		SessionID string `json:"sessionId"`
	}
	if err := json.Unmarshal(res, &sess); err != nil || sess.SessionID == "" {
		t.Fatalf("session/new: %s", res)
	}
	res = c.call("session/prompt", map[string]any{"sessionId": sess.SessionID,
		"prompt": []any{map[string]string{"type": "text", "text": "Please read task T-1 with the get_task tool."}}}, 120*time.Second)
	for _, r := range g.rec.Records() {
		t.Logf("proxy: %s wire=%q model=%q status=%d outcome=%s reason=%s usage=%+v cost=%s",
			r.Route, r.WireModel, r.Model, r.Status, r.Outcome, r.Reason, r.Usage, r.Cost)
	}
	var stop struct {
		StopReason string `json:"stopReason"`
	}
	_ = json.Unmarshal(res, &stop)
	text := c.agentText()
	if stop.StopReason != "end_turn" || !strings.Contains(text, "The task says: ") || !strings.Contains(text, e2eMarker) {
		t.Fatalf("prompt: %s; agent said %q", res, text)
	}
	if calls := mcpSrv.Calls(); len(calls) != 1 || calls[0] != "T-1" {
		t.Errorf("MCP calls %v", calls)
	}
	var called, answered bool
	for _, r := range g.fake.Requests() {
		t.Logf("upstream: %s %s?%s model=%s tools=%v action=%s auth=%v", r.Method, r.Path, r.Query, r.Model, r.Tools, r.Action, r.AuthOK)
		if !r.AuthOK || r.Header.Get("X-Goog-Api-Key") != "[platform key]" {
			t.Errorf("upstream request %d without the platform key", r.Seq)
		}
		called = called || r.Action == fakemodel.ActionToolCall && r.Tool == "mcp_broker_get_task"
		answered = answered || r.Action == fakemodel.ActionToolAnswer
	}
	if !called || !answered {
		t.Errorf("upstream: tool call %v, answer %v", called, answered)
	}
	for _, r := range g.rec.Records() {
		if r.Outcome != proxy.OutcomeOK || r.Provider != catalog.ProviderGoogle {
			t.Errorf("proxy record %+v", r)
		}
	}
}
