package adminapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agentbroker/agentbroker/catalog"
	"github.com/agentbroker/agentbroker/internal/server"
	"github.com/agentbroker/agentbroker/store/sqlite"
	"github.com/agentbroker/agentbroker/tokens"
)

type fixture struct {
	t     *testing.T
	srv   *httptest.Server
	admin string
	svc   *tokens.Service
	db    *sqlite.DB
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, sqlite.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	svc, err := tokens.New(ctx, db, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	s := server.New(nil)
	Mount(s, svc, cat)
	MountProjects(s, svc, db)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	admin, _, err := svc.Mint(ctx, tokens.Grant{Subject: "op", Audience: tokens.AudienceAdmin, Scopes: []tokens.Scope{tokens.ScopeAdmin}})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, srv: srv, admin: admin, svc: svc, db: db}
}

// call sends a request with the admin token and decodes a JSON answer into out.
func (f *fixture) call(method, path, body string, out any) int {
	f.t.Helper()
	return f.callAs(f.admin, method, path, body, out)
}

func (f *fixture) callAs(token, method, path, body string, out any) int {
	f.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, f.srv.URL+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			f.t.Fatalf("%s %s: bad JSON %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode
}

func TestKeysAndTokens(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var keys struct{ Keys []KeyJSON }
	if code := f.call("GET", "/v1/keys", "", &keys); code != 200 || len(keys.Keys) != 1 || !keys.Keys[0].Signing {
		t.Fatalf("GET /v1/keys = %d %+v", code, keys)
	}
	first := keys.Keys[0].ID
	var rotated struct {
		SigningKID string `json:"signing_kid"`
	}
	if code := f.call("POST", "/v1/keys/rotate", "", &rotated); code != 200 || rotated.SigningKID == first {
		t.Fatalf("rotate = %d %+v", code, rotated)
	}
	if code := f.call("POST", "/v1/keys/"+first+"/retire", "", nil); code != 200 {
		t.Fatalf("retire = %d", code)
	}
	// The admin token was signed by the retired key: it no longer opens anything.
	if code := f.call("GET", "/v1/keys", "", nil); code != 401 {
		t.Fatalf("token of a retired key = %d; want 401", code)
	}
	var err error
	f.admin, _, err = f.svc.Mint(context.Background(), tokens.Grant{Subject: "op", Audience: tokens.AudienceAdmin, Scopes: []tokens.Scope{tokens.ScopeAdmin}})
	if err != nil {
		t.Fatal(err)
	}
	if code := f.call("POST", "/v1/keys/nope/retire", "", nil); code != 404 {
		t.Fatalf("retire unknown = %d; want 404", code)
	}

	var minted MintResponse
	code := f.call("POST", "/v1/tokens", `{"subject":"u","purpose":"viewer","project":"p","session":"s","scopes":["session:view"]}`, &minted)
	if code != 201 || minted.Token == "" || minted.ID == "" {
		t.Fatalf("mint = %d %+v", code, minted)
	}
	if _, err := f.svc.Verify(context.Background(), minted.Token, tokens.AudienceViewer); err != nil {
		t.Fatalf("minted token does not verify: %v", err)
	}
	if code := f.call("POST", "/v1/tokens/revoke", `{"session":"s"}`, nil); code != 200 {
		t.Fatalf("revoke = %d", code)
	}
	if _, err := f.svc.Verify(context.Background(), minted.Token, tokens.AudienceViewer); err == nil {
		t.Fatalf("token of a revoked session still verifies")
	}

	// Bad requests: each a clear 4xx.
	for _, tt := range []struct {
		path, body string
		code       int
	}{
		{"/v1/tokens", `{"purpose":"mcp"`, 400},
		{"/v1/tokens", `{"purpose":"mcp","extra":1}`, 400},
		{"/v1/tokens", `{"purpose":"everything","scopes":["admin"]}`, 400},
		{"/v1/tokens", `{"subject":"u","purpose":"mcp","project":"p","session":"s","scopes":["inference"]}`, 400},
		{"/v1/tokens", `{"subject":"u","purpose":"mcp","project":"p","session":"s","scopes":["tasks:read"],"ttl":"-1h"}`, 400},
		{"/v1/tokens", `{"subject":"u","purpose":"mcp","project":"p","session":"s","scopes":["tasks:read"],"agent":"nobody"}`, 400},
		{"/v1/tokens", `{"subject":"u","purpose":"mcp"} {"again":1}`, 400},
		{"/v1/tokens", `{"subject":"` + strings.Repeat("a", MaxBody) + `"}`, 413},
		{"/v1/tokens/revoke", `{}`, 400},
		{"/v1/tokens/revoke", `{"jti":"a","session":"b"}`, 400},
	} {
		if code := f.call("POST", tt.path, tt.body, nil); code != tt.code {
			t.Errorf("POST %s %.60q = %d; want %d", tt.path, tt.body, code, tt.code)
		}
	}
}

// TestMintNeverEscalates: POST /v1/tokens never mints a token that outlives
// the caller's, nor one with a scope the caller lacks. A 5-minute admin
// token asking for 90 days is refused (403), not clamped; without a ttl,
// the default is cut to the caller's remaining lifetime.
func TestMintNeverEscalates(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	short, minter, err := f.svc.Mint(ctx, tokens.Grant{Subject: "op", Audience: tokens.AudienceAdmin,
		Scopes: []tokens.Scope{tokens.ScopeAdmin}, Lifetime: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var refusal struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	code := f.callAs(short, "POST", "/v1/tokens", `{"subject":"op","purpose":"admin","scopes":["admin"],"ttl":"2160h"}`, &refusal)
	if code != 403 || refusal.Error != "exceeds_minter" || !strings.Contains(refusal.Description, "outlives the minting token") {
		t.Fatalf("90-day admin token from a 5-minute one = %d %+v; want 403 exceeds_minter", code, refusal)
	}
	for _, body := range []string{
		`{"subject":"op","purpose":"admin","scopes":["admin"]}`,
		`{"subject":"op","purpose":"admin","scopes":["admin"],"ttl":"1m"}`,
		`{"subject":"u","purpose":"mcp","project":"p","session":"s","scopes":["tasks:read"]}`,
	} {
		var minted MintResponse
		if code := f.callAs(short, "POST", "/v1/tokens", body, &minted); code != 201 {
			t.Fatalf("mint %s = %d; want 201", body, code)
		}
		if minted.ExpiresAt.After(minter.ExpiresAt) {
			t.Errorf("mint %s: expires %v, after the minter's %v", body, minted.ExpiresAt, minter.ExpiresAt)
		}
	}

	// A token without the admin scope reaches no mint at all.
	narrow, _, err := f.svc.Mint(ctx, tokens.Grant{Subject: "op", Audience: tokens.AudienceAdmin,
		Scopes: []tokens.Scope{tokens.ScopeTasksRead}})
	if err != nil {
		t.Fatal(err)
	}
	if code := f.callAs(narrow, "POST", "/v1/tokens", `{"subject":"op","purpose":"admin","scopes":["admin"],"ttl":"1m"}`, nil); code != 403 {
		t.Errorf("admin minted by a tasks:read admin-audience token = %d; want 403", code)
	}
}

func TestAdminRoutesNeedAdminToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	mcp, _, err := f.svc.Mint(context.Background(), tokens.Grant{Subject: "u", Audience: tokens.AudienceMCP,
		Project: "p", Session: "s", Scopes: []tokens.Scope{tokens.ScopeTasksRead}})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v1/keys", "/v1/projects", "/v1/whoami", "/v1/unknown/thing"} {
		if code := f.callAs("", "GET", path, "", nil); code != 401 {
			t.Errorf("GET %s without a token = %d; want 401", path, code)
		}
		if code := f.callAs(mcp, "GET", path, "", nil); code != 401 {
			t.Errorf("GET %s with an MCP token = %d; want 401", path, code)
		}
	}
	if code := f.call("GET", "/v1/unknown/thing", "", nil); code != 404 {
		t.Errorf("unknown /v1/ path with the admin token = %d; want 404", code)
	}
}

func TestProjectsTasksKnowledge(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var p ProjectJSON
	if code := f.call("POST", "/v1/projects", `{"name":"Widgets","description":"makes widgets","instructions":"Be kind."}`, &p); code != 201 || p.ID == "" {
		t.Fatalf("create project = %d %+v", code, p)
	}
	var other ProjectJSON
	f.call("POST", "/v1/projects", `{"name":"Other"}`, &other)

	var got ProjectJSON
	if code := f.call("PATCH", "/v1/projects/"+p.ID, `{"instructions":"Be very kind."}`, &got); code != 200 ||
		got.Instructions != "Be very kind." || got.Name != "Widgets" {
		t.Fatalf("patch project = %d %+v", code, got)
	}
	var list struct{ Projects []ProjectJSON }
	if code := f.call("GET", "/v1/projects", "", &list); code != 200 || len(list.Projects) != 2 {
		t.Fatalf("list projects = %d %+v", code, list)
	}

	var task TaskJSON
	if code := f.call("POST", "/v1/projects/"+p.ID+"/tasks", `{"title":"Paint","description":"blue","status":"queued"}`, &task); code != 201 || task.Status != "queued" {
		t.Fatalf("create task = %d %+v", code, task)
	}
	if code := f.call("PATCH", "/v1/projects/"+p.ID+"/tasks/"+task.ID, `{"status":"in_progress","notes":"started"}`, &task); code != 200 ||
		task.Status != "in_progress" || task.Notes != "started" || task.Title != "Paint" {
		t.Fatalf("patch task = %d %+v", code, task)
	}
	// A task is found only under its own project.
	if code := f.call("GET", "/v1/projects/"+other.ID+"/tasks/"+task.ID, "", nil); code != 404 {
		t.Fatalf("task under another project = %d; want 404", code)
	}
	if code := f.call("PATCH", "/v1/projects/"+other.ID+"/tasks/"+task.ID, `{"notes":"hijack"}`, nil); code != 404 {
		t.Fatalf("patch task under another project = %d; want 404", code)
	}
	var tasks struct{ Tasks []TaskJSON }
	if code := f.call("GET", "/v1/projects/"+p.ID+"/tasks?status=in_progress", "", &tasks); code != 200 || len(tasks.Tasks) != 1 {
		t.Fatalf("list tasks = %d %+v", code, tasks)
	}

	var k KnowledgeJSON
	if code := f.call("POST", "/v1/projects/"+p.ID+"/knowledge", `{"title":"Paint","body":"Blue on Tuesdays","tags":["paint"]}`, &k); code != 201 || len(k.Tags) != 1 {
		t.Fatalf("add knowledge = %d %+v", code, k)
	}
	if code := f.call("PATCH", "/v1/projects/"+p.ID+"/knowledge/"+k.ID, `{"tags":["paint","rules"]}`, &k); code != 200 || len(k.Tags) != 2 || k.Body != "Blue on Tuesdays" {
		t.Fatalf("patch knowledge = %d %+v", code, k)
	}
	if code := f.call("GET", "/v1/projects/"+other.ID+"/knowledge/"+k.ID, "", nil); code != 404 {
		t.Fatalf("knowledge under another project = %d; want 404", code)
	}

	// Bad input: a clear 4xx, and nothing changed.
	before, _ := f.db.GetTask(context.Background(), p.ID, task.ID)
	for _, tt := range []struct {
		method, path, body string
		code               int
	}{
		{"POST", "/v1/projects", `{"name":""}`, 400},
		{"POST", "/v1/projects", `{"name":42}`, 400},
		{"POST", "/v1/projects", `{"name":"x","owner":"me"}`, 400},
		{"POST", "/v1/projects", `[]`, 400},
		{"PATCH", "/v1/projects/prj_missing", `{"name":"x"}`, 404},
		{"POST", "/v1/projects/" + p.ID + "/tasks", `{"title":""}`, 400},
		{"POST", "/v1/projects/prj_missing/tasks", `{"title":"x"}`, 404},
		{"PATCH", "/v1/projects/" + p.ID + "/tasks/" + task.ID, `{"status":"done-ish"}`, 400},
		{"PATCH", "/v1/projects/" + p.ID + "/tasks/" + task.ID, `{"notes":"` + strings.Repeat("n", MaxBody) + `"}`, 413},
		{"PATCH", "/v1/projects/" + p.ID + "/tasks/" + task.ID, `{"notes":"a\u0000b"}`, 400},
		{"GET", "/v1/projects/" + p.ID + "/tasks?status=nope", "", 400},
		{"GET", "/v1/projects/" + p.ID + "/tasks?limit=-3", "", 400},
		{"POST", "/v1/projects/" + p.ID + "/knowledge", `{"title":"t"}`, 400},
		{"GET", "/v1/projects/..%2f..%2fetc/tasks", "", 404},
	} {
		if code := f.call(tt.method, tt.path, tt.body, nil); code != tt.code {
			t.Errorf("%s %s %.50q = %d; want %d", tt.method, tt.path, tt.body, code, tt.code)
		}
	}
	after, _ := f.db.GetTask(context.Background(), p.ID, task.ID)
	if before != after {
		t.Fatalf("a refused request changed the task:\n%+v\n%+v", before, after)
	}
}
