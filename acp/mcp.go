package acp

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"unicode"
)

// NameValue is an HTTP header or an environment variable of an MCP server
// entry: ACP sends both as arrays of {name, value}. Its String and
// LogValue hide the value (headers and env carry tokens).
type NameValue struct {
	Name  string          `json:"name"`
	Value string          `json:"value"`
	Meta  json.RawMessage `json:"_meta,omitempty"`
}

// String shows the name only.
func (nv NameValue) String() string { return nv.Name + "=[REDACTED]" }

// LogValue shows the name only.
func (nv NameValue) LogValue() slog.Value { return slog.StringValue(nv.String()) }

// MCP transport types. A stdio entry has no "type" on the wire.
const (
	MCPTransportStdio = ""
	MCPTransportHTTP  = "http"
	MCPTransportSSE   = "sse"
)

// McpServer is an entry of session/new's mcpServers: an HTTP (or SSE)
// server {type, name, url, headers}, or a stdio server {name, command,
// args, env} (Type ""). Headers and Env are always sent, as arrays. Its
// String, GoString and LogValue redact header and env values.
type McpServer struct {
	Type    string      // MCPTransportHTTP, MCPTransportSSE, or "" for stdio
	Name    string      //
	URL     string      // http and sse
	Headers []NameValue // http and sse
	Command string      // stdio
	Args    []string    // stdio
	Env     []NameValue // stdio
	Meta    json.RawMessage
	Extra   Extra
}

type mcpHTTPWire struct {
	Type    string          `json:"type"`
	Name    string          `json:"name"`
	URL     string          `json:"url"`
	Headers []NameValue     `json:"headers"`
	Meta    json.RawMessage `json:"_meta,omitempty"`
}

type mcpStdioWire struct {
	Name    string          `json:"name"`
	Command string          `json:"command"`
	Args    []string        `json:"args"`
	Env     []NameValue     `json:"env"`
	Meta    json.RawMessage `json:"_meta,omitempty"`
}

// MarshalJSON writes the shape of the entry's transport.
func (s McpServer) MarshalJSON() ([]byte, error) {
	if s.Type == MCPTransportStdio {
		w := mcpStdioWire{Name: s.Name, Command: s.Command, Args: s.Args, Env: s.Env, Meta: s.Meta}
		if w.Args == nil {
			w.Args = []string{}
		}
		if w.Env == nil {
			w.Env = []NameValue{}
		}
		return marshalObject(w, s.Extra)
	}
	w := mcpHTTPWire{Type: s.Type, Name: s.Name, URL: s.URL, Headers: s.Headers, Meta: s.Meta}
	if w.Headers == nil {
		w.Headers = []NameValue{}
	}
	return marshalObject(w, s.Extra)
}

// UnmarshalJSON reads either shape.
func (s *McpServer) UnmarshalJSON(b []byte) error {
	var probe struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return err
	}
	*s = McpServer{}
	if probe.Type == MCPTransportStdio || probe.Type == "stdio" {
		var w mcpStdioWire
		if err := unmarshalObject(b, &w, &s.Extra); err != nil {
			return err
		}
		s.Name, s.Command, s.Args, s.Env, s.Meta = w.Name, w.Command, w.Args, w.Env, w.Meta
		if probe.Type == "stdio" {
			s.Extra = withKey(s.Extra, "type", json.RawMessage(`"stdio"`))
		}
		return nil
	}
	var w mcpHTTPWire
	if err := unmarshalObject(b, &w, &s.Extra); err != nil {
		return err
	}
	s.Type, s.Name, s.URL, s.Headers, s.Meta = w.Type, w.Name, w.URL, w.Headers, w.Meta
	return nil
}

func withKey(x Extra, k string, v json.RawMessage) Extra {
	if x == nil {
		x = Extra{}
	}
	x[k] = v
	return x
}

func names(nvs []NameValue) []string {
	out := make([]string, len(nvs))
	for i, nv := range nvs {
		out[i] = nv.Name
	}
	return out
}

// LogValue describes the entry without header or env values.
func (s McpServer) LogValue() slog.Value {
	if s.Type == MCPTransportStdio {
		return slog.GroupValue(
			slog.String("name", s.Name), slog.String("transport", "stdio"),
			slog.String("command", s.Command), slog.Any("args", s.Args),
			slog.Any("env", names(s.Env)))
	}
	return slog.GroupValue(
		slog.String("name", s.Name), slog.String("transport", s.Type),
		slog.String("url", redactURL(s.URL)), slog.Any("headers", names(s.Headers)))
}

// String describes the entry without header or env values.
func (s McpServer) String() string {
	if s.Type == MCPTransportStdio {
		return fmt.Sprintf("mcp stdio %q: %s %q env %q", s.Name, s.Command, s.Args, names(s.Env))
	}
	return fmt.Sprintf("mcp %s %q: %s headers %q", s.Type, s.Name, redactURL(s.URL), names(s.Headers))
}

// GoString is String, so that %#v does not print secrets either.
func (s McpServer) GoString() string { return "acp.McpServer{" + s.String() + "}" }

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "[unparsable URL]"
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	if u.RawQuery != "" {
		u.RawQuery = "REDACTED"
	}
	return u.String()
}

// Environment variables of the stdio bridge entry.
const (
	EnvMCPURL   = "AGENTBROKER_MCP_URL"
	EnvMCPToken = "AGENTBROKER_MCP_TOKEN"
)

// BridgeSubcommand is the argument that makes the broker's executable a
// stdio MCP bridge.
const BridgeSubcommand = "mcp-bridge"

// NewMCPServerEntry builds the entry for our MCP server: when the agent
// advertises mcpCapabilities.http, an HTTP entry with an
// "Authorization: Bearer <token>" header; otherwise a stdio entry that runs
// `<bridgeCommand> mcp-bridge` with the URL and the token in its
// environment (never in argv). It refuses a name, URL, token or command
// with a line break or another control character, a URL that is not
// absolute http(s), an empty token, and a stdio entry without a command.
func NewMCPServerEntry(caps AgentCapabilities, name, mcpURL, token, bridgeCommand string) (McpServer, error) {
	for _, f := range []struct{ what, v string }{
		{"name", name}, {"URL", mcpURL}, {"token", token}, {"bridge command", bridgeCommand},
	} {
		if hasControl(f.v) {
			return McpServer{}, fmt.Errorf("%w: the %s contains a control character", ErrInvalidMCPEntry, f.what)
		}
	}
	if name == "" {
		return McpServer{}, fmt.Errorf("%w: no name", ErrInvalidMCPEntry)
	}
	if token == "" {
		return McpServer{}, fmt.Errorf("%w: no token", ErrInvalidMCPEntry)
	}
	u, err := url.Parse(mcpURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return McpServer{}, fmt.Errorf("%w: the URL is not an absolute http(s) URL", ErrInvalidMCPEntry)
	}
	if caps.McpCapabilities.HTTP {
		return McpServer{
			Type:    MCPTransportHTTP,
			Name:    name,
			URL:     mcpURL,
			Headers: []NameValue{{Name: "Authorization", Value: "Bearer " + token}},
		}, nil
	}
	if bridgeCommand == "" {
		return McpServer{}, fmt.Errorf("%w: the agent takes only stdio MCP servers and no bridge command was given", ErrInvalidMCPEntry)
	}
	return McpServer{
		Name:    name,
		Command: bridgeCommand,
		Args:    []string{BridgeSubcommand},
		Env:     []NameValue{{Name: EnvMCPURL, Value: mcpURL}, {Name: EnvMCPToken, Value: token}},
	}, nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || r == unicode.ReplacementChar {
			return true
		}
	}
	return false
}
