package mcpserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"go.uber.org/goleak"

	"github.com/agentbroker/agentbroker/internal/metrics"
	"github.com/agentbroker/agentbroker/store"
	"github.com/agentbroker/agentbroker/store/sqlite"
	"github.com/agentbroker/agentbroker/tokens"
)

var update = flag.Bool("update", false, "rewrite testdata/toolsnaps")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// world is a broker's worth of state: a SQLite store with two projects,
// a token service on it, and the MCP server mounted on an httptest server.
type world struct {
	t        testing.TB
	db       *sqlite.DB
	tokens   *tokens.Service
	srv      *Server
	obs      *MemoryObserver
	reg      *metrics.Registry
	http     *httptest.Server
	url      string // the /mcp URL
	projA    store.Project
	projB    store.Project
	taskA    store.Task // bound to session sessA
	taskA2   store.Task // bound to no session
	taskB    store.Task // project B, bound to sessB
	knA      store.Knowledge
	knB      store.Knowledge
	sessA    string // the current session of project A
	sessAOld string // an earlier session of project A, with messages
	sessB    string

	methodsMu sync.Mutex
	methods   []string // JSON-RPC methods posted to /mcp, in order
}

// newWorld builds a world; mod may adjust the server's options.
func newWorld(t testing.TB, mod func(*Options)) *world {
	return newWorldWith(t, true, mod)
}

// newWorldWith builds a world; record says whether to note the JSON-RPC
// methods posted (benchmarks leave it out).
func newWorldWith(t testing.TB, record bool, mod func(*Options)) *world {
	t.Helper()
	return newWorldOn(t, record, sqlite.Options{}, mod)
}

// newWorldOn is newWorldWith on a store opened with dbOpts (Dir is set
// here).
func newWorldOn(t testing.TB, record bool, dbOpts sqlite.Options, mod func(*Options)) *world {
	t.Helper()
	ctx := context.Background()
	dbOpts.Dir = t.TempDir()
	db, err := sqlite.Open(ctx, dbOpts)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	svc, err := tokens.New(ctx, db, db, nil)
	if err != nil {
		t.Fatalf("tokens: %v", err)
	}
	w := &world{t: t, db: db, tokens: svc, obs: &MemoryObserver{}, reg: metrics.NewRegistry(),
		sessA: "sess-a", sessAOld: "sess-a-old", sessB: "sess-b"}
	w.seed(ctx)

	mux := http.NewServeMux()
	var h http.Handler = mux
	if record {
		h = w.recordMethods(mux)
	}
	w.http = httptest.NewUnstartedServer(h)
	w.http.Start()
	w.url = w.http.URL + "/mcp"
	o := &Options{
		Store:       db,
		Tokens:      svc,
		ResourceURL: w.url,
		Observer:    w.obs,
		Metrics:     w.reg,
	}
	if mod != nil {
		mod(o)
	}
	w.srv, err = New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	w.srv.Mount(mux)
	t.Cleanup(func() {
		w.srv.Close()
		w.http.CloseClientConnections()
		w.http.Close()
	})
	return w
}

// recordMethods notes the JSON-RPC method of every POST.
func (w *world) recordMethods(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.Body != nil {
			b, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(b))
			var m struct {
				Method string `json:"method"`
			}
			_ = json.Unmarshal(b, &m)
			w.methodsMu.Lock()
			w.methods = append(w.methods, m.Method)
			w.methodsMu.Unlock()
		}
		next.ServeHTTP(rw, r)
	})
}

func (w *world) posted() []string {
	w.methodsMu.Lock()
	defer w.methodsMu.Unlock()
	return append([]string(nil), w.methods...)
}

func (w *world) seed(ctx context.Context) {
	t := w.t
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("seed: %v", err)
		}
	}
	var err error
	w.projA, err = w.db.CreateProject(ctx, store.Project{Name: "alpha", Description: "The alpha project.",
		RepoURL: "https://example.com/alpha.git", DefaultBranch: "main", Instructions: "Always run the tests."})
	must(err)
	w.projB, err = w.db.CreateProject(ctx, store.Project{Name: "beta", Instructions: "Beta rules: secret-beta-instructions."})
	must(err)
	w.taskA, err = w.db.CreateTask(ctx, store.Task{ProjectID: w.projA.ID, Title: "Fix the migration runner",
		Description: "The runner skips migrations.", Status: store.TaskInProgress, SessionID: w.sessA})
	must(err)
	w.taskA2, err = w.db.CreateTask(ctx, store.Task{ProjectID: w.projA.ID, Title: "Write the docs", Status: store.TaskQueued})
	must(err)
	w.taskB, err = w.db.CreateTask(ctx, store.Task{ProjectID: w.projB.ID, Title: "Beta migration secret task",
		Status: store.TaskInProgress, SessionID: w.sessB})
	must(err)
	w.knA, err = w.db.AddKnowledge(ctx, store.Knowledge{ProjectID: w.projA.ID, Title: "Migrations need a lock",
		Body: "Take the advisory lock before running migrations.", Tags: []string{"db", "migrations"}})
	must(err)
	w.knB, err = w.db.AddKnowledge(ctx, store.Knowledge{ProjectID: w.projB.ID, Title: "Beta migration secret",
		Body: "secret-beta-knowledge about migrations"})
	must(err)
	for _, s := range []store.SessionRecord{
		{ID: w.sessAOld, ProjectID: w.projA.ID, Agent: "codex", Title: "Earlier work"},
		{ID: w.sessA, ProjectID: w.projA.ID, Agent: "claude", Title: "Current work"},
		{ID: w.sessB, ProjectID: w.projB.ID, Agent: "claude", Title: "Beta work"},
	} {
		must(w.db.PutSession(ctx, s))
	}
	_, err = w.db.AppendMessages(ctx, []store.Message{
		{SessionID: w.sessAOld, ProjectID: w.projA.ID, Role: store.RoleUser, Content: "Please look at the migration runner."},
		{SessionID: w.sessAOld, ProjectID: w.projA.ID, Role: store.RoleAssistant, Content: "The migration runner skips the last file."},
		{SessionID: w.sessB, ProjectID: w.projB.ID, Role: store.RoleAssistant, Content: "secret-beta-message about the migration"},
	})
	must(err)
}

// Scope sets used by the tests.
var (
	readScopes = []tokens.Scope{tokens.ScopeProjectRead, tokens.ScopeTasksRead, tokens.ScopeKnowledgeRead, tokens.ScopeSessionsRead}
	allScopes  = append(append([]tokens.Scope(nil), readScopes...), tokens.ScopeTasksWrite, tokens.ScopeKnowledgeWrite)
)

// mint returns an MCP token for session of project with scopes.
func (w *world) mint(project, session string, scopes ...tokens.Scope) (string, tokens.Claims) {
	w.t.Helper()
	raw, c, err := w.tokens.Mint(context.Background(), tokens.Grant{Subject: "alice", Project: project,
		Session: session, Agent: "claude", Audience: tokens.AudienceMCP, Scopes: scopes})
	if err != nil {
		w.t.Fatalf("mint: %v", err)
	}
	return raw, c
}

// tokenA is a token of the current session of project A with scopes.
func (w *world) tokenA(scopes ...tokens.Scope) string {
	raw, _ := w.mint(w.projA.ID, w.sessA, scopes...)
	return raw
}

// client returns an initialized mcp-go client using token.
func (w *world) client(token string, opts ...transport.StreamableHTTPCOption) *client.Client {
	w.t.Helper()
	c := w.newClient(token, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Initialize(ctx, initRequest()); err != nil {
		w.t.Fatalf("initialize: %v", err)
	}
	return c
}

func (w *world) newClient(token string, opts ...transport.StreamableHTTPCOption) *client.Client {
	w.t.Helper()
	opts = append([]transport.StreamableHTTPCOption{
		transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + token}),
		transport.WithHTTPLogger(slog.New(slog.DiscardHandler)),
	}, opts...)
	c, err := client.NewStreamableHttpClient(w.url, opts...)
	if err != nil {
		w.t.Fatalf("client: %v", err)
	}
	if err := c.Start(context.Background()); err != nil {
		w.t.Fatalf("client start: %v", err)
	}
	w.t.Cleanup(func() { c.Close() })
	return c
}

func initRequest() mcp.InitializeRequest {
	var req mcp.InitializeRequest
	req.Params.ProtocolVersion = mcp.LATEST_LEGACY_PROTOCOL_VERSION
	req.Params.ClientInfo = mcp.Implementation{Name: "mcpserver-test", Version: "1"}
	return req
}

// call calls a tool and returns its result (a JSON-RPC error fails the test).
func call(t testing.TB, c *client.Client, name string, args map[string]any) *mcp.CallToolResult {
	t.Helper()
	res, err := callErr(c, name, args)
	if err != nil {
		t.Fatalf("call %s: %v", name, err)
	}
	return res
}

func callErr(c *client.Client, name string, args map[string]any) (*mcp.CallToolResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var req mcp.CallToolRequest
	req.Params.Name = name
	if args != nil {
		req.Params.Arguments = args
	}
	return c.CallTool(ctx, req)
}

// resultText is the text of a result's first content block.
func resultText(t testing.TB, res *mcp.CallToolResult) string {
	t.Helper()
	if len(res.Content) == 0 {
		t.Fatalf("result has no content")
	}
	tc, ok := mcp.AsTextContent(res.Content[0])
	if !ok {
		t.Fatalf("first content is %T, not text", res.Content[0])
	}
	return tc.Text
}

// structured decodes a successful result's structured content into a map,
// checking that the text content carries the same JSON.
func structured(t testing.TB, res *mcp.CallToolResult) map[string]any {
	t.Helper()
	if res.IsError {
		t.Fatalf("result is an error: %s", resultText(t, res))
	}
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	var m, fromText map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("structured content: %v", err)
	}
	if err := json.Unmarshal([]byte(resultText(t, res)), &fromText); err != nil {
		t.Fatalf("text content is not the JSON of the result: %v", err)
	}
	if a, b := mustJSON(t, m), mustJSON(t, fromText); a != b {
		t.Fatalf("text content %s differs from structured content %s", b, a)
	}
	return m
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// wantError checks that res is an isError result whose text contains want.
func wantError(t testing.TB, res *mcp.CallToolResult, want string) {
	t.Helper()
	if !res.IsError {
		t.Fatalf("result is not an error: %s", resultText(t, res))
	}
	if got := resultText(t, res); !strings.Contains(got, want) {
		t.Fatalf("error %q does not contain %q", got, want)
	}
	if res.StructuredContent != nil {
		t.Fatalf("error result carries structured content %v", res.StructuredContent)
	}
}

// rawResponse is an HTTP answer read whole.
type rawResponse struct {
	status int
	header http.Header
	body   []byte
}

// post sends body to the MCP endpoint with token (none if empty) and
// extra header pairs.
func (w *world) post(token, body string, header ...string) rawResponse {
	w.t.Helper()
	return w.do(http.MethodPost, token, strings.NewReader(body), header...)
}

func (w *world) do(method, token string, body io.Reader, header ...string) rawResponse {
	w.t.Helper()
	req, err := http.NewRequest(method, w.url, body)
	if err != nil {
		w.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := w.http.Client().Do(req)
	if err != nil {
		w.t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		w.t.Fatalf("read body: %v", err)
	}
	return rawResponse{resp.StatusCode, resp.Header, b}
}

// jsonrpcMessages returns the JSON-RPC messages of a POST's answer, JSON
// or SSE.
func jsonrpcMessages(t testing.TB, r rawResponse) []map[string]any {
	t.Helper()
	var out []map[string]any
	if strings.HasPrefix(r.header.Get("Content-Type"), "text/event-stream") {
		sc := bufio.NewScanner(bytes.NewReader(r.body))
		sc.Buffer(make([]byte, 1<<20), 8<<20)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var m map[string]any
				if err := json.Unmarshal([]byte(data), &m); err != nil {
					t.Fatalf("SSE data is not JSON: %v: %s", err, data)
				}
				out = append(out, m)
			}
		}
		return out
	}
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not a JSON object (%d %s): %v: %s", r.status, r.header.Get("Content-Type"), err, r.body)
	}
	return append(out, m)
}

// rpcError returns the JSON-RPC error code of a single-message answer (0 if
// it is a result).
func rpcError(t testing.TB, r rawResponse) float64 {
	t.Helper()
	msgs := jsonrpcMessages(t, r)
	last := msgs[len(msgs)-1]
	e, ok := last["error"].(map[string]any)
	if !ok {
		return 0
	}
	return e["code"].(float64)
}

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

func toolsCallBody(id int, name string, args any) string {
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": "tools/call",
		"params": map[string]any{"name": name, "arguments": args}})
	return string(b)
}

// metric returns the value of one series in the registry's text output
// (0 when absent).
func (w *world) metric(series string) float64 {
	w.t.Helper()
	var b bytes.Buffer
	w.reg.WriteText(&b)
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			if err := json.Unmarshal([]byte(v), &f); err != nil {
				w.t.Fatalf("metric %s: %v", series, err)
			}
			return f
		}
	}
	return 0
}

// syncBuffer is a bytes.Buffer safe for a logger writing from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func slogTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// challengeParam extracts name="value" from a WWW-Authenticate challenge
// (values as the tokens package quotes them), as a client reads it.
func challengeParam(challenge, name string) string {
	i := strings.Index(challenge, " "+name+`="`)
	if i < 0 {
		i = strings.Index(challenge, ","+name+`="`)
		if i < 0 {
			return ""
		}
	}
	rest := challenge[i+len(name)+3:]
	var b strings.Builder
	for j := 0; j < len(rest); j++ {
		switch rest[j] {
		case '\\':
			if j+1 < len(rest) {
				j++
				b.WriteByte(rest[j])
			}
		case '"':
			return b.String()
		default:
			b.WriteByte(rest[j])
		}
	}
	return b.String()
}
