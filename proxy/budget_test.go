package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/agentbroker/agentbroker/proxy"
	"github.com/agentbroker/agentbroker/tokens"
)

// budgetAfter allows n calls, then refuses every one as over budget.
type budgetAfter struct {
	n     atomic.Int64
	asked atomic.Int64
}

func (b *budgetAfter) Allow(_ context.Context, c tokens.Claims) error {
	b.asked.Add(1)
	if b.n.Add(-1) < 0 {
		return fmt.Errorf("%w: session %s spent $1.000001 of its $1.00 budget", proxy.ErrBudgetExceeded, c.Session)
	}
	return nil
}

// A spent budget stops calls before the upstream, with a 402 in each API's
// own error shape that the SDKs do not retry, recorded as a refusal.
func TestBudgetRefusesBeforeUpstream(t *testing.T) {
	t.Parallel()
	b := &budgetAfter{}
	b.n.Store(1)
	w := newWorld(t, worldConfig{mod: func(o *proxy.Options, _ *world) { o.Budget = b }})
	resp := w.do(call{path: messagesPath, body: anthropicBody("claude-opus-4-8", true), token: w.token("claude-code")})
	if body := readAll(t, resp.Body); resp.StatusCode != 200 {
		t.Fatalf("first call: %d %s", resp.StatusCode, body)
	}
	for _, c := range []struct {
		path, body, token, errType, code string
	}{
		{messagesPath, anthropicBody("claude-opus-4-8", true), w.token("claude-code"), "billing_error", "<null>"},
		{responsesPath, responsesBody("gpt-5.5", true), w.token("codex"), "insufficient_quota", "budget_exceeded"},
	} {
		resp := w.do(call{path: c.path, body: c.body, token: c.token})
		body := readAll(t, resp.Body)
		e := decodeErr(t, c.path, body)
		if resp.StatusCode != 402 || e.Error.Type != c.errType || deref(e.Error.Code) != c.code ||
			!strings.Contains(e.Error.Message, "spent $1.000001 of its $1.00 budget") ||
			resp.Header.Get("X-Should-Retry") != "false" || resp.Header.Get("X-Agentbroker-Refusal") != "budget_exceeded" {
			t.Errorf("%s over budget: %d %s (retry %q)", c.path, resp.StatusCode, body, resp.Header.Get("X-Should-Retry"))
		}
	}
	if n := w.anth.Count(); n != 1 {
		t.Errorf("the Anthropic upstream got %d requests; want only the first", n)
	}
	if n := w.oai.Count(); n != 0 {
		t.Errorf("the OpenAI upstream got %d requests after the budget was spent", n)
	}
	recs := w.records(3)
	for _, r := range recs[1:] {
		if r.Outcome != proxy.OutcomeRefused || r.Reason != proxy.ReasonBudgetExceeded || r.Status != 402 || r.Model == "" {
			t.Errorf("record %+v", r)
		}
	}
	if text := w.metricsText(); !strings.Contains(text, `agentbroker_proxy_refusals_total{reason="budget_exceeded"} 2`) {
		t.Errorf("metrics lack the budget refusals:\n%s", text)
	}
	// A refused model is refused for that, before the budget is asked.
	asked := b.asked.Load()
	resp = w.do(call{path: messagesPath, body: anthropicBody("gpt-5.5", true), token: w.token("claude-code")})
	if readAll(t, resp.Body); resp.StatusCode != 403 || b.asked.Load() != asked {
		t.Errorf("a refused model: %d, budget asked %d times (was %d)", resp.StatusCode, b.asked.Load(), asked)
	}
}

// A budget that cannot be checked refuses the call (503), never lets it through.
func TestBudgetUnavailable(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldConfig{mod: func(o *proxy.Options, _ *world) { o.Budget = failingBudget{} }})
	resp := w.do(call{path: messagesPath, body: anthropicBody("claude-opus-4-8", true), token: w.token("claude-code")})
	if body := readAll(t, resp.Body); resp.StatusCode != 503 || !strings.Contains(body, "cannot be checked") {
		t.Errorf("%d %s", resp.StatusCode, body)
	}
	if w.anth.Count() != 0 {
		t.Error("the upstream was called")
	}
}

type failingBudget struct{}

func (failingBudget) Allow(context.Context, tokens.Claims) error {
	return errors.New("no such session")
}
