package acp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/agentbroker/agentbroker/acp"
	"github.com/agentbroker/agentbroker/internal/refagent"
)

// Our MCP server entry: HTTP with a bearer header when the agent takes
// HTTP MCP servers, else the stdio bridge with the token in its env.
// Printing an entry never shows the token.
func ExampleNewMCPServerEntry() {
	httpCaps := acp.AgentCapabilities{McpCapabilities: acp.McpCapabilities{HTTP: true}}
	e, _ := acp.NewMCPServerEntry(httpCaps, "agentbroker", "http://127.0.0.1:7420/mcp", "tok123", "/usr/local/bin/agentbroker")
	b, _ := json.Marshal(e)
	fmt.Println(string(b))
	fmt.Println(e)

	s, _ := acp.NewMCPServerEntry(acp.AgentCapabilities{}, "agentbroker", "http://127.0.0.1:7420/mcp", "tok123", "/usr/local/bin/agentbroker")
	b, _ = json.Marshal(s)
	fmt.Println(string(b))
	fmt.Println(s)

	_, err := acp.NewMCPServerEntry(httpCaps, "agentbroker", "http://127.0.0.1:7420/mcp", "tok\r\nX-Evil: 1", "")
	fmt.Println(err)
	// Output:
	// {"type":"http","name":"agentbroker","url":"http://127.0.0.1:7420/mcp","headers":[{"name":"Authorization","value":"Bearer tok123"}]}
	// mcp http "agentbroker": http://127.0.0.1:7420/mcp headers ["Authorization"]
	// {"name":"agentbroker","command":"/usr/local/bin/agentbroker","args":["mcp-bridge"],"env":[{"name":"AGENTBROKER_MCP_URL","value":"http://127.0.0.1:7420/mcp"},{"name":"AGENTBROKER_MCP_TOKEN","value":"tok123"}]}
	// mcp stdio "agentbroker": /usr/local/bin/agentbroker ["mcp-bridge"] env ["AGENTBROKER_MCP_URL" "AGENTBROKER_MCP_TOKEN"]
	// acp: invalid MCP server entry: the token contains a control character
}

// A connection to an agent (here the reference agent, in-process over
// pipes; in the broker, a process's stdout and stdin).
func ExampleNewConn() {
	ctx := context.Background()
	agentIn, clientOut := io.Pipe()
	clientIn, agentOut := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- refagent.Run(ctx, agentIn, agentOut, refagent.Options{})
		agentOut.Close()
	}()

	c := acp.NewConn(ctx, clientIn, clientOut, &acp.ConnOptions{
		OnUpdate: func(u acp.Update) {
			if u.Update.Kind == acp.UpdateAgentMessageChunk {
				fmt.Println("agent:", u.Update.Text())
			}
		},
	})
	sess, err := c.Handshake(ctx, acp.HandshakeOptions{Cwd: os.TempDir()})
	if err != nil {
		panic(err)
	}
	stop, err := c.Prompt(ctx, sess.ID, []acp.ContentBlock{acp.TextBlock("hello")})
	fmt.Println(stop, err)
	c.Close()
	fmt.Println(<-done)
	// Output:
	// agent: You said: hello
	// end_turn <nil>
	// <nil>
}
