package tokens

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentbroker/agentbroker/store"
	"github.com/agentbroker/agentbroker/tokens/internal/memstore"
)

var update = flag.Bool("update", false, "rewrite the checked-in fuzz seed corpus under testdata/fuzz")

// The fuzz service is deterministic across processes (the fuzzer's workers)
// and runs: fixed keys, a frozen clock. So the checked-in seed tokens stay
// valid and mutations of them reach the signature check.
const (
	fuzzKID        = "fuzz-key-active0"
	fuzzRetiredKID = "fuzz-key-retired"
)

func fuzzSeedOf(name string) []byte {
	sum := sha256.Sum256([]byte("agentbroker tokens fuzz " + name))
	return sum[:]
}

func fuzzService(t testing.TB) *Service {
	t.Helper()
	ctx := context.Background()
	st := memstore.New()
	for _, k := range []store.SigningKey{
		{ID: fuzzRetiredKID, Seed: fuzzSeedOf("retired"), CreatedAt: t0.Add(-48 * time.Hour), RetiredAt: t0.Add(-24 * time.Hour)},
		{ID: fuzzKID, Seed: fuzzSeedOf("active"), CreatedAt: t0.Add(-24 * time.Hour)},
	} {
		if err := st.AddSigningKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.RevokeSession(ctx, "sess-revoked", t0); err != nil {
		t.Fatal(err)
	}
	s, err := New(ctx, st, st, &Options{Now: func() time.Time { return t0 }, CacheSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	if s.KeyRing().SigningKeyID() != fuzzKID {
		t.Fatalf("fuzz service signs with %s", s.KeyRing().SigningKeyID())
	}
	return s
}

// fuzzSeeds are named inputs: tokens minted by the fuzz service, and
// attacks on it.
func fuzzSeeds(t testing.TB, s *Service) map[string]string {
	t.Helper()
	active := ed25519.NewKeyFromSeed(fuzzSeedOf("active"))
	retired := ed25519.NewKeyFromSeed(fuzzSeedOf("retired"))
	revoked := mcpGrant()
	revoked.Session = "sess-revoked"
	admin := Grant{Subject: "root", Audience: AudienceAdmin, Scopes: []Scope{ScopeAdmin}}
	viewer := Grant{Subject: "u", Project: "p", Session: "s", Audience: AudienceViewer, Scopes: []Scope{ScopeSessionView}}
	seeds := map[string]string{}
	for name, g := range map[string]Grant{"valid-mcp": mcpGrant(), "valid-proxy": proxyGrant(), "valid-admin": admin,
		"valid-viewer": viewer, "revoked-session": revoked} {
		raw, _ := mint(t, s, g)
		seeds[name] = raw
	}
	hs := with(header(fuzzKID), "alg", "HS256")
	input := b64JSON(t, hs) + "." + b64JSON(t, claimsAt(t0))
	m := hmac.New(sha256.New, active.Public().(ed25519.PublicKey))
	m.Write([]byte(input))
	seeds["hs256-public-key"] = input + "." + b64(m.Sum(nil))
	seeds["alg-none"] = b64JSON(t, with(header(fuzzKID), "alg", "none")) + "." + b64JSON(t, claimsAt(t0)) + "."
	seeds["retired-key"] = forge(t, retired, header(fuzzRetiredKID), claimsAt(t0))
	seeds["multi-aud"] = forge(t, active, header(fuzzKID), with(claimsAt(t0), "aud", []string{string(AudienceMCP), string(AudienceProxy)}))
	return seeds
}

// FuzzVerify: no input panics, every refusal is a sentinel that does not
// echo the input, and anything accepted is byte for byte a token the ring
// would mint for those claims (Ed25519 is deterministic, so re-signing the
// claims must give the same string). Run with:
//
//	go test ./tokens -run=NONE -fuzz=FuzzVerify -fuzztime=20s
func FuzzVerify(f *testing.F) {
	s := fuzzService(f)
	for _, raw := range fuzzSeeds(f, s) {
		f.Add(raw)
	}
	for _, raw := range []string{"", ".", "..", "a.b.c", "e30.e30.", "eyJhbGciOiJFZERTQSJ9.e30.AA",
		strings.Repeat("A", MaxTokenSize+1), "Bearer x", "\x00\xff.\n."} {
		f.Add(raw)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, raw string) {
		accepted := false
		for _, aud := range Audiences() {
			c, err := s.Verify(ctx, raw, aud)
			if err != nil {
				if _, ok := refusal(err); !ok {
					t.Fatalf("Verify(%s) = %v: not a sentinel", aud, err)
				}
				if len(raw) >= 8 && strings.Contains(err.Error(), raw) {
					t.Fatalf("error echoes the input: %v", err)
				}
				continue
			}
			accepted = true
			if c.Audience != aud {
				t.Fatalf("accepted for %s a token whose claims say %s", aud, c.Audience)
			}
			assertMintedByRing(t, s, raw, c)
		}
		rep := s.Check(ctx, raw, "")
		if rep.Valid() {
			c, err := s.Verify(ctx, raw, mustInspect(t, raw).Claims.Audience)
			if err != nil {
				t.Fatalf("Check says valid, Verify says %v", err)
			}
			assertMintedByRing(t, s, raw, c)
		} else if accepted {
			t.Fatalf("Verify accepted, Check refuses:\n%s", rep)
		}
		_, _ = Inspect(raw)
	})
}

func mustInspect(t *testing.T, raw string) Inspection {
	in, err := Inspect(raw)
	if err != nil {
		t.Fatalf("Inspect of a valid token: %v", err)
	}
	return in
}

func assertMintedByRing(t *testing.T, s *Service, raw string, c Claims) {
	t.Helper()
	key := s.KeyRing().state.Load().active[c.KeyID]
	if key == nil {
		t.Fatalf("accepted a token of key %q the ring does not hold", c.KeyID)
	}
	want, err := sign(key, c.toWire())
	if err != nil {
		t.Fatal(err)
	}
	if raw != want {
		t.Fatalf("accepted a token the ring did not mint:\n got %q\nwant %q", raw, want)
	}
}

// TestFuzzSeedCorpus keeps testdata/fuzz/FuzzVerify meaningful: each seed
// file still gets the outcome it was written for (run with -update to
// rewrite them after a deliberate change of the token format).
func TestFuzzSeedCorpus(t *testing.T) {
	t.Parallel()
	s := fuzzService(t)
	dir := filepath.Join("testdata", "fuzz", "FuzzVerify")
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, raw := range fuzzSeeds(t, s) {
			body := fmt.Sprintf("go test fuzz v1\nstring(%s)\n", strconv.Quote(raw))
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := map[string]Audience{"valid-mcp": AudienceMCP, "valid-proxy": AudienceProxy,
		"valid-admin": AudienceAdmin, "valid-viewer": AudienceViewer}
	refused := map[string]error{"revoked-session": ErrRevoked, "hs256-public-key": ErrBadSignature,
		"alg-none": ErrBadSignature, "retired-key": ErrKeyRetired, "multi-aud": ErrWrongAudience}
	for name := range fuzzSeeds(t, s) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("seed %s: %v (run go test ./tokens -run TestFuzzSeedCorpus -update)", name, err)
		}
		lines := strings.SplitN(string(b), "\n", 3)
		if len(lines) < 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "string(") {
			t.Fatalf("seed %s is not a fuzz corpus file", name)
		}
		raw, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "string("), ")"))
		if err != nil {
			t.Fatalf("seed %s: %v", name, err)
		}
		if aud, ok := want[name]; ok {
			if _, err := s.Verify(context.Background(), raw, aud); err != nil {
				t.Errorf("seed %s no longer verifies: %v", name, err)
			}
			continue
		}
		if _, err := s.Verify(context.Background(), raw, AudienceMCP); !errorsIs(err, refused[name]) {
			t.Errorf("seed %s: %v; want %v", name, err, refused[name])
		}
	}
}

func errorsIs(err, target error) bool { return target != nil && errors.Is(err, target) }
