package server

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// slowServer runs a Server with short slow-client timeouts and a handler
// that reads a JSON body, and returns its address.
func slowServer(t *testing.T) string {
	t.Helper()
	s := New(&Options{ReadHeaderTimeout: 300 * time.Millisecond, BodyReadTimeout: 300 * time.Millisecond})
	s.Handle("POST /echo", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v map[string]any
		if DecodeJSON(w, r, 1<<20, &v) {
			WriteJSON(w, http.StatusOK, v)
		}
	}))
	s.Handle("POST /stream", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		for i := range 3 { // a streamed answer that outlives the body timeout
			time.Sleep(200 * time.Millisecond)
			io.WriteString(w, strings.Repeat("x", i+1)+"\n")
			http.NewResponseController(w).Flush()
		}
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

// hungUp reports whether the server ended the connection (or answered it
// and then ended it) within a generous deadline; what it answered, if
// anything, is returned.
func hungUp(t *testing.T, c net.Conn) (string, bool) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return string(b), false
	}
	return string(b), true
}

// TestSlowloris: clients that trickle their headers, or their body, are
// cut off by the server while others are served meanwhile; a body that
// arrives in time lifts the deadline, so a streamed answer is not cut.
func TestSlowloris(t *testing.T) {
	t.Parallel()
	addr := slowServer(t)
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	trickle := func(c net.Conn, parts ...string) {
		for _, p := range parts {
			if _, err := io.WriteString(c, p); err != nil {
				return // cut off
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	const slow = 20
	var wg sync.WaitGroup
	results := make(chan string, 2*slow)
	for i := range 2 * slow {
		c := dial()
		wg.Go(func() {
			var parts []string
			if i%2 == 0 { // headers, a line now and then, never finished
				parts = append(parts, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
				for range 100 {
					parts = append(parts, "X-Slow: 1\r\n")
				}
			} else { // the headers at once, then the body a byte at a time
				parts = append(parts, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
				for range 1000 {
					parts = append(parts, " ")
				}
			}
			go trickle(c, parts...)
			answer, ok := hungUp(t, c)
			switch {
			case !ok:
				results <- "still connected after 30s"
			case i%2 == 1 && !strings.HasPrefix(answer, "HTTP/1.1 408"):
				results <- "a trickled body answered " + strings.SplitN(answer, "\r\n", 2)[0]
			}
		})
	}
	// Meanwhile others are served.
	for range 10 {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("/healthz while slow clients hold connections: %v %v", resp, err)
		}
		resp.Body.Close()
		resp, err = http.Post("http://"+addr+"/echo", "application/json", strings.NewReader(`{"a":1}`))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("POST /echo while slow clients hold connections: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	wg.Wait()
	close(results)
	for r := range results {
		t.Error(r)
	}

	// A body in time: the deadline is lifted, the stream is not cut.
	resp, err := http.Post("http://"+addr+"/stream", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var lines []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) != 3 || sc.Err() != nil {
		t.Fatalf("a streamed answer after the body: %q, %v", lines, sc.Err())
	}
}
