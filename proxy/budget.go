package proxy

import (
	"context"
	"errors"
	"net/http"

	"github.com/agentbroker/agentbroker/tokens"
)

// Budget decides, after every other check and before the upstream call,
// whether a request's session may still spend (Options.Budget). The
// session broker implements it from the costs it has recorded.
type Budget interface {
	// Allow returns nil when the call may go upstream, or an error
	// wrapping ErrBudgetExceeded whose text says what was spent of which
	// budget (the agent is shown it). Any other error refuses the call
	// too, as the budget cannot be checked. It must not block. Each call
	// of Allow is followed, once the request is done, by one Recorder
	// record with Admitted set.
	Allow(ctx context.Context, c tokens.Claims) error
}

// ErrBudgetExceeded is what a Budget's refusal wraps.
var ErrBudgetExceeded = errors.New("budget exceeded")

// Reasons of budget refusals.
const (
	// ReasonBudgetExceeded (402): the session's or its task's USD budget
	// is spent.
	ReasonBudgetExceeded Reason = "budget_exceeded"
	// ReasonBudgetUnavailable (503): the budget could not be checked.
	ReasonBudgetUnavailable Reason = "budget_unavailable"
)

// admit asks the Budget, if any, and refuses the request when it says no.
//
// A spent budget is answered 402 Payment Required, not 429: 429 means
// "slow down and retry", and the Anthropic and OpenAI SDKs (so Claude Code
// and Codex) retry it with backoff, turning one refusal into a string of
// them; 402 is not retried by either, and is Anthropic's own status for
// billing errors (error type billing_error). x-should-retry: false says it
// once more.
func (p *Proxy) admit(w http.ResponseWriter, r *http.Request, rt route, c tokens.Claims, rec *UsageRecord) bool {
	if p.budget == nil {
		return true
	}
	rec.Admitted = true
	err := p.budget.Allow(r.Context(), c)
	if err == nil {
		return true
	}
	if errors.Is(err, ErrBudgetExceeded) {
		p.refuse(w, r, rt, rec, apiError{status: http.StatusPaymentRequired, reason: ReasonBudgetExceeded,
			code: "budget_exceeded", message: "agentbroker proxy: " + err.Error()})
		return false
	}
	p.refuse(w, r, rt, rec, apiError{status: http.StatusServiceUnavailable, reason: ReasonBudgetUnavailable,
		message: "agentbroker proxy: the session's budget cannot be checked: " + err.Error()})
	return false
}
