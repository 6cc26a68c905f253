package tokens

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrEscalation: a token asked to mint another (Service.MintDelegated)
// that would outlive it or hold more than it holds (see CheckDelegation).
var ErrEscalation = errors.New("tokens: grant exceeds the minting token")

// CheckDelegation is the one rule for a token that mints another: the
// minted token never outlives, nor holds more than, its minter. minter is
// a verified token's claims, g the grant it asks for with its Lifetime
// resolved (zero is refused here: the caller decides the default, see
// Service.MintDelegated), and now the minting time. The refusal wraps
// ErrEscalation and says which part exceeds.
//
// The rule, precisely:
//
//   - Lifetime: now+g.Lifetime must not be after minter.ExpiresAt.
//   - An admin minter (audience AudienceAdmin holding ScopeAdmin) may mint
//     for any audience, subject, project, session and agent, with any
//     scopes: admin implies every scope on the admin audience
//     (Claims.HasScope), so whatever it grants is the same or narrower.
//   - Any other minter mints only a narrower copy of itself: the same
//     audience, subject, project, session and agent (an empty agent on the
//     minter allows any), and scopes it holds itself (Claims.HasScope, so a
//     token without ScopeAdmin never mints one that has it).
func CheckDelegation(minter Claims, g Grant, now time.Time) error {
	if minter.ExpiresAt.IsZero() {
		return fmt.Errorf("%w: the minting token has no expiry", ErrEscalation)
	}
	if !now.Before(minter.ExpiresAt) {
		return fmt.Errorf("%w: the minting token has expired", ErrEscalation)
	}
	if g.Lifetime <= 0 {
		return fmt.Errorf("%w: the lifetime must be resolved before the check", ErrEscalation)
	}
	if exp := now.Add(g.Lifetime); exp.After(minter.ExpiresAt) {
		return fmt.Errorf("%w: the lifetime %s outlives the minting token, which expires in %s",
			ErrEscalation, g.Lifetime, max(minter.ExpiresAt.Sub(now).Truncate(time.Second), 0))
	}
	admin := minter.Audience == AudienceAdmin && minter.Scopes.Has(ScopeAdmin)
	if !admin {
		for _, f := range []struct{ name, want, got string }{
			{"audience", string(minter.Audience), string(g.Audience)},
			{"subject", minter.Subject, g.Subject},
			{"project", minter.Project, g.Project},
			{"session", minter.Session, g.Session},
		} {
			if f.want != f.got {
				return fmt.Errorf("%w: a token without the admin scope mints only for its own %s", ErrEscalation, f.name)
			}
		}
		if minter.Agent != "" && g.Agent != minter.Agent {
			return fmt.Errorf("%w: a token without the admin scope mints only for its own agent", ErrEscalation)
		}
		if minter.Model != "" && g.Model != minter.Model {
			return fmt.Errorf("%w: a token bound to a model mints only for that model", ErrEscalation)
		}
	}
	for _, s := range g.Scopes {
		if !minter.HasScope(s) {
			return fmt.Errorf("%w: scope %s is not held by the minting token", ErrEscalation, safeScope(s))
		}
	}
	return nil
}

// MintDelegated mints g on behalf of the token whose verified claims are
// minter, as POST /v1/tokens does: CheckDelegation must pass. A zero
// g.Lifetime means Options.DefaultLifetime shortened, if need be, to what
// remains of the minter's (the returned Claims.ExpiresAt shows it); an
// explicit lifetime that outlives the minter is refused, never clamped,
// so that nobody holds a token shorter than they asked for without
// knowing. The other limits of Mint apply too.
func (s *Service) MintDelegated(ctx context.Context, minter Claims, g Grant) (string, Claims, error) {
	return s.mint(ctx, g, &minter)
}
