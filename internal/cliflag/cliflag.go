// Package cliflag is what the agentbroker command line adds to package
// flag: flags after the arguments, and durations that take seconds.
package cliflag

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseInterspersed parses flags wherever they are among the arguments
// (`session prompt SES hello --url X`), and returns the others in order.
// A "--" ends the flags: everything after it is an argument, even "--url".
func ParseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	rest := args
	for {
		before := rest
		if err := fs.Parse(rest); err != nil {
			return nil, err
		}
		rest = fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		// The flag package stops at the first argument, or after a "--"
		// that it drops.
		if used := len(before) - len(rest); used > 0 && before[used-1] == "--" && !takesValue(fs, before, used-1) {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		rest = rest[1:]
	}
}

// takesValue says whether args[i] is the value of the flag before it
// (`--title -- x` sets the title to "--").
func takesValue(fs *flag.FlagSet, args []string, i int) bool {
	if i == 0 || !strings.HasPrefix(args[i-1], "-") {
		return false
	}
	name := strings.TrimLeft(args[i-1], "-")
	if name == "" || strings.Contains(name, "=") {
		return false
	}
	f := fs.Lookup(name)
	if f == nil {
		return false
	}
	if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
		return false
	}
	return true
}

// maxDurationText bounds what ParseDuration reads.
const maxDurationText = 64

// ParseDuration reads a number of seconds (15, 1.5) or a Go duration (30s,
// 5m, 1h30m); neither may be negative. Its error says the format.
func ParseDuration(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	bad := fmt.Errorf("%q is not a duration: want a number of seconds (15) or a Go duration (30s, 5m, 1h30m)", cut(v))
	if len(v) > maxDurationText {
		return 0, bad
	}
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		if n < 0 || n > 1e9 || n != n {
			return 0, bad
		}
		return time.Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, bad
	}
	return d, nil
}

func cut(s string) string {
	if len(s) > maxDurationText {
		return strings.ToValidUTF8(s[:maxDurationText], "") + "…"
	}
	return s
}

// Duration is a duration flag that takes seconds too (ParseDuration).
type Duration struct{ D *time.Duration }

func (f Duration) String() string {
	if f.D == nil {
		return ""
	}
	return f.D.String()
}

// Set parses v with ParseDuration.
func (f Duration) Set(v string) error {
	d, err := ParseDuration(v)
	if err != nil {
		return err
	}
	*f.D = d
	return nil
}

// DurationVar defines a Duration flag with a default value.
func DurationVar(fs *flag.FlagSet, p *time.Duration, name string, value time.Duration, usage string) {
	*p = value
	fs.Var(Duration{p}, name, usage+" (seconds, or a duration such as 30s, 5m, 1h)")
}
