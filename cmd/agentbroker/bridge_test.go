package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/agentbroker/agentbroker/acp"
)

// TestMCPBridgeProcess drives the real `agentbroker mcp-bridge` process with
// mcp-go's stdio client, as an agent without HTTP MCP would, against an
// HTTP MCP server that wants a bearer token. The token travels in the
// environment and appears nowhere in the process's argv.
func TestMCPBridgeProcess(t *testing.T) {
	t.Parallel()
	const token = "bridge-secret-7f3a"
	s := server.NewMCPServer("test", "1.0.0")
	s.AddTool(mcp.NewTool("get_task", mcp.WithString("task_id", mcp.Required())),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText("task " + req.GetString("task_id", "") + ": ship it"), nil
		})
	h := server.NewStreamableHTTPServer(s)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()

	// The URL comes as the broker gives it (acp.MCPServerStdio): in the
	// environment, the --mcp-url flag's twin.
	c, err := client.NewStdioMCPClient(binary, []string{mcpTokenEnv + "=" + token, acp.EnvMCPURL + "=" + srv.URL}, "mcp-bridge")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = mcp.LATEST_PROTOCOL_VERSION
	init.Params.ClientInfo = mcp.Implementation{Name: "test", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatalf("initialize through the bridge: %v", err)
	}

	// The bridge's argv holds no token.
	matches, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	found := false
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil || !strings.Contains(string(b), "mcp-bridge") {
			continue
		}
		found = true
		if strings.Contains(string(b), token) {
			t.Fatalf("token in %s: %q", m, b)
		}
	}
	if !found {
		t.Fatalf("no mcp-bridge process found in /proc")
	}

	tools, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil || len(tools.Tools) != 1 {
		t.Fatalf("tools/list = %v, %v", tools, err)
	}
	req := mcp.CallToolRequest{}
	req.Params.Name = "get_task"
	req.Params.Arguments = map[string]any{"task_id": "t9"}
	res, err := c.CallTool(ctx, req)
	if err != nil {
		t.Fatalf("tools/call: %v", err)
	}
	if text := res.Content[0].(mcp.TextContent).Text; text != "task t9: ship it" {
		t.Fatalf("tools/call = %q", text)
	}
}

func TestMCPBridgeNeedsToken(t *testing.T) {
	t.Parallel()
	_, _, err := runCLI(t, nil, "", "mcp-bridge", "--mcp-url", "http://127.0.0.1:1/mcp")
	if err == nil || !strings.Contains(err.Error(), mcpTokenEnv) {
		t.Fatalf("mcp-bridge without a token = %v; want an error naming %s", err, mcpTokenEnv)
	}
}
