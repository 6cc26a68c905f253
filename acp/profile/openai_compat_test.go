package profile

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/agentbroker/agentbroker/acp"
	"github.com/agentbroker/agentbroker/mcpserver"
)

// checkOpenAICompat checks the OpenAI-compatible profiles' launches: the
// proxy's Chat Completions route with the inference token, or the user's
// key to OpenAI or their base URL; every {env:…} OpenCode's config names
// is set (config ⊆ env); the secret never in OpenCode's config itself.
func checkOpenAICompat(t *testing.T, name string, p Profile, spec LaunchSpec, env map[string]string) {
	t.Helper()
	var wantBase, wantKey string
	switch spec.Credential.kind() {
	case KindPlatformProxy:
		wantBase, wantKey = testProxy+"/proxy/openai/v1", testInfer
	case KindAPIKey:
		wantBase, wantKey = openAIDefaultBase, testAPIKey
		if spec.Credential.BaseURL != "" {
			wantBase = spec.Credential.BaseURL
		}
	}
	switch p.Name {
	case Qwen:
		if env["OPENAI_BASE_URL"] != wantBase || env["OPENAI_API_KEY"] != wantKey || env["OPENAI_MODEL"] != spec.Model {
			t.Errorf("%s: qwen env base %q model %q key ok %v", name, env["OPENAI_BASE_URL"], env["OPENAI_MODEL"], env["OPENAI_API_KEY"] == wantKey)
		}
	case Copilot:
		if env["COPILOT_PROVIDER_BASE_URL"] != wantBase || env["COPILOT_PROVIDER_API_KEY"] != wantKey ||
			env["COPILOT_MODEL"] != spec.Model || env["COPILOT_OFFLINE"] != "true" {
			t.Errorf("%s: copilot env base %q model %q offline %q", name, env["COPILOT_PROVIDER_BASE_URL"], env["COPILOT_MODEL"], env["COPILOT_OFFLINE"])
		}
		if env["COPILOT_PKG_CACHE_HOME"] != filepath.Join(spec.InstallDir, CopilotPkgCache) {
			t.Errorf("%s: COPILOT_PKG_CACHE_HOME = %q, want the shared cache in the install", name, env["COPILOT_PKG_CACHE_HOME"])
		}
	case OpenCode:
		var cfg struct {
			Provider map[string]struct {
				NPM     string `json:"npm"`
				Options struct {
					BaseURL string `json:"baseURL"`
					APIKey  string `json:"apiKey"`
				} `json:"options"`
				Models map[string]any `json:"models"`
			} `json:"provider"`
			Model      string            `json:"model"`
			SmallModel string            `json:"small_model"`
			Permission map[string]string `json:"permission"`
		}
		raw := env["OPENCODE_CONFIG_CONTENT"]
		if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
			t.Fatalf("%s: OPENCODE_CONFIG_CONTENT: %v", name, err)
		}
		prov := cfg.Provider[openCodeProvider]
		if prov.NPM != "@ai-sdk/openai-compatible" || prov.Options.BaseURL != wantBase || prov.Models[spec.Model] == nil ||
			cfg.Model != openCodeProvider+"/"+spec.Model || cfg.SmallModel != cfg.Model {
			t.Errorf("%s: opencode config %s", name, raw)
		}
		if cfg.Permission[spec.MCP.Name+"_*"] != "ask" {
			t.Errorf("%s: opencode does not ask for our MCP tools: %v", name, cfg.Permission)
		}
		refs := regexp.MustCompile(`\{env:([A-Za-z_][A-Za-z0-9_]*)\}`).FindAllStringSubmatch(raw, -1)
		if len(refs) == 0 {
			t.Errorf("%s: the key is not taken from the environment", name)
		}
		for _, r := range refs {
			if env[r[1]] != wantKey {
				t.Errorf("%s: config names {env:%s}, which does not hold the key", name, r[1])
			}
		}
		if strings.Contains(raw, wantKey) {
			t.Errorf("%s: OpenCode's config holds the key itself", name)
		}
	}
}

// Qwen Code is told to keep exactly our MCP server's tools visible.
func TestProjectToolsAreTheServersTools(t *testing.T) {
	t.Parallel()
	var want []string
	for _, tool := range mcpserver.Tools() {
		want = append(want, tool.Name+"|"+tool.Title)
	}
	var got []string
	for _, tool := range projectTools {
		got = append(got, tool.name+"|"+tool.title)
	}
	if !slices.Equal(got, want) {
		t.Errorf("projectTools = %v\nmcpserver.Tools() = %v", got, want)
	}
}

type recordedPermission struct {
	Agent   string                       `json:"agent"`
	Server  string                       `json:"server"`
	Update  *acp.ToolCall                `json:"update"`
	Request acp.RequestPermissionRequest `json:"request"`
}

func loadRecorded(t *testing.T, file string) recordedPermission {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "permission", file))
	if err != nil {
		t.Fatal(err)
	}
	var r recordedPermission
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// Each profile recognises our own tool in its agent's real permission
// request (recorded from the real agents driven by the broker, see
// testdata/permission), and only there: not in another server's call,
// another agent's shape, or a request with the model's free text.
func TestProfilesRecogniseTheirRecordedRequests(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		profile Name
		file    string
	}{
		{OpenCode, "opencode-1.18.33-get_task.json"},
		{Copilot, "copilot-1.0.102-update_task.json"},
		{Qwen, "qwen-code-0.24.4-get_task.json"},
		{Gemini, "gemini-cli-0.61.0-broker_ping.json"},
	} {
		p, err := Lookup(tc.profile)
		if err != nil {
			t.Fatal(err)
		}
		r := loadRecorded(t, tc.file)
		var upd acp.ToolCall
		if r.Update != nil {
			upd = *r.Update
		}
		if !p.ownTool(r.Server, r.Request, upd) {
			t.Errorf("%s does not recognise its recorded request (%s)", tc.profile, tc.file)
		}
		if p.ownTool("otherserver", r.Request, upd) {
			t.Errorf("%s takes the recorded request as a call to another server's tool", tc.profile)
		}
		// The other profiles do not take this agent's request for theirs
		// unless it matches their own shape.
		for _, other := range []Name{OpenCode, Copilot, Qwen, Gemini} {
			if other == tc.profile {
				continue
			}
			o, _ := Lookup(other)
			if o.ownTool(r.Server, r.Request, upd) {
				t.Errorf("%s recognises %s's request", other, tc.profile)
			}
		}
	}
}

// What must not count as our tool, per agent.
func TestProfileRecognisersRefuse(t *testing.T) {
	t.Parallel()
	oc, _ := Lookup(OpenCode)
	cp, _ := Lookup(Copilot)
	qw, _ := Lookup(Qwen)
	req := func(title, kind string, meta string) acp.RequestPermissionRequest {
		tc := acp.ToolCall{ToolCallID: "call_1", Title: title, Kind: kind}
		if meta != "" {
			tc.Meta = json.RawMessage(meta)
		}
		return acp.RequestPermissionRequest{SessionID: "s", ToolCall: tc}
	}
	none := acp.ToolCall{}
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"opencode: a shell command titled like our tool", oc.ownTool("agentbroker", req("agentbroker_get_task", "execute", ""), none)},
		{"opencode: a tool we do not have", oc.ownTool("agentbroker", req("agentbroker_drop_tables", "other", ""), none)},
		{"opencode: the bare prefix", oc.ownTool("agentbroker", req("agentbroker_", "other", ""), none)},
		{"qwen: the title alone", qw.ownTool("agentbroker", req("mcp__agentbroker__get_task", "other", ""), none)},
		{"qwen: a built-in tool", qw.ownTool("agentbroker", req("Shell", "execute", `{"toolName":"run_shell_command"}`), none)},
		{"qwen: another server", qw.ownTool("agentbroker", req("x", "read", `{"toolName":"mcp__evil__get_task"}`), none)},
		{"qwen: provenance not mcp", qw.ownTool("agentbroker", req("x", "read", `{"toolName":"mcp__agentbroker__get_task","provenance":"builtin"}`), none)},
		{"copilot: the request's title alone", cp.ownTool("agentbroker", req("Update task", "other", ""), none)},
		{"copilot: an update for another call", cp.ownTool("agentbroker", req("Update task", "other", ""),
			acp.ToolCall{ToolCallID: "call_2", Title: "agentbroker-update_task", Kind: "edit"})},
		{"copilot: a shell command titled like our tool", cp.ownTool("agentbroker", req("Update task", "other", ""),
			acp.ToolCall{ToolCallID: "call_1", Title: "agentbroker-update_task", Kind: "execute"})},
		{"copilot: update and request disagree", cp.ownTool("agentbroker", req("Get task", "other", ""),
			acp.ToolCall{ToolCallID: "call_1", Title: "agentbroker-update_task", Kind: "edit"})},
	} {
		if c.ok {
			t.Errorf("%s: recognised as our tool", c.name)
		}
	}
	if !cp.ownTool("agentbroker", req("get_task", "other", ""), acp.ToolCall{ToolCallID: "call_1", Title: "agentbroker-get_task", Kind: "read"}) {
		t.Error("copilot: a request titled with the bare tool name (a tool without a title) is not recognised")
	}
}
