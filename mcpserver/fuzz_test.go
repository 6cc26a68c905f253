package mcpserver

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzMCPRequest posts arbitrary bodies, with a valid token carrying every
// scope, to the whole MCP handler: it never panics, always answers with a
// known status and a well-formed body (JSON, or SSE events of JSON), and
// answers a body that is not JSON with a JSON-RPC parse error.
func FuzzMCPRequest(f *testing.F) {
	w := newWorld(f, func(o *Options) {
		o.RateLimit.PerSecond = -1
		o.MaxBodyBytes = 64 << 10
	})
	tok := w.tokenA(append(allScopes, "tasks:manage")...)
	for _, seed := range []string{
		initBody,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`,
		toolsCallBody(2, "get_task", map[string]any{"id": w.taskA.ID}),
		toolsCallBody(3, "update_task", map[string]any{"id": w.taskA.ID, "status": "failed", "notes": "x"}),
		toolsCallBody(4, "search_messages", map[string]any{"query": "runner", "limit": 1e308}),
		`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"get_task","arguments":[1],"_meta":{"progressToken":{}}}}`,
		`{"jsonrpc":"2.0","id":6,"method":"server/discover"}`,
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}`,
		`[{"jsonrpc":"2.0","id":1,"method":"ping"}]`,
		`{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}`,
		`{"jsonrpc":"1.0","id":1,"method":"ping"}`,
		`{"id":1,"result":{}}`,
		`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_project","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`,
		`{"jsonrpc":"2.0","id":8,"method":"resources/read","params":{"uri":"agentbroker://tasks/x"}}`,
		`{"jsonrpc":"2.0","id":9,"method":"resources/list","params":{"cursor":null}}`,
		`{"jsonrpc":"2.0","id":10,"method":"resources/templates/list"}`,
		`{"jsonrpc":"2.0","id":11,"method":"prompts/get","params":{"name":"project_instructions"}}`,
		`[{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}},{"jsonrpc":"2.0","method":"notifications/initialized"}]`,
		`{`,
		"\x00\xff",
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/mcp", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		w.srv.handler.ServeHTTP(rec, req)

		switch rec.Code {
		case http.StatusOK, http.StatusAccepted, http.StatusBadRequest, http.StatusForbidden,
			http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		ct := rec.Header().Get("Content-Type")
		var msgs []json.RawMessage
		switch {
		case rec.Code == http.StatusAccepted:
			if rec.Body.Len() != 0 {
				t.Fatalf("202 with a body: %q", rec.Body)
			}
		case strings.HasPrefix(ct, "text/event-stream"):
			sc := bufio.NewScanner(rec.Body)
			sc.Buffer(make([]byte, 1<<20), 16<<20)
			for sc.Scan() {
				if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
					if !json.Valid([]byte(data)) {
						t.Fatalf("SSE data is not JSON: %q", data)
					}
					msgs = append(msgs, json.RawMessage(data))
				}
			}
			if len(msgs) == 0 {
				t.Fatalf("SSE answer without a message for %q", body)
			}
		case strings.HasPrefix(ct, "application/json"):
			if !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("JSON answer is not JSON: %q", rec.Body)
			}
			msgs = append(msgs, rec.Body.Bytes())
		case strings.HasPrefix(ct, "text/plain"):
			// mcp-go's transport-level refusals (e.g. a protocol version
			// header it does not know): plain text, 4xx.
			if rec.Code < 400 {
				t.Fatalf("plain-text answer with status %d", rec.Code)
			}
		default:
			t.Fatalf("status %d with Content-Type %q: %q", rec.Code, ct, rec.Body)
		}
		if !json.Valid(body) {
			if rec.Code == http.StatusRequestEntityTooLarge {
				return
			}
			if rec.Code != http.StatusBadRequest || len(msgs) != 1 {
				t.Fatalf("invalid JSON %q answered %d %q", body, rec.Code, rec.Body)
			}
			var e struct {
				JSONRPC string `json:"jsonrpc"`
				Error   struct {
					Code int `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal(msgs[0], &e); err != nil || e.JSONRPC != "2.0" || e.Error.Code != -32700 {
				t.Fatalf("invalid JSON %q answered %s; want a JSON-RPC parse error", body, msgs[0])
			}
		}
	})
}
