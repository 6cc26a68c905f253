package acp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sourcegraph/jsonrpc2"
)

var discard = slog.New(slog.DiscardHandler)

func filterAll(t testing.TB, input string, max int) (accepted []string, skipped int64, err error) {
	t.Helper()
	f := newLineFilter(strings.NewReader(input), max, discard)
	out, err := io.ReadAll(f)
	for _, l := range strings.Split(string(out), "\n") {
		if l != "" {
			accepted = append(accepted, l)
		}
	}
	return accepted, f.skipped.Load(), err
}

func TestLineFilter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, line string
		ok         bool
	}{
		{"request", `{"jsonrpc":"2.0","id":1,"method":"session/update","params":{}}`, true},
		{"string id", `{"jsonrpc":"2.0","id":"29eec32a","method":"session/request_permission","params":{}}`, true},
		{"notification", `{"jsonrpc":"2.0","method":"_auth/status_update","params":{"x":1}}`, true},
		{"null id notification", `{"jsonrpc":"2.0","id":null,"method":"x"}`, true},
		{"response", `{"jsonrpc":"2.0","id":3,"result":{"stopReason":"end_turn"}}`, true},
		{"null result", `{"jsonrpc":"2.0","id":3,"result":null}`, true},
		{"error response", `{"jsonrpc":"2.0","id":2,"error":{"code":-32000,"message":"Authentication required"}}`, true},
		{"string id response", `{"jsonrpc":"2.0","id":"a","result":{}}`, true},
		{"crlf", "{\"id\":1,\"result\":{}}\r", true},
		{"not json", `Warning: something`, false},
		{"broken json", `{"jsonrpc":"2.0",`, false},
		{"two objects", `{"id":1,"result":1}{"id":2,"result":2}`, false},
		{"array", `[{"id":1,"result":1}]`, false},
		{"string", `"hello"`, false},
		{"neither", `{"jsonrpc":"2.0","id":1}`, false},
		{"both", `{"id":1,"method":"m","result":1}`, false},
		{"method not string", `{"id":1,"method":5}`, false},
		{"null method", `{"method":null}`, false},
		{"case variant result", `{"id":1,"method":"m","Result":1}`, false},
		{"negative id", `{"id":-1,"method":"m"}`, false},
		{"float id", `{"id":1.5,"method":"m"}`, false},
		{"exp id", `{"id":1e3,"method":"m"}`, false},
		{"bool id", `{"id":true,"method":"m"}`, false},
		{"null response id", `{"id":null,"result":{}}`, false},
		{"missing response id", `{"result":{}}`, false},
		{"negative response id", `{"id":-2,"result":{}}`, false},
		{"error not object", `{"id":1,"error":"boom"}`, false},
		{"error code float", `{"id":1,"error":{"code":1.5,"message":"x"}}`, false},
		{"case variant", `{"id":1,"Method":"m","method":"m"}`, false},
		{"fold variant", "{\"id\":1,\"re\u017fult\":1,\"result\":1}", false},
		{"duplicate method", `{"method":0,"method":"m"}`, false},
		{"duplicate id", `{"id":"a","id":1,"result":1}`, false},
	} {
		acc, skipped, err := filterAll(t, tc.line+"\n", 1024)
		if !errors.Is(err, ErrPeerClosed) {
			t.Errorf("%s: err %v", tc.name, err)
		}
		if got := len(acc) == 1; got != tc.ok || (tc.ok && skipped != 0) || (!tc.ok && skipped != 1) {
			t.Errorf("%s: accepted %q skipped %d, want ok=%v", tc.name, acc, skipped, tc.ok)
		}
	}
}

func TestLineFilterLimits(t *testing.T) {
	t.Parallel()
	good := `{"id":1,"result":{}}`
	// Over-long noise is discarded; the stream goes on.
	acc, skipped, err := filterAll(t, strings.Repeat("x", 5000)+"\n"+good+"\n", 100)
	if len(acc) != 1 || skipped != 1 || !errors.Is(err, ErrPeerClosed) {
		t.Fatalf("noise: %q %d %v", acc, skipped, err)
	}
	// Over-long noise at EOF without a newline.
	acc, _, err = filterAll(t, good+"\n"+strings.Repeat("y", 70000), 100)
	if len(acc) != 1 || !errors.Is(err, ErrPeerClosed) {
		t.Fatalf("noise at EOF: %q %v", acc, err)
	}
	// An over-long JSON line is fatal.
	acc, _, err = filterAll(t, good+"\n  {\"id\":2,\"result\":\""+strings.Repeat("z", 200)+"\"}\n"+good+"\n", 100)
	if len(acc) != 1 || !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("long JSON: %q %v", acc, err)
	}
	// Exactly at the limit passes.
	line := `{"id":1,"result":"` + strings.Repeat("a", 100-len(`{"id":1,"result":""}`)) + `"}`
	acc, _, _ = filterAll(t, line+"\n", 100)
	if len(acc) != 1 || len(line) != 100 {
		t.Fatalf("at the limit: %d accepted", len(acc))
	}
	// A last line without a newline.
	acc, _, _ = filterAll(t, good, 100)
	if len(acc) != 1 {
		t.Fatal("last line without newline lost")
	}
}

// pipeAgent is a scripted agent on pipes for connection-level tests.
type pipeAgent struct {
	out  *io.PipeWriter // what the agent writes (our client reads)
	in   *io.PipeReader // what our client writes
	rd   *bytes.Buffer
	mu   sync.Mutex
	done chan struct{}
}

func newPipeConn(t *testing.T, opts *ConnOptions) (*Conn, *pipeAgent) {
	t.Helper()
	outR, outW := io.Pipe()
	inR, inW := io.Pipe()
	a := &pipeAgent{out: outW, in: inR, rd: &bytes.Buffer{}, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		buf := make([]byte, 4096)
		for {
			n, err := inR.Read(buf)
			a.mu.Lock()
			a.rd.Write(buf[:n])
			a.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	c := NewConn(context.Background(), outR, inW, opts)
	t.Cleanup(func() {
		c.Close()
		outW.Close()
		<-a.done
	})
	return c, a
}

func (a *pipeAgent) send(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(a.out, s); err != nil {
		t.Fatal(err)
	}
}

// waitFor waits until the client has written a line containing s.
func (a *pipeAgent) waitFor(t *testing.T, s string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		a.mu.Lock()
		for _, l := range strings.Split(a.rd.String(), "\n") {
			if strings.Contains(l, s) {
				a.mu.Unlock()
				return l
			}
		}
		a.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("the client never wrote %q", s)
	return ""
}

// Unknown requests (number and string IDs) are answered -32601; unknown
// notifications are ignored; over-long noise is skipped; updates keep
// flowing.
func TestConnUnknownAndNoise(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []string
	c, a := newPipeConn(t, &ConnOptions{MaxLineBytes: 256, OnUpdate: func(u Update) {
		mu.Lock()
		got = append(got, u.Update.Text())
		mu.Unlock()
	}})
	a.send(t, `{"jsonrpc":"2.0","id":7,"method":"terminal/create","params":{}}`+"\n")
	a.send(t, `{"jsonrpc":"2.0","id":"s-1","method":"_x/ping"}`+"\n")
	a.send(t, `{"jsonrpc":"2.0","method":"_x/notice","params":{"a":1}}`+"\n")
	a.send(t, strings.Repeat("progress ", 100)+"\n")
	a.send(t, `{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"s","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"still here"}}}}`+"\n")
	for _, id := range []string{`"id":7`, `"id":"s-1"`} {
		l := a.waitFor(t, id)
		var m struct {
			Error jsonrpc2.Error `json:"error"`
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil || m.Error.Code != CodeMethodNotFound {
			t.Fatalf("answer %s, want -32601", l)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != "still here" {
		t.Fatalf("updates %q", got)
	}
	if c.Err() != nil || c.Stats().SkippedLines != 1 {
		t.Fatalf("err %v, skipped %d", c.Err(), c.Stats().SkippedLines)
	}
}

// FuzzLine feeds arbitrary bytes as an agent's stdout: the filter never
// panics, keeps its memory bounded, passes only lines within the limit
// that it accepts, and sourcegraph/jsonrpc2 decodes everything it passes
// without a protocol error.
func FuzzLine(f *testing.F) {
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}` + "\n"))
	f.Add([]byte("garbage\n{\"id\":\"x\",\"result\":null}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const max = 512
		lf := newLineFilter(bytes.NewReader(data), max, discard)
		out, err := io.ReadAll(lf)
		if err != nil && !errors.Is(err, ErrPeerClosed) && !errors.Is(err, ErrLineTooLong) {
			t.Fatalf("unexpected error %v", err)
		}
		if c := cap(lf.buf); c > 4*max+64 {
			t.Fatalf("line buffer grew to %d", c)
		}
		if len(out) > len(data)+bytes.Count(data, []byte("\n"))+1 {
			t.Fatalf("more out (%d) than in (%d)", len(out), len(data))
		}
		for _, l := range bytes.Split(out, []byte("\n")) {
			if len(l) == 0 {
				continue
			}
			if len(l) > max {
				t.Fatalf("passed a line of %d bytes", len(l))
			}
			if ok, _ := acceptLine(l); !ok {
				t.Fatalf("passed a line it does not accept: %q", l)
			}
		}
		// The library must decode all of it.
		var logs bytes.Buffer
		var lmu sync.Mutex
		rw := &fuzzStream{r: bytes.NewReader(out)}
		conn := jsonrpc2.NewConn(context.Background(), jsonrpc2.NewPlainObjectStream(rw),
			jsonrpc2.HandlerWithError(func(context.Context, *jsonrpc2.Conn, *jsonrpc2.Request) (any, error) { return nil, nil }),
			jsonrpc2.SetLogger(lockedLogger{&lmu, &logs}))
		<-conn.DisconnectNotify()
		// The library reads on until EOF unless a message fails to decode.
		if !rw.eof.Load() {
			lmu.Lock()
			defer lmu.Unlock()
			t.Fatalf("jsonrpc2 stopped before the end of the filtered input %q: %s", out, logs.String())
		}
	})
}

type fuzzStream struct {
	r   io.Reader
	eof atomic.Bool
}

func (s *fuzzStream) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err == io.EOF {
		s.eof.Store(true)
	}
	return n, err
}
func (s *fuzzStream) Write(p []byte) (int, error) { return len(p), nil }
func (s *fuzzStream) Close() error                { return nil }

type lockedLogger struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (l lockedLogger) Printf(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(strings.TrimSpace(sprintf(format, v...)) + "\n")
}

func sprintf(format string, v ...any) string { return fmt.Sprintf(format, v...) }
