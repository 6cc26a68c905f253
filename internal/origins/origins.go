// Package origins decides which browser origins may call the broker's
// endpoints that a page could reach (the MCP endpoint, the events
// WebSocket): the broker's own public origin and the operator's allowed
// list, never anything derived from the request itself (its Host header is
// the attacker's to choose under DNS rebinding).
package origins

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// Set is a set of allowed Origin values, normalised (lower-case scheme and
// host, default ports dropped). The zero Set allows only requests without
// an Origin header.
type Set struct {
	m map[string]bool
}

// Normalize turns an Origin header value (or an allowed origin from the
// options) into its canonical form: scheme://host[:port] with the default
// port dropped, lower case. It refuses anything that is not a bare http(s)
// origin ("null", paths, user info, queries).
func Normalize(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("origin %q: %w", s, err)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", fmt.Errorf("origin %q: scheme must be http or https", s)
	}
	if u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", fmt.Errorf("origin %q: want scheme://host[:port] and nothing else", s)
	}
	host, port := u.Hostname(), u.Port()
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	host = strings.ToLower(host)
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		return scheme + "://" + host + ":" + port, nil
	}
	return scheme + "://" + host, nil
}

// New returns the set of the origins in list (each as Normalize takes it).
func New(list ...string) (Set, error) {
	set := Set{m: make(map[string]bool, len(list))}
	for _, o := range list {
		n, err := Normalize(o)
		if err != nil {
			return Set{}, err
		}
		set.m[n] = true
	}
	return set, nil
}

// ForPublicURL returns the set a broker reachable at public (an absolute
// http(s) URL; its path does not matter) allows: the origin of public and,
// when its host is a loopback address or "localhost", the other loopback
// spellings of it on the same scheme and port (127.0.0.1, localhost,
// [::1]), which is what a browser page on the broker's own origin sends;
// and every origin in allowed.
func ForPublicURL(public string, allowed []string) (Set, error) {
	u, err := url.Parse(public)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Set{}, fmt.Errorf("public URL %q: want an absolute http(s) URL", public)
	}
	return New(append(own(u), allowed...)...)
}

// own is the origins of a page on the broker's own origin.
func own(public *url.URL) []string {
	scheme := strings.ToLower(public.Scheme)
	port := public.Port()
	out := []string{scheme + "://" + public.Host}
	if isLoopback(public.Hostname()) {
		for _, h := range []string{"127.0.0.1", "localhost", "[::1]"} {
			if port != "" {
				out = append(out, scheme+"://"+net.JoinHostPort(strings.Trim(h, "[]"), port))
			} else {
				out = append(out, scheme+"://"+h)
			}
		}
	}
	return out
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && ip.IsLoopback()
}

// Allows reports whether an Origin header value is allowed. An empty value
// (no Origin header: CLI agents, terminals, server-side clients; a browser
// always sends one on a cross-origin request and on every WebSocket) is
// always allowed; anything unparseable, including "null", is not.
func (s Set) Allows(origin string) bool {
	if origin == "" {
		return true
	}
	n, err := Normalize(origin)
	return err == nil && s.m[n]
}
