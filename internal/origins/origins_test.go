package origins

import "testing"

func TestForPublicURL(t *testing.T) {
	t.Parallel()
	set, err := ForPublicURL("http://127.0.0.1:7420/mcp", []string{"https://Console.Example"})
	if err != nil {
		t.Fatal(err)
	}
	for origin, want := range map[string]bool{
		"":                            true, // no Origin: not a browser
		"http://127.0.0.1:7420":       true,
		"http://localhost:7420":       true,
		"http://[::1]:7420":           true,
		"HTTP://LOCALHOST:7420/":      true,
		"https://console.example":     true,
		"https://console.example:443": true,
		"http://127.0.0.1:7421":       false,
		"https://127.0.0.1:7420":      false,
		"http://evil.example:7420":    false, // DNS rebinding: whatever the Host header says
		"http://console.example":      false,
		"null":                        false,
		"http://127.0.0.1:7420/x":     false,
	} {
		if got := set.Allows(origin); got != want {
			t.Errorf("Allows(%q) = %v; want %v", origin, got, want)
		}
	}
	public, err := ForPublicURL("https://broker.example", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !public.Allows("https://broker.example") || public.Allows("http://localhost") {
		t.Error("a non-loopback public URL allows exactly its origin")
	}
	for _, bad := range []string{"", "/mcp", "ftp://x"} {
		if _, err := ForPublicURL(bad, nil); err == nil {
			t.Errorf("ForPublicURL(%q) accepted", bad)
		}
	}
	if _, err := New("https://a.example/path"); err == nil {
		t.Error("an origin with a path accepted")
	}
	if (Set{}).Allows("http://127.0.0.1") || !(Set{}).Allows("") {
		t.Error("the zero Set allows only requests without Origin")
	}
}
