package tokens

import (
	"context"
	"crypto/ed25519"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// The benchmarks share one fixture shape: an in-memory store, so the
// numbers are the package's own cost (with SQLite, Verify adds one
// revocation query per call).

func BenchmarkMint(b *testing.B) {
	f := newFixture(b, nil)
	ctx := context.Background()
	g := mcpGrant()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := f.svc.Mint(ctx, g); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCold verifies with the cache disabled: every call parses
// and checks the signature.
func BenchmarkVerifyCold(b *testing.B) {
	f := newFixture(b, func(o *Options) { o.CacheSize = -1 })
	raw, _ := mint(b, f.svc, mcpGrant())
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.svc.Verify(ctx, raw, AudienceMCP); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCached verifies one token over and over: a cache hit
// (hash, recheck of key, audience and times, revocation lookup).
func BenchmarkVerifyCached(b *testing.B) {
	f := newFixture(b, nil)
	raw, _ := mint(b, f.svc, mcpGrant())
	ctx := context.Background()
	if _, err := f.svc.Verify(ctx, raw, AudienceMCP); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.svc.Verify(ctx, raw, AudienceMCP); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJWTParseBaseline is golang-jwt's own jwt.Parse of the same
// token with an EdDSA keyfunc and its default claim validation: the floor
// Verify's cold path is measured against.
func BenchmarkJWTParseBaseline(b *testing.B) {
	f := newFixture(b, nil)
	raw, c := mint(b, f.svc, mcpGrant())
	pub := f.privateKey(b, c.KeyID).Public().(ed25519.PublicKey)
	keyfunc := func(*jwt.Token) (any, error) { return pub, nil }
	opts := []jwt.ParserOption{jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithTimeFunc(f.clk.Now)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := jwt.Parse(raw, keyfunc, opts...); err != nil {
			b.Fatal(err)
		}
	}
}
