package tokens

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// secretForms is every way a secret could show up in text.
func secretForms(secret []byte) []string {
	return []string{
		hex.EncodeToString(secret),
		strings.ToUpper(hex.EncodeToString(secret)),
		base64.StdEncoding.EncodeToString(secret),
		base64.RawStdEncoding.EncodeToString(secret),
		base64.URLEncoding.EncodeToString(secret),
		base64.RawURLEncoding.EncodeToString(secret),
		string(secret),
		fmt.Sprint(secret), // [12 34 …]
		fmt.Sprintf("%x", secret),
		fmt.Sprintf("%q", secret),
	}
}

// TestNoSecretsInLogs drives every path (mint, verify, every attack, the
// middleware, rotation, revocation, Check) with a debug JSON logger and
// checks that no token, token part, seed or private key reaches the log,
// an error or a printed value.
func TestNoSecretsInLogs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var logs syncBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := newFixture(t, func(o *Options) { o.Logger = logger })
	svc := f.svc

	var tokens, texts []string
	for _, g := range []Grant{mcpGrant(), proxyGrant()} {
		raw, c := mint(t, svc, g)
		tokens = append(tokens, raw)
		if _, err := svc.Verify(ctx, raw, g.Audience); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Verify(ctx, raw, AudienceAdmin); err != nil {
			texts = append(texts, err.Error())
		}
		texts = append(texts, svc.Check(ctx, raw, "").String(), fmt.Sprintf("%v %+v", c, c))
		logger.Info("claims", "claims", c, "grant", g) // LogValue
	}
	// Every attack, through the same logger.
	fixtures := []*fixture{f}
	for _, a := range attacks() {
		af := newFixture(t, func(o *Options) { o.Logger = logger })
		fixtures = append(fixtures, af)
		raw, aud := a.build(t, af)
		tokens = append(tokens, raw)
		if _, err := af.svc.Verify(ctx, raw, aud); err != nil {
			texts = append(texts, err.Error())
		}
		texts = append(texts, af.svc.Check(ctx, raw, aud).String())
	}
	// The middleware, refusing and accepting.
	h := svc.Middleware(AudienceMCP, ScopeTasksWrite)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for _, raw := range tokens {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/mcp", nil)
		req.Header.Set("Authorization", "Bearer "+raw)
		h.ServeHTTP(rec, req)
		texts = append(texts, rec.Body.String(), rec.Header().Get("WWW-Authenticate"))
	}
	if _, err := svc.KeyRing().Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Mint(ctx, Grant{Audience: AudienceMCP, Subject: "x\n"}); err != nil {
		texts = append(texts, err.Error())
	}
	// Printing the holders of key material.
	ring := svc.KeyRing()
	texts = append(texts,
		fmt.Sprintf("%v %+v %#v %s", ring, ring, ring, ring),
		fmt.Sprintf("%v %+v %#v %s", svc, svc, svc, svc),
		fmt.Sprintf("%v %+v", ring.Keys(), ring.Keys()),
	)
	for _, k := range ring.state.Load().active {
		texts = append(texts, fmt.Sprintf("%v %+v %#v %s %x %q", k, k, k, k, k, k), fmt.Sprintf("%v %+v", *k, *k))
	}
	logger.Info("objects", "ring", ring, "service", svc)
	logger.Debug("ring state", "state", ring.state.Load())
	texts = append(texts, fmt.Sprintf("%v %+v", ring.state.Load(), *ring.state.Load()))
	text := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	text.Debug("text handler", "ring", ring, "service", svc, "state", ring.state.Load(), "keys", ring.Keys())

	all := logs.String() + "\n" + strings.Join(texts, "\n")
	if !strings.Contains(logs.String(), "token minted") || !strings.Contains(logs.String(), "token refused") {
		t.Fatalf("the logger saw nothing; the test would prove nothing:\n%s", logs.String())
	}
	for _, raw := range tokens {
		assertNoTokenIn(t, "logs, errors and printed values", all, raw)
	}
	n := 0
	for _, f := range fixtures {
		for _, k := range f.seeds(t) {
			n++
			priv := ed25519.NewKeyFromSeed(k.Seed)
			for _, form := range append(secretForms(k.Seed), secretForms(priv)...) {
				if strings.Contains(all, form) {
					t.Fatalf("key %s appears in logs or printed values (as %q)", k.ID, form)
				}
			}
		}
	}
	t.Logf("%d tokens, %d keys, %d bytes of logs and text scanned", len(tokens), n, len(all))
}
