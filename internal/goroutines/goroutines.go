// Package goroutines counts goroutines by what is on their stacks, for
// tests that prove clients which went away left nothing running.
package goroutines

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// In counts the goroutines whose stack mentions any of fns (function names
// as runtime.Stack prints them, e.g. "sessions.(*viewers).serve").
func In(fns ...string) int {
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
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		for _, fn := range fns {
			if strings.Contains(g, fn) {
				count++
				break
			}
		}
	}
	return count
}

// Settle waits (30 s at most) until no goroutine mentions fns, and fails t
// otherwise, saying what was left.
func Settle(t testing.TB, what string, fns ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for n := In(fns...); n != 0; n = In(fns...) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d goroutines still running", what, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
