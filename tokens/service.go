package tokens

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/agentbroker/agentbroker/store"
)

// RevocationStore is what the service needs to revoke and to check
// revocations (store.Revocations satisfies it).
type RevocationStore interface {
	RevokeToken(ctx context.Context, jti string, expiresAt time.Time) error
	RevokeSession(ctx context.Context, sessionID string, at time.Time) error
	IsRevoked(ctx context.Context, jti, sessionID string) (bool, error)
}

var _ RevocationStore = store.Revocations(nil)

// MaxTokenSize caps a raw token; anything longer is refused (ErrTooLarge)
// before it is parsed.
const MaxTokenSize = 8 << 10

// TokenType is the JOSE header typ of our tokens (RFC 9068 access tokens).
const TokenType = "at+jwt"

// Options configure a Service (and, for the fields it reads, a KeyRing).
// A nil *Options means every default.
type Options struct {
	// Issuer is the iss claim minted and required. Default "agentbroker".
	Issuer string
	// MaxLifetime bounds Grant.Lifetime of session tokens (every audience
	// but AudienceAdmin); a longer one is refused.
	// Default 24h.
	MaxLifetime time.Duration
	// DefaultLifetime is used when Grant.Lifetime is zero. Default 1h (or
	// MaxLifetime if that is shorter); must not exceed MaxLifetime.
	DefaultLifetime time.Duration
	// AdminMaxLifetime bounds Grant.Lifetime of admin-API tokens, which
	// belong to an operator rather than to one session. Default 90 days.
	AdminMaxLifetime time.Duration
	// Leeway tolerates clock skew on exp, nbf and iat. Zero means 30s;
	// negative means none.
	Leeway time.Duration
	// Logger receives debug and info records (never a token or a key).
	// Nil means silent.
	Logger *slog.Logger
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// CacheSize is how many verified tokens are remembered (by the SHA-256
	// of the raw token, until exp) to skip parsing and the signature check;
	// revocation, expiry, audience and key retirement are still checked on
	// every hit. Zero means 4096; negative disables the cache.
	CacheSize int
	// RefreshInterval is the least time between two key reloads triggered
	// by an unknown kid. Zero means 1s; negative means no limit (tests).
	RefreshInterval time.Duration
}

func (o *Options) withDefaults() (Options, error) {
	var out Options
	if o != nil {
		out = *o
	}
	if out.Issuer == "" {
		out.Issuer = "agentbroker"
	}
	if err := checkField("issuer", out.Issuer, true); err != nil {
		return Options{}, fmt.Errorf("tokens: options: invalid issuer")
	}
	switch {
	case out.MaxLifetime < 0:
		return Options{}, errors.New("tokens: options: negative MaxLifetime")
	case out.MaxLifetime == 0:
		out.MaxLifetime = 24 * time.Hour
	}
	switch {
	case out.DefaultLifetime < 0:
		return Options{}, errors.New("tokens: options: negative DefaultLifetime")
	case out.DefaultLifetime == 0:
		out.DefaultLifetime = min(time.Hour, out.MaxLifetime)
	case out.DefaultLifetime > out.MaxLifetime:
		return Options{}, errors.New("tokens: options: DefaultLifetime exceeds MaxLifetime")
	}
	switch {
	case out.AdminMaxLifetime < 0:
		return Options{}, errors.New("tokens: options: negative AdminMaxLifetime")
	case out.AdminMaxLifetime == 0:
		out.AdminMaxLifetime = 90 * 24 * time.Hour
	}
	switch {
	case out.Leeway == 0:
		out.Leeway = 30 * time.Second
	case out.Leeway < 0:
		out.Leeway = 0
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	if out.Now == nil {
		out.Now = time.Now
	}
	if out.CacheSize == 0 {
		out.CacheSize = 4096
	}
	if out.RefreshInterval == 0 {
		out.RefreshInterval = time.Second
	}
	return out, nil
}

// Service mints and verifies the broker's tokens: one per session and
// purpose, signed by the key ring, checked against the revocation store on
// every use. It is safe for concurrent use.
type Service struct {
	ring        *KeyRing
	revocations RevocationStore
	opts        Options
	log         *slog.Logger
	cache       *verifyCache // nil when disabled
	parser      *jwt.Parser
}

// New opens the key ring in keys (creating the first key on first start)
// and returns a Service that records revocations in revocations. nil opts
// means defaults.
func New(ctx context.Context, keys KeyStore, revocations RevocationStore, opts *Options) (*Service, error) {
	if revocations == nil {
		return nil, errors.New("tokens: new: nil RevocationStore")
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	ring, err := NewKeyRing(ctx, keys, &o)
	if err != nil {
		return nil, err
	}
	s := &Service{
		ring:        ring,
		revocations: revocations,
		opts:        o,
		log:         o.Logger,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
			jwt.WithStrictDecoding(),
			jwt.WithoutClaimsValidation(), // ours: checkClaims, one order, our sentinels
		),
	}
	if o.CacheSize > 0 {
		s.cache = newVerifyCache(o.CacheSize)
	}
	return s, nil
}

// KeyRing is the service's key ring (rotation, retirement, JWKS).
func (s *Service) KeyRing() *KeyRing { return s.ring }

// Issuer is the iss claim this service mints and requires.
func (s *Service) Issuer() string { return s.opts.Issuer }

// String summarises the service; it never prints key material.
func (s *Service) String() string {
	return fmt.Sprintf("tokens.Service{issuer: %q, ring: %s}", s.opts.Issuer, s.ring)
}

// GoString is String, so %#v prints no key material either.
func (s *Service) GoString() string { return s.String() }

// LogValue logs the service as its summary.
func (s *Service) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Mint signs a token for g with the ring's signing key. It returns the raw
// token (a secret: hand it to its holder, never log it) and its claims.
func (s *Service) Mint(ctx context.Context, g Grant) (string, Claims, error) {
	return s.mint(ctx, g, nil)
}

// mint is Mint, and MintDelegated when minter is not nil.
func (s *Service) mint(ctx context.Context, g Grant, minter *Claims) (string, Claims, error) {
	scopes, err := g.validate()
	if err != nil {
		return "", Claims{}, fmt.Errorf("tokens: mint: %w", err)
	}
	now := s.opts.Now().Truncate(time.Second).UTC()
	lifetime := g.Lifetime
	if lifetime == 0 {
		lifetime = s.opts.DefaultLifetime
	}
	limit := s.opts.MaxLifetime
	if g.Audience == AudienceAdmin {
		limit = s.opts.AdminMaxLifetime
	}
	if lifetime > limit {
		return "", Claims{}, fmt.Errorf("tokens: mint: %w (%s > %s)", ErrLifetimeTooLong, lifetime, limit)
	}
	if minter != nil {
		if g.Lifetime == 0 { // the default, cut to what the minter has left
			lifetime = min(lifetime, minter.ExpiresAt.Sub(now))
		}
		g.Lifetime = lifetime
		if err := CheckDelegation(*minter, g, now); err != nil {
			return "", Claims{}, fmt.Errorf("tokens: mint: %w", err)
		}
	}
	key := s.ring.signer()
	if key == nil {
		return "", Claims{}, fmt.Errorf("tokens: mint: %w", ErrNoSigningKey)
	}
	jti, err := newJTI()
	if err != nil {
		return "", Claims{}, fmt.Errorf("tokens: mint: %w", err)
	}
	c := Claims{
		Issuer:    s.opts.Issuer,
		Subject:   g.Subject,
		Audience:  g.Audience,
		Project:   g.Project,
		Session:   g.Session,
		Agent:     g.Agent,
		Model:     g.Model,
		Scopes:    scopes,
		ID:        jti,
		KeyID:     key.id,
		IssuedAt:  now,
		NotBefore: now,
		ExpiresAt: now.Add(lifetime).Truncate(time.Second),
	}
	raw, err := sign(key, c.toWire())
	if err != nil {
		return "", Claims{}, fmt.Errorf("tokens: mint: %w", err)
	}
	s.log.LogAttrs(ctx, slog.LevelDebug, "token minted", slog.Any("claims", c))
	return raw, c, nil
}

// sign encodes and signs a claims set with key: header alg EdDSA, typ
// at+jwt, kid. Ed25519 is deterministic, so the same input gives the same
// token.
func sign(key *ringKey, w *wireClaims) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, w)
	t.Header["typ"] = TokenType
	t.Header["kid"] = key.id
	raw, err := t.SignedString(key.priv)
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return raw, nil
}

// newJTI is 16 random bytes (128 bits), base64url.
func newJTI() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate jti: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Verify checks raw for audience and returns its claims. In order: size,
// form, alg (EdDSA only), typ, kid (known, unretired), signature, iss, aud
// (exactly audience, nothing else), sub, exp (required), nbf, iat, jti
// (required), and revocation of the jti and of the session — on every call,
// cache hit or not, so a revocation by any process sharing the store holds
// from the next request. The first failure is returned as one of the
// package's sentinels (errors.Is), or as a wrapped store error when the
// revocation check could not run (fail closed). No error carries the token.
func (s *Service) Verify(ctx context.Context, raw string, audience Audience) (Claims, error) {
	c, err := s.verify(ctx, raw, audience)
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelDebug, "token refused",
			slog.String("aud", string(audience)), slog.String("reason", err.Error()))
		return Claims{}, err
	}
	return c, nil
}

func (s *Service) verify(ctx context.Context, raw string, audience Audience) (Claims, error) {
	if len(raw) > MaxTokenSize {
		return Claims{}, ErrTooLarge
	}
	if !audience.Known() {
		return Claims{}, fmt.Errorf("%w: unknown expected audience", ErrWrongAudience)
	}
	now := s.opts.Now()
	var sum [sha256.Size]byte
	if s.cache != nil {
		sum = sha256.Sum256([]byte(raw))
		if c, ok := s.cache.get(sum); ok {
			if err := s.recheck(c, audience, now); err != nil {
				if errors.Is(err, ErrExpired) || errors.Is(err, ErrUnknownKey) {
					s.cache.remove(sum) // for good: it cannot become valid again
				}
				return Claims{}, err
			}
			if err := s.checkRevoked(ctx, c); err != nil {
				if errors.Is(err, ErrRevoked) {
					s.cache.remove(sum)
				}
				return Claims{}, err
			}
			return c, nil
		}
	}
	c, err := s.verifyCold(ctx, raw, audience, now)
	if err != nil {
		return Claims{}, err
	}
	if err := s.checkRevoked(ctx, c); err != nil {
		return Claims{}, err
	}
	if s.cache != nil {
		s.cache.put(sum, c)
	}
	return c, nil
}

// verifyCold parses raw and checks signature and claims (not revocation).
func (s *Service) verifyCold(ctx context.Context, raw string, audience Audience, now time.Time) (Claims, error) {
	var w wireClaims
	var kid string
	_, err := s.parser.ParseWithClaims(raw, &w, func(t *jwt.Token) (any, error) {
		if err := checkType(t.Header); err != nil {
			return nil, err
		}
		id, _ := t.Header["kid"].(string)
		if id == "" {
			return nil, fmt.Errorf("%w: no kid", ErrUnknownKey)
		}
		k, err := s.ring.lookup(ctx, id)
		if err != nil {
			return nil, err
		}
		kid = k.id
		return k.pub, nil
	})
	if err != nil {
		return Claims{}, parseError(err)
	}
	c := w.claims(kid)
	if err := s.checkClaims(&w, audience, now); err != nil {
		return Claims{}, err
	}
	return c, nil
}

// parseError turns a jwt parse error into our sentinel, dropping the
// library's message (which may quote header values).
func parseError(err error) error {
	for _, ours := range []error{ErrWrongType, ErrKeyRetired, ErrUnknownKey} {
		if errors.Is(err, ours) {
			return ours
		}
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return ErrMalformed
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return ErrBadSignature
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// An alg the library does not know, or none at all.
		return fmt.Errorf("%w: algorithm not allowed", ErrBadSignature)
	}
	return ErrMalformed
}

// checkType requires typ "at+jwt" (or its media type form), case-insensitively.
func checkType(header map[string]any) error {
	typ, _ := header["typ"].(string)
	if strings.EqualFold(typ, TokenType) || strings.EqualFold(typ, "application/"+TokenType) {
		return nil
	}
	return ErrWrongType
}

// checkClaims validates a signed claims set, in a fixed order.
func (s *Service) checkClaims(w *wireClaims, audience Audience, now time.Time) error {
	if err := s.checkIssuer(w); err != nil {
		return err
	}
	if err := checkAudience(w, audience); err != nil {
		return err
	}
	if err := required(w.Subject != "", "sub"); err != nil {
		return err
	}
	if err := s.checkTimes(w, now); err != nil {
		return err
	}
	return required(w.ID != "", "jti")
}

func (s *Service) checkIssuer(w *wireClaims) error {
	if w.Issuer != s.opts.Issuer {
		return ErrWrongIssuer
	}
	return nil
}

func checkAudience(w *wireClaims, audience Audience) error {
	if len(w.Audience) != 1 || w.Audience[0] != string(audience) {
		return ErrWrongAudience
	}
	return nil
}

func (s *Service) checkTimes(w *wireClaims, now time.Time) error {
	if w.ExpiresAt == nil {
		return required(false, "exp")
	}
	var nbf, iat time.Time
	if w.NotBefore != nil {
		nbf = w.NotBefore.Time
	}
	if w.IssuedAt != nil {
		iat = w.IssuedAt.Time
	}
	return s.checkWindow(nbf, iat, w.ExpiresAt.Time, now)
}

// checkWindow checks exp, then nbf and iat (zero ones are not checked).
func (s *Service) checkWindow(nbf, iat, exp, now time.Time) error {
	if err := s.checkExpiry(exp, now); err != nil {
		return err
	}
	return s.checkStarted(nbf, iat, now)
}

// checkExpiry: expired once now ≥ exp + leeway.
func (s *Service) checkExpiry(exp, now time.Time) error {
	if !now.Before(exp.Add(s.opts.Leeway)) {
		return ErrExpired
	}
	return nil
}

// checkStarted: not yet valid while now + leeway < nbf (or iat).
func (s *Service) checkStarted(nbf, iat, now time.Time) error {
	early := now.Add(s.opts.Leeway)
	if !nbf.IsZero() && early.Before(nbf) {
		return ErrNotYetValid
	}
	if !iat.IsZero() && early.Before(iat) {
		return ErrNotYetValid
	}
	return nil
}

// recheck validates cached claims for this call: the key still verifies,
// the audience is the one asked for, the time window still holds.
func (s *Service) recheck(c Claims, audience Audience, now time.Time) error {
	if err := s.ring.activeKey(c.KeyID); err != nil {
		return err
	}
	if c.Audience != audience {
		return ErrWrongAudience
	}
	return s.checkWindow(c.NotBefore, c.IssuedAt, c.ExpiresAt, now)
}

func (s *Service) checkRevoked(ctx context.Context, c Claims) error {
	revoked, err := s.revocations.IsRevoked(ctx, c.ID, c.Session)
	if err != nil {
		return fmt.Errorf("tokens: check revocation: %w", err)
	}
	if revoked {
		return &RevokedError{Claims: c}
	}
	return nil
}

// Revoke revokes the token jti; expiresAt is its exp, after which the
// record may be pruned. Verify refuses it from the next call, here and in
// every process sharing the store.
func (s *Service) Revoke(ctx context.Context, jti string, expiresAt time.Time) error {
	if err := checkField("jti", jti, true); err != nil {
		return fmt.Errorf("tokens: revoke: invalid jti")
	}
	if err := s.revocations.RevokeToken(ctx, jti, expiresAt); err != nil {
		return fmt.Errorf("tokens: revoke: %w", err)
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "token revoked", slog.String("jti", jti))
	return nil
}

// RevokeSession revokes every token of the session, minted or yet to be
// minted. Verify refuses them from the next call, here and in every process
// sharing the store.
func (s *Service) RevokeSession(ctx context.Context, sessionID string) error {
	if err := checkField("session", sessionID, true); err != nil {
		return fmt.Errorf("tokens: revoke session: invalid session id")
	}
	if err := s.revocations.RevokeSession(ctx, sessionID, s.opts.Now()); err != nil {
		return fmt.Errorf("tokens: revoke session: %w", err)
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "session tokens revoked", slog.String("session", sessionID))
	return nil
}
