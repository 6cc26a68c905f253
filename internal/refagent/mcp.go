package refagent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/agentbroker/agentbroker/acp"
)

// mcpConn is a connection to one MCP server of a session.
type mcpConn struct {
	name   string
	client *client.Client
	tools  []string
}

// connectMCP connects to an MCP server entry the way Claude and Codex do
// at session/new: initialize, then tools/list. HTTP entries get their
// headers; stdio entries are started with their env (appended to ours).
func connectMCP(ctx context.Context, e acp.McpServer, log *slog.Logger) (*mcpConn, error) {
	var c *client.Client
	switch e.Type {
	case acp.MCPTransportHTTP:
		headers := make(map[string]string, len(e.Headers))
		for _, h := range e.Headers {
			headers[h.Name] = h.Value
		}
		var err error
		c, err = client.NewStreamableHttpClient(e.URL, transport.WithHTTPHeaders(headers), transport.WithHTTPLogger(log))
		if err != nil {
			return nil, fmt.Errorf("mcp %q: %w", e.Name, err)
		}
	case acp.MCPTransportStdio:
		env := make([]string, 0, len(e.Env))
		for _, v := range e.Env {
			env = append(env, v.Name+"="+v.Value)
		}
		t := transport.NewStdioWithOptions(e.Command, env, e.Args, transport.WithCommandLogger(log))
		c = client.NewClient(t)
	default:
		return nil, fmt.Errorf("mcp %q: transport %q not supported", e.Name, e.Type)
	}
	if err := c.Start(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("mcp %q: start: %w", e.Name, err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = mcp.LATEST_PROTOCOL_VERSION
	init.Params.ClientInfo = mcp.Implementation{Name: "refagent", Version: Version}
	if _, err := c.Initialize(ctx, init); err != nil {
		c.Close()
		return nil, fmt.Errorf("mcp %q: initialize: %w", e.Name, err)
	}
	list, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("mcp %q: tools/list: %w", e.Name, err)
	}
	m := &mcpConn{name: e.Name, client: c}
	for _, t := range list.Tools {
		m.tools = append(m.tools, t.Name)
	}
	return m, nil
}

func (m *mcpConn) has(tool string) bool {
	for _, t := range m.tools {
		if t == tool {
			return true
		}
	}
	return false
}

// call calls a tool and returns the text of its result and the result as
// JSON. A tool error result is returned as an error.
func (m *mcpConn) call(ctx context.Context, tool string, args map[string]any) (string, json.RawMessage, error) {
	req := mcp.CallToolRequest{}
	req.Params.Name = tool
	req.Params.Arguments = args
	res, err := m.client.CallTool(ctx, req)
	if err != nil {
		return "", nil, err
	}
	var texts []string
	for _, c := range res.Content {
		if t, ok := mcp.AsTextContent(c); ok {
			texts = append(texts, t.Text)
		}
	}
	raw, _ := json.Marshal(res)
	text := strings.Join(texts, "\n")
	if res.IsError {
		return text, raw, fmt.Errorf("tool error: %s", text)
	}
	return text, raw, nil
}
