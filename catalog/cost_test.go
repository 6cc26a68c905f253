package catalog

import (
	"errors"
	"math"
	"testing"
)

func TestCost(t *testing.T) {
	t.Parallel()
	c := Embedded()
	model := func(id string) *Model {
		m, ok := c.Lookup(id)
		if !ok {
			t.Fatalf("no model %q", id)
		}
		return m
	}
	// Sonnet 4.5 with the 1M-context beta an operator might enable: an
	// Anthropic-style tier in which cache writes count toward the threshold.
	sonnetBeta := *model("claude-sonnet-4-5")
	sonnetBeta.Limits.Context = 1_000_000
	sonnetBeta.Prices.Tiers = []PriceTier{{AboveInputTokens: 200_000, Input: 6_000_000, Output: 22_500_000,
		CacheRead: 600_000, CacheWrite5m: 7_500_000, CacheWrite1h: 12_000_000}}

	tests := []struct {
		name  string
		m     *Model
		u     Usage
		pico  Amount
		micro int64
		str   string
	}{
		// 1000×$3 + 50000×$0.30 + 2000×$3.75 + 1000×$6 + 500×$15 per million
		// = $0.003 + $0.015 + $0.0075 + $0.006 + $0.0075 = $0.039
		{"sonnet 4.6, every cache kind", model("claude-sonnet-4-6"),
			Usage{InputTokens: 1000, OutputTokens: 500, CacheReadTokens: 50_000, CacheWrite5mTokens: 2000, CacheWrite1hTokens: 1000},
			39_000_000_000, 39_000, "$0.039000"},
		// Prompt 300k > 272k: the tier prices the whole request.
		// 200000×$10 + 100000×$1 + 10000×$45 per million = $2 + $0.10 + $0.45
		{"gpt-5.5 long context", model("gpt-5.5"),
			Usage{InputTokens: 200_000, CacheReadTokens: 100_000, OutputTokens: 10_000},
			2_550_000_000_000, 2_550_000, "$2.550000"},
		// Exactly at the threshold is not above it: base price, 272000×$5.
		{"gpt-5.5 at the threshold", model("gpt-5.5"),
			Usage{InputTokens: 272_000}, 1_360_000_000_000, 1_360_000, "$1.360000"},
		// One token more: 272001×$10.
		{"gpt-5.5 one above", model("gpt-5.5"),
			Usage{InputTokens: 272_001}, 2_720_010_000_000, 2_720_010, "$2.720010"},
		// Cache reads push the prompt over: 100000×$5 + 172001×$0.50
		// = $0.5 + $0.0860005, rounded half up to the micro-dollar.
		{"gpt-5.4 tier reached through cache reads", model("gpt-5.4"),
			Usage{InputTokens: 100_000, CacheReadTokens: 172_001}, 586_000_500_000, 586_001, "$0.586001"},
		// Cache writes count too: 100000×$6 + 100001×$7.50.
		{"anthropic-style tier reached through cache writes", &sonnetBeta,
			Usage{InputTokens: 100_000, CacheWrite5mTokens: 100_001}, 1_350_007_500_000, 1_350_008, "$1.350008"},
		// No cache price: cached tokens are billed as input, 1000×$30.
		{"unpriced cache read billed as input", model("gpt-5.5-pro"),
			Usage{CacheReadTokens: 1000}, 30_000_000_000, 30_000, "$0.030000"},
		{"one token", model("claude-opus-4-8"), Usage{InputTokens: 1}, 5_000_000, 5, "$0.000005"},
		{"below a micro-dollar", model("gpt-5-nano"), Usage{InputTokens: 1}, 50_000, 0, "$0.000000"},
		{"half a micro-dollar rounds up", model("gpt-5-nano"), Usage{InputTokens: 10}, 500_000, 1, "$0.000001"},
		{"nothing", model("o3"), Usage{}, 0, 0, "$0.000000"},
	}
	for _, tt := range tests {
		got, err := Cost(tt.m, tt.u)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if got != tt.pico || got.MicroUSD() != tt.micro || got.String() != tt.str {
			t.Errorf("%s: Cost = %d pico (%d micro, %s), want %d (%d, %s)", tt.name, got, got.MicroUSD(), got, tt.pico, tt.micro, tt.str)
		}
	}
}

func TestCostRefuses(t *testing.T) {
	t.Parallel()
	o1pro, _ := Embedded().Lookup("o1-pro")
	tests := []struct {
		name string
		m    *Model
		u    Usage
		want error
	}{
		{"no model", nil, Usage{InputTokens: 1}, ErrInvalidUsage},
		{"negative input", o1pro, Usage{InputTokens: -1}, ErrInvalidUsage},
		{"negative output", o1pro, Usage{OutputTokens: -1}, ErrInvalidUsage},
		{"negative cache read", o1pro, Usage{CacheReadTokens: -1}, ErrInvalidUsage},
		{"negative 5m write", o1pro, Usage{CacheWrite5mTokens: -1}, ErrInvalidUsage},
		{"negative 1h write", o1pro, Usage{CacheWrite1hTokens: math.MinInt64}, ErrInvalidUsage},
		{"product overflows", o1pro, Usage{OutputTokens: 1_000_000_000_000}, ErrOverflow}, // 1e12 × 6e8
		{"max tokens", o1pro, Usage{InputTokens: math.MaxInt64}, ErrOverflow},             // prompt fits, product does not
		{"prompt sum overflows", o1pro, Usage{InputTokens: math.MaxInt64, CacheReadTokens: 1}, ErrOverflow},
		{"total overflows", o1pro, Usage{InputTokens: 40_000_000_000, OutputTokens: 14_000_000_000}, ErrOverflow}, // 6e18 + 8.4e18
	}
	for _, tt := range tests {
		got, err := Cost(tt.m, tt.u)
		if !errors.Is(err, tt.want) || got != 0 {
			t.Errorf("%s: Cost = %d, %v; want %v", tt.name, got, err, tt.want)
		}
	}
	// Just under the limit still works: 9e18 pico is $9,000,000.
	if got, err := Cost(o1pro, Usage{InputTokens: 60_000_000_000}); err != nil || got != 9_000_000_000_000_000_000 {
		t.Errorf("large but representable: %d, %v", got, err)
	}
}

func TestAmount(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a     Amount
		micro int64
		str   string
	}{
		{0, 0, "$0.000000"},
		{12_345_000_000, 12_345, "$0.012345"},
		{12_345_499_999, 12_345, "$0.012345"},
		{12_345_500_000, 12_346, "$0.012346"},
		{1_000_000_000_000, 1_000_000, "$1.000000"},
		{-1_500_000, -2, "-$0.000002"},
		{-1_499_999, -1, "-$0.000001"},
		{math.MaxInt64, 9_223_372_036_855, "$9223372.036855"},
		{math.MinInt64, -9_223_372_036_855, "-$9223372.036855"},
	}
	for _, tt := range tests {
		if tt.a.MicroUSD() != tt.micro || tt.a.String() != tt.str {
			t.Errorf("Amount(%d) = %d micro, %q; want %d, %q", int64(tt.a), tt.a.MicroUSD(), tt.a, tt.micro, tt.str)
		}
	}
}
