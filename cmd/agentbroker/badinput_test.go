package main

import (
	"bytes"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	_ "modernc.org/sqlite"

	"github.com/agentbroker/agentbroker/internal/adminapi"
	"github.com/agentbroker/agentbroker/mcpserver"
	"github.com/agentbroker/agentbroker/proxy"
	"github.com/agentbroker/agentbroker/sessions"
	"github.com/agentbroker/agentbroker/store/sqlite"
)

// storeSnapshot is every row of every table of a broker's store, hashed
// per table, plus the session directories on disk: two equal snapshots
// mean nothing was written. It reads the database read-only beside the
// running broker (WAL lets a reader in).
func storeSnapshot(t testing.TB, dataDir string) map[string]string {
	t.Helper()
	u := url.URL{Scheme: "file", Path: filepath.Join(dataDir, sqlite.FileName), RawQuery: "mode=ro&_pragma=busy_timeout(5000)"}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	var tables []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	if len(tables) < 5 {
		t.Fatalf("only %d tables in the store: %v", len(tables), tables)
	}
	snap := map[string]string{}
	for _, tb := range tables {
		rows, err := db.Query(`SELECT * FROM "` + tb + `"`)
		if err != nil {
			if strings.Contains(err.Error(), "no such module") || strings.HasPrefix(tb, "sqlite_") {
				continue
			}
			t.Fatalf("read %s: %v", tb, err)
		}
		cols, _ := rows.Columns()
		var lines []string
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatalf("scan %s: %v", tb, err)
			}
			lines = append(lines, fmt.Sprintf("%q", vals))
		}
		rows.Close()
		slicesSort(lines)
		h := sha256.Sum256([]byte(strings.Join(lines, "\n")))
		snap[tb] = fmt.Sprintf("%d rows %s", len(lines), hex.EncodeToString(h[:8]))
	}
	entries, _ := os.ReadDir(filepath.Join(dataDir, "sessions"))
	var dirs []string
	for _, e := range entries {
		dirs = append(dirs, e.Name())
	}
	snap["(session dirs)"] = strings.Join(dirs, ",")
	return snap
}

func slicesSort(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func diffSnapshots(a, b map[string]string) string {
	var d []string
	for k, v := range a {
		if b[k] != v {
			d = append(d, fmt.Sprintf("%s: %s → %s", k, v, b[k]))
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			d = append(d, fmt.Sprintf("%s: (none) → %s", k, v))
		}
	}
	return strings.Join(d, "; ")
}

// jsonErrorMessage returns the error text of a JSON error body in any of
// the broker's shapes: {"error": kind, "error_description"}, the
// vendors' {"error": {"message"}} (the proxy), a JSON-RPC error (MCP).
func jsonErrorMessage(body string) (string, bool) {
	var v map[string]any
	if json.Unmarshal([]byte(body), &v) != nil {
		return "", false
	}
	switch e := v["error"].(type) {
	case string:
		d, _ := v["error_description"].(string)
		return strings.TrimSpace(e + ": " + d), e != ""
	case map[string]any:
		m, _ := e["message"].(string)
		return m, m != ""
	}
	return "", false
}

type badCase struct {
	name   string
	method string
	path   string
	token  string // "" for none; "admin", "mcp", "proxy" for the fixtures
	body   string
	hdr    []string
	want   int // the status; 0: any 4xx
}

// TestBadInput sends each HTTP endpoint of a real broker wrong types,
// missing fields, huge values, unicode edge cases and path traversal: each
// is answered with a 4xx and a readable JSON error, the broker stays
// healthy, and the store and the data directory are exactly as before.
func TestBadInput(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	b := startBroker(t, dataDir, "AGENTBROKER_CUSTOM_AGENT="+refagentBin)
	admin := adminToken(t, dataDir)
	fx := newFixtures(t, b, admin)
	cwd := agentDir(t)
	notDir := filepath.Join(cwd, "file")
	os.WriteFile(notDir, []byte("x"), 0o600)

	big := strings.Repeat("x", 300<<10)
	session := func(fields string) string {
		return `{"project":"` + fx.project + `","agent":"custom","credential":{"kind":"none"}` + fields + `}`
	}
	cases := []badCase{
		// Sessions.
		{"session: not JSON", "POST", "/v1/sessions", "admin", `{`, nil, 400},
		{"session: an array", "POST", "/v1/sessions", "admin", `[]`, nil, 400},
		{"session: two objects", "POST", "/v1/sessions", "admin", session(`,"cwd":"`+cwd+`"`) + `{}`, nil, 400},
		{"session: project a number", "POST", "/v1/sessions", "admin", `{"project":1,"agent":"custom","credential":{"kind":"none"}}`, nil, 400},
		{"session: credential a string", "POST", "/v1/sessions", "admin", `{"project":"` + fx.project + `","agent":"custom","credential":"none"}`, nil, 400},
		{"session: unknown field", "POST", "/v1/sessions", "admin", session(`,"cwd":"` + cwd + `","sudo":true`), nil, 400},
		{"session: missing project", "POST", "/v1/sessions", "admin", `{"agent":"custom","credential":{"kind":"none"},"cwd":"` + cwd + `"}`, nil, 0},
		{"session: missing agent", "POST", "/v1/sessions", "admin", `{"project":"` + fx.project + `","credential":{"kind":"none"},"cwd":"` + cwd + `"}`, nil, 400},
		{"session: unknown project", "POST", "/v1/sessions", "admin", `{"project":"prj_nope","agent":"custom","credential":{"kind":"none"},"cwd":"` + cwd + `"}`, nil, 400},
		{"session: unknown agent", "POST", "/v1/sessions", "admin", `{"project":"` + fx.project + `","agent":"../../bin/sh","credential":{"kind":"none"},"cwd":"` + cwd + `"}`, nil, 400},
		{"session: unknown credential kind", "POST", "/v1/sessions", "admin", `{"project":"` + fx.project + `","agent":"custom","credential":{"kind":"root"},"cwd":"` + cwd + `"}`, nil, 400},
		{"session: unknown policy", "POST", "/v1/sessions", "admin", session(`,"cwd":"` + cwd + `","permission_policy":"yolo"`), nil, 400},
		{"session: model for custom", "POST", "/v1/sessions", "admin", session(`,"cwd":"` + cwd + `","model":"gpt-5"`), nil, 400},
		{"session: cwd missing (project has no repo_path)", "POST", "/v1/sessions", "admin", session(``), nil, 400},
		{"session: cwd relative traversal", "POST", "/v1/sessions", "admin", session(`,"cwd":"../../../etc"`), nil, 400},
		{"session: cwd relative", "POST", "/v1/sessions", "admin", session(`,"cwd":"sub/dir"`), nil, 400},
		{"session: cwd does not exist", "POST", "/v1/sessions", "admin", session(`,"cwd":"` + cwd + `/nope"`), nil, 400},
		{"session: cwd absolute with ..", "POST", "/v1/sessions", "admin", session(`,"cwd":"` + cwd + `/../../../../etc"`), nil, 400},
		{"session: cwd a file via ..", "POST", "/v1/sessions", "admin", session(`,"cwd":"` + cwd + `/sub/../file"`), nil, 400},
		{"session: cwd with NUL", "POST", "/v1/sessions", "admin", session(`,"cwd":"` + cwd + `\u0000/x"`), nil, 400},
		{"session: cwd huge", "POST", "/v1/sessions", "admin", session(`,"cwd":"/` + big + `"`), nil, 400},
		{"session: title huge", "POST", "/v1/sessions", "admin", session(`,"cwd":"` + cwd + `","title":"` + big + `"`), nil, 400},
		{"session: title with NUL", "POST", "/v1/sessions", "admin", session(`,"cwd":"` + cwd + `","title":"a\u0000b"`), nil, 400},
		{"session: invalid UTF-8", "POST", "/v1/sessions", "admin", session(`,"cwd":"` + cwd + `","title":"` + "\xff\xfe" + `"`), nil, 400},
		{"session: lone surrogate", "POST", "/v1/sessions", "admin", session(`,"cwd":"` + cwd + `","title":"\ud800"`), nil, 400},
		{"session: prompt huge", "POST", "/v1/sessions", "admin", session(`,"cwd":"` + cwd + `","prompt":"` + big + `"`), nil, 400},
		{"session: no token", "POST", "/v1/sessions", "", session(`,"cwd":"` + cwd + `"`), nil, 401},
		{"session: mcp token", "POST", "/v1/sessions", "mcp", session(`,"cwd":"` + cwd + `"`), nil, 401},
		{"session list: no token", "GET", "/v1/sessions", "", ``, nil, 401},
		{"session get: unknown", "GET", "/v1/sessions/ses_nope", "admin", ``, nil, 404},
		{"session get: traversal", "GET", "/v1/sessions/..%2F..%2Fetc%2Fpasswd", "admin", ``, nil, 404},
		{"session get: NUL", "GET", "/v1/sessions/%00", "admin", ``, nil, 404},
		{"session get: huge id", "GET", "/v1/sessions/" + strings.Repeat("a", 8000), "admin", ``, nil, 404},
		{"session stop: unknown", "DELETE", "/v1/sessions/ses_nope", "admin", ``, nil, 404},
		{"prompt: unknown session", "POST", "/v1/sessions/ses_nope/prompt", "admin", `{"text":"hi"}`, nil, 404},
		{"prompt: text a number", "POST", "/v1/sessions/ses_nope/prompt", "admin", `{"text":5}`, nil, 400},
		{"prompt: wait a string", "POST", "/v1/sessions/ses_nope/prompt", "admin", `{"text":"hi","wait":"yes"}`, nil, 400},
		{"prompt: ?wait=maybe", "POST", "/v1/sessions/ses_nope/prompt?wait=maybe", "admin", `{"text":"hi"}`, nil, 400},
		{"cancel: unknown session", "POST", "/v1/sessions/ses_nope/cancel", "admin", ``, nil, 404},
		{"permission: unknown session", "POST", "/v1/sessions/ses_nope/permissions/perm_1", "admin", `{"option_id":"x"}`, nil, 404},
		{"permission: option a list", "POST", "/v1/sessions/ses_nope/permissions/perm_1", "admin", `{"option_id":["x"]}`, nil, 400},
		{"events: not a websocket", "GET", "/v1/sessions/ses_nope/events", "admin", ``, nil, 0},
		{"events: after=-1", "GET", "/v1/sessions/ses_nope/events?after=-1", "admin", ``, nil, 0},

		// Projects, tasks, knowledge.
		{"project: not JSON", "POST", "/v1/projects", "admin", `name=x`, nil, 400},
		{"project: form content type", "POST", "/v1/projects", "admin", `{"name":"x"}`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415},
		{"project: name a number", "POST", "/v1/projects", "admin", `{"name":7}`, nil, 400},
		{"project: name missing", "POST", "/v1/projects", "admin", `{"description":"d"}`, nil, 400},
		{"project: name blank", "POST", "/v1/projects", "admin", `{"name":" \t"}`, nil, 400},
		{"project: name huge", "POST", "/v1/projects", "admin", `{"name":"` + strings.Repeat("n", 201) + `"}`, nil, 400},
		{"project: name NUL", "POST", "/v1/projects", "admin", `{"name":"a\u0000"}`, nil, 400},
		{"project: name invalid UTF-8", "POST", "/v1/projects", "admin", "{\"name\":\"\xc3\x28\"}", nil, 400},
		{"project: name lone surrogate", "POST", "/v1/projects", "admin", `{"name":"\udc00x"}`, nil, 400},
		{"project: repo_path relative traversal", "POST", "/v1/projects", "admin", `{"name":"x","repo_path":"../../etc"}`, nil, 400},
		{"project: repo_path not clean", "POST", "/v1/projects", "admin", `{"name":"x","repo_path":"/tmp/../etc"}`, nil, 400},
		{"project: unknown field", "POST", "/v1/projects", "admin", `{"name":"x","owner":"me"}`, nil, 400},
		{"project: trailing data", "POST", "/v1/projects", "admin", `{"name":"x"} {"name":"y"}`, nil, 400},
		{"project: get unknown", "GET", "/v1/projects/prj_nope", "admin", ``, nil, 404},
		{"project: get RTL override id", "GET", "/v1/projects/%E2%80%AEprj", "admin", ``, nil, 404},
		{"project: patch unknown", "PATCH", "/v1/projects/prj_nope", "admin", `{"name":"y"}`, nil, 404},
		{"project: patch name null-ish", "PATCH", "/v1/projects/" + fx.project, "admin", `{"name":""}`, nil, 400},
		{"project: patch name wrong type", "PATCH", "/v1/projects/" + fx.project, "admin", `{"name":["y"]}`, nil, 400},
		{"project: patch repo_path traversal", "PATCH", "/v1/projects/" + fx.project, "admin", `{"repo_path":"x/../../../root"}`, nil, 400},
		{"project: no token", "GET", "/v1/projects", "", ``, nil, 401},
		{"project: mcp token", "GET", "/v1/projects", "mcp", ``, nil, 401},
		{"tasks: limit junk", "GET", "/v1/projects/" + fx.project + "/tasks?limit=abc", "admin", ``, nil, 400},
		{"tasks: limit huge", "GET", "/v1/projects/" + fx.project + "/tasks?limit=99999999999999999999", "admin", ``, nil, 400},
		{"tasks: limit negative", "GET", "/v1/projects/" + fx.project + "/tasks?limit=-1", "admin", ``, nil, 400},
		{"tasks: status unknown", "GET", "/v1/projects/" + fx.project + "/tasks?status=zzz", "admin", ``, nil, 400},
		{"task: unknown project", "POST", "/v1/projects/prj_nope/tasks", "admin", `{"title":"t"}`, nil, 404},
		{"task: title missing", "POST", "/v1/projects/" + fx.project + "/tasks", "admin", `{"description":"d"}`, nil, 400},
		{"task: title huge", "POST", "/v1/projects/" + fx.project + "/tasks", "admin", `{"title":"` + strings.Repeat("t", 501) + `"}`, nil, 400},
		{"task: status unknown", "POST", "/v1/projects/" + fx.project + "/tasks", "admin", `{"title":"t","status":"exploded"}`, nil, 400},
		{"task: status a number", "POST", "/v1/projects/" + fx.project + "/tasks", "admin", `{"title":"t","status":3}`, nil, 400},
		{"task: get in another project", "GET", "/v1/projects/prj_nope/tasks/" + fx.task, "admin", ``, nil, 404},
		{"task: patch unknown", "PATCH", "/v1/projects/" + fx.project + "/tasks/tsk_nope", "admin", `{"title":"t"}`, nil, 404},
		{"task: patch status unknown", "PATCH", "/v1/projects/" + fx.project + "/tasks/" + fx.task, "admin", `{"status":"exploded"}`, nil, 400},
		{"knowledge: tags not a list", "POST", "/v1/projects/" + fx.project + "/knowledge", "admin", `{"title":"k","body":"b","tags":"ops"}`, nil, 400},
		{"knowledge: too many tags", "POST", "/v1/projects/" + fx.project + "/knowledge", "admin", `{"title":"k","body":"b","tags":[` + manyTags(33) + `]}`, nil, 400},
		{"knowledge: tag huge", "POST", "/v1/projects/" + fx.project + "/knowledge", "admin", `{"title":"k","body":"b","tags":["` + strings.Repeat("t", 65) + `"]}`, nil, 400},
		{"knowledge: title missing", "POST", "/v1/projects/" + fx.project + "/knowledge", "admin", `{"body":"b"}`, nil, 400},
		{"knowledge: body a number", "POST", "/v1/projects/" + fx.project + "/knowledge", "admin", `{"title":"k","body":1}`, nil, 400},
		{"knowledge: unknown project", "POST", "/v1/projects/prj_nope/knowledge", "admin", `{"title":"k","body":"b"}`, nil, 404},
		{"knowledge: get unknown", "GET", "/v1/projects/" + fx.project + "/knowledge/kn_nope", "admin", ``, nil, 404},
		{"knowledge: limit zero", "GET", "/v1/projects/" + fx.project + "/knowledge?limit=0", "admin", ``, nil, 400},

		// Keys and tokens.
		{"keys: no token", "GET", "/v1/keys", "", ``, nil, 401},
		{"keys: retire unknown", "POST", "/v1/keys/nope/retire", "admin", ``, nil, 404},
		{"keys: retire traversal", "POST", "/v1/keys/..%2F..%2Fadmin-token/retire", "admin", ``, nil, 404},
		{"tokens: purpose unknown", "POST", "/v1/tokens", "admin", `{"subject":"s","purpose":"root","scopes":["admin"]}`, nil, 400},
		{"tokens: scopes a string", "POST", "/v1/tokens", "admin", `{"subject":"s","purpose":"mcp","scopes":"tasks:read"}`, nil, 400},
		{"tokens: scope unknown", "POST", "/v1/tokens", "admin", `{"subject":"s","purpose":"mcp","project":"` + fx.project + `","session":"ses_x","agent":"codex","scopes":["everything"]}`, nil, 400},
		{"tokens: ttl junk", "POST", "/v1/tokens", "admin", `{"subject":"s","purpose":"mcp","project":"` + fx.project + `","session":"ses_x","agent":"codex","scopes":["tasks:read"],"ttl":"forever"}`, nil, 400},
		{"tokens: ttl huge", "POST", "/v1/tokens", "admin", `{"subject":"s","purpose":"mcp","project":"` + fx.project + `","session":"ses_x","agent":"codex","scopes":["tasks:read"],"ttl":"876000h"}`, nil, 400},
		{"tokens: ttl negative", "POST", "/v1/tokens", "admin", `{"subject":"s","purpose":"mcp","project":"` + fx.project + `","session":"ses_x","agent":"codex","scopes":["tasks:read"],"ttl":"-1h"}`, nil, 400},
		{"tokens: mcp without project", "POST", "/v1/tokens", "admin", `{"subject":"s","purpose":"mcp","scopes":["tasks:read"]}`, nil, 400},
		{"tokens: agent unknown", "POST", "/v1/tokens", "admin", `{"subject":"s","purpose":"mcp","project":"` + fx.project + `","session":"ses_x","agent":"../../bin/sh","scopes":["tasks:read"]}`, nil, 400},
		{"revoke: neither", "POST", "/v1/tokens/revoke", "admin", `{}`, nil, 400},
		{"revoke: both", "POST", "/v1/tokens/revoke", "admin", `{"jti":"a","session":"b"}`, nil, 400},
		{"revoke: jti a number", "POST", "/v1/tokens/revoke", "admin", `{"jti":1}`, nil, 400},
		{"revoke: expires_at junk", "POST", "/v1/tokens/revoke", "admin", `{"jti":"a","expires_at":"tomorrow"}`, nil, 400},
		{"revoke: mcp token", "POST", "/v1/tokens/revoke", "mcp", `{"session":"b"}`, nil, 401},
		{"admin: unknown path", "GET", "/v1/nope", "admin", ``, nil, 404},

		// Models.
		{"models: unknown agent", "GET", "/v1/models?agent=nobody", "", ``, nil, 404},
		{"models: traversal agent", "GET", "/v1/models?agent=..%2F..%2Fetc%2Fpasswd", "", ``, nil, 404},
		{"models: huge agent", "GET", "/v1/models?agent=" + strings.Repeat("a", 6000), "", ``, nil, 404},
		{"models: unicode agent", "GET", "/v1/models?agent=%E2%80%AEcodex", "", ``, nil, 404},

		// MCP (the protocol level; tool argument errors are isError results, below).
		{"mcp: no token", "POST", "/mcp", "", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, mcpHdr, 401},
		{"mcp: admin token", "POST", "/mcp", "admin", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, mcpHdr, 401},
		{"mcp: not JSON", "POST", "/mcp", "mcp", `{"jsonrpc":`, mcpHdr, 400},
		{"mcp: invalid UTF-8", "POST", "/mcp", "mcp", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\"}", mcpHdr, 400},
		{"mcp: lone surrogate", "POST", "/mcp", "mcp", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_task","arguments":{"id":"\udfff"}}}`, mcpHdr, 400},
		{"mcp: method a number", "POST", "/mcp", "mcp", `{"jsonrpc":"2.0","id":1,"method":7}`, mcpHdr, 400},
		{"mcp: jsonrpc missing", "POST", "/mcp", "mcp", `{"id":1,"method":"ping"}`, mcpHdr, 400},
		{"mcp: wrong version", "POST", "/mcp", "mcp", `{"jsonrpc":"1.0","id":1,"method":"ping"}`, mcpHdr, 400},
		{"mcp: id an object", "POST", "/mcp", "mcp", `{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}`, mcpHdr, 400},
		{"mcp: cross-origin browser", "POST", "/mcp", "mcp", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, append([]string{"Origin", "https://evil.example"}, mcpHdr...), 403},

		// The inference proxy.
		{"proxy: no token", "POST", "/proxy/anthropic/v1/messages", "", `{"model":"claude-sonnet-4-6","max_tokens":1,"messages":[]}`, nil, 401},
		{"proxy: mcp token", "POST", "/proxy/anthropic/v1/messages", "mcp", `{"model":"claude-sonnet-4-6","max_tokens":1,"messages":[]}`, nil, 401},
		{"proxy: not JSON", "POST", "/proxy/anthropic/v1/messages", "proxy", `model=claude`, nil, 400},
		{"proxy: model missing", "POST", "/proxy/anthropic/v1/messages", "proxy", `{"max_tokens":1,"messages":[]}`, nil, 400},
		{"proxy: model a number", "POST", "/proxy/anthropic/v1/messages", "proxy", `{"model":4,"messages":[]}`, nil, 400},
		// An unknown model is Anthropic's own answer, 404 not_found_error.
		{"proxy: model unknown", "POST", "/proxy/anthropic/v1/messages", "proxy", `{"model":"claude-99","messages":[]}`, nil, 0},
		{"proxy: model traversal", "POST", "/proxy/anthropic/v1/messages", "proxy", `{"model":"../../v1/admin","messages":[]}`, nil, 0},
		{"proxy: model huge", "POST", "/proxy/anthropic/v1/messages", "proxy", `{"model":"` + big + `","messages":[]}`, nil, 0},
		{"proxy: model lone surrogate", "POST", "/proxy/anthropic/v1/messages", "proxy", `{"model":"claude-sonnet-4-6\ud800","messages":[]}`, nil, 0},
		{"proxy: model twice", "POST", "/proxy/anthropic/v1/messages", "proxy", `{"model":"claude-sonnet-4-6","model":"claude-99","messages":[]}`, nil, 400},
		{"proxy: openai model of the wrong family", "POST", "/proxy/openai/v1/responses", "proxy", `{"model":"claude-sonnet-4-6","input":"x"}`, nil, 400},
		{"proxy: unknown endpoint", "POST", "/proxy/anthropic/v1/files", "proxy", `{}`, nil, 404},
	}

	before := storeSnapshot(t, dataDir)
	for _, tc := range cases {
		tok := fx.token(tc.token)
		hdr := tc.hdr
		if tc.method != "GET" && tc.method != "DELETE" && !hasHeader(hdr, "Content-Type") {
			hdr = append(hdr, "Content-Type", "application/json")
		}
		var body *bytes.Reader
		if tc.body != "" {
			body = bytes.NewReader([]byte(tc.body))
		}
		resp, got := doRaw(b, tc.method, tc.path, tok, body, hdr...)
		switch {
		case tc.want != 0 && resp.StatusCode != tc.want:
			t.Errorf("%s: %s %s = %d %.300s; want %d", tc.name, tc.method, short(tc.path), resp.StatusCode, got, tc.want)
		case resp.StatusCode < 400 || resp.StatusCode >= 500:
			t.Errorf("%s: %s %s = %d %.300s; want a 4xx", tc.name, tc.method, short(tc.path), resp.StatusCode, got)
		}
		if msg, ok := jsonErrorMessage(got); !ok && resp.StatusCode != 301 && resp.StatusCode != 307 {
			t.Errorf("%s: %d with no readable JSON error: %.300q", tc.name, resp.StatusCode, got)
		} else {
			t.Logf("%s: %d %.160s", tc.name, resp.StatusCode, msg)
		}
	}

	// MCP tool calls with bad arguments are error results (isError), not
	// HTTP errors: the model must see them. They change nothing either.
	for _, args := range []string{
		`{"id":"../../../etc/passwd"}`, `{"id":7}`, `{}`, `{"id":"` + strings.Repeat("i", 5000) + `"}`,
		`{"id":"tsk_\u0000"}`, `{"id":"` + fx.task + `","status":"exploded"}`,
	} {
		tool := "get_task"
		if strings.Contains(args, "status") {
			tool = "update_task"
		}
		body := `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"` + tool + `","arguments":` + args + `}}`
		resp, got := doRaw(b, "POST", "/mcp", fx.token("mcp"), bytes.NewReader([]byte(body)), mcpHdr...)
		if resp.StatusCode != 200 || !strings.Contains(got, `"isError":true`) {
			t.Errorf("tools/call %s %.80s = %d %.300s; want an isError result", tool, args, resp.StatusCode, got)
		}
	}

	if resp, _ := b.do("GET", "/healthz", "", nil); resp.StatusCode != 200 {
		t.Fatalf("/healthz = %d after the bad input", resp.StatusCode)
	}
	if after := storeSnapshot(t, dataDir); diffSnapshots(before, after) != "" {
		t.Fatalf("bad input changed the store: %s", diffSnapshots(before, after))
	}

	// Unusual but valid text is not refused, and comes back as sent:
	// astral characters (as UTF-8 and as a surrogate pair), combining
	// marks, zero-width and bidi controls, U+FFFD itself.
	name := "😀 e\u0301 \u200b\u202e\ufffd 漢字"
	for _, body := range []string{
		`{"name":` + jsonQuote(name) + `}`,
		`{"name":"\ud83d\ude00 e\u0301 \u200b\u202e\ufffd 漢字"}`,
	} {
		resp, got := b.do("POST", "/v1/projects", admin, strings.NewReader(body))
		var p struct{ ID, Name string }
		if resp.StatusCode != 201 || json.Unmarshal([]byte(got), &p) != nil || p.Name != name {
			t.Fatalf("valid unicode %s = %d %s", body, resp.StatusCode, got)
		}
		resp, got = b.do("GET", "/v1/projects/"+p.ID, admin, nil)
		if json.Unmarshal([]byte(got), &p) != nil || p.Name != name {
			t.Fatalf("valid unicode read back: %d %s", resp.StatusCode, got)
		}
	}
}

func jsonQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

var mcpHdr = []string{"Accept", "application/json, text/event-stream", "Content-Type", "application/json"}

func hasHeader(hdr []string, name string) bool {
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], name) {
			return true
		}
	}
	return false
}

func short(p string) string {
	if len(p) > 80 {
		return p[:80] + "…"
	}
	return p
}

// fixtures is what the bad-input and fault tests need on a broker: a
// project with a task, and tokens of each purpose.
type fixtures struct {
	admin, mcp, proxy string
	project, task     string
}

func newFixtures(t testing.TB, b *broker, admin string) *fixtures {
	t.Helper()
	fx := &fixtures{admin: admin}
	var p, tk struct{ ID string }
	resp, body := b.do("POST", "/v1/projects", admin, strings.NewReader(`{"name":"fixtures"}`))
	if resp.StatusCode != 201 || json.Unmarshal([]byte(body), &p) != nil {
		t.Fatalf("create project = %d %s", resp.StatusCode, body)
	}
	fx.project = p.ID
	resp, body = b.do("POST", "/v1/projects/"+p.ID+"/tasks", admin, strings.NewReader(`{"title":"a task"}`))
	if resp.StatusCode != 201 || json.Unmarshal([]byte(body), &tk) != nil {
		t.Fatalf("create task = %d %s", resp.StatusCode, body)
	}
	fx.task = tk.ID
	mint := func(req string) string {
		var m struct{ Token string }
		resp, body := b.do("POST", "/v1/tokens", admin, strings.NewReader(req))
		if resp.StatusCode != 201 || json.Unmarshal([]byte(body), &m) != nil {
			t.Fatalf("mint = %d %s", resp.StatusCode, body)
		}
		return m.Token
	}
	fx.mcp = mint(`{"subject":"t","purpose":"mcp","project":"` + p.ID + `","session":"ses_fixture","agent":"codex",` +
		`"scopes":["project:read","tasks:read","tasks:write","knowledge:read","knowledge:write","sessions:read"]}`)
	fx.proxy = mint(`{"subject":"t","purpose":"proxy","project":"` + p.ID + `","session":"ses_fixture","agent":"claude-code","scopes":["inference"]}`)
	return fx
}

func (fx *fixtures) token(name string) string {
	switch name {
	case "admin":
		return fx.admin
	case "mcp":
		return fx.mcp
	case "proxy":
		return fx.proxy
	}
	return name
}

// noRedirects answers redirects as they are, so that a test sees them.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// doRaw is broker.do without following redirects; body may be nil.
func doRaw(b *broker, method, path, token string, body *bytes.Reader, hdr ...string) (*http.Response, string) {
	b.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = body
	}
	req, err := http.NewRequest(method, b.url(""), rd)
	if err != nil {
		b.t.Fatal(err)
	}
	req.URL.Opaque = "//" + b.addr + path // the path as written: no cleaning of .. or %2F
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, short(path), err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, string(data)
}

func manyTags(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"tag%d"`, i)
	}
	return b.String()
}

// TestBodyLimits sends each endpoint that reads a body one exactly at its
// limit (not refused for its size: accepted, or refused for what it says)
// and one a byte over, in trailing whitespace and inside a value (413
// with a JSON error naming the limit). The viewer's WebSocket messages
// likewise: at the limit answered, over it the connection closed with
// 1009.
func TestBodyLimits(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	b := startBroker(t, dataDir, "AGENTBROKER_CUSTOM_AGENT="+refagentBin)
	admin := adminToken(t, dataDir)
	fx := newFixtures(t, b, admin)

	for _, tc := range []struct {
		name, path, token string
		limit             int
		obj               string // a JSON object ending in a string value, to pad
		hdr               []string
		atLimit           int // the status at the limit
	}{
		{"sessions", "/v1/sessions", admin, sessions.MaxRequestBody,
			`{"project":"prj_nope","agent":"custom","credential":{"kind":"none"},"title":"t"}`, nil, 400},
		{"admin", "/v1/projects", admin, adminapi.MaxBody, `{"name":"at the limit","description":"d"}`, nil, 201},
		{"mcp", "/mcp", fx.mcp, mcpserver.DefaultMaxBodyBytes, `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"x":"y"}}}`, mcpHdr, 200},
		{"proxy", "/proxy/anthropic/v1/messages", fx.proxy, proxy.DefaultMaxBodyBytes,
			`{"model":"claude-99","max_tokens":1,"messages":[{"role":"user","content":"c"}]}`, nil, 404},
	} {
		hdr := append([]string{"Content-Type", "application/json"}, tc.hdr...)
		pad := func(n int) string { return tc.obj + strings.Repeat(" ", n-len(tc.obj)) }
		inside := func(n int) string {
			i := strings.LastIndex(tc.obj, `"`)
			return tc.obj[:i] + strings.Repeat("x", n-len(tc.obj)) + tc.obj[i:]
		}
		resp, body := doRaw(b, "POST", tc.path, tc.token, bytes.NewReader([]byte(pad(tc.limit))), hdr...)
		if resp.StatusCode != tc.atLimit {
			t.Errorf("%s: %d bytes (the limit) = %d %.300s; want %d", tc.name, tc.limit, resp.StatusCode, body, tc.atLimit)
		}
		for what, over := range map[string]string{"in trailing space": pad(tc.limit + 1), "inside a value": inside(tc.limit + 1)} {
			resp, body := doRaw(b, "POST", tc.path, tc.token, bytes.NewReader([]byte(over)), hdr...)
			msg, ok := jsonErrorMessage(body)
			if resp.StatusCode != 413 || !ok || !strings.Contains(msg, fmt.Sprint(tc.limit)) {
				t.Errorf("%s: %d bytes (one over, %s) = %d %.300s; want 413 naming the limit", tc.name, tc.limit+1, what, resp.StatusCode, body)
			}
		}
	}

	// The viewer's messages, on a real session.
	cwd := agentDir(t)
	resp, body := b.do("POST", "/v1/sessions", admin, strings.NewReader(fmt.Sprintf(
		`{"project":%q,"agent":"custom","credential":{"kind":"none"},"cwd":%q}`, fx.project, cwd)))
	var created sessions.CreateResponse
	if resp.StatusCode != 201 || json.Unmarshal([]byte(body), &created) != nil {
		t.Fatalf("create session = %d %s", resp.StatusCode, body)
	}
	u := "ws" + strings.TrimPrefix(b.url(""), "http") + "/v1/sessions/" + created.Session.ID + "/events?after=1000000"
	c, _, err := websocket.DefaultDialer.Dial(u, http.Header{"Authorization": {"Bearer " + admin}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	at := `{"type":"cancel"}` + strings.Repeat(" ", sessions.MaxClientMessage-len(`{"type":"cancel"}`))
	c.WriteMessage(websocket.TextMessage, []byte(at))
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	var f sessions.Frame
	if err := c.ReadJSON(&f); err != nil || f.Type != "error" || !strings.Contains(f.Error, "no_turn") && !strings.Contains(f.Error, "no turn") {
		t.Fatalf("a message at the limit (a cancel with no turn) answered %+v, %v", f, err)
	}
	c.WriteMessage(websocket.TextMessage, []byte(at+" "))
	_, _, err = c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig {
		t.Fatalf("a message one byte over the limit: %v; want close 1009", err)
	}
	if resp, _ := b.do("GET", "/healthz", "", nil); resp.StatusCode != 200 {
		t.Fatalf("/healthz = %d", resp.StatusCode)
	}
}
