package tokens

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agentbroker/agentbroker/tokens/internal/memstore"
)

// attack is one token that must be refused, and why.
type attack struct {
	name string
	// build returns the token and the audience it is presented at (MCP if
	// empty). It may move the clock, revoke, rotate.
	build func(t *testing.T, f *fixture) (string, Audience)
	want  error
}

func attacks() []attack {
	mcp := func(raw string) (string, Audience) { return raw, AudienceMCP }
	signer := func(t *testing.T, f *fixture) (string, ed25519.PrivateKey) {
		kid := f.svc.KeyRing().SigningKeyID()
		return kid, f.privateKey(t, kid)
	}
	hs256 := func(t *testing.T, f *fixture, secret []byte) string {
		kid, _ := signer(t, f)
		h := with(header(kid), "alg", "HS256")
		input := b64JSON(t, h) + "." + b64JSON(t, claimsAt(f.clk.Now()))
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(input))
		return input + "." + b64(m.Sum(nil))
	}
	forged := func(hdr func(kid string) map[string]any, claims func(now time.Time) map[string]any) func(t *testing.T, f *fixture) (string, Audience) {
		return func(t *testing.T, f *fixture) (string, Audience) {
			kid, priv := signer(t, f)
			return mcp(forge(t, priv, hdr(kid), claims(f.clk.Now())))
		}
	}
	validClaims := claimsAt
	stranger := func(t *testing.T) ed25519.PrivateKey {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return priv
	}
	minted := func(t *testing.T, f *fixture) string { raw, _ := mint(t, f.svc, mcpGrant()); return raw }

	return []attack{
		{"alg none, empty signature", func(t *testing.T, f *fixture) (string, Audience) {
			kid, _ := signer(t, f)
			return mcp(b64JSON(t, with(header(kid), "alg", "none")) + "." + b64JSON(t, validClaims(f.clk.Now())) + ".")
		}, ErrBadSignature},
		{"alg none, signature kept", func(t *testing.T, f *fixture) (string, Audience) {
			p := segments(minted(t, f))
			kid, _ := signer(t, f)
			return mcp(b64JSON(t, with(header(kid), "alg", "none")) + "." + p[1] + "." + p[2])
		}, ErrBadSignature},
		{"alg NONE", func(t *testing.T, f *fixture) (string, Audience) {
			kid, _ := signer(t, f)
			return mcp(b64JSON(t, with(header(kid), "alg", "NONE")) + "." + b64JSON(t, validClaims(f.clk.Now())) + ".")
		}, ErrBadSignature},
		{"HS256 keyed with the public key bytes", func(t *testing.T, f *fixture) (string, Audience) {
			_, priv := signer(t, f)
			return mcp(hs256(t, f, priv.Public().(ed25519.PublicKey)))
		}, ErrBadSignature},
		{"HS256 keyed with the JWKS x value", func(t *testing.T, f *fixture) (string, Audience) {
			return mcp(hs256(t, f, []byte(f.svc.KeyRing().JWKS().Keys[0].X)))
		}, ErrBadSignature},
		{"alg the library does not know", forged(func(kid string) map[string]any { return with(header(kid), "alg", "Ed448") }, validClaims), ErrBadSignature},
		{"alg missing", forged(func(kid string) map[string]any { return with(header(kid), "alg", nil) }, validClaims), ErrBadSignature},
		{"unknown kid", func(t *testing.T, f *fixture) (string, Audience) {
			return mcp(forge(t, stranger(t), header(randomID()), validClaims(f.clk.Now())))
		}, ErrUnknownKey},
		{"missing kid", forged(func(kid string) map[string]any { return with(header(kid), "kid", nil) }, validClaims), ErrUnknownKey},
		{"kid not a string", forged(func(kid string) map[string]any { return with(header(kid), "kid", 7) }, validClaims), ErrUnknownKey},
		{"embedded jwk, no kid", func(t *testing.T, f *fixture) (string, Audience) {
			priv := stranger(t)
			h := with(header(""), "kid", nil, "jwk", map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64(priv.Public().(ed25519.PublicKey))})
			return mcp(forge(t, priv, h, validClaims(f.clk.Now())))
		}, ErrUnknownKey},
		{"embedded jwk, our kid", func(t *testing.T, f *fixture) (string, Audience) {
			kid, _ := signer(t, f)
			priv := stranger(t)
			h := with(header(kid), "jwk", map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64(priv.Public().(ed25519.PublicKey)), "kid": kid})
			return mcp(forge(t, priv, h, validClaims(f.clk.Now())))
		}, ErrBadSignature},
		{"tampered payload (scope escalation)", func(t *testing.T, f *fixture) (string, Audience) {
			p := segments(minted(t, f))
			body := with(validClaims(f.clk.Now()), "scope", "project:read tasks:read tasks:write knowledge:write")
			return mcp(p[0] + "." + b64JSON(t, body) + "." + p[2])
		}, ErrBadSignature},
		{"tampered payload (one bit)", func(t *testing.T, f *fixture) (string, Audience) {
			p := segments(minted(t, f))
			b, _ := base64.RawURLEncoding.DecodeString(p[1])
			b[len(b)/2] ^= 0x01
			return mcp(p[0] + "." + b64(b) + "." + p[2])
		}, ErrBadSignature},
		{"tampered header", func(t *testing.T, f *fixture) (string, Audience) {
			p := segments(minted(t, f))
			kid, _ := signer(t, f)
			return mcp(b64JSON(t, with(header(kid), "typ", "AT+JWT")) + "." + p[1] + "." + p[2])
		}, ErrBadSignature},
		{"truncated in the payload", func(t *testing.T, f *fixture) (string, Audience) {
			raw := minted(t, f)
			return mcp(raw[:strings.Index(raw, ".")+10])
		}, ErrMalformed},
		{"signature truncated", func(t *testing.T, f *fixture) (string, Audience) {
			p := segments(minted(t, f))
			sig, _ := base64.RawURLEncoding.DecodeString(p[2])
			return mcp(p[0] + "." + p[1] + "." + b64(sig[:len(sig)-3]))
		}, ErrBadSignature},
		{"token truncated by one character", func(t *testing.T, f *fixture) (string, Audience) {
			raw := minted(t, f)
			return mcp(raw[:len(raw)-1])
		}, ErrMalformed},
		{"signature dropped", func(t *testing.T, f *fixture) (string, Audience) {
			raw := minted(t, f)
			return mcp(raw[:strings.LastIndex(raw, ".")+1])
		}, ErrBadSignature},
		{"signature in non-canonical base64", func(t *testing.T, f *fixture) (string, Audience) {
			raw := minted(t, f)
			// 64 bytes are 86 characters; the last one carries 2 unused
			// bits. Setting one gives another string for the same bytes.
			const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
			last := strings.IndexByte(alphabet, raw[len(raw)-1])
			return mcp(raw[:len(raw)-1] + string(alphabet[last^1]))
		}, ErrMalformed},
		{"two segments", func(t *testing.T, f *fixture) (string, Audience) {
			raw := minted(t, f)
			return mcp(raw[:strings.LastIndex(raw, ".")])
		}, ErrMalformed},
		{"four segments", func(t *testing.T, f *fixture) (string, Audience) { return mcp(minted(t, f) + ".AAAA") }, ErrMalformed},
		{"empty", func(t *testing.T, f *fixture) (string, Audience) { return mcp("") }, ErrMalformed},
		{"not JSON", func(t *testing.T, f *fixture) (string, Audience) {
			return mcp(b64([]byte("{not json")) + "." + b64([]byte("[]")) + ".")
		}, ErrMalformed},
		{"exp of the wrong type", forged(header, func(now time.Time) map[string]any { return with(claimsAt(now), "exp", "tomorrow") }), ErrMalformed},
		{"expired", func(t *testing.T, f *fixture) (string, Audience) {
			raw := minted(t, f)
			f.clk.Add(time.Hour + 30*time.Second)
			return mcp(raw)
		}, ErrExpired},
		{"not yet valid (nbf)", forged(header, func(now time.Time) map[string]any {
			return with(claimsAt(now), "nbf", now.Add(10*time.Minute).Unix())
		}), ErrNotYetValid},
		{"issued in the future (iat)", forged(header, func(now time.Time) map[string]any {
			return with(claimsAt(now), "iat", now.Add(10*time.Minute).Unix())
		}), ErrNotYetValid},
		{"wrong iss", forged(header, func(now time.Time) map[string]any { return with(claimsAt(now), "iss", "evil") }), ErrWrongIssuer},
		{"missing iss", forged(header, func(now time.Time) map[string]any { return with(claimsAt(now), "iss", nil) }), ErrWrongIssuer},
		{"iss of another broker on the same keys", func(t *testing.T, f *fixture) (string, Audience) {
			other := f.open(t, func(o *Options) { o.Issuer = "other-broker" })
			raw, _ := mint(t, other, mcpGrant())
			return mcp(raw)
		}, ErrWrongIssuer},
		{"MCP token at the proxy", func(t *testing.T, f *fixture) (string, Audience) { return minted(t, f), AudienceProxy }, ErrWrongAudience},
		{"proxy token at MCP", func(t *testing.T, f *fixture) (string, Audience) {
			raw, _ := mint(t, f.svc, proxyGrant())
			return mcp(raw)
		}, ErrWrongAudience},
		{"MCP token at the admin API", func(t *testing.T, f *fixture) (string, Audience) { return minted(t, f), AudienceAdmin }, ErrWrongAudience},
		{"MCP token at a viewer", func(t *testing.T, f *fixture) (string, Audience) { return minted(t, f), AudienceViewer }, ErrWrongAudience},
		{"several audiences including the right one", forged(header, func(now time.Time) map[string]any {
			return with(claimsAt(now), "aud", []string{string(AudienceMCP), string(AudienceProxy)})
		}), ErrWrongAudience},
		{"missing aud", forged(header, func(now time.Time) map[string]any { return with(claimsAt(now), "aud", nil) }), ErrWrongAudience},
		{"missing exp", forged(header, func(now time.Time) map[string]any { return with(claimsAt(now), "exp", nil) }), ErrMissingClaim},
		{"missing jti", forged(header, func(now time.Time) map[string]any { return with(claimsAt(now), "jti", nil) }), ErrMissingClaim},
		{"missing sub", forged(header, func(now time.Time) map[string]any { return with(claimsAt(now), "sub", nil) }), ErrMissingClaim},
		{"typ JWT", forged(func(kid string) map[string]any { return with(header(kid), "typ", "JWT") }, claimsAt), ErrWrongType},
		{"typ missing", forged(func(kid string) map[string]any { return with(header(kid), "typ", nil) }, claimsAt), ErrWrongType},
		{"revoked by jti", func(t *testing.T, f *fixture) (string, Audience) {
			raw, c := mint(t, f.svc, mcpGrant())
			if err := f.svc.Revoke(context.Background(), c.ID, c.ExpiresAt); err != nil {
				t.Fatal(err)
			}
			return mcp(raw)
		}, ErrRevoked},
		{"revoked by session", func(t *testing.T, f *fixture) (string, Audience) {
			raw := minted(t, f)
			if err := f.svc.RevokeSession(context.Background(), "sess-1"); err != nil {
				t.Fatal(err)
			}
			return mcp(raw)
		}, ErrRevoked},
		{"revoked by another process sharing the store", func(t *testing.T, f *fixture) (string, Audience) {
			raw := minted(t, f)
			if _, err := f.svc.Verify(context.Background(), raw, AudienceMCP); err != nil {
				t.Fatal(err) // now cached here
			}
			if err := f.open(t, nil).RevokeSession(context.Background(), "sess-1"); err != nil {
				t.Fatal(err)
			}
			return mcp(raw)
		}, ErrRevoked},
		{"oversized", func(t *testing.T, f *fixture) (string, Audience) {
			return mcp(strings.Repeat("A", MaxTokenSize+1))
		}, ErrTooLarge},
		{"oversized but validly signed", forged(header, func(now time.Time) map[string]any {
			return with(claimsAt(now), "agent", strings.Repeat("x", MaxTokenSize))
		}), ErrTooLarge},
		{"signed by a retired key", func(t *testing.T, f *fixture) (string, Audience) {
			raw := minted(t, f)
			old := f.svc.KeyRing().SigningKeyID()
			if _, err := f.svc.KeyRing().Rotate(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := f.svc.KeyRing().Retire(context.Background(), old); err != nil {
				t.Fatal(err)
			}
			return mcp(raw)
		}, ErrKeyRetired},
		{"minted by another ring", func(t *testing.T, f *fixture) (string, Audience) {
			other, err := New(context.Background(), memstore.New(), memstore.New(), &Options{Now: f.clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := mint(t, other, mcpGrant())
			return mcp(raw)
		}, ErrUnknownKey},
		{"another ring's key under our kid", func(t *testing.T, f *fixture) (string, Audience) {
			kid, _ := signer(t, f)
			return mcp(forge(t, stranger(t), header(kid), claimsAt(f.clk.Now())))
		}, ErrBadSignature},
	}
}

// TestAttacks presents each attack to a fresh service, with and without the
// verified-token cache, and checks the sentinel and that the error says
// nothing of the token.
func TestAttacks(t *testing.T) {
	t.Parallel()
	for _, cache := range []int{0, -1} {
		for _, a := range attacks() {
			name := a.name
			if cache < 0 {
				name += "/nocache"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				f := newFixture(t, func(o *Options) { o.CacheSize = cache })
				raw, aud := a.build(t, f)
				c, err := f.svc.Verify(context.Background(), raw, aud)
				if !errors.Is(err, a.want) {
					t.Fatalf("Verify = %+v, %v; want %v", c, err, a.want)
				}
				if c != (Claims{}) {
					t.Errorf("refused token still returned claims %+v", c)
				}
				assertNoTokenIn(t, "error", err.Error(), raw)
				if rep := f.svc.Check(context.Background(), raw, aud); rep.Valid() {
					t.Errorf("Check says valid:\n%s", rep)
				} else {
					assertNoTokenIn(t, "report", rep.String(), raw)
				}
			})
		}
	}
}

// TestAttacksControl: the same fixtures with nothing wrong verify, so the
// attack table cannot pass by refusing everything.
func TestAttacksControl(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	kid := f.svc.KeyRing().SigningKeyID()
	for name, raw := range map[string]string{
		"minted":                  func() string { r, _ := mint(t, f.svc, mcpGrant()); return r }(),
		"forged with our key":     forge(t, f.privateKey(t, kid), header(kid), claimsAt(f.clk.Now())),
		"aud as a one-item array": forge(t, f.privateKey(t, kid), header(kid), with(claimsAt(f.clk.Now()), "aud", []string{string(AudienceMCP)})),
		"typ application/at+jwt":  forge(t, f.privateKey(t, kid), with(header(kid), "typ", "application/at+jwt"), claimsAt(f.clk.Now())),
		"nbf within the leeway":   forge(t, f.privateKey(t, kid), header(kid), with(claimsAt(f.clk.Now()), "nbf", f.clk.Now().Add(20*time.Second).Unix())),
	} {
		if _, err := f.svc.Verify(context.Background(), raw, AudienceMCP); err != nil {
			t.Errorf("%s: Verify = %v; want ok", name, err)
		}
		if rep := f.svc.Check(context.Background(), raw, ""); !rep.Valid() {
			t.Errorf("%s: Check:\n%s", name, rep)
		}
	}
}

func TestExpiryLeeway(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		leeway time.Duration
		after  time.Duration
		want   error
	}{
		{"just before exp", 0, time.Hour - time.Second, nil},
		{"within default leeway", 0, time.Hour + 29*time.Second, nil},
		{"at exp plus leeway", 0, time.Hour + 30*time.Second, ErrExpired},
		{"custom leeway", 2 * time.Minute, time.Hour + 90*time.Second, nil},
		{"no leeway, at exp", -1, time.Hour, ErrExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, func(o *Options) { o.Leeway = tc.leeway })
			raw, _ := mint(t, f.svc, mcpGrant())
			f.clk.Add(tc.after)
			if _, err := f.svc.Verify(context.Background(), raw, AudienceMCP); !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
				t.Fatalf("Verify after %v = %v; want %v", tc.after, err, tc.want)
			}
		})
	}
}

// TestOtherProjectOrSession: a token verifies wherever its audience is
// right, so handlers must also check what it is bound to.
func TestOtherProjectOrSession(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	g := mcpGrant()
	g.Project, g.Session = "proj-2", "sess-9"
	raw, _ := mint(t, f.svc, g)
	c, err := f.svc.Verify(context.Background(), raw, AudienceMCP)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		project, session string
		want             error
	}{
		{"proj-2", "sess-9", nil},
		{"proj-1", "sess-9", ErrWrongProject},
		{"proj-2", "sess-1", ErrWrongSession},
		{"proj-1", "sess-1", ErrWrongProject},
		{"", "", ErrWrongProject},
		{"proj-2", "", ErrWrongSession},
	} {
		if err := c.Require(tc.project, tc.session); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("Require(%q, %q) = %v; want %v", tc.project, tc.session, err, tc.want)
		}
	}
	if err := c.RequireProject("proj-2"); err != nil {
		t.Errorf("RequireProject(own) = %v", err)
	}
	if err := c.RequireProject("proj-1"); !errors.Is(err, ErrWrongProject) {
		t.Errorf("RequireProject(other) = %v", err)
	}
}

// assertNoTokenIn fails if s contains the token or any long part of it.
func assertNoTokenIn(t *testing.T, what, s, raw string) {
	t.Helper()
	if len(raw) >= 8 && strings.Contains(s, raw) {
		t.Errorf("%s contains the token: %q", what, s)
	}
	for i, p := range strings.Split(raw, ".") {
		if len(p) >= 8 && strings.Contains(s, p) {
			t.Errorf("%s contains part %d of the token: %q", what, i, s)
		}
	}
}
