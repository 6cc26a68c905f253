package cliflag

import (
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{"15": 15 * time.Second, "1.5": 1500 * time.Millisecond, "0": 0,
		" 20 ": 20 * time.Second, "30s": 30 * time.Second, "5m": 5 * time.Minute, "1h30m": 90 * time.Minute} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"soon", "-5", "-1s", "15x", "", "NaN", "1e300", strings.Repeat("1", 100)} {
		_, err := ParseDuration(in)
		if err == nil || !strings.Contains(err.Error(), "number of seconds (15)") {
			t.Errorf("ParseDuration(%q) = %v; want an error naming the format", in, err)
		}
	}
}

func newFlags() (*flag.FlagSet, *string, *string) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	url := fs.String("url", "", "")
	title := fs.String("title", "", "")
	fs.Bool("json", false, "")
	return fs, url, title
}

func TestParseInterspersed(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args       []string
		positional []string
		url, title string
	}{
		{[]string{"SES", "hello", "--url", "U"}, []string{"SES", "hello"}, "U", ""},
		{[]string{"--url", "U", "SES", "hello"}, []string{"SES", "hello"}, "U", ""},
		{[]string{"SES", "--url=U", "hello"}, []string{"SES", "hello"}, "U", ""},
		{[]string{"SES", "--", "--url", "U"}, []string{"SES", "--url", "U"}, "", ""},
		{[]string{"--", "-x"}, []string{"-x"}, "", ""},
		{[]string{"SES", "--title", "--", "x"}, []string{"SES", "x"}, "", "--"},
		{[]string{"SES", "--json", "--", "--url"}, []string{"SES", "--url"}, "", ""},
		{[]string{"SES", "-", "x"}, []string{"SES", "-", "x"}, "", ""},
	} {
		fs, url, title := newFlags()
		got, err := ParseInterspersed(fs, tt.args)
		if err != nil || strings.Join(got, "|") != strings.Join(tt.positional, "|") || *url != tt.url || *title != tt.title {
			t.Errorf("%q: positional %q url %q title %q err %v; want %q %q %q", tt.args, got, *url, *title, err, tt.positional, tt.url, tt.title)
		}
	}
	fs, _, _ := newFlags()
	if _, err := ParseInterspersed(fs, []string{"SES", "--nope"}); err == nil {
		t.Errorf("an unknown flag after the arguments was accepted")
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"15", "1.5", "30s", "1h30m", "-1", "soon", "1e9", "NaN", "Inf"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err == nil && d < 0 {
			t.Fatalf("ParseDuration(%q) = %v: negative", s, d)
		}
	})
}

// FuzzParseInterspersed: whatever the arguments, the positional ones
// come back in their order, each one of the arguments.
func FuzzParseInterspersed(f *testing.F) {
	f.Add("SES\x00hello\x00--url\x00U")
	f.Add("--\x00--url")
	f.Add("a\x00--title\x00--\x00b")
	f.Fuzz(func(t *testing.T, joined string) {
		if len(joined) > 4096 {
			return
		}
		args := strings.Split(joined, "\x00")
		fs, _, _ := newFlags()
		got, err := ParseInterspersed(fs, args)
		if err != nil {
			return
		}
		i := 0
		for _, p := range got {
			j := slices.Index(args[i:], p)
			if j < 0 {
				t.Fatalf("positional %q of %q is not among the arguments in order", p, args)
			}
			i += j + 1
		}
	})
}
