package catalog

import (
	"fmt"
	"math"
)

// Usage is the token count of one request, as the provider reports it.
// The fields are disjoint: InputTokens excludes cache reads and writes.
// Anthropic reports it that way; OpenAI's input_tokens includes
// cached_tokens, which the caller must subtract into CacheReadTokens.
type Usage struct {
	InputTokens        int64
	OutputTokens       int64
	CacheReadTokens    int64
	CacheWrite5mTokens int64
	CacheWrite1hTokens int64
}

// PromptTokens is the prompt size that selects a long-context tier: input
// plus cache reads plus cache writes. ok is false on overflow.
func (u Usage) PromptTokens() (n int64, ok bool) {
	for _, x := range []int64{u.InputTokens, u.CacheReadTokens, u.CacheWrite5mTokens, u.CacheWrite1hTokens} {
		if n, ok = addChecked(n, x); !ok {
			return 0, false
		}
	}
	return n, true
}

// Amount is money in pico-USD (1e-12 USD): a price in micro-USD per
// million tokens times a token count, exactly.
type Amount int64

// MicroUSD rounds the amount to micro-USD, halves away from zero.
func (a Amount) MicroUSD() int64 {
	q, r := int64(a)/1_000_000, int64(a)%1_000_000
	switch {
	case r >= 500_000:
		q++
	case r <= -500_000:
		q--
	}
	return q
}

// String renders the amount in dollars rounded to the micro-dollar, e.g. "$0.012345".
func (a Amount) String() string {
	micro := a.MicroUSD()
	sign := ""
	u := uint64(micro)
	if micro < 0 {
		sign = "-"
		u = -u // two's complement: correct for math.MinInt64 too
	}
	return fmt.Sprintf("%s$%d.%06d", sign, u/1_000_000, u%1_000_000)
}

// Cost prices u on m in integer arithmetic. When the prompt (input plus
// cache read plus cache write tokens) exceeds a long-context tier's
// threshold, the highest such tier's prices apply to the whole request, as
// Anthropic and OpenAI bill it. Cache tokens whose price is zero (no
// separate price) are billed at the input price. Negative token counts are
// refused with ErrInvalidUsage; a total beyond int64 with ErrOverflow.
func Cost(m *Model, u Usage) (Amount, error) {
	if m == nil {
		return 0, fmt.Errorf("%w: no model", ErrInvalidUsage)
	}
	for _, x := range []struct {
		name string
		n    int64
	}{
		{"input", u.InputTokens}, {"output", u.OutputTokens}, {"cache read", u.CacheReadTokens},
		{"5-minute cache write", u.CacheWrite5mTokens}, {"1-hour cache write", u.CacheWrite1hTokens},
	} {
		if x.n < 0 {
			return 0, fmt.Errorf("%w: %d %s tokens", ErrInvalidUsage, x.n, x.name)
		}
	}
	prompt, ok := u.PromptTokens()
	if !ok {
		return 0, fmt.Errorf("%w: the prompt token count overflows", ErrOverflow)
	}
	p := m.pricesFor(prompt)
	orInput := func(price int64) int64 {
		if price == 0 {
			return p.Input
		}
		return price
	}
	var total int64
	for _, x := range []struct{ tokens, price int64 }{
		{u.InputTokens, p.Input},
		{u.OutputTokens, p.Output},
		{u.CacheReadTokens, orInput(p.CacheRead)},
		{u.CacheWrite5mTokens, orInput(p.CacheWrite5m)},
		{u.CacheWrite1hTokens, orInput(p.CacheWrite1h)},
	} {
		part, ok := mulChecked(x.tokens, x.price)
		if !ok {
			return 0, fmt.Errorf("%w: %d tokens at %d micro-USD per million", ErrOverflow, x.tokens, x.price)
		}
		if total, ok = addChecked(total, part); !ok {
			return 0, fmt.Errorf("%w: the total", ErrOverflow)
		}
	}
	return Amount(total), nil
}

// pricesFor returns the prices for a prompt of n tokens: the highest tier
// whose threshold n exceeds, or the base prices.
func (m *Model) pricesFor(n int64) PriceTier {
	p := PriceTier{Input: m.Prices.Input, Output: m.Prices.Output, CacheRead: m.Prices.CacheRead,
		CacheWrite5m: m.Prices.CacheWrite5m, CacheWrite1h: m.Prices.CacheWrite1h}
	best := int64(-1)
	for _, t := range m.Prices.Tiers {
		if n > t.AboveInputTokens && t.AboveInputTokens > best {
			p, best = t, t.AboveInputTokens
		}
	}
	return p
}

// mulChecked multiplies two non-negative int64s, reporting overflow.
func mulChecked(a, b int64) (int64, bool) {
	if a < 0 || b < 0 {
		return 0, false
	}
	if a != 0 && b > math.MaxInt64/a {
		return 0, false
	}
	return a * b, true
}

// addChecked adds two non-negative int64s, reporting overflow.
func addChecked(a, b int64) (int64, bool) {
	if a < 0 || b < 0 || a > math.MaxInt64-b {
		return 0, false
	}
	return a + b, true
}
