package tokens

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentbroker/agentbroker/store"
)

// KeyStore is what the key ring needs from storage (store.Keys satisfies it).
type KeyStore interface {
	SigningKeys(ctx context.Context) ([]store.SigningKey, error)
	AddSigningKey(ctx context.Context, k store.SigningKey) error
	RetireSigningKey(ctx context.Context, id string, at time.Time) error
}

var _ KeyStore = store.Keys(nil)

// JWKSPath is where the public keys are conventionally served.
const JWKSPath = "/.well-known/jwks.json"

// kidBytes is the randomness in a kid: 12 bytes, 16 base64url characters.
const kidBytes = 12

// KeyRing holds the Ed25519 signing keys, kept in a KeyStore. The newest
// unretired key signs; every unretired key verifies. Another process may
// change the store (agentbroker keys rotate), so the ring reloads: Refresh on
// demand, RefreshEvery in the background, and at most once per
// Options.RefreshInterval when a token names a kid the ring does not know.
//
// Private keys stay inside the ring: no method returns one, and the ring
// prints and logs as a summary (String, LogValue). A KeyRing is safe for
// concurrent use.
type KeyRing struct {
	keys     KeyStore
	log      *slog.Logger
	now      func() time.Time
	interval time.Duration // minimum time between on-demand refreshes; ≤ 0: none

	state atomic.Pointer[ringState]

	refreshMu   sync.Mutex // serialises refreshes; guards lastRefresh
	lastRefresh time.Time
}

// ringState is one immutable snapshot of the ring.
type ringState struct {
	active  map[string]*ringKey          // unretired: these verify
	retired map[string]ed25519.PublicKey // retired: refused, kept for Check
	signer  *ringKey                     // newest active key; nil if none
	infos   []KeyInfo                    // every key, oldest first
	jwks    []byte                       // JWKS document of the active keys
	etag    string
}

// ringKey is one usable key. It prints only its kid.
type ringKey struct {
	id      string
	created time.Time
	priv    ed25519.PrivateKey
	pub     ed25519.PublicKey
}

// Value receivers, so that a copy prints redacted too.
func (k ringKey) String() string             { return "tokens.key(" + k.id + ")" }
func (k ringKey) GoString() string           { return k.String() }
func (k ringKey) LogValue() slog.Value       { return slog.StringValue(k.id) }
func (k ringKey) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }

// KeyInfo describes one key, without its secret.
type KeyInfo struct {
	ID        string
	CreatedAt time.Time
	RetiredAt time.Time // zero while the key verifies
	Signing   bool      // the key new tokens are signed with
	PublicKey ed25519.PublicKey
}

// NewKeyRing loads the ring from keys and, when the store holds no unretired
// key (first start), creates one. Only Logger, Now and RefreshInterval of
// opts are used; nil means defaults.
func NewKeyRing(ctx context.Context, keys KeyStore, opts *Options) (*KeyRing, error) {
	if keys == nil {
		return nil, errors.New("tokens: new key ring: nil KeyStore")
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &KeyRing{keys: keys, log: o.Logger, now: o.Now, interval: o.RefreshInterval}
	if err := r.Refresh(ctx); err != nil {
		return nil, fmt.Errorf("tokens: new key ring: %w", err)
	}
	if r.state.Load().signer == nil {
		kid, err := r.add(ctx)
		if err != nil {
			return nil, fmt.Errorf("tokens: new key ring: %w", err)
		}
		r.log.LogAttrs(ctx, slog.LevelInfo, "created first signing key", slog.String("kid", kid))
	}
	return r, nil
}

// String summarises the ring; it never prints key material.
func (r *KeyRing) String() string {
	st := r.state.Load()
	if st == nil {
		return "tokens.KeyRing{}"
	}
	signer := ""
	if st.signer != nil {
		signer = st.signer.id
	}
	return fmt.Sprintf("tokens.KeyRing{signing: %s, active: %d, retired: %d}", signer, len(st.active), len(st.retired))
}

// GoString is String, so %#v prints no key material either.
func (r *KeyRing) GoString() string { return r.String() }

// LogValue logs the ring as its summary.
func (r *KeyRing) LogValue() slog.Value { return slog.StringValue(r.String()) }

// SigningKeyID is the kid new tokens are signed with ("" if none).
func (r *KeyRing) SigningKeyID() string {
	if k := r.state.Load().signer; k != nil {
		return k.id
	}
	return ""
}

// Keys describes every key the ring loaded, retired ones included, oldest
// first.
func (r *KeyRing) Keys() []KeyInfo {
	st := r.state.Load()
	out := make([]KeyInfo, len(st.infos))
	copy(out, st.infos)
	for i := range out {
		out[i].PublicKey = slices.Clone(out[i].PublicKey)
	}
	return out
}

// Refresh reloads the ring from the store now. On error the ring keeps what
// it had.
func (r *KeyRing) Refresh(ctx context.Context) error {
	r.refreshMu.Lock()
	defer r.refreshMu.Unlock()
	return r.refreshLocked(ctx)
}

func (r *KeyRing) refreshLocked(ctx context.Context) error {
	stored, err := r.keys.SigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	st := &ringState{
		active:  make(map[string]*ringKey),
		retired: make(map[string]ed25519.PublicKey),
	}
	for _, sk := range stored {
		if len(sk.Seed) != ed25519.SeedSize || sk.ID == "" {
			r.log.LogAttrs(ctx, slog.LevelWarn, "skipping unusable signing key", slog.String("kid", sk.ID))
			continue
		}
		priv := ed25519.NewKeyFromSeed(sk.Seed)
		k := &ringKey{id: sk.ID, created: sk.CreatedAt, priv: priv, pub: priv.Public().(ed25519.PublicKey)}
		st.infos = append(st.infos, KeyInfo{ID: k.id, CreatedAt: sk.CreatedAt, RetiredAt: sk.RetiredAt, PublicKey: k.pub})
		if !sk.RetiredAt.IsZero() {
			st.retired[k.id] = k.pub
			continue
		}
		st.active[k.id] = k
		// Newest wins; on a tie the later one in store order (oldest first).
		if st.signer == nil || !k.created.Before(st.signer.created) {
			st.signer = k
		}
	}
	for i := range st.infos {
		st.infos[i].Signing = st.signer != nil && st.infos[i].ID == st.signer.id
	}
	st.jwks, err = json.Marshal(st.jwksDoc())
	if err != nil {
		return fmt.Errorf("encode jwks: %w", err)
	}
	sum := sha256.Sum256(st.jwks)
	st.etag = `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
	r.state.Store(st)
	r.lastRefresh = r.now()
	r.log.LogAttrs(ctx, slog.LevelDebug, "signing keys loaded",
		slog.Int("active", len(st.active)), slog.Int("retired", len(st.retired)))
	return nil
}

// refreshOnDemand reloads the ring unless that was done less than interval
// ago (or is being done: it waits and uses that result). It reports whether
// it reloaded.
func (r *KeyRing) refreshOnDemand(ctx context.Context) bool {
	r.refreshMu.Lock()
	defer r.refreshMu.Unlock()
	if r.interval > 0 {
		if since := r.now().Sub(r.lastRefresh); since >= 0 && since < r.interval {
			return false
		}
	}
	if err := r.refreshLocked(ctx); err != nil {
		r.log.LogAttrs(ctx, slog.LevelWarn, "refreshing signing keys failed", slog.String("error", err.Error()))
		return false
	}
	return true
}

// RefreshEvery reloads the ring every interval until ctx is done, and then
// returns an error wrapping context.Cause(ctx). A failed reload is logged and
// retried at the next tick. Run it in a goroutine you wait for.
func (r *KeyRing) RefreshEvery(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		return errors.New("tokens: refresh every: interval must be positive")
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("tokens: refresh every: %w", context.Cause(ctx))
		case <-t.C:
			if err := r.Refresh(ctx); err != nil && ctx.Err() == nil {
				r.log.LogAttrs(ctx, slog.LevelWarn, "refreshing signing keys failed", slog.String("error", err.Error()))
			}
		}
	}
}

// Rotate adds a new signing key, which signs from now on; the older keys
// keep verifying until they are retired. It returns the new kid.
func (r *KeyRing) Rotate(ctx context.Context) (string, error) {
	kid, err := r.add(ctx)
	if err != nil {
		return "", fmt.Errorf("tokens: rotate: %w", err)
	}
	r.log.LogAttrs(ctx, slog.LevelInfo, "signing key rotated", slog.String("kid", kid))
	return kid, nil
}

// add creates, stores and loads a new key. Its CreatedAt is made later than
// every key already known (by at least a millisecond), so that it signs even
// when clocks tie.
func (r *KeyRing) add(ctx context.Context) (string, error) {
	if err := r.Refresh(ctx); err != nil {
		return "", err
	}
	created := r.now()
	for _, k := range r.state.Load().infos {
		if floor := k.CreatedAt.Add(time.Millisecond); created.Before(floor) {
			created = floor
		}
	}
	seed := make([]byte, ed25519.SeedSize)
	defer clear(seed)
	for attempt := 0; ; attempt++ {
		kid, err := newKID()
		if err != nil {
			return "", err
		}
		if _, err := rand.Read(seed); err != nil {
			return "", fmt.Errorf("generate key: %w", err)
		}
		err = r.keys.AddSigningKey(ctx, store.SigningKey{ID: kid, Seed: seed, CreatedAt: created})
		if errors.Is(err, store.ErrConflict) && attempt < 3 {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("store key: %w", err)
		}
		return kid, r.Refresh(ctx)
	}
}

// Retire retires the key kid: tokens it signed are refused from now on (in
// this process at once; in others sharing the store at their next refresh).
// Retiring the last unretired key is refused (ErrLastKey): rotate first.
func (r *KeyRing) Retire(ctx context.Context, kid string) error {
	if err := r.Refresh(ctx); err != nil {
		return fmt.Errorf("tokens: retire: %w", err)
	}
	st := r.state.Load()
	if _, ok := st.active[kid]; ok && len(st.active) == 1 {
		return ErrLastKey
	}
	if err := r.keys.RetireSigningKey(ctx, kid, r.now()); err != nil {
		return fmt.Errorf("tokens: retire: %w", err)
	}
	if err := r.Refresh(ctx); err != nil {
		return fmt.Errorf("tokens: retire: %w", err)
	}
	r.log.LogAttrs(ctx, slog.LevelInfo, "signing key retired", slog.String("kid", kid))
	return nil
}

// lookup finds the verification key for kid. An unknown kid triggers an
// on-demand refresh (rate-limited) when it looks like one of ours.
func (r *KeyRing) lookup(ctx context.Context, kid string) (*ringKey, error) {
	st := r.state.Load()
	if k, ok := st.active[kid]; ok {
		return k, nil
	}
	if _, ok := st.retired[kid]; ok {
		return nil, ErrKeyRetired
	}
	if !plausibleKID(kid) || !r.refreshOnDemand(ctx) {
		return nil, ErrUnknownKey
	}
	st = r.state.Load()
	if k, ok := st.active[kid]; ok {
		return k, nil
	}
	if _, ok := st.retired[kid]; ok {
		return nil, ErrKeyRetired
	}
	return nil, ErrUnknownKey
}

// activeKey reports whether kid still verifies, without refreshing.
func (r *KeyRing) activeKey(kid string) error {
	st := r.state.Load()
	if _, ok := st.active[kid]; ok {
		return nil
	}
	if _, ok := st.retired[kid]; ok {
		return ErrKeyRetired
	}
	return ErrUnknownKey
}

func (r *KeyRing) signer() *ringKey { return r.state.Load().signer }

// newKID is 12 random bytes, base64url: 16 URL-safe characters.
func newKID() (string, error) {
	b := make([]byte, kidBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate kid: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// plausibleKID: worth a store round trip (1–64 base64url characters).
func plausibleKID(kid string) bool {
	if kid == "" || len(kid) > 64 {
		return false
	}
	for i := 0; i < len(kid); i++ {
		c := kid[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// JWK is one public key, as RFC 8037 publishes an Ed25519 key.
type JWK struct {
	KeyType   string `json:"kty"` // "OKP"
	Curve     string `json:"crv"` // "Ed25519"
	X         string `json:"x"`   // the public key, base64url
	KeyID     string `json:"kid"`
	Algorithm string `json:"alg"` // "EdDSA"
	Use       string `json:"use"` // "sig"
}

// JWKS is a JSON Web Key Set (RFC 7517).
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// JWKS returns the public keys that verify: every unretired key, newest
// (the signing key) first.
func (r *KeyRing) JWKS() JWKS { return r.state.Load().jwksDoc() }

func (st *ringState) jwksDoc() JWKS {
	doc := JWKS{Keys: []JWK{}}
	for i := len(st.infos) - 1; i >= 0; i-- {
		info := st.infos[i]
		if !info.RetiredAt.IsZero() {
			continue
		}
		doc.Keys = append(doc.Keys, JWK{
			KeyType:   "OKP",
			Curve:     "Ed25519",
			X:         base64.RawURLEncoding.EncodeToString(info.PublicKey),
			KeyID:     info.ID,
			Algorithm: "EdDSA",
			Use:       "sig",
		})
	}
	return doc
}

// JWKSHandler serves the JWKS document (GET and HEAD) with cache headers:
// public for five minutes, an ETag, and 304 on a matching If-None-Match.
// It serves what the ring holds; keep the ring fresh with RefreshEvery.
func (r *KeyRing) JWKSHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		st := r.state.Load()
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "public, max-age=300")
		h.Set("ETag", st.etag)
		h.Set("X-Content-Type-Options", "nosniff")
		if etagMatches(req.Header.Get("If-None-Match"), st.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Length", fmt.Sprint(len(st.jwks)))
		if req.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(st.jwks)
	})
}

// etagMatches reports whether an If-None-Match value (a list, "*", weak
// tags allowed) names etag.
func etagMatches(header, etag string) bool {
	for _, tag := range strings.Split(header, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == "*" || tag == etag {
			return true
		}
	}
	return false
}
