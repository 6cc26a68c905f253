package mcpserver

import (
	"hash/maphash"
	"math"
	"sync"
	"time"
)

// RateLimit is the per-token request rate: a token bucket for each token
// (keyed by its jti) holding up to Burst requests, refilled at PerSecond.
type RateLimit struct {
	// PerSecond is the sustained rate. Zero means 50; negative disables
	// rate limiting.
	PerSecond float64
	// Burst is the bucket's size. Zero means 2×PerSecond (100 by default),
	// at least 1.
	Burst int
}

// limiter is a set of token buckets, sharded to keep lock contention low.
//
// Memory is bounded: a bucket left idle long enough to have refilled
// completely behaves exactly like a missing one, so sweeps (at most once per
// refill period per shard, when the shard is touched) delete those without
// changing any answer. The number of live buckets is therefore the number of
// tokens seen within one refill period (Burst/PerSecond, 2s by default), and
// only tokens that passed authentication get a bucket. As a last resort a
// shard over maxBucketsPerShard forgets arbitrary buckets, which can only
// give their tokens a fresh burst early.
type limiter struct {
	rate   float64 // tokens per second
	burst  float64
	refill time.Duration // time to refill an empty bucket
	seed   maphash.Seed
	shards [limiterShards]limiterShard
}

const (
	limiterShards      = 16
	maxBucketsPerShard = 1 << 14
)

type limiterShard struct {
	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

// newLimiter returns nil when rate limiting is disabled.
func newLimiter(rl RateLimit) *limiter {
	if rl.PerSecond < 0 {
		return nil
	}
	if rl.PerSecond == 0 {
		rl.PerSecond = 50
	}
	if rl.Burst <= 0 {
		rl.Burst = max(1, int(math.Ceil(2*rl.PerSecond)))
	}
	l := &limiter{
		rate:   rl.PerSecond,
		burst:  float64(rl.Burst),
		refill: time.Duration(float64(rl.Burst) / rl.PerSecond * float64(time.Second)),
		seed:   maphash.MakeSeed(),
	}
	for i := range l.shards {
		l.shards[i].buckets = make(map[string]*bucket)
	}
	return l
}

// allow takes one request from key's bucket at now. When the bucket is
// empty it reports false and how long until the next request would pass.
func (l *limiter) allow(key string, now time.Time) (bool, time.Duration) {
	sh := &l.shards[maphash.String(l.seed, key)%limiterShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if now.Sub(sh.lastSweep) >= l.refill || len(sh.buckets) >= maxBucketsPerShard {
		sh.sweep(l, now)
	}
	b, ok := sh.buckets[key]
	if !ok {
		b = &bucket{tokens: l.burst, last: now}
		sh.buckets[key] = b
	} else if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = min(l.burst, b.tokens+elapsed.Seconds()*l.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	return false, wait
}

// sweep deletes the buckets that have refilled (so are equivalent to absent
// ones); if the shard is still full, it forgets arbitrary ones.
func (sh *limiterShard) sweep(l *limiter, now time.Time) {
	sh.lastSweep = now
	for k, b := range sh.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(sh.buckets, k)
		}
	}
	for k := range sh.buckets {
		if len(sh.buckets) < maxBucketsPerShard {
			break
		}
		delete(sh.buckets, k)
	}
}

// size is the number of live buckets (tests).
func (l *limiter) size() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += len(sh.buckets)
		sh.mu.Unlock()
	}
	return n
}
