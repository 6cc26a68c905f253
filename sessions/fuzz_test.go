package sessions

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzClientMessage feeds arbitrary bytes as a viewer's WebSocket message:
// the parser never panics, accepts only one JSON object of a known type
// with the fields that type needs, and what it accepts survives a round
// trip through JSON unchanged; what is not JSON is refused.
func FuzzClientMessage(f *testing.F) {
	for _, seed := range []string{
		`{"type":"prompt","text":"hello"}`,
		`{"type":"cancel"}`,
		`{"type":"permission","request_id":"perm_1","option_id":"proceed"}`,
		`{"type":"prompt","text":""}`,
		`{"type":"prompt","text":"a"} {"type":"cancel"}`,
		`{"type":"nope"}`,
		`{"type":"cancel","extra":1}`,
		`{"type":1}`,
		`[{"type":"cancel"}]`,
		`{"type":"prompt","text":"\ud800"}`,
		"{\"type\":\"prompt\",\"text\":\"\xff\xfe\"}",
		`null`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := ParseClientMessage(data)
		if err != nil {
			if msg != (ClientMessage{}) {
				t.Fatalf("an error (%v) came with a message %+v", err, msg)
			}
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		if len(data) > MaxClientMessage {
			t.Fatalf("accepted %d bytes", len(data))
		}
		switch msg.Type {
		case "prompt":
			if strings.TrimSpace(msg.Text) == "" {
				t.Fatalf("accepted an empty prompt from %q", data)
			}
		case "cancel":
		case "permission":
			if msg.RequestID == "" || msg.OptionID == "" {
				t.Fatalf("accepted a permission answer without ids from %q", data)
			}
		default:
			t.Fatalf("accepted type %q from %q", msg.Type, data)
		}
		for _, s := range []string{msg.Type, msg.Text, msg.RequestID, msg.OptionID} {
			if !utf8.ValidString(s) {
				t.Fatalf("a field is not valid UTF-8 after decoding %q", data)
			}
		}
		again, err := json.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseClientMessage(again)
		if err != nil || back != msg {
			t.Fatalf("round trip of %q: %+v, %v; want %+v", again, back, err, msg)
		}
	})
}

func TestParseClientMessageLimit(t *testing.T) {
	big := `{"type":"prompt","text":"` + strings.Repeat("x", MaxClientMessage) + `"}`
	if _, err := ParseClientMessage([]byte(big)); err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("a message over the limit: %v", err)
	}
	for in, want := range map[string]string{
		`{"type":"cancel"} x`:           "trailing",
		`{"type":"prompt","text":"  "}`: "non-empty text",
		`{"type":"permission"}`:         "request_id and option_id",
		`{"type":"stop"}`:               "unknown message type",
		`{"type":"cancel","x":1}`:       "unknown field",
	} {
		if _, err := ParseClientMessage([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseClientMessage(%s) = %v; want an error naming %q", in, err, want)
		}
	}
}
