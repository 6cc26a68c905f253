package proxy_test

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentbroker/agentbroker/internal/fakemodel"
)

// The benchmarks compare a request through the proxy with the same request
// sent straight to the fake upstream, in the same process and run, on
// loopback: the difference is what the proxy adds (token verification,
// including the revocation lookup in SQLite; the body scan; the catalog
// check; a second HTTP hop; the usage meter). They report percentiles of
// the time to the first body byte (ttfb) and to the last (ttlb), in
// microseconds, and the stream's throughput (MB/s).

const benchChunks = 32 // text deltas per streamed answer: 38 SSE events

type benchTarget struct {
	client *http.Client
	url    string
	header http.Header
}

func benchWorld(b *testing.B) (*world, benchTarget, benchTarget) {
	w := newWorld(b, worldConfig{anth: &fakemodel.Options{
		TextChunks: benchChunks,
		Text:       strings.Repeat("The quick brown fox jumps over the lazy dog. ", 40),
	}})
	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	b.Cleanup(tr.CloseIdleConnections)
	direct := benchTarget{client: &http.Client{Transport: tr}, url: w.anth.URL() + "/v1/messages?beta=true",
		header: http.Header{"X-Api-Key": {anthropicKey}, "Anthropic-Version": {"2023-06-01"}, "Content-Type": {"application/json"}}}
	proxied := benchTarget{client: w.client, url: w.srv.URL + messagesPath,
		header: http.Header{"X-Api-Key": {w.token("claude-code")}, "Anthropic-Version": {"2023-06-01"}, "Content-Type": {"application/json"}}}
	return w, direct, proxied
}

// once sends one request and returns the times to the first and the last
// body byte, and the body size.
func (bt benchTarget) once(b *testing.B, body string, buf []byte) (ttfb, ttlb time.Duration, n int64) {
	req, err := http.NewRequest(http.MethodPost, bt.url, strings.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	req.Header = bt.header.Clone()
	start := time.Now()
	resp, err := bt.client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("status %d", resp.StatusCode)
	}
	for {
		k, err := resp.Body.Read(buf)
		if k > 0 && n == 0 {
			ttfb = time.Since(start)
		}
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	return ttfb, time.Since(start), n
}

type samples []time.Duration

func (s samples) pct(p float64) float64 {
	if len(s) == 0 {
		return 0
	}
	c := slices.Clone(s)
	slices.Sort(c)
	i := int(p * float64(len(c)-1))
	return float64(c[i]) / float64(time.Microsecond)
}

func report(b *testing.B, prefix string, ttfb, ttlb samples) {
	b.ReportMetric(ttfb.pct(0.50), prefix+"ttfb-p50-us")
	b.ReportMetric(ttfb.pct(0.99), prefix+"ttfb-p99-us")
	b.ReportMetric(ttlb.pct(0.50), prefix+"ttlb-p50-us")
	b.ReportMetric(ttlb.pct(0.99), prefix+"ttlb-p99-us")
}

func runOne(b *testing.B, stream bool, pick func(direct, proxied benchTarget) benchTarget) {
	_, direct, proxied := benchWorld(b)
	bt := pick(direct, proxied)
	body := anthropicBody("claude-opus-4-8", stream)
	buf := make([]byte, 32<<10)
	_, _, n := bt.once(b, body, buf) // warm the connections, learn the size
	b.SetBytes(n)
	var ttfb, ttlb samples
	b.ResetTimer()
	for b.Loop() {
		f, l, _ := bt.once(b, body, buf)
		ttfb, ttlb = append(ttfb, f), append(ttlb, l)
	}
	report(b, "", ttfb, ttlb)
}

func direct(d, _ benchTarget) benchTarget  { return d }
func proxied(_, p benchTarget) benchTarget { return p }

func BenchmarkDirectStream(b *testing.B) { runOne(b, true, direct) }
func BenchmarkProxyStream(b *testing.B)  { runOne(b, true, proxied) }
func BenchmarkDirectJSON(b *testing.B)   { runOne(b, false, direct) }
func BenchmarkProxyJSON(b *testing.B)    { runOne(b, false, proxied) }

// runOverhead alternates direct and proxied requests in one loop, so that
// both see the same machine state, and reports what the proxy adds: the
// difference of the percentiles, and their ratio.
func runOverhead(b *testing.B, stream bool) {
	_, d, p := benchWorld(b)
	body := anthropicBody("claude-opus-4-8", stream)
	buf := make([]byte, 32<<10)
	d.once(b, body, buf)
	_, _, n := p.once(b, body, buf)
	b.SetBytes(2 * n)
	var dFirst, dLast, pFirst, pLast samples
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		// Alternate which goes first.
		order := []benchTarget{d, p}
		if i%2 == 1 {
			order = []benchTarget{p, d}
		}
		for _, bt := range order {
			f, l, _ := bt.once(b, body, buf)
			if bt.url == d.url {
				dFirst, dLast = append(dFirst, f), append(dLast, l)
			} else {
				pFirst, pLast = append(pFirst, f), append(pLast, l)
			}
		}
	}
	b.ReportMetric(pFirst.pct(0.50)-dFirst.pct(0.50), "added-ttfb-p50-us")
	b.ReportMetric(pFirst.pct(0.99)-dFirst.pct(0.99), "added-ttfb-p99-us")
	b.ReportMetric(pLast.pct(0.50)-dLast.pct(0.50), "added-ttlb-p50-us")
	b.ReportMetric(pLast.pct(0.99)-dLast.pct(0.99), "added-ttlb-p99-us")
	b.ReportMetric(pFirst.pct(0.50)/dFirst.pct(0.50), "ratio-ttfb-p50")
	b.ReportMetric(pLast.pct(0.50)/dLast.pct(0.50), "ratio-ttlb-p50")
	report(b, "direct-", dFirst, dLast)
	report(b, "proxy-", pFirst, pLast)
}

func BenchmarkOverheadStream(b *testing.B) { runOverhead(b, true) }
func BenchmarkOverheadJSON(b *testing.B)   { runOverhead(b, false) }
