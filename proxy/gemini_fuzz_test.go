package proxy

import (
	"testing"
)

// FuzzGeminiUsage feeds arbitrary answers to the Gemini usage reader,
// streamed and whole: it never panics and never reports a negative count.
func FuzzGeminiUsage(f *testing.F) {
	for _, s := range []string{
		"data: {\"candidates\":[{\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":10,\"cachedContentTokenCount\":3,\"candidatesTokenCount\":5,\"thoughtsTokenCount\":2}}\r\n\r\n",
		`[{"usageMetadata":{"promptTokenCount":1}},{"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":2}}]`,
		`{"usageMetadata":{"promptTokenCount":1,"cachedContentTokenCount":9}}`,
		`{"error":{"code":500}}`, `[`, ``,
	} {
		f.Add([]byte(s))
	}
	var rt route
	for _, r := range routes {
		if r.name == RouteStreamGenerateContent {
			rt = r
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, sse := range []bool{true, false} {
			m := newMeter(rt, sse)
			m.Write(b)
			m.finish()
			u, _ := m.usage()
			if u.InputTokens < 0 || u.OutputTokens < 0 || u.CacheReadTokens < 0 {
				t.Fatalf("negative usage %+v from %q", u, b)
			}
		}
	})
}

// TestGeminiUsage: the prompt count includes cached tokens (taken out of
// input), thoughts and tool-use prompts are counted, the last chunk's
// usage wins, a chunk with a finishReason completes the stream, and a
// JSON array (a stream without alt=sse) is read to its end.
func TestGeminiUsage(t *testing.T) {
	var rt route
	for _, r := range routes {
		if r.name == RouteStreamGenerateContent {
			rt = r
		}
	}
	m := newMeter(rt, true)
	m.Write([]byte("data: {\"usageMetadata\":{\"promptTokenCount\":10}}\r\n\r\n" +
		"data: {\"candidates\":[{\"finishReason\":\"STOP\"}],\"responseId\":\"r1\",\"usageMetadata\":{\"promptTokenCount\":10,\"cachedContentTokenCount\":3,\"candidatesTokenCount\":5,\"thoughtsTokenCount\":2,\"toolUsePromptTokenCount\":4}}\r\n\r\n"))
	m.finish()
	u, ok := m.usage()
	if !ok || u.InputTokens != 11 || u.CacheReadTokens != 3 || u.OutputTokens != 7 || !m.complete || m.responseID() != "r1" {
		t.Errorf("sse: %+v %v complete %v id %q", u, ok, m.complete, m.responseID())
	}
	j := newMeter(rt, false)
	j.Write([]byte(`[{"usageMetadata":{"promptTokenCount":1}},{"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":2}}]`))
	j.finish()
	if u, ok := j.usage(); !ok || u.InputTokens != 4 || u.OutputTokens != 2 {
		t.Errorf("array: %+v %v", u, ok)
	}
}
