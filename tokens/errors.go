package tokens

import (
	"errors"
	"fmt"
)

// Errors Verify, Check and the middleware report. Each says why a token was
// refused; none of them ever carries the token or any part of it. Some are
// refinements of others (errors.Is(ErrKeyRetired, ErrUnknownKey) is true), so
// callers may branch on the coarse one.
var (
	// ErrTooLarge: the raw token is longer than MaxTokenSize. Checked before
	// anything is parsed.
	ErrTooLarge = errors.New("tokens: token too large")
	// ErrMalformed: not a compact JWS with a JSON header and claims.
	ErrMalformed = errors.New("tokens: malformed token")
	// ErrWrongType: the header typ is not "at+jwt".
	ErrWrongType = fmt.Errorf("%w: wrong token type", ErrMalformed)
	// ErrMissingClaim: a required claim (sub, exp, jti) is absent or empty.
	ErrMissingClaim = fmt.Errorf("%w: missing required claim", ErrMalformed)
	// ErrBadSignature: the algorithm is not EdDSA or the signature does not
	// verify with the key named by kid.
	ErrBadSignature = errors.New("tokens: bad signature")
	// ErrUnknownKey: the header has no kid, or one this ring does not know.
	ErrUnknownKey = errors.New("tokens: unknown signing key")
	// ErrKeyRetired: the kid names a key that has been retired.
	ErrKeyRetired = fmt.Errorf("%w: key retired", ErrUnknownKey)
	// ErrExpired: exp (plus leeway) has passed.
	ErrExpired = errors.New("tokens: token expired")
	// ErrNotYetValid: nbf or iat is in the future (beyond the leeway).
	ErrNotYetValid = errors.New("tokens: token not yet valid")
	// ErrWrongIssuer: iss is not this service's issuer.
	ErrWrongIssuer = errors.New("tokens: wrong issuer")
	// ErrWrongAudience: aud is not exactly the one audience expected.
	ErrWrongAudience = errors.New("tokens: wrong audience")
	// ErrRevoked: the token's jti or its session has been revoked.
	ErrRevoked = errors.New("tokens: token revoked")

	// ErrInsufficientScope: a verified token lacks a scope the request needs.
	ErrInsufficientScope = errors.New("tokens: insufficient scope")
	// ErrWrongProject: a verified token belongs to another project.
	ErrWrongProject = errors.New("tokens: token is for another project")
	// ErrWrongSession: a verified token belongs to another session.
	ErrWrongSession = errors.New("tokens: token is for another session")

	// ErrUnknownScope: a scope name outside the vocabulary (see scopes.go).
	ErrUnknownScope = errors.New("tokens: unknown scope")
	// ErrInvalidGrant: Mint refused a grant (a field missing, too long or
	// holding control characters, a scope not allowed for the audience, a
	// negative lifetime).
	ErrInvalidGrant = errors.New("tokens: invalid grant")
	// ErrLifetimeTooLong: the grant asks for more than Options.MaxLifetime.
	ErrLifetimeTooLong = fmt.Errorf("%w: lifetime exceeds the maximum", ErrInvalidGrant)
	// ErrNoSigningKey: the ring holds no unretired key to sign with.
	ErrNoSigningKey = errors.New("tokens: no signing key")
	// ErrLastKey: Retire refused to retire the last unretired key.
	ErrLastKey = errors.New("tokens: cannot retire the last signing key")
)

// refusals lists the verification sentinels, most specific first, with the
// short description sent to clients in error_description and the Reason.
var refusals = []struct {
	err    error
	desc   string
	reason Reason
}{
	{ErrTooLarge, "token too large", ReasonMalformed},
	{ErrWrongType, "wrong token type", ReasonMalformed},
	{ErrMissingClaim, "missing required claim", ReasonMalformed},
	{ErrMalformed, "malformed token", ReasonMalformed},
	{ErrBadSignature, "invalid signature", ReasonBadSignature},
	{ErrKeyRetired, "signing key retired", ReasonUnknownKey},
	{ErrUnknownKey, "unknown signing key", ReasonUnknownKey},
	{ErrExpired, "token expired", ReasonExpired},
	{ErrNotYetValid, "token not yet valid", ReasonNotYetValid},
	{ErrWrongIssuer, "wrong issuer", ReasonWrongIssuer},
	{ErrWrongAudience, "token not valid for this resource", ReasonWrongAudience},
	{ErrRevoked, "token revoked", ReasonRevoked},
}

// refusal returns the client-facing description of a verification error,
// and false when err is not a refusal (a store failure, a cancelled context).
func refusal(err error) (string, bool) {
	desc, _, ok := refusalOf(err)
	return desc, ok
}

// refusalOf is refusal with the Reason.
func refusalOf(err error) (string, Reason, bool) {
	for _, r := range refusals {
		if errors.Is(err, r.err) {
			return r.desc, r.reason, true
		}
	}
	return "", "", false
}

// RevokedError is what Verify returns for a revoked token: it says
// ErrRevoked (errors.Is) and, since the token's signature and claims were
// checked before its revocation, carries its claims, so that the refusal
// can be reported against the session it belonged to. Its message is
// ErrRevoked's: it never echoes the token.
type RevokedError struct {
	Claims Claims
}

func (e *RevokedError) Error() string { return ErrRevoked.Error() }

// Unwrap makes errors.Is(err, ErrRevoked) hold.
func (e *RevokedError) Unwrap() error { return ErrRevoked }
