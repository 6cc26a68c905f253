package tokens

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestInspect(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	kid := f.svc.KeyRing().SigningKeyID()
	// A token with odd claims still shows what it can.
	raw := forge(t, f.privateKey(t, kid), with(header(kid), "alg", "none"),
		with(claimsAt(t0), "aud", []string{"a", "b"}, "exp", "soon", "extra", 1.5))
	in, err := Inspect(raw)
	if err != nil {
		t.Fatal(err)
	}
	if in.Header["alg"] != "none" || in.Payload["extra"] == nil || in.Claims.Subject != "user-1" ||
		!in.Claims.ExpiresAt.IsZero() || in.Claims.Audience != "" || in.Claims.KeyID != kid {
		t.Fatalf("Inspect = %+v", in)
	}
	for _, bad := range []string{"", "a.b", "a.b.c.d", "!!.e30.", "e30.!!.", "bnVsbA.e30.", strings.Repeat("A", MaxTokenSize+1)} {
		if _, err := Inspect(bad); !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
			t.Errorf("Inspect(%.20q) = %v", bad, err)
		}
	}
}

// TestCheck: Check marks each failing step and only those.
func TestCheck(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, nil)
	raw, c := mint(t, f.svc, mcpGrant())
	failing := func(rep Report) string {
		var out []string
		for _, fd := range rep.Findings {
			if fd.Err != nil {
				out = append(out, fd.Check)
			}
		}
		return strings.Join(out, ",")
	}
	if rep := f.svc.Check(ctx, raw, ""); !rep.Valid() || rep.Err() != nil || len(rep.Findings) != 13 {
		t.Fatalf("fresh token:\n%s", rep)
	}
	if got := failing(f.svc.Check(ctx, raw, AudienceProxy)); got != "aud" {
		t.Errorf("at the proxy: failing %q; want aud", got)
	}
	old := c.KeyID
	if _, err := f.svc.KeyRing().Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.KeyRing().Retire(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Revoke(ctx, c.ID, c.ExpiresAt); err != nil {
		t.Fatal(err)
	}
	f.clk.Add(2 * time.Hour)
	rep := f.svc.Check(ctx, raw, "")
	if got := failing(rep); got != "kid,exp,revocation" {
		t.Errorf("retired, expired, revoked: failing %q\n%s", got, rep)
	}
	if !errors.Is(rep.Err(), ErrKeyRetired) {
		t.Errorf("Err = %v; want the first failure, ErrKeyRetired", rep.Err())
	}
	// The signature of a retired key is still checked: it is ours.
	for _, fd := range rep.Findings {
		if fd.Check == "signature" && fd.Err != nil {
			t.Errorf("signature of a retired key: %v", fd.Err)
		}
	}
	forged := forge(t, f.privateKey(t, f.svc.KeyRing().SigningKeyID()), with(header(f.svc.KeyRing().SigningKeyID()), "alg", "HS256", "typ", "JWT"),
		with(claimsAt(f.clk.Now()), "iss", "x", "jti", nil, "nbf", f.clk.Now().Add(time.Hour).Unix()))
	if got := failing(f.svc.Check(ctx, forged, "")); got != "alg,typ,iss,nbf,jti" {
		t.Errorf("forged: failing %q", got)
	}
	if got := failing(f.svc.Check(ctx, "junk", "")); got != "format" {
		t.Errorf("junk: failing %q", got)
	}
	if got := failing(f.svc.Check(ctx, strings.Repeat("A", MaxTokenSize+1), "")); got != "size" {
		t.Errorf("oversized: failing %q", got)
	}
	if (Report{}).Valid() {
		t.Error("an empty report is valid")
	}
}
