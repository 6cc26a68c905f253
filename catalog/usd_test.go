package catalog

import "testing"

func TestUSD(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		a    Amount
		want string
	}{
		{0, "0.00"}, {5 * picoPerUSD, "5.00"}, {20_375_000_000, "0.020375"}, {1, "0.000000000001"},
		{-1, "-0.000000000001"}, {123_450_000_000_000, "123.45"},
	} {
		if got := tt.a.USD(); got != tt.want {
			t.Errorf("Amount(%d).USD() = %q; want %q", int64(tt.a), got, tt.want)
		}
	}
	for s, want := range map[string]Amount{
		"5": 5 * picoPerUSD, "0.25": 250_000_000_000, ".5": 500_000_000_000, "12.000001": 12_000_001_000_000,
		"0.000000000001": 1, "0": 0,
	} {
		if got, err := ParseUSD(s); err != nil || got != want {
			t.Errorf("ParseUSD(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", ".", "5.", "-1", "+1", "1e3", "1.0000000000001", "0x10", "1,5", " 1", "99999999999"} {
		if got, err := ParseUSD(s); err == nil {
			t.Errorf("ParseUSD(%q) = %d; want an error", s, got)
		}
	}
}
