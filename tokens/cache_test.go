package tokens

import (
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestCacheRechecks: a cached token is still refused the moment it is
// presented at another audience, expires, is revoked or its key retired.
func TestCacheRechecks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		act  func(t *testing.T, f *fixture, c Claims)
		aud  Audience
		want error
	}{
		{"hit", func(*testing.T, *fixture, Claims) {}, AudienceMCP, nil},
		{"other audience", func(*testing.T, *fixture, Claims) {}, AudienceProxy, ErrWrongAudience},
		{"expired", func(_ *testing.T, f *fixture, _ Claims) { f.clk.Add(2 * time.Hour) }, AudienceMCP, ErrExpired},
		{"clock went back before nbf", func(_ *testing.T, f *fixture, _ Claims) { f.clk.Add(-time.Hour) }, AudienceMCP, ErrNotYetValid},
		{"revoked", func(t *testing.T, f *fixture, c Claims) {
			if err := f.svc.Revoke(ctx, c.ID, c.ExpiresAt); err != nil {
				t.Fatal(err)
			}
		}, AudienceMCP, ErrRevoked},
		{"key retired", func(t *testing.T, f *fixture, c Claims) {
			if _, err := f.svc.KeyRing().Rotate(ctx); err != nil {
				t.Fatal(err)
			}
			if err := f.svc.KeyRing().Retire(ctx, c.KeyID); err != nil {
				t.Fatal(err)
			}
		}, AudienceMCP, ErrKeyRetired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, nil)
			raw, c := mint(t, f.svc, mcpGrant())
			if _, err := f.svc.Verify(ctx, raw, AudienceMCP); err != nil {
				t.Fatal(err)
			}
			if f.svc.cache.len() != 1 {
				t.Fatalf("cache holds %d entries after a verify", f.svc.cache.len())
			}
			tc.act(t, f, c)
			got, err := f.svc.Verify(ctx, raw, tc.aud)
			if tc.want == nil {
				if err != nil || got != c {
					t.Fatalf("cache hit = %+v, %v", got, err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v; want %v", err, tc.want)
			}
			// What can never be valid again leaves the cache.
			gone := errors.Is(err, ErrExpired) || errors.Is(err, ErrRevoked) || errors.Is(err, ErrUnknownKey)
			if n := f.svc.cache.len(); (n == 0) != gone {
				t.Fatalf("after %v the cache holds %d entries", err, n)
			}
		})
	}
}

func TestCacheEviction(t *testing.T) {
	t.Parallel()
	c := newVerifyCache(2)
	k := func(s string) [sha256.Size]byte { return sha256.Sum256([]byte(s)) }
	c.put(k("a"), Claims{ID: "a"})
	c.put(k("b"), Claims{ID: "b"})
	if _, ok := c.get(k("a")); !ok { // a is now the most recently used
		t.Fatal("a missing")
	}
	c.put(k("c"), Claims{ID: "c"})
	if _, ok := c.get(k("b")); ok {
		t.Fatal("b, the least recently used, was not evicted")
	}
	for _, id := range []string{"a", "c"} {
		if got, ok := c.get(k(id)); !ok || got.ID != id {
			t.Fatalf("%s: %v %v", id, got, ok)
		}
	}
	c.put(k("c"), Claims{ID: "c2"})
	if got, _ := c.get(k("c")); got.ID != "c2" || c.len() != 2 {
		t.Fatalf("update: %v, len %d", got, c.len())
	}
	c.remove(k("c"))
	c.remove(k("zzz"))
	if c.len() != 1 {
		t.Fatalf("len %d after remove", c.len())
	}

	// Through the service: expired entries go, the cache stays bounded.
	f := newFixture(t, func(o *Options) { o.CacheSize = 8 })
	ctx := context.Background()
	var first string
	for i := range 20 {
		raw, _ := mint(t, f.svc, mcpGrant())
		if i == 0 {
			first = raw
		}
		if _, err := f.svc.Verify(ctx, raw, AudienceMCP); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.svc.cache.len(); n != 8 {
		t.Fatalf("cache holds %d; want its bound 8", n)
	}
	if _, err := f.svc.Verify(ctx, first, AudienceMCP); err != nil {
		t.Fatalf("evicted token no longer verifies cold: %v", err)
	}
	f.clk.Add(2 * time.Hour)
	if _, err := f.svc.Verify(ctx, first, AudienceMCP); !errors.Is(err, ErrExpired) {
		t.Fatal(err)
	}
	if n := f.svc.cache.len(); n != 7 {
		t.Fatalf("expired entry kept: %d entries", n)
	}
	if off := newFixture(t, func(o *Options) { o.CacheSize = -1 }); off.svc.cache != nil {
		t.Fatal("negative CacheSize did not disable the cache")
	}
}

// TestConcurrentVerify exercises the cache, the ring and revocation under
// -race.
func TestConcurrentVerify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, func(o *Options) { o.CacheSize = 16; o.RefreshInterval = -1 })
	var toks []string
	for range 32 {
		raw, _ := mint(t, f.svc, mcpGrant())
		toks = append(toks, raw)
	}
	priv := f.privateKey(t, f.svc.KeyRing().SigningKeyID())
	unknown := forge(t, priv, header(randomID()), claimsAt(f.clk.Now()))
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 200 {
				raw := toks[(i*7+w)%len(toks)]
				if _, err := f.svc.Verify(ctx, raw, AudienceMCP); err != nil {
					t.Error(err)
					return
				}
				if i%50 == 0 {
					_, _ = f.svc.Verify(ctx, unknown, AudienceMCP)
				}
			}
		})
	}
	wg.Go(func() {
		for range 3 {
			if _, err := f.svc.KeyRing().Rotate(ctx); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
}
