// Package mcpbridge connects an MCP client that speaks stdio (one JSON-RPC
// message a line) to an MCP server that speaks streamable HTTP, adding the
// bearer token on the way. Agents whose ACP adapter cannot take an HTTP MCP
// server get `agentbroker mcp-bridge` as a stdio server instead; the token
// reaches the bridge in its environment, never in its argv.
//
// Each message read from stdin is POSTed to the server. A JSON answer is
// written back as one line; an SSE answer is written back event by event,
// so progress notifications arrive while a tool runs. Requests run
// concurrently (a slow tool call does not hold up a cancellation), and the
// session ID the server assigns at initialize is sent with every later
// message and with a DELETE when stdin ends.
package mcpbridge

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
)

// MaxMessage bounds one message in either direction.
const MaxMessage = 8 << 20

// Options configure Run.
type Options struct {
	// URL of the MCP endpoint (streamable HTTP). Required.
	URL string
	// Token is sent as "Authorization: Bearer …". Required. It is never
	// logged.
	Token string
	// Client makes the HTTP requests. Nil: a client without an overall
	// timeout (tool calls and their streams may take long).
	Client *http.Client
	// Logger receives diagnostics. Nil: silent.
	Logger *slog.Logger
}

// message is the part of a JSON-RPC message the bridge looks at.
type message struct {
	ID     json.RawMessage `json:"id,omitempty"`
	Method string          `json:"method,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
}

func (m message) isRequest() bool { return m.Method != "" && len(m.ID) > 0 && string(m.ID) != "null" }

type bridge struct {
	opts Options
	log  *slog.Logger

	outMu sync.Mutex
	out   *bufio.Writer

	mu        sync.Mutex
	sessionID string
	version   string
}

// Run bridges in to the server and the server's answers to out until in
// ends or ctx is done. It returns nil when in ends cleanly.
func Run(ctx context.Context, in io.Reader, out io.Writer, opts Options) error {
	if opts.URL == "" {
		return errors.New("mcp bridge: no MCP URL")
	}
	if opts.Token == "" {
		return errors.New("mcp bridge: no token (set AGENTBROKER_MCP_TOKEN)")
	}
	if strings.ContainsAny(opts.Token, "\r\n") || strings.ContainsAny(opts.URL, "\r\n") {
		return errors.New("mcp bridge: URL or token contains a line break")
	}
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	b := &bridge{opts: opts, log: opts.Logger, out: bufio.NewWriter(out)}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()

	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), MaxMessage)
	initialized := false
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var m message
		if err := json.Unmarshal(line, &m); err != nil {
			b.writeError(json.RawMessage("null"), -32700, "parse error: not a JSON-RPC message")
			continue
		}
		body := bytes.Clone(line)
		// initialize runs alone, so its session ID is known to what follows.
		if m.Method == "initialize" || !initialized {
			b.forward(ctx, m, body)
			initialized = initialized || m.Method == "initialize"
			continue
		}
		wg.Go(func() { b.forward(ctx, m, body) })
	}
	err := sc.Err()
	wg.Wait()
	b.closeSession(context.WithoutCancel(ctx))
	if err != nil {
		return fmt.Errorf("mcp bridge: read stdin: %w", err)
	}
	return nil
}

// forward POSTs one message and writes back whatever the server answers.
func (b *bridge) forward(ctx context.Context, m message, body []byte) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.opts.URL, bytes.NewReader(body))
	if err != nil {
		b.fail(m, fmt.Sprintf("bridge: %v", err))
		return
	}
	b.headers(req)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := b.opts.Client.Do(req)
	if err != nil {
		b.log.Warn("mcp bridge: request failed", "method", m.Method, "err", err)
		b.fail(m, "MCP server unreachable")
		return
	}
	defer resp.Body.Close()
	if sid := resp.Header.Get("Mcp-Session-Id"); sid != "" && m.Method == "initialize" {
		b.mu.Lock()
		b.sessionID = sid
		b.mu.Unlock()
	}
	switch {
	case resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusNoContent:
		return
	case resp.StatusCode >= 300:
		detail, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		b.log.Warn("mcp bridge: server refused", "method", m.Method, "status", resp.StatusCode)
		b.fail(m, fmt.Sprintf("MCP server answered %d %s: %s", resp.StatusCode,
			http.StatusText(resp.StatusCode), strings.TrimSpace(string(detail))))
		return
	}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch ct {
	case "text/event-stream":
		b.relaySSE(resp.Body, m)
	default:
		data, err := io.ReadAll(io.LimitReader(resp.Body, MaxMessage+1))
		if err != nil || len(data) > MaxMessage {
			b.fail(m, "MCP server answer unreadable or too large")
			return
		}
		b.emit(data, m)
	}
}

// headers adds the token and the session's headers.
func (b *bridge) headers(req *http.Request) {
	req.Header.Set("Authorization", "Bearer "+b.opts.Token)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sessionID != "" {
		req.Header.Set("Mcp-Session-Id", b.sessionID)
	}
	if b.version != "" {
		req.Header.Set("MCP-Protocol-Version", b.version)
	}
}

// relaySSE writes each event's data as one line.
func (b *bridge) relaySSE(r io.Reader, m message) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxMessage)
	var data []byte
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			if len(data) > 0 {
				b.emit(data, m)
				data = data[:0]
			}
		case bytes.HasPrefix(line, []byte("data:")):
			if len(data) > 0 {
				data = append(data, '\n')
			}
			data = append(data, bytes.TrimPrefix(bytes.TrimPrefix(line, []byte("data:")), []byte(" "))...)
		}
	}
	if len(data) > 0 {
		b.emit(data, m)
	}
	if err := sc.Err(); err != nil {
		b.log.Warn("mcp bridge: event stream broke", "method", m.Method, "err", err)
	}
}

// emit writes one message from the server as one line, remembering the
// protocol version an initialize result names.
func (b *bridge) emit(data []byte, m message) {
	var compact bytes.Buffer
	if err := json.Compact(&compact, data); err != nil {
		b.fail(m, "MCP server sent a message that is not JSON")
		return
	}
	if m.Method == "initialize" {
		var ans struct {
			ID     json.RawMessage `json:"id"`
			Result struct {
				ProtocolVersion string `json:"protocolVersion"`
			} `json:"result"`
		}
		if json.Unmarshal(compact.Bytes(), &ans) == nil && bytes.Equal(ans.ID, m.ID) && ans.Result.ProtocolVersion != "" {
			b.mu.Lock()
			b.version = ans.Result.ProtocolVersion
			b.mu.Unlock()
		}
	}
	b.write(compact.Bytes())
}

// fail answers a request that could not be forwarded; notifications have
// no one to tell.
func (b *bridge) fail(m message, msg string) {
	if m.isRequest() {
		b.writeError(m.ID, -32603, msg)
	}
}

func (b *bridge) writeError(id json.RawMessage, code int, msg string) {
	out, _ := json.Marshal(map[string]any{
		"jsonrpc": "2.0",
		"id":      id,
		"error":   map[string]any{"code": code, "message": msg},
	})
	b.write(out)
}

func (b *bridge) write(line []byte) {
	b.outMu.Lock()
	defer b.outMu.Unlock()
	b.out.Write(line)
	b.out.WriteByte('\n')
	b.out.Flush()
}

// closeSession tells the server the session is over, as Codex does.
func (b *bridge) closeSession(ctx context.Context) {
	b.mu.Lock()
	sid := b.sessionID
	b.mu.Unlock()
	if sid == "" {
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, b.opts.URL, nil)
	if err != nil {
		return
	}
	b.headers(req)
	if resp, err := b.opts.Client.Do(req); err == nil {
		resp.Body.Close()
	}
}
