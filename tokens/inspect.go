package tokens

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// Inspection is a token decoded without trusting it (for `agentbroker token
// inspect`): nothing in it has been verified. It holds no signature.
type Inspection struct {
	// Header is the decoded JOSE header.
	Header map[string]any `json:"header"`
	// Payload is the decoded claims set, as sent (numbers kept exact).
	Payload map[string]any `json:"payload"`
	// Claims is the typed view of Payload (fields left zero where absent or
	// of the wrong type; Audience only when aud is a single value).
	Claims Claims `json:"claims"`
}

// Inspect decodes raw without verifying anything. It fails only when raw is
// too large (ErrTooLarge) or not a compact JWS with JSON header and payload
// (ErrMalformed).
func Inspect(raw string) (Inspection, error) {
	if len(raw) > MaxTokenSize {
		return Inspection{}, ErrTooLarge
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return Inspection{}, ErrMalformed
	}
	p := jwt.NewParser()
	var in Inspection
	for i, dst := range []*map[string]any{&in.Header, &in.Payload} {
		b, err := p.DecodeSegment(parts[i])
		if err != nil {
			return Inspection{}, ErrMalformed
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(dst); err != nil || *dst == nil {
			return Inspection{}, ErrMalformed
		}
		if i == 1 {
			// Best effort, field by field: one bad field must not hide the rest.
			in.Claims = lenientClaims(*dst)
		}
	}
	kid, _ := in.Header["kid"].(string)
	in.Claims.KeyID = kid
	return in, nil
}

// lenientClaims decodes each claim on its own into wireClaims.
func lenientClaims(payload map[string]any) Claims {
	var w wireClaims
	for name, v := range payload {
		b, err := json.Marshal(map[string]any{name: v})
		if err == nil {
			_ = json.Unmarshal(b, &w) // a wrong type leaves the field zero
		}
	}
	return w.claims("")
}

// Finding is the outcome of one check of Service.Check.
type Finding struct {
	// Check names what was checked: "size", "format", "alg", "typ", "kid",
	// "signature", "iss", "aud", "sub", "exp", "nbf", "jti", "revocation".
	Check string
	// Err is nil when the check passed, else why not (a sentinel, or a
	// store error for "revocation").
	Err error
}

// Report lists every check Service.Check ran, in Verify's order.
type Report struct {
	Findings []Finding
}

// Valid reports whether every check passed.
func (r Report) Valid() bool { return r.Err() == nil }

// Err is the first failure (what Verify would return), or nil.
func (r Report) Err() error {
	for _, f := range r.Findings {
		if f.Err != nil {
			return f.Err
		}
	}
	if len(r.Findings) == 0 {
		return ErrMalformed
	}
	return nil
}

// String is one line per check: "ok  exp" or "FAIL exp: tokens: token expired".
func (r Report) String() string {
	var b strings.Builder
	for _, f := range r.Findings {
		if f.Err == nil {
			fmt.Fprintf(&b, "ok   %s\n", f.Check)
		} else {
			fmt.Fprintf(&b, "FAIL %s: %v\n", f.Check, f.Err)
		}
	}
	return b.String()
}

// Check runs every verification step on raw independently and reports each
// (for `agentbroker token inspect`), where Verify stops at the first
// failure. The aud check is against audience, or, when audience is empty,
// against the token's own (which must then be a single known audience).
// Check neither uses nor fills the verified-token cache.
func (s *Service) Check(ctx context.Context, raw string, audience Audience) Report {
	var rep Report
	add := func(check string, err error) { rep.Findings = append(rep.Findings, Finding{check, err}) }
	if len(raw) > MaxTokenSize {
		add("size", ErrTooLarge)
		return rep
	}
	add("size", nil)
	var w wireClaims
	tok, parts, err := s.parser.ParseUnverified(raw, &w)
	if errors.Is(err, jwt.ErrTokenMalformed) || tok == nil || parts == nil {
		add("format", ErrMalformed)
		return rep
	}
	add("format", nil)
	// Past this point err can only be an alg the library does not know, in
	// which case the signature was not decoded.

	edDSA := jwt.SigningMethodEdDSA.Alg()
	if alg, _ := tok.Header["alg"].(string); alg != edDSA || err != nil {
		add("alg", fmt.Errorf("%w: algorithm not allowed", ErrBadSignature))
	} else {
		add("alg", nil)
	}
	add("typ", checkType(tok.Header))

	kid, _ := tok.Header["kid"].(string)
	var pub ed25519.PublicKey
	if kid == "" {
		add("kid", fmt.Errorf("%w: no kid", ErrUnknownKey))
	} else {
		k, err := s.ring.lookup(ctx, kid)
		if err == nil {
			pub = k.pub
		} else {
			pub = s.ring.state.Load().retired[kid] // still say whether it was ours
		}
		add("kid", err)
	}
	switch {
	case pub == nil:
		add("signature", fmt.Errorf("%w: no key to check it with", ErrBadSignature))
	case !ed25519.Verify(pub, []byte(parts[0]+"."+parts[1]), tok.Signature):
		// An empty signature (not decoded for an unknown alg) fails here too.
		add("signature", ErrBadSignature)
	default:
		add("signature", nil)
	}

	c := w.claims(kid)
	add("iss", s.checkIssuer(&w))
	if audience == "" {
		audience = c.Audience
	}
	if !audience.Known() {
		add("aud", ErrWrongAudience)
	} else {
		add("aud", checkAudience(&w, audience))
	}
	add("sub", required(c.Subject != "", "sub"))
	now := s.opts.Now()
	if w.ExpiresAt == nil {
		add("exp", required(false, "exp"))
	} else {
		add("exp", s.checkExpiry(c.ExpiresAt, now))
	}
	add("nbf", s.checkStarted(c.NotBefore, c.IssuedAt, now))
	add("jti", required(c.ID != "", "jti"))
	if c.ID != "" || c.Session != "" {
		add("revocation", s.checkRevoked(ctx, c))
	}
	return rep
}

func required(present bool, claim string) error {
	if present {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrMissingClaim, claim)
}
