package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/agentbroker/agentbroker/store"
	"github.com/agentbroker/agentbroker/tokens"
)

// outputValidators compiles every tool's output schema with a full JSON
// Schema validator.
func outputValidators(t testing.TB) map[string]*jsonschema.Schema {
	t.Helper()
	out := map[string]*jsonschema.Schema{}
	for _, d := range tools() {
		b, err := json.Marshal(d.output)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		url := "mem://" + d.name + ".json"
		if err := c.AddResource(url, doc); err != nil {
			t.Fatal(err)
		}
		if out[d.name], err = c.Compile(url); err != nil {
			t.Fatalf("%s: output schema does not compile: %v", d.name, err)
		}
	}
	return out
}

// checkOutput validates a successful result against its tool's output
// schema and returns the structured content.
func checkOutput(t testing.TB, schemas map[string]*jsonschema.Schema, tool string, res *mcp.CallToolResult) map[string]any {
	t.Helper()
	m := structured(t, res)
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(mustJSON(t, m)))
	if err != nil {
		t.Fatal(err)
	}
	if err := schemas[tool].Validate(inst); err != nil {
		t.Fatalf("%s: structured content breaks the output schema: %v\n%s", tool, err, mustJSON(t, m))
	}
	return m
}

func get(m map[string]any, path ...string) any {
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[p]
	}
	return v
}

// TestEveryTool calls every tool with valid arguments and checks what it
// answers, against the output schema and the seeded data.
func TestEveryTool(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	schemas := outputValidators(t)
	c := w.client(w.tokenA(allScopes...))
	seen := map[string]bool{}
	do := func(tool string, args map[string]any) map[string]any {
		t.Helper()
		seen[tool] = true
		return checkOutput(t, schemas, tool, call(t, c, tool, args))
	}

	m := do("get_project", nil)
	if get(m, "project", "id") != w.projA.ID || get(m, "project", "name") != "alpha" || get(m, "session_id") != w.sessA ||
		get(m, "project", "has_instructions") != true || get(m, "project", "repo_url") != "https://example.com/alpha.git" {
		t.Errorf("get_project = %v", m)
	}
	m = do("get_instructions", map[string]any{})
	if m["instructions"] != "Always run the tests." || m["project_id"] != w.projA.ID {
		t.Errorf("get_instructions = %v", m)
	}
	m = do("list_tasks", nil)
	if m["count"] != 2.0 || m["truncated"] != false || get(m["tasks"].([]any)[0].(map[string]any), "id") != w.taskA2.ID {
		t.Errorf("list_tasks = %v", m)
	}
	m = do("list_tasks", map[string]any{"mine": true})
	if m["count"] != 1.0 || m["tasks"].([]any)[0].(map[string]any)["id"] != w.taskA.ID {
		t.Errorf("list_tasks mine = %v", m)
	}
	m = do("list_tasks", map[string]any{"status": "queued", "limit": 1})
	if m["count"] != 1.0 || m["tasks"].([]any)[0].(map[string]any)["id"] != w.taskA2.ID || m["truncated"] != false {
		t.Errorf("list_tasks queued = %v", m)
	}
	m = do("list_tasks", map[string]any{"limit": 1})
	if m["count"] != 1.0 || m["truncated"] != true {
		t.Errorf("list_tasks limit 1 = %v; want truncated", m)
	}
	m = do("get_task", map[string]any{"id": w.taskA.ID})
	if get(m, "task", "description") != "The runner skips migrations." || get(m, "task", "status") != "in_progress" ||
		get(m, "task", "session_id") != w.sessA {
		t.Errorf("get_task = %v", m)
	}
	m = do("search_tasks", map[string]any{"query": "migrations"})
	if hits := m["hits"].([]any); len(hits) != 1 || get(hits[0].(map[string]any), "task", "id") != w.taskA.ID ||
		!strings.Contains(hits[0].(map[string]any)["snippet"].(string), "«") {
		t.Errorf("search_tasks = %v", m)
	}
	m = do("search_knowledge", map[string]any{"query": "lock", "limit": 5})
	if hits := m["hits"].([]any); len(hits) != 1 || get(hits[0].(map[string]any), "entry", "id") != w.knA.ID {
		t.Errorf("search_knowledge = %v", m)
	}
	m = do("get_knowledge", map[string]any{"id": w.knA.ID})
	if get(m, "entry", "body") != "Take the advisory lock before running migrations." || len(get(m, "entry", "tags").([]any)) != 2 {
		t.Errorf("get_knowledge = %v", m)
	}
	m = do("list_sessions", nil)
	if m["count"] != 2.0 {
		t.Errorf("list_sessions = %v", m)
	}
	for _, s := range m["sessions"].([]any) {
		s := s.(map[string]any)
		if (s["id"] == w.sessA) != (s["current"] == true) {
			t.Errorf("list_sessions: current flag wrong on %v", s)
		}
	}
	m = do("get_session_messages", map[string]any{"session_id": w.sessAOld})
	msgs := m["messages"].([]any)
	if len(msgs) != 2 || get(msgs[1].(map[string]any), "content") != "The migration runner skips the last file." ||
		m["next_after_seq"] != 2.0 || m["more"] != false {
		t.Errorf("get_session_messages = %v", m)
	}
	m = do("get_session_messages", map[string]any{"session_id": w.sessAOld, "after_seq": 1, "limit": 1})
	if msgs := m["messages"].([]any); len(msgs) != 1 || get(msgs[0].(map[string]any), "seq") != 2.0 || m["more"] != true {
		t.Errorf("get_session_messages after 1 = %v", m)
	}
	m = do("search_messages", map[string]any{"query": "runner"})
	if hits := m["hits"].([]any); len(hits) != 2 || get(hits[0].(map[string]any), "session_id") != w.sessAOld {
		t.Errorf("search_messages = %v", m)
	}
	m = do("update_task", map[string]any{"id": w.taskA.ID, "status": "completed", "notes": "Fixed the off-by-one."})
	if get(m, "task", "status") != "completed" || get(m, "task", "notes") != "Fixed the off-by-one." {
		t.Errorf("update_task = %v", m)
	}
	if got, _ := w.db.GetTask(context.Background(), w.projA.ID, w.taskA.ID); got.Status != store.TaskCompleted {
		t.Errorf("update_task did not reach the store: %+v", got)
	}
	m = do("add_knowledge", map[string]any{"title": "Runner off-by-one", "body": "The runner used < instead of <=.", "tags": []any{"runner"}})
	id, _ := get(m, "entry", "id").(string)
	k, err := w.db.GetKnowledge(context.Background(), w.projA.ID, id)
	if err != nil || k.SessionID != w.sessA || k.Title != "Runner off-by-one" {
		t.Errorf("add_knowledge stored %+v, %v; want the entry, from this session", k, err)
	}

	for _, d := range tools() {
		if !seen[d.name] {
			t.Errorf("tool %s was not called", d.name)
		}
	}
}

// TestProjectIsolation: a token of project A never sees project B: its IDs
// are "not found", its text never appears in a search.
func TestProjectIsolation(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	c := w.client(w.tokenA(append(allScopes, tokens.ScopeTasksManage)...))
	for _, tt := range []struct {
		tool string
		args map[string]any
	}{
		{"get_task", map[string]any{"id": w.taskB.ID}},
		{"update_task", map[string]any{"id": w.taskB.ID, "status": "cancelled"}},
		{"get_knowledge", map[string]any{"id": w.knB.ID}},
		{"get_session_messages", map[string]any{"session_id": w.sessB}},
	} {
		wantError(t, call(t, c, tt.tool, tt.args), "not found in this project")
	}
	if got, _ := w.db.GetTask(context.Background(), w.projB.ID, w.taskB.ID); got.Status != store.TaskInProgress {
		t.Fatalf("project B's task changed: %+v", got)
	}
	for _, tt := range []struct {
		tool string
		args map[string]any
	}{
		{"search_tasks", map[string]any{"query": "migration"}},
		{"search_knowledge", map[string]any{"query": "migration"}},
		{"search_messages", map[string]any{"query": "migration"}},
		{"list_tasks", nil},
		{"list_sessions", nil},
		{"get_project", nil},
		{"get_instructions", nil},
	} {
		res := call(t, c, tt.tool, tt.args)
		text := resultText(t, res)
		for _, leak := range []string{"secret-beta", "Beta", w.projB.ID, w.taskB.ID, w.knB.ID, w.sessB} {
			if strings.Contains(text, leak) {
				t.Errorf("%s with a project A token shows %q: %s", tt.tool, leak, text)
			}
		}
	}
	// And project B's own token sees its data (the test would pass vacuously otherwise).
	rawB, _ := w.mint(w.projB.ID, w.sessB, readScopes...)
	cb := w.client(rawB)
	if got := resultText(t, call(t, cb, "search_knowledge", map[string]any{"query": "migration"})); !strings.Contains(got, w.knB.ID) {
		t.Fatalf("project B cannot find its own knowledge: %s", got)
	}
}

// TestUpdateTaskBinding: tasks:write updates only the task bound to the
// token's session; tasks:manage updates any task of the project.
func TestUpdateTaskBinding(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	write := w.client(w.tokenA(tokens.ScopeTasksWrite))
	wantError(t, call(t, write, "update_task", map[string]any{"id": w.taskA2.ID, "status": "in_progress"}), "not bound to this session")
	wantError(t, call(t, write, "update_task", map[string]any{"id": w.taskA.ID}), "nothing to update")
	wantError(t, call(t, write, "update_task", map[string]any{"id": w.taskA.ID, "status": "done"}), `must be one of draft, queued`)
	if res := call(t, write, "update_task", map[string]any{"id": w.taskA.ID, "notes": ""}); res.IsError {
		t.Fatalf("clearing notes of the session's own task: %s", resultText(t, res))
	}
	// Another session's token of the same project, with tasks:write, may not touch task A.
	other, _ := w.mint(w.projA.ID, "sess-other", tokens.ScopeTasksWrite)
	wantError(t, call(t, w.client(other), "update_task", map[string]any{"id": w.taskA.ID, "status": "failed"}), "not bound to this session")

	manage := w.client(w.tokenA(tokens.ScopeTasksManage))
	res := call(t, manage, "update_task", map[string]any{"id": w.taskA2.ID, "status": "in_progress", "notes": "picked up"})
	if res.IsError {
		t.Fatalf("tasks:manage update: %s", resultText(t, res))
	}
	if got, _ := w.db.GetTask(context.Background(), w.projA.ID, w.taskA2.ID); got.Status != store.TaskInProgress || got.Notes != "picked up" {
		t.Fatalf("task after tasks:manage update = %+v", got)
	}
	calls := w.obs.Calls()
	if calls[0].Outcome != OutcomeForbidden || calls[len(calls)-1].Outcome != OutcomeOK {
		t.Fatalf("observer outcomes: first %s, last %s", calls[0].Outcome, calls[len(calls)-1].Outcome)
	}
}

// TestArgumentValidation: arguments are checked against the published
// input schema: every limit it states is enforced, unknown fields and wrong
// types are refused, all as isError results the model can read.
func TestArgumentValidation(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	c := w.client(w.tokenA(append(allScopes, tokens.ScopeTasksManage)...))

	// Valid arguments for each tool, to break one at a time.
	valid := map[string]map[string]any{
		"get_project":          {},
		"get_instructions":     {},
		"list_tasks":           {"status": "queued", "mine": false, "limit": 5},
		"get_task":             {"id": w.taskA.ID},
		"search_tasks":         {"query": "runner", "limit": 5},
		"search_knowledge":     {"query": "lock", "limit": 5},
		"get_knowledge":        {"id": w.knA.ID},
		"list_sessions":        {"limit": 5},
		"get_session_messages": {"session_id": w.sessAOld, "after_seq": 0, "limit": 5},
		"search_messages":      {"query": "runner", "limit": 5},
		"update_task":          {"id": w.taskA.ID, "status": "in_progress", "notes": "n"},
		"add_knowledge":        {"title": "t", "body": "b", "tags": []any{"x"}},
	}
	checked := 0
	for _, d := range tools() {
		base, ok := valid[d.name]
		if !ok {
			t.Fatalf("no valid arguments for %s", d.name)
		}
		if res := call(t, c, d.name, base); res.IsError {
			t.Fatalf("%s with valid arguments: %s", d.name, resultText(t, res))
		}
		with := func(k string, v any) map[string]any {
			m := map[string]any{}
			for kk, vv := range base {
				m[kk] = vv
			}
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
			return m
		}
		wantError(t, call(t, c, d.name, with("bogus", 1)), `unknown argument "bogus"`)
		for _, r := range d.input.required {
			wantError(t, call(t, c, d.name, with(r, nil)), "missing required argument")
		}
		for _, p := range d.input.props {
			sp := p.spec
			var bad []any
			switch sp.Type {
			case "string":
				bad = append(bad, 12)
				if sp.MaxLength != nil {
					bad = append(bad, strings.Repeat("x", *sp.MaxLength+1))
				}
				if sp.MinLength != nil {
					bad = append(bad, "")
				}
				if len(sp.Enum) > 0 {
					bad = append(bad, "not-a-value")
				}
			case "integer":
				bad = append(bad, "7", 1.5, float64(*sp.Maximum+1), float64(*sp.Minimum-1))
			case "boolean":
				bad = append(bad, "true")
			case "array":
				bad = append(bad, "x", make([]any, *sp.MaxItems+1), []any{3}, []any{strings.Repeat("y", *sp.Items.MaxLength+1)})
			}
			for _, v := range bad {
				res := call(t, c, d.name, with(p.name, v))
				if !res.IsError || !strings.HasPrefix(resultText(t, res), "invalid arguments:") {
					t.Errorf("%s: %s = %.40v was accepted: %s", d.name, p.name, fmt.Sprint(v), resultText(t, res))
				}
				checked++
			}
		}
	}
	if checked < 40 {
		t.Fatalf("only %d violations checked", checked)
	}
	// Byte limits too: 500 two-byte characters are within maxLength but not
	// within the store's 500 bytes.
	wantError(t, call(t, c, "add_knowledge", map[string]any{"title": strings.Repeat("é", 500), "body": "b"}), "bytes long in UTF-8")

	// Arguments that are not an object, sent raw.
	tok := w.tokenA(tokens.ScopeTasksRead)
	for _, args := range []string{`[1,2]`, `"x"`, `3`} {
		r := w.post(tok, `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"list_tasks","arguments":`+args+`}}`)
		msgs := jsonrpcMessages(t, r)
		text := mustJSON(t, msgs[len(msgs)-1])
		if !strings.Contains(text, `"isError":true`) && !strings.Contains(text, `"error"`) {
			t.Errorf("arguments %s: %s", args, text)
		}
	}
}

// failingStore fails every call, as a broken database would.
type failingStore struct{ Store }

var errDisk = errors.New("disk on fire: /var/lib/secret/path")

func (failingStore) GetTask(context.Context, string, string) (store.Task, error) {
	return store.Task{}, errDisk
}

func (failingStore) GetProject(context.Context, string) (store.Project, error) {
	panic("boom")
}

// TestInternalErrors: a store failure or a panic is an isError result with
// a generic message (the details go to the log, not to the model), counted
// as outcome internal.
func TestInternalErrors(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	w := newWorld(t, func(o *Options) {
		o.Store = failingStore{o.Store}
		o.Logger = slogTo(&logs)
	})
	c := w.client(w.tokenA(readScopes...))
	for _, tool := range []string{"get_task", "get_project"} {
		args := map[string]any{}
		if tool == "get_task" {
			args["id"] = w.taskA.ID
		}
		res := call(t, c, tool, args)
		wantError(t, res, "internal error")
		if strings.Contains(resultText(t, res), "disk") || strings.Contains(resultText(t, res), "boom") {
			t.Fatalf("%s leaked the failure: %s", tool, resultText(t, res))
		}
	}
	if !strings.Contains(logs.String(), "disk on fire") || !strings.Contains(logs.String(), "boom") {
		t.Fatalf("failures not logged: %s", logs.String())
	}
	if got := w.metric(`agentbroker_mcp_tool_calls_total{tool="get_task",outcome="internal"}`); got != 1 {
		t.Fatalf("internal outcome counted %v times", got)
	}
	// The server still answers.
	if res := call(t, c, "list_tasks", nil); res.IsError {
		t.Fatal(resultText(t, res))
	}
}

// TestCancellationIsPerToken: mcp-go keys in-flight requests by session,
// and this stateless server binds that key to the token: another token's
// notifications/cancelled with the same request id cancels nothing, while
// the caller's own does.
func TestCancellationIsPerToken(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	started := make(chan struct{}, 2)
	if err := w.srv.addTool(&toolDef{
		name: "test_wait", title: "wait", description: "test only", scopes: []tokens.Scope{tokens.ScopeTasksRead},
		input: object(nil), output: outObject("", nil, jsonObject{"cancelled": outBool("")}),
		run: func(ctx context.Context, c *toolCall) (any, error) {
			started <- struct{}{}
			select {
			case <-ctx.Done():
				return nil, &toolError{OutcomeCancelled, "cancelled"}
			case <-time.After(300 * time.Millisecond):
				return map[string]any{"cancelled": false}, nil
			}
		},
	}); err != nil {
		t.Fatal(err)
	}
	tokA := w.tokenA(tokens.ScopeTasksRead)
	tokB, _ := w.mint(w.projB.ID, w.sessB, tokens.ScopeTasksRead)
	body := `{"jsonrpc":"2.0","id":77,"method":"tools/call","params":{"name":"test_wait"}}`
	cancel := `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":77}}`

	for _, tt := range []struct {
		name          string
		canceller     string
		wantCancelled bool
	}{
		{"other token", tokB, false},
		{"same token", tokA, true},
	} {
		var wg sync.WaitGroup
		var r rawResponse
		wg.Add(1)
		go func() {
			defer wg.Done()
			r = w.post(tokA, body)
		}()
		<-started
		w.post(tt.canceller, cancel)
		wg.Wait()
		if tt.wantCancelled {
			// mcp-go answers a cancelled request with nothing (202) or an error.
			if r.status == 200 && strings.Contains(string(r.body), `"cancelled":false`) {
				t.Errorf("%s: the request was not cancelled: %s", tt.name, r.body)
			}
			continue
		}
		if !strings.Contains(string(r.body), `"cancelled":false`) {
			t.Errorf("%s: %d %s; want the call to finish normally", tt.name, r.status, r.body)
		}
	}
}
