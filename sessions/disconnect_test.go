package sessions

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentbroker/agentbroker/internal/goroutines"
)

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
	goroutines.Settle(t, "viewer goroutines after every viewer left", fn)
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
	if n := goroutines.In(fn); n < 1 || n > 3 { // the writer, its reader, a log waiter
		t.Fatalf("%d viewer goroutines for one viewer", n)
	}
}
