package sessions

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// goroutinesIn counts the goroutines whose stack has fn in it.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, fn) {
			count++
		}
	}
	return count
}

// TestViewerDisconnectMidStream: viewers that vanish in the middle of a
// stream (the TCP connection dropped, no close frame) or close politely
// leave nothing behind: every goroutine serving them ends, while the log
// goes on being appended. Not parallel: it counts goroutines.
func TestViewerDisconnectMidStream(t *testing.T) {
	f := newViewerFixture(t, ViewerOptions{})
	const fn = "sessions.(*viewers).serve"
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			if _, err := f.log.Append(ctx, "update", i); err != nil && ctx.Err() == nil {
				t.Error(err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	})
	defer func() { stop(); wg.Wait() }()

	const viewers = 24
	for v := range viewers {
		c, _, err := f.dial(f.watch, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			var fr Frame
			if err := c.ReadJSON(&fr); err != nil {
				t.Fatal(err)
			}
		}
		if v%2 == 0 {
			c.UnderlyingConn().Close() // gone without a word
		} else {
			c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
			c.Close()
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for n := goroutinesIn(fn); n != 0; n = goroutinesIn(fn) {
		if time.Now().After(deadline) {
			t.Fatalf("%d viewer goroutines still running after every viewer left", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// And one that stays is still served.
	c, _, err := f.dial(f.watch, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var fr Frame
	if err := c.ReadJSON(&fr); err != nil || fr.Seq != 1 {
		t.Fatalf("a new viewer: %+v %v", fr, err)
	}
	if n := goroutinesIn(fn); n < 1 || n > 3 { // the writer, its reader, a log waiter
		t.Fatalf("%d viewer goroutines for one viewer", n)
	}
}
