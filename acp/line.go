package acp

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"

	"github.com/sourcegraph/jsonrpc2"
)

// DefaultMaxLineBytes bounds one line from the agent.
const DefaultMaxLineBytes = 8 << 20

// lineFilter reads an agent's stdout one line at a time and passes on only
// the lines that are single JSON-RPC messages sourcegraph/jsonrpc2 can
// decode without failing its stream: a non-JSON line (a stray log line, a
// banner, a progress bar) would otherwise end the connection. It runs on
// the jsonrpc2 read goroutine (it is the stream's Read) and keeps no
// goroutine of its own. Memory is bounded by max plus the bufio buffer.
//
// The line limit policy: a line over max that starts like a JSON object is
// a message we cannot process (an update or a response we would lose), so
// the read fails with ErrLineTooLong and the connection ends with that
// cause; an over-long line that does not start with '{' is noise and is
// discarded as it streams by, without buffering it.
type lineFilter struct {
	r       *bufio.Reader
	max     int
	log     *slog.Logger
	buf     []byte
	pending []byte
	err     error

	skipped atomic.Int64 // lines dropped (non-JSON, not JSON-RPC, over-long noise)
}

func newLineFilter(r io.Reader, max int, log *slog.Logger) *lineFilter {
	if max <= 0 {
		max = DefaultMaxLineBytes
	}
	return &lineFilter{r: bufio.NewReaderSize(r, 64<<10), max: max, log: log}
}

// Read hands out the accepted lines, each with its newline.
func (f *lineFilter) Read(p []byte) (int, error) {
	for len(f.pending) == 0 {
		if f.err != nil {
			return 0, f.err
		}
		line, err := f.next()
		if err != nil {
			f.err = err
			if len(line) == 0 {
				return 0, err
			}
		}
		if line != nil {
			f.pending = append(line, '\n')
		}
	}
	n := copy(p, f.pending)
	f.pending = f.pending[n:]
	return n, nil
}

// next returns the next accepted line (without its newline), or nil and
// an error at the end of the input or on a fatal line.
func (f *lineFilter) next() ([]byte, error) {
	for {
		line, err := f.readLine()
		if line != nil {
			if ok, why := acceptLine(line); ok {
				if cap(f.buf) > 1<<20 { // do not keep a big buffer around
					f.buf = nil
				}
				return bytes.Clone(line), err
			} else if why != "" {
				f.noteSkipped("acp: skipped a line from the agent", "reason", why, "bytes", len(line))
			}
		}
		if err != nil {
			return nil, err
		}
	}
}

// readLine reads one line up to max bytes. An over-long line is either
// fatal (it starts with '{') or discarded (it returns nil, nil).
func (f *lineFilter) readLine() ([]byte, error) {
	f.buf = f.buf[:0]
	for {
		chunk, err := f.r.ReadSlice('\n')
		if len(f.buf)+len(chunk) > f.max+1 || (len(f.buf)+len(chunk) > f.max && !bytes.HasSuffix(chunk, []byte{'\n'})) {
			start := append(f.buf, chunk[:min(len(chunk), 64)]...)
			if b := bytes.TrimLeft(start, " \t\r\n"); len(b) > 0 && b[0] == '{' {
				return nil, fmt.Errorf("%w (%d bytes)", ErrLineTooLong, f.max)
			}
			n := len(f.buf) + len(chunk)
			for errors.Is(err, bufio.ErrBufferFull) {
				chunk, err = f.r.ReadSlice('\n')
				n += len(chunk)
			}
			f.noteSkipped("acp: skipped an over-long non-JSON line from the agent", "bytes", n, "limit", f.max)
			f.buf = f.buf[:0]
			if err != nil {
				return nil, f.endErr(err)
			}
			return nil, nil
		}
		f.buf = append(f.buf, chunk...)
		switch {
		case err == nil:
			return f.buf, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			if len(f.buf) > 0 {
				return f.buf, f.endErr(err)
			}
			return nil, f.endErr(err)
		}
	}
}

// maxSkipWarnings is how many skipped lines are logged at Warn; the rest
// (a progress bar on stdout can print thousands) at Debug.
const maxSkipWarnings = 20

func (f *lineFilter) noteSkipped(msg string, args ...any) {
	if n := f.skipped.Add(1); n <= maxSkipWarnings {
		f.log.Warn(msg, args...)
	} else {
		f.log.Debug(msg, args...)
	}
}

func (f *lineFilter) endErr(err error) error {
	// EOF, or the pipe closed under us (exec.Cmd.Wait closes StdoutPipe
	// readers when the process exits): the agent's output has ended.
	if errors.Is(err, io.EOF) || errors.Is(err, os.ErrClosed) || errors.Is(err, io.ErrClosedPipe) {
		return fmt.Errorf("%w: %w", ErrPeerClosed, err)
	}
	return fmt.Errorf("acp: reading from the agent: %w", err)
}

// acceptLine decides whether a line is one JSON-RPC message that
// sourcegraph/jsonrpc2 decodes without error. It mirrors what that
// library does with a message (v0.2.3: anyMessage, Request and Response
// decoding) so that nothing that passes can break its stream; FuzzLine
// checks that. why is empty for a blank line (skipped silently).
func acceptLine(line []byte) (ok bool, why string) {
	// JSON's whitespace only: bytes.TrimSpace would also drop a form feed
	// or a vertical tab, which the decoder then chokes on (found by
	// FuzzLine in CI).
	line = bytes.Trim(line, " \t\r\n")
	if len(line) == 0 {
		return false, ""
	}
	if line[0] != '{' {
		return false, "not JSON"
	}
	m, why := topLevel(line)
	if m == nil {
		return false, why
	}
	_, hasResult := m["result"]
	hasError := len(m["error"]) > 0 && !isNull(m["error"])
	if raw, ok := m["method"]; ok {
		var method string
		if raw = bytes.TrimSpace(raw); len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &method) != nil {
			return false, "method is not a string" // null too: the library would see no method
		}
		if hasResult || hasError {
			return false, "both a request and a response"
		}
		id, ok := m["id"]
		if !ok || isNull(id) {
			return true, "" // notification
		}
		if !validRequestID(id) {
			return false, "unusable request id"
		}
		return true, ""
	}
	if !hasResult && !hasError {
		return false, "neither a request nor a response"
	}
	if hasError {
		var e jsonrpc2.Error
		if err := json.Unmarshal(m["error"], &e); err != nil {
			return false, "malformed error object"
		}
	}
	var id jsonrpc2.ID
	raw, ok := m["id"]
	if !ok || isNull(raw) || json.Unmarshal(raw, &id) != nil {
		return false, "response without a usable id"
	}
	return true, ""
}

// significant are the members the library looks at.
var significant = [...]string{"id", "method", "params", "result", "error", "jsonrpc", "meta"}

// topLevel returns the members of a JSON object, or nil and why not. The
// library decodes some members into structs (case-insensitive, and a
// duplicate's first value can fail even when the last would not) and
// others from a map (exact, last wins): a member that repeats one of ours,
// exactly or but for case, is refused.
func topLevel(line []byte) (map[string]json.RawMessage, string) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return nil, "not a JSON object"
	}
	d := json.NewDecoder(bytes.NewReader(line))
	if _, err := d.Token(); err != nil { // {
		return nil, "not a JSON object"
	}
	seen := make(map[string]bool, len(m))
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return nil, "not a JSON object"
		}
		k, _ := tok.(string)
		for _, want := range significant {
			if strings.EqualFold(k, want) {
				if seen[want] || k != want {
					return nil, "ambiguous member " + want
				}
				seen[want] = true
			}
		}
		var skip json.RawMessage
		if err := d.Decode(&skip); err != nil {
			return nil, "not a JSON object"
		}
	}
	return m, ""
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// validRequestID: a string, or an integer in [0, MaxInt64] (the library
// reads request IDs with json.Number.Int64 and stores them as uint64).
func validRequestID(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		return json.Unmarshal(raw, &s) == nil
	}
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		return false
	}
	i, err := n.Int64()
	return err == nil && i >= 0
}
