package tokens

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/agentbroker/agentbroker/store"
	"github.com/agentbroker/agentbroker/tokens/internal/memstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// t0 is the tests' epoch.
var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable clock shared by services in one test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixture is a service on an in-memory store with a settable clock.
type fixture struct {
	st  *memstore.Store
	clk *clock
	svc *Service
}

func newFixture(t testing.TB, mod func(*Options)) *fixture {
	t.Helper()
	f := &fixture{st: memstore.New(), clk: newClock()}
	f.svc = f.open(t, mod)
	return f
}

// open returns another service on the same store and clock (another process).
func (f *fixture) open(t testing.TB, mod func(*Options)) *Service {
	t.Helper()
	o := &Options{Now: f.clk.Now}
	if mod != nil {
		mod(o)
	}
	s, err := New(context.Background(), f.st, f.st, o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func mcpGrant() Grant {
	return Grant{
		Subject:  "user-1",
		Project:  "proj-1",
		Session:  "sess-1",
		Agent:    "claude",
		Audience: AudienceMCP,
		Scopes:   []Scope{ScopeProjectRead, ScopeTasksRead},
	}
}

func proxyGrant() Grant {
	g := mcpGrant()
	g.Audience, g.Scopes = AudienceProxy, []Scope{ScopeInference}
	return g
}

func mint(t testing.TB, s *Service, g Grant) (string, Claims) {
	t.Helper()
	raw, c, err := s.Mint(context.Background(), g)
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	return raw, c
}

// privateKey returns the private key of kid, read from the store (the ring
// never hands one out).
func (f *fixture) privateKey(t testing.TB, kid string) ed25519.PrivateKey {
	t.Helper()
	keys, err := f.st.SigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.ID == kid {
			return ed25519.NewKeyFromSeed(k.Seed)
		}
	}
	t.Fatalf("no key %s in store", kid)
	return nil
}

func (f *fixture) seeds(t testing.TB) []store.SigningKey {
	t.Helper()
	keys, err := f.st.SigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func b64JSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b64(b)
}

// forge builds a compact JWS with any header and claims, signed by priv
// with Ed25519 (whatever the header's alg says).
func forge(t testing.TB, priv ed25519.PrivateKey, header, claims map[string]any) string {
	t.Helper()
	input := b64JSON(t, header) + "." + b64JSON(t, claims)
	return input + "." + b64(ed25519.Sign(priv, []byte(input)))
}

func header(kid string) map[string]any {
	return map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": kid}
}

// claimsAt is a valid claims set for the MCP audience at now.
func claimsAt(now time.Time) map[string]any {
	return map[string]any{
		"iss":     "agentbroker",
		"sub":     "user-1",
		"aud":     string(AudienceMCP),
		"exp":     now.Add(time.Hour).Unix(),
		"nbf":     now.Unix(),
		"iat":     now.Unix(),
		"jti":     "forged-" + randomID(),
		"scope":   "project:read tasks:read",
		"project": "proj-1",
		"sid":     "sess-1",
	}
}

func randomID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return b64(b)
}

func with(m map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(out, k)
		} else {
			out[k] = kv[i+1]
		}
	}
	return out
}

func segments(raw string) []string { return strings.Split(raw, ".") }
