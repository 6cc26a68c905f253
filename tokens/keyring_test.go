package tokens

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/agentbroker/agentbroker/store"
	"github.com/agentbroker/agentbroker/tokens/internal/memstore"
)

// countingKeys counts the store reads of a KeyStore.
type countingKeys struct {
	KeyStore
	reads atomic.Int64
}

func (c *countingKeys) SigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	c.reads.Add(1)
	return c.KeyStore.SigningKeys(ctx)
}

func TestFirstStartCreatesOneKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	keys := f.seeds(t)
	if len(keys) != 1 || len(keys[0].Seed) != ed25519.SeedSize || keys[0].ID != f.svc.KeyRing().SigningKeyID() {
		t.Fatalf("after first start the store holds %d keys", len(keys))
	}
	if kid := keys[0].ID; len(kid) != 16 || !plausibleKID(kid) {
		t.Fatalf("kid %q is not 16 base64url characters", kid)
	}
	// A second start finds it and adds nothing.
	second := f.open(t, nil)
	if n := len(f.seeds(t)); n != 1 || second.KeyRing().SigningKeyID() != keys[0].ID {
		t.Fatalf("second start: %d keys, signer %s", n, second.KeyRing().SigningKeyID())
	}
	// With every key retired, a start creates a fresh one.
	if err := f.st.RetireSigningKey(context.Background(), keys[0].ID, t0); err != nil {
		t.Fatal(err)
	}
	third := f.open(t, nil)
	if kid := third.KeyRing().SigningKeyID(); kid == "" || kid == keys[0].ID {
		t.Fatalf("start with only retired keys: signer %q", kid)
	}
}

func TestRotateAndRetire(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, nil)
	ring := f.svc.KeyRing()
	old := ring.SigningKeyID()
	oldTok, oc := mint(t, f.svc, mcpGrant())

	// The clock is frozen: the new key must still sort after the old one.
	kid, err := ring.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if kid == old || ring.SigningKeyID() != kid {
		t.Fatalf("after Rotate the signer is %s; want the new %s", ring.SigningKeyID(), kid)
	}
	newTok, nc := mint(t, f.svc, mcpGrant())
	if nc.KeyID != kid || oc.KeyID != old {
		t.Fatalf("kids: old token %s, new token %s; want %s, %s", oc.KeyID, nc.KeyID, old, kid)
	}
	for _, raw := range []string{oldTok, newTok} {
		if _, err := f.svc.Verify(ctx, raw, AudienceMCP); err != nil {
			t.Fatalf("after Rotate: %v", err)
		}
	}
	if got := jwksKIDs(ring.JWKS()); fmt.Sprint(got) != fmt.Sprint([]string{kid, old}) {
		t.Fatalf("JWKS kids = %v; want new then old", got)
	}

	if err := ring.Retire(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Verify(ctx, oldTok, AudienceMCP); !errors.Is(err, ErrKeyRetired) || !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("token of a retired key: %v; want ErrKeyRetired (an ErrUnknownKey)", err)
	}
	if _, err := f.svc.Verify(ctx, newTok, AudienceMCP); err != nil {
		t.Fatalf("token of the new key after retiring the old: %v", err)
	}
	if got := jwksKIDs(ring.JWKS()); fmt.Sprint(got) != fmt.Sprint([]string{kid}) {
		t.Fatalf("JWKS kids after Retire = %v; want only %s", got, kid)
	}
	infos := ring.Keys()
	if len(infos) != 2 || infos[0].ID != old || infos[0].RetiredAt.IsZero() || infos[0].Signing || !infos[1].Signing {
		t.Fatalf("Keys = %+v", infos)
	}

	if err := ring.Retire(ctx, kid); !errors.Is(err, ErrLastKey) {
		t.Fatalf("retiring the last key: %v; want ErrLastKey", err)
	}
	if err := ring.Retire(ctx, "no-such-kid"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("retiring an unknown key: %v; want store.ErrNotFound", err)
	}
	// Retiring a retired key is harmless.
	if err := ring.Retire(ctx, old); err != nil {
		t.Fatalf("retiring twice: %v", err)
	}
}

func jwksKIDs(j JWKS) []string {
	var out []string
	for _, k := range j.Keys {
		out = append(out, k.KeyID)
	}
	return out
}

// TestSharedStore: two services on one store are two processes. A rotation
// by one reaches the other on an unknown kid (rate-limited) or on Refresh;
// a retirement reaches it on Refresh.
func TestSharedStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, nil)
	counter := &countingKeys{KeyStore: f.st}
	b, err := New(ctx, counter, f.st, &Options{Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	a := f.svc
	old := a.KeyRing().SigningKeyID()
	if _, err := a.KeyRing().Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	tok, _ := mint(t, a, mcpGrant())

	// b loaded its keys at this very instant: no reload yet.
	reads := counter.reads.Load()
	if _, err := b.Verify(ctx, tok, AudienceMCP); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("b within the refresh interval: %v; want ErrUnknownKey", err)
	}
	if n := counter.reads.Load() - reads; n != 0 {
		t.Fatalf("b read the store %d times within the refresh interval", n)
	}
	f.clk.Add(2 * time.Second)
	if _, err := b.Verify(ctx, tok, AudienceMCP); err != nil {
		t.Fatalf("b after an unknown kid past the interval: %v", err)
	}
	if b.KeyRing().SigningKeyID() != a.KeyRing().SigningKeyID() {
		t.Fatal("b does not sign with the newest key after its reload")
	}

	// Unknown kids do not hammer the store: one reload per interval.
	reads = counter.reads.Load()
	kid := f.seeds(t)[0].ID
	for range 100 {
		_, _ = b.Verify(ctx, forge(t, f.privateKey(t, kid), header(randomID()), claimsAt(f.clk.Now())), AudienceMCP)
	}
	f.clk.Add(2 * time.Second)
	for range 100 {
		_, _ = b.Verify(ctx, forge(t, f.privateKey(t, kid), header(randomID()), claimsAt(f.clk.Now())), AudienceMCP)
	}
	if n := counter.reads.Load() - reads; n != 1 {
		t.Fatalf("200 unknown kids over two intervals caused %d store reads; want 1", n)
	}
	// A kid that cannot be ours costs no read at all.
	f.clk.Add(2 * time.Second)
	reads = counter.reads.Load()
	_, err = b.Verify(ctx, forge(t, f.privateKey(t, kid), header("../../etc/passwd"), claimsAt(f.clk.Now())), AudienceMCP)
	if !errors.Is(err, ErrUnknownKey) || counter.reads.Load() != reads {
		t.Fatalf("implausible kid: %v after %d reads", err, counter.reads.Load()-reads)
	}

	// Retirement by a is seen by b after Refresh.
	oldTok := forge(t, f.privateKey(t, old), header(old), claimsAt(f.clk.Now()))
	if _, err := b.Verify(ctx, oldTok, AudienceMCP); err != nil {
		t.Fatalf("old key before retirement: %v", err)
	}
	if err := a.KeyRing().Retire(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := b.KeyRing().Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Verify(ctx, oldTok, AudienceMCP); !errors.Is(err, ErrKeyRetired) {
		t.Fatalf("b after a's retirement and Refresh: %v; want ErrKeyRetired", err)
	}
}

// TestRefreshEvery runs the background reload in a bubble with fake time.
func TestRefreshEvery(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		st := memstore.New()
		a, err := NewKeyRing(ctx, st, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := NewKeyRing(ctx, st, nil)
		if err != nil {
			t.Fatal(err)
		}
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- b.RefreshEvery(runCtx, time.Minute) }()

		kid, err := a.Rotate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if b.SigningKeyID() == kid {
			t.Fatal("b reloaded before its interval")
		}
		time.Sleep(31 * time.Second)
		synctest.Wait()
		if b.SigningKeyID() != kid {
			t.Fatalf("b signs with %s a minute after rotation; want %s", b.SigningKeyID(), kid)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("RefreshEvery returned %v; want context.Canceled", err)
		}
		if err := b.RefreshEvery(ctx, 0); err == nil {
			t.Fatal("RefreshEvery(0) accepted")
		}
	})
}

func TestJWKS(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	ring := f.svc.KeyRing()
	kid := ring.SigningKeyID()
	srv := httptest.NewServer(ring.JWKSHandler())
	defer srv.Close()

	resp, err := http.Get(srv.URL + JWKSPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Keys []map[string]string `json:"keys"`
	}
	err = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" ||
		resp.Header.Get("Cache-Control") != "public, max-age=300" || resp.Header.Get("ETag") == "" {
		t.Fatalf("GET: %d %v", resp.StatusCode, resp.Header)
	}
	if len(doc.Keys) != 1 {
		t.Fatalf("keys = %v", doc.Keys)
	}
	k := doc.Keys[0]
	want := map[string]string{"kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA", "use": "sig", "x": k["x"]}
	if fmt.Sprint(k) != fmt.Sprint(want) {
		t.Fatalf("JWK = %v; want exactly the fields %v", k, want)
	}
	x, err := base64.RawURLEncoding.DecodeString(k["x"])
	if err != nil || !ed25519.PublicKey(x).Equal(f.privateKey(t, kid).Public()) {
		t.Fatalf("x does not decode to the public key: %v", err)
	}
	// A token checks out against the published key alone.
	raw, _ := mint(t, f.svc, mcpGrant())
	p := segments(raw)
	sig, _ := base64.RawURLEncoding.DecodeString(p[2])
	if !ed25519.Verify(x, []byte(p[0]+"."+p[1]), sig) {
		t.Fatal("token does not verify with the JWKS key")
	}

	etag := resp.Header.Get("ETag")
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("If-None-Match", etag)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: %d; want 304", resp.StatusCode)
	}
	for header, want := range map[string]bool{`"other", W/` + etag: true, "*": true, `"other"`: false, "": false} {
		if etagMatches(header, etag) != want {
			t.Errorf("etagMatches(%s) != %v", header, want)
		}
	}
	resp, err = http.Post(srv.URL, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST: %d", resp.StatusCode)
	}
	// After a rotation the document (and so the ETag) changes.
	if _, err := ring.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("ETag") == etag {
		t.Fatalf("after rotation: %d, etag %s", resp.StatusCode, resp.Header.Get("ETag"))
	}
}

// TestStoreFailures: a ring keeps serving what it has when the store
// fails, and Verify fails closed when revocations cannot be read.
func TestStoreFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, nil)
	raw, _ := mint(t, f.svc, mcpGrant())
	broken := &failingStore{Store: f.st}
	s, err := New(ctx, f.st, broken, &Options{Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	broken.fail.Store(true)
	_, err = s.Verify(ctx, raw, AudienceMCP)
	if err == nil || errors.Is(err, ErrRevoked) {
		t.Fatalf("Verify with the revocation store down = %v; want a store error", err)
	}
	if _, ok := refusal(err); ok {
		t.Fatalf("store failure reported as a refusal: %v", err)
	}
	if _, err := New(ctx, &failingStore{Store: memstore.New(), failKeys: true}, f.st, nil); err == nil {
		t.Fatal("New with a failing key store succeeded")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := f.svc.KeyRing().Refresh(cancelled); err == nil {
		t.Fatal("Refresh with a cancelled context succeeded")
	}
	if _, err := f.svc.Verify(ctx, raw, AudienceMCP); err != nil {
		t.Fatalf("after a failed Refresh the ring lost its keys: %v", err)
	}
}

type failingStore struct {
	*memstore.Store
	fail     atomic.Bool
	failKeys bool
}

func (s *failingStore) IsRevoked(ctx context.Context, jti, sessionID string) (bool, error) {
	if s.fail.Load() {
		return false, errors.New("database is locked")
	}
	return s.Store.IsRevoked(ctx, jti, sessionID)
}

func (s *failingStore) SigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	if s.failKeys {
		return nil, errors.New("disk I/O error")
	}
	return s.Store.SigningKeys(ctx)
}
