package acp_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"go.uber.org/goleak"

	"github.com/agentbroker/agentbroker/acp"
	"github.com/agentbroker/agentbroker/internal/mcpbridge"
)

var refagentBin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// TestMain doubles as `agentbroker mcp-bridge` (the test binary is the
// bridge command of stdio MCP entries), checks for leaked goroutines, and
// removes the refagent binary built by the process tests.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == acp.BridgeSubcommand {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := mcpbridge.Run(ctx, os.Stdin, os.Stdout, mcpbridge.Options{
			URL: os.Getenv(acp.EnvMCPURL), Token: os.Getenv(acp.EnvMCPToken)})
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "test mcp-bridge:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := 0
	func() {
		defer func() {
			if refagentBin.dir != "" {
				os.RemoveAll(refagentBin.dir)
			}
		}()
		goleak.VerifyTestMain(leakCheck{m, &code},
			// net/http keeps idle keep-alive connections of the MCP
			// clients' transports for a while.
			goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		)
	}()
	os.Exit(code)
}

// leakCheck lets TestMain clean up after goleak's run.
type leakCheck struct {
	m    *testing.M
	code *int
}

func (l leakCheck) Run() int { *l.code = l.m.Run(); return *l.code }

// buildRefagent builds internal/refagent/cmd/refagent once.
func buildRefagent(t *testing.T) string {
	t.Helper()
	b := &refagentBin
	b.once.Do(func() {
		b.dir, b.err = os.MkdirTemp("", "refagent-bin-")
		if b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "refagent")
		cmd := exec.Command("go", "build", "-o", b.path, "github.com/agentbroker/agentbroker/internal/refagent/cmd/refagent")
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build refagent: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// mcpFixture is a tiny MCP server with one tool, get_task, behind a bearer
// check. It records what reached it.
type mcpFixture struct {
	URL   string
	Token string

	authorized   atomic.Int64
	unauthorized atomic.Int64
	listed       atomic.Int64
	mu           sync.Mutex
	calls        []string // task IDs get_task was called with
}

func newMCPFixture(t *testing.T, token string) *mcpFixture {
	t.Helper()
	f := &mcpFixture{Token: token}
	s := server.NewMCPServer("acp-test-mcp", "0.0.1", server.WithToolCapabilities(false))
	s.AddTool(mcp.NewTool("get_task",
		mcp.WithDescription("Get a task of the project by ID."),
		mcp.WithString("task_id", mcp.Required(), mcp.Description("the task ID, tsk_…")),
	), func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		id, err := req.RequireString("task_id")
		if err != nil {
			return mcp.NewToolResultError(err.Error()), nil
		}
		f.mu.Lock()
		f.calls = append(f.calls, id)
		f.mu.Unlock()
		return mcp.NewToolResultText(fmt.Sprintf("task %s: Write the ACP docs (status: open)", id)), nil
	})
	h := server.NewStreamableHTTPServer(s, server.WithStateLess(true))
	mux := http.NewServeMux()
	mux.Handle("/mcp", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			f.unauthorized.Add(1)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		f.authorized.Add(1)
		if r.Method == http.MethodPost && r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
			body := &peekBody{rc: r.Body}
			r.Body = body
			defer func() {
				if strings.Contains(body.buf.String(), `"tools/list"`) {
					f.listed.Add(1)
				}
			}()
		}
		h.ServeHTTP(w, r)
	}))
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	f.URL = srv.URL + "/mcp"
	return f
}

func (f *mcpFixture) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}
