package mcpserver

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/agentbroker/agentbroker/tokens"
)

// TestCapabilitiesDeclared: initialize declares tools, prompts and
// resources, each without list changes or subscriptions (none are sent),
// and nothing else (no logging, completions).
func TestCapabilitiesDeclared(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	r := w.post(w.tokenA(readScopes...), initBody)
	var m struct {
		Result struct {
			Capabilities map[string]json.RawMessage `json:"capabilities"`
		} `json:"result"`
	}
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("%v: %s", err, r.body)
	}
	caps := m.Result.Capabilities
	var keys []string
	for k := range caps {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if strings.Join(keys, ",") != "prompts,resources,tools" {
		t.Errorf("capabilities %s; want prompts, resources, tools", r.body)
	}
	for _, k := range keys {
		var flags map[string]bool
		_ = json.Unmarshal(caps[k], &flags)
		if flags["listChanged"] || flags["subscribe"] {
			t.Errorf("%s declares %s; nothing of that is sent", k, caps[k])
		}
	}
}

// TestPromptInstructions: the project's instructions are the prompt
// project_instructions, for a token with project:read only; the prompt of
// another project's token shows that project's.
func TestPromptInstructions(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := w.client(w.tokenA(tokens.ScopeProjectRead))
	list, err := c.ListPrompts(ctx, mcp.ListPromptsRequest{})
	if err != nil || len(list.Prompts) != 1 || list.Prompts[0].Name != promptInstructions || list.Prompts[0].Title == "" {
		t.Fatalf("prompts/list: %v %+v", err, list)
	}
	var req mcp.GetPromptRequest
	req.Params.Name = promptInstructions
	res, err := c.GetPrompt(ctx, req)
	if err != nil || len(res.Messages) != 1 || res.Messages[0].Role != mcp.RoleUser {
		t.Fatalf("prompts/get: %v %+v", err, res)
	}
	text := res.Messages[0].Content.(mcp.TextContent).Text
	if !strings.Contains(text, "Always run the tests.") || !strings.Contains(text, "alpha") || strings.Contains(text, "secret-beta") {
		t.Errorf("prompt text: %q", text)
	}

	rawB, _ := w.mint(w.projB.ID, w.sessB, tokens.ScopeProjectRead)
	res, err = w.client(rawB).GetPrompt(ctx, req)
	if err != nil || !strings.Contains(res.Messages[0].Content.(mcp.TextContent).Text, "secret-beta-instructions") {
		t.Errorf("project B's prompt: %v %+v", err, res)
	}

	// Without project:read: no prompt listed, prompts/get refused 403.
	tasksOnly := w.tokenA(tokens.ScopeTasksRead)
	list, err = w.client(tasksOnly).ListPrompts(ctx, mcp.ListPromptsRequest{})
	if err != nil || len(list.Prompts) != 0 {
		t.Errorf("prompts/list without project:read: %v %+v", err, list)
	}
	r := w.post(tasksOnly, `{"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"project_instructions"}}`)
	m := decodeRPC(t, r.body)
	if r.status != http.StatusForbidden || m.Error == nil || m.Error.Data.Error != "insufficient_scope" ||
		challengeParam(r.header.Get("WWW-Authenticate"), "scope") != "project:read" {
		t.Errorf("prompts/get without project:read: %d %s", r.status, r.body)
	}
	if r := w.post(w.tokenA(readScopes...), `{"jsonrpc":"2.0","id":4,"method":"prompts/get","params":{"name":"nope"}}`); rpcError(t, r) != -32602 {
		t.Errorf("unknown prompt: %s", r.body)
	}
}

// TestResources: the project, its tasks and its knowledge entries are
// listed and read as resources, each behind its scope; another project's
// IDs are not found; the templates list what the scopes open.
func TestResources(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := w.client(w.tokenA(readScopes...))

	list, err := c.ListResources(ctx, mcp.ListResourcesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	uris := map[string]mcp.Resource{}
	for _, r := range list.Resources {
		uris[r.URI] = r
	}
	want := []string{uriProject, uriTaskPrefix + w.taskA.ID, uriTaskPrefix + w.taskA2.ID, uriKnowledgePrefix + w.knA.ID}
	if len(uris) != len(want) {
		t.Errorf("resources/list: %+v; want %v", list.Resources, want)
	}
	for _, u := range want {
		if _, ok := uris[u]; !ok {
			t.Errorf("resources/list lacks %s", u)
		}
	}
	if uris[uriTaskPrefix+w.taskA.ID].Title != "Fix the migration runner" {
		t.Errorf("task resource: %+v", uris[uriTaskPrefix+w.taskA.ID])
	}

	read := func(uri string) (string, string) {
		t.Helper()
		var req mcp.ReadResourceRequest
		req.Params.URI = uri
		res, err := c.ReadResource(ctx, req)
		if err != nil || len(res.Contents) != 1 {
			t.Fatalf("read %s: %v %+v", uri, err, res)
		}
		tc := res.Contents[0].(mcp.TextResourceContents)
		if tc.URI != uri {
			t.Errorf("read %s: contents of %s", uri, tc.URI)
		}
		return tc.MIMEType, tc.Text
	}
	if mt, text := read(uriProject); mt != "application/json" || !strings.Contains(text, `"instructions": "Always run the tests."`) {
		t.Errorf("project: %s %s", mt, text)
	}
	if mt, text := read(uriTaskPrefix + w.taskA.ID); mt != "application/json" || !strings.Contains(text, "The runner skips migrations.") {
		t.Errorf("task: %s %s", mt, text)
	}
	if mt, text := read(uriKnowledgePrefix + w.knA.ID); mt != "text/markdown" ||
		!strings.Contains(text, "# Migrations need a lock") || !strings.Contains(text, "Tags: db, migrations") {
		t.Errorf("knowledge: %s %s", mt, text)
	}

	tok := w.tokenA(readScopes...)
	notFound := func(uri string) {
		t.Helper()
		b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 5, "method": "resources/read", "params": map[string]any{"uri": uri}})
		r := w.post(tok, string(b))
		if code := rpcError(t, r); code != codeResourceNotFound || strings.Contains(string(r.body), "secret") {
			t.Errorf("read %s: %s; want -32002", uri, r.body)
		}
	}
	notFound(uriTaskPrefix + w.taskB.ID) // project B's
	notFound(uriKnowledgePrefix + w.knB.ID)
	notFound(uriTaskPrefix + "nope")
	notFound(uriTaskPrefix + w.taskA.ID + "/x")
	notFound(uriTaskPrefix)
	notFound("file:///etc/passwd")
	if r := w.post(tok, `{"jsonrpc":"2.0","id":6,"method":"resources/read","params":{}}`); rpcError(t, r) != -32602 {
		t.Errorf("read without uri: %s", r.body)
	}
	if r := w.post(tok, `{"jsonrpc":"2.0","id":6,"method":"resources/list","params":{"cursor":"abc"}}`); rpcError(t, r) != -32602 {
		t.Errorf("list with a cursor: %s", r.body)
	}

	tmpl, err := c.ListResourceTemplates(ctx, mcp.ListResourceTemplatesRequest{})
	if err != nil || len(tmpl.ResourceTemplates) != 2 {
		t.Fatalf("templates: %v %+v", err, tmpl)
	}

	// A token with tasks:read only: its tasks and the task template, and
	// 403 insufficient_scope reading the project or a knowledge entry.
	tasksOnly := w.tokenA(tokens.ScopeTasksRead)
	c2 := w.client(tasksOnly)
	list, err = c2.ListResources(ctx, mcp.ListResourcesRequest{})
	if err != nil || len(list.Resources) != 2 {
		t.Errorf("resources/list with tasks:read: %v %+v", err, list)
	}
	for _, r := range list.Resources {
		if !strings.HasPrefix(r.URI, uriTaskPrefix) {
			t.Errorf("tasks:read lists %s", r.URI)
		}
	}
	tmpl, err = c2.ListResourceTemplates(ctx, mcp.ListResourceTemplatesRequest{})
	if err != nil || len(tmpl.ResourceTemplates) != 1 || tmpl.ResourceTemplates[0].URITemplate.Raw() != uriTaskPrefix+"{id}" {
		t.Errorf("templates with tasks:read: %v %+v", err, tmpl)
	}
	for uri, scope := range map[string]string{uriProject: "project:read", uriKnowledgePrefix + w.knA.ID: "knowledge:read"} {
		b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 7, "method": "resources/read", "params": map[string]any{"uri": uri}})
		r := w.post(tasksOnly, string(b))
		m := decodeRPC(t, r.body)
		if r.status != http.StatusForbidden || m.Error == nil || string(m.ID) != "7" ||
			challengeParam(r.header.Get("WWW-Authenticate"), "scope") != scope || strings.Contains(string(r.body), "advisory") {
			t.Errorf("read %s with tasks:read: %d %s", uri, r.status, r.body)
		}
	}
	// Nothing open: empty lists, not errors.
	none := w.client(w.tokenA(tokens.ScopeSessionsRead))
	if l, err := none.ListResources(ctx, mcp.ListResourcesRequest{}); err != nil || len(l.Resources) != 0 {
		t.Errorf("resources/list with sessions:read: %v %+v", err, l)
	}
}
