package acp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// transcriptLine is one line of a recorded transcript.
type transcriptLine struct {
	T   float64         `json:"t"`
	Dir string          `json:"dir"` // ">>" to the agent, "<<" from it, "EOF", "EXIT"
	Msg json.RawMessage `json:"msg"`
}

type wireMsg struct {
	ID     json.RawMessage  `json:"id,omitempty"`
	Method string           `json:"method,omitempty"`
	Params json.RawMessage  `json:"params,omitempty"`
	Result json.RawMessage  `json:"result,omitempty"`
	Error  *json.RawMessage `json:"error,omitempty"`
}

func (m wireMsg) isRequest() bool  { return m.Method != "" && len(m.ID) > 0 && string(m.ID) != "null" }
func (m wireMsg) isResponse() bool { return m.Method == "" }

func readTranscript(t testing.TB, path string) []transcriptLine {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []transcriptLine
	for i, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var tl transcriptLine
		if err := json.Unmarshal(l, &tl); err != nil {
			t.Fatalf("%s:%d: %v", path, i+1, err)
		}
		out = append(out, tl)
	}
	return out
}

func transcripts(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob("testdata/transcripts/*.jsonl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	return files
}

// Typed messages by direction and method: what the params (requests,
// notifications) or the result (responses) decode into.
var (
	clientParams = map[string]func() any{
		MethodInitialize:       func() any { return new(InitializeRequest) },
		MethodAuthenticate:     func() any { return new(AuthenticateRequest) },
		MethodSessionNew:       func() any { return new(NewSessionRequest) },
		MethodSessionLoad:      func() any { return new(LoadSessionRequest) },
		MethodSessionPrompt:    func() any { return new(PromptRequest) },
		MethodSessionCancel:    func() any { return new(CancelNotification) },
		MethodSessionSetMode:   func() any { return new(SetSessionModeRequest) },
		MethodSessionSetConfig: func() any { return new(SetSessionConfigOptionRequest) },
	}
	agentResults = map[string]func() any{
		MethodInitialize:       func() any { return new(InitializeResponse) },
		MethodAuthenticate:     func() any { return new(AuthenticateResponse) },
		MethodSessionNew:       func() any { return new(NewSessionResponse) },
		MethodSessionLoad:      func() any { return new(LoadSessionResponse) },
		MethodSessionPrompt:    func() any { return new(PromptResponse) },
		MethodSessionSetMode:   func() any { return new(SetSessionModeResponse) },
		MethodSessionSetConfig: func() any { return new(SetSessionConfigOptionResponse) },
	}
	agentParams = map[string]func() any{
		MethodSessionUpdate:     func() any { return new(SessionNotification) },
		MethodRequestPermission: func() any { return new(RequestPermissionRequest) },
		MethodFSReadTextFile:    func() any { return new(ReadTextFileRequest) },
		MethodFSWriteTextFile:   func() any { return new(WriteTextFileRequest) },
	}
	clientResults = map[string]func() any{
		MethodRequestPermission: func() any { return new(RequestPermissionResponse) },
		MethodFSReadTextFile:    func() any { return new(ReadTextFileResponse) },
		MethodFSWriteTextFile:   func() any { return new(WriteTextFileResponse) },
	}
)

// normalize decodes JSON for a semantic comparison. ACP's optional members
// are optional both ways: a member whose value is null counts as absent
// (Go's omitempty cannot write a null back), and so does a boolean false
// (every ACP capability and flag defaults to false).
func normalize(t testing.TB, raw []byte) any {
	t.Helper()
	var v any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		t.Fatalf("normalize %s: %v", raw, err)
	}
	return strip(v)
}

func strip(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if e == nil || e == false {
				delete(x, k)
				continue
			}
			x[k] = strip(e)
		}
	case []any:
		for i := range x {
			x[i] = strip(x[i])
		}
	}
	return v
}

// roundTrip decodes raw into v, encodes it again, and compares.
func roundTrip(t testing.TB, where string, raw []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Errorf("%s: decode %T: %v", where, v, err)
		return
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Errorf("%s: encode %T: %v", where, v, err)
		return
	}
	if a, b := normalize(t, raw), normalize(t, out); !reflect.DeepEqual(a, b) {
		t.Errorf("%s: %T does not round-trip:\n got %s\nwant %s", where, v, clip(out), clip(raw))
	}
}

func clip(b []byte) string {
	if len(b) > 1500 {
		return string(b[:1500]) + "…"
	}
	return string(b)
}

// TestGoldenTranscripts round-trips every message of the recorded
// transcripts (claude-agent-acp, both codex adapters, amp) that this
// package types, in both directions, through our types.
func TestGoldenTranscripts(t *testing.T) {
	t.Parallel()
	for _, path := range transcripts(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			t.Parallel()
			pending := map[string]string{} // dir+id -> method
			typed := map[string]int{}
			var untyped []string
			for i, tl := range readTranscript(t, path) {
				if tl.Dir != ">>" && tl.Dir != "<<" {
					continue
				}
				var m wireMsg
				if err := json.Unmarshal(tl.Msg, &m); err != nil {
					t.Fatalf("line %d: %v", i+1, err)
				}
				where := fmt.Sprintf("%s:%d", filepath.Base(path), i+1)
				toAgent := tl.Dir == ">>"
				switch {
				case m.Method != "":
					if m.isRequest() {
						pending[tl.Dir+string(m.ID)] = m.Method
					}
					table := agentParams
					if toAgent {
						table = clientParams
					}
					mk, ok := table[m.Method]
					if !ok {
						untyped = append(untyped, tl.Dir+" "+m.Method)
						continue
					}
					roundTrip(t, where+" "+m.Method, m.Params, mk())
					typed[tl.Dir+" "+m.Method]++
				case m.isResponse():
					reqDir := "<<"
					if !toAgent {
						reqDir = ">>"
					}
					method := pending[reqDir+string(m.ID)]
					if method == "" {
						t.Errorf("%s: response %s to no request", where, m.ID)
						continue
					}
					if m.Error != nil {
						var e RPCError
						var je struct {
							Code    int64           `json:"code"`
							Message string          `json:"message"`
							Data    json.RawMessage `json:"data"`
						}
						if err := json.Unmarshal(*m.Error, &je); err != nil {
							t.Errorf("%s: error object: %v", where, err)
						}
						e = RPCError{Method: method, Code: je.Code, Message: je.Message, Data: je.Data}
						typed[tl.Dir+" "+method+" error "+fmt.Sprint(e.Code)]++
						continue
					}
					table := agentResults
					if toAgent {
						table = clientResults
					}
					mk, ok := table[method]
					if !ok {
						untyped = append(untyped, tl.Dir+" result of "+method)
						continue
					}
					roundTrip(t, where+" result of "+method, m.Result, mk())
					typed[tl.Dir+" result of "+method]++
				}
			}
			// Only extension notifications (names starting with "_") may
			// be untyped.
			for _, u := range untyped {
				if !strings.HasPrefix(strings.TrimPrefix(strings.TrimPrefix(u, ">> "), "<< "), "_") {
					t.Errorf("untyped message: %s", u)
				}
			}
			keys := make([]string, 0, len(typed))
			for k := range typed {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			t.Logf("typed: %v; extension (ignored): %d", keys, len(untyped))
		})
	}
}

// TestGoldenUpdateKinds checks that every session/update kind in the
// transcripts decodes into its typed variant (not only Raw).
func TestGoldenUpdateKinds(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, path := range transcripts(t) {
		for _, tl := range readTranscript(t, path) {
			var m wireMsg
			if tl.Dir != "<<" || json.Unmarshal(tl.Msg, &m) != nil || m.Method != MethodSessionUpdate {
				continue
			}
			var n SessionNotification
			if err := json.Unmarshal(m.Params, &n); err != nil {
				t.Fatal(err)
			}
			if n.Update.variant() == nil {
				t.Errorf("%s: update kind %q has no typed variant", filepath.Base(path), n.Update.Kind)
			}
			seen[n.Update.Kind] = true
		}
	}
	for _, k := range []string{UpdateAgentMessageChunk, UpdateToolCall, UpdateToolCallUpdate, UpdateAvailableCommands,
		UpdateConfigOption, UpdateSessionInfo, UpdateUsage} {
		if !seen[k] {
			t.Errorf("no %s in the transcripts", k)
		}
	}
}

// TestGoldenSpecShapes round-trips message shapes that the transcripts do
// not contain, written after the ACP v1 schema (session/load, config
// options, fs, plans, thoughts, diffs, other content blocks, stdio MCP).
func TestGoldenSpecShapes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		json string
		v    any
	}{
		{"session/load", `{"sessionId":"sess_1","cwd":"/w","mcpServers":[{"name":"fs","command":"/bin/mcp","args":["--stdio"],"env":[{"name":"TOKEN","value":"x"}]}]}`, new(LoadSessionRequest)},
		{"session/load sse", `{"sessionId":"s","cwd":"/w","mcpServers":[{"type":"sse","name":"s","url":"http://h/sse","headers":[]}]}`, new(LoadSessionRequest)},
		{"session/load result", `{"modes":{"currentModeId":"ask","availableModes":[{"id":"ask","name":"Ask"}]},"configOptions":[]}`, new(LoadSessionResponse)},
		{"set_config_option", `{"sessionId":"s","configId":"model","value":"claude-opus-4-8"}`, new(SetSessionConfigOptionRequest)},
		{"set_config_option result", `{"configOptions":[{"id":"model","name":"Model","category":"model","type":"select","currentValue":"claude-opus-4-8","options":[{"value":"claude-opus-4-8","name":"Opus"}]}]}`, new(SetSessionConfigOptionResponse)},
		{"fs read", `{"sessionId":"s","path":"/w/a.go","line":10,"limit":50}`, new(ReadTextFileRequest)},
		{"fs read result", `{"content":"package a\n"}`, new(ReadTextFileResponse)},
		{"fs write", `{"sessionId":"s","path":"/w/a.go","content":"package a\n"}`, new(WriteTextFileRequest)},
		{"fs write result", `{}`, new(WriteTextFileResponse)},
		{"plan", `{"sessionId":"s","update":{"sessionUpdate":"plan","entries":[{"content":"Read","priority":"high","status":"completed"},{"content":"Edit","priority":"medium","status":"in_progress"}]}}`, new(SessionNotification)},
		{"thought", `{"sessionId":"s","update":{"sessionUpdate":"agent_thought_chunk","content":{"type":"text","text":"hmm"}}}`, new(SessionNotification)},
		{"user chunk", `{"sessionId":"s","update":{"sessionUpdate":"user_message_chunk","content":{"type":"resource_link","uri":"file:///w/a.go","name":"a.go","mimeType":"text/x-go","size":12}}}`, new(SessionNotification)},
		{"current mode", `{"sessionId":"s","update":{"sessionUpdate":"current_mode_update","currentModeId":"code"}}`, new(SessionNotification)},
		{"unknown update kind", `{"sessionId":"s","update":{"sessionUpdate":"_vendor_thing","x":[1,{"y":2}]}}`, new(SessionNotification)},
		{"tool call diff", `{"sessionId":"s","update":{"sessionUpdate":"tool_call","toolCallId":"c","title":"Edit a.go","kind":"edit","status":"pending","content":[{"type":"diff","path":"/w/a.go","oldText":"a","newText":"b"},{"type":"diff","path":"/w/new.go","newText":"c"},{"type":"terminal","terminalId":"t1"}],"locations":[{"path":"/w/a.go","line":3}]}}`, new(SessionNotification)},
		{"image prompt", `{"sessionId":"s","prompt":[{"type":"image","data":"iVBORw0KGgo=","mimeType":"image/png"},{"type":"resource","resource":{"uri":"file:///w/a.go","text":"package a","mimeType":"text/x-go"}},{"type":"text","text":""}]}`, new(PromptRequest)},
		{"permission cancelled", `{"outcome":{"outcome":"cancelled"}}`, new(RequestPermissionResponse)},
		{"permission reject_always", `{"sessionId":"s","toolCall":{"toolCallId":"c"},"options":[{"optionId":"n","name":"Never","kind":"reject_always"}]}`, new(RequestPermissionRequest)},
	} {
		roundTrip(t, tc.name, []byte(tc.json), tc.v)
	}
}
