package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/agentbroker/agentbroker/internal/fakemodel"
)

const proxyChunks = 32 // text deltas per streamed answer

func runProxy(ctx context.Context, e *env) error {
	dur, rounds, clientsList := 3*time.Second, 3, []int{1, 16, 64}
	if e.quick {
		dur, rounds, clientsList = 500*time.Millisecond, 1, []int{4}
	}
	upstream, stopUp, err := startSelf("fake-upstream")
	if err != nil {
		return err
	}
	defer stopUp()
	b, err := startBroker(ctx, e.bin, filepath.Join(e.root, "proxy"),
		"AGENTBROKER_ANTHROPIC_UPSTREAM="+upstream, "ANTHROPIC_API_KEY="+fakemodel.DefaultAPIKey)
	if err != nil {
		return err
	}
	defer b.stop()
	var proj struct{ ID string }
	if err := b.call(ctx, "POST", "/v1/projects", map[string]any{"name": "proxy"}, &proj); err != nil {
		return err
	}
	var out struct{ Token string }
	if err := b.call(ctx, "POST", "/v1/tokens", map[string]any{"subject": "bench", "purpose": "proxy", "project": proj.ID,
		"session": "proxy-bench", "agent": "claude-code", "scopes": []string{"inference"}}, &out); err != nil {
		return err
	}
	body := []byte(`{"model":"claude-sonnet-4-5","max_tokens":256,"stream":true,"messages":[{"role":"user","content":"hello"}]}`)
	direct := &streamTarget{url: upstream + "/v1/messages", key: fakemodel.DefaultAPIKey, body: body}
	proxied := &streamTarget{url: b.url + "/proxy/anthropic/v1/messages", key: out.Token, body: body}

	e.printf("\n## Inference proxy\n\n")
	e.printf("`go run ./bench proxy`: C concurrent clients send streamed Anthropic Messages calls (%d text deltas each,\n", proxyChunks)
	e.printf("about 40 SSE events) through `agentbroker serve`'s proxy (token check, catalog policy, key swap, usage\n")
	e.printf("accounting) to the scripted upstream (`internal/fakemodel`, its own process), and, as the baseline, to that\n")
	e.printf("upstream directly. Turns of %s, %d rounds each. TTFB is the time to the first byte of the answer.\n\n", dur, rounds)
	e.printf("| clients | proxied calls/s | direct calls/s | ratio | proxied TTFB p50 / p99 | direct TTFB p50 / p99 | added TTFB p50 |\n|---|---|---|---|---|---|---|\n")
	for _, c := range clientsList {
		pt, dt := &loadResult{}, &loadResult{}
		for range rounds {
			if err := loadStream(ctx, proxied, c, dur, pt); err != nil {
				return fmt.Errorf("proxied: %w", err)
			}
			if err := loadStream(ctx, direct, c, dur, dt); err != nil {
				return fmt.Errorf("direct: %w", err)
			}
		}
		po, do := float64(pt.ops)/pt.time.Seconds(), float64(dt.ops)/dt.time.Seconds()
		e.printf("| %d | %.0f | %.0f | %s | %s / %s | %s / %s | %s |\n", c, po, do, ratio(po, do),
			ms(pt.ttfb.q(0.5)), ms(pt.ttfb.q(0.99)), ms(dt.ttfb.q(0.5)), ms(dt.ttfb.q(0.99)), ms(pt.ttfb.q(0.5)-dt.ttfb.q(0.5)))
	}
	return nil
}

type streamTarget struct {
	url, key string
	body     []byte
}

type loadResult struct {
	ttfb latencies
	ops  int64
	time time.Duration
}

func loadStream(ctx context.Context, t *streamTarget, clients int, d time.Duration, r *loadResult) error {
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: time.Minute}
	var ops atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	start := time.Now()
	for range clients {
		wg.Go(func() {
			buf := make([]byte, 32<<10)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				ttfb, err := t.once(ctx, hc, buf)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				r.ttfb.add(ttfb)
				ops.Add(1)
			}
		})
	}
	wg.Wait()
	r.time += time.Since(start)
	r.ops += ops.Load()
	if err, _ := firstErr.Load().(error); err != nil {
		return err
	}
	return nil
}

// once makes one streamed call, reads it to the end and checks it ended
// with message_stop.
func (t *streamTarget) once(ctx context.Context, hc *http.Client, buf []byte) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", t.url, bytes.NewReader(t.body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-Api-Key", t.key)
	req.Header.Set("Anthropic-Version", "2023-06-01")
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return 0, fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	var ttfb time.Duration
	var tail []byte
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if ttfb == 0 {
				ttfb = time.Since(start)
			}
			tail = append(tail[:0], buf[max(0, n-256):n]...)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	if !bytes.Contains(tail, []byte("message_stop")) {
		return 0, fmt.Errorf("the stream did not end with message_stop: %q", tail)
	}
	return ttfb, nil
}

func serveFakeUpstream() {
	s := fakemodel.New(&fakemodel.Options{TextChunks: proxyChunks,
		Text: strings.Repeat("The quick brown fox jumps over the lazy dog. ", 40)})
	url, err := s.Start()
	if err != nil {
		fatal(err)
	}
	fmt.Println(url)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
}
