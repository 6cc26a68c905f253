package catalog

import (
	"fmt"
	"math"
	"strings"
)

// picoPerUSD is the number of Amount units in a dollar.
const picoPerUSD = 1_000_000_000_000

// USD renders the amount in dollars exactly, as a decimal string without
// a currency sign: at least two decimals, at most twelve, trailing zeros
// beyond the second dropped ("5.00", "0.020375", "-0.000000000001").
func (a Amount) USD() string {
	sign := ""
	u := uint64(a)
	if a < 0 {
		sign, u = "-", -u
	}
	frac := fmt.Sprintf("%012d", u%picoPerUSD)
	frac = strings.TrimRight(frac, "0")
	for len(frac) < 2 {
		frac += "0"
	}
	return fmt.Sprintf("%s%d.%s", sign, u/picoPerUSD, frac)
}

// ParseUSD reads a non-negative decimal dollar amount ("5", "0.25",
// "12.000001") exactly, to the pico-dollar. Signs, exponents, more than
// twelve decimals and amounts beyond an Amount's range are refused.
func ParseUSD(s string) (Amount, error) {
	whole, frac, dot := strings.Cut(s, ".")
	digits := func(d string) bool {
		for _, c := range d {
			if c < '0' || c > '9' {
				return false
			}
		}
		return true
	}
	switch {
	case whole == "" && (!dot || frac == ""),
		!digits(whole) || !digits(frac),
		dot && frac == "",
		len(frac) > 12:
		return 0, fmt.Errorf("catalog: %q is not a dollar amount (digits, a point, at most 12 decimals)", s)
	}
	var w int64
	for _, c := range whole {
		if w > (math.MaxInt64/picoPerUSD-9)/10 {
			return 0, fmt.Errorf("catalog: %q dollars: %w", s, ErrOverflow)
		}
		w = w*10 + int64(c-'0')
	}
	var f int64
	for i := range 12 {
		f *= 10
		if i < len(frac) {
			f += int64(frac[i] - '0')
		}
	}
	return Amount(w*picoPerUSD + f), nil
}
