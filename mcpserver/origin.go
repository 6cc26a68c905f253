package mcpserver

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// originSet is the set of allowed Origin values, normalised (lower-case
// scheme and host, default ports dropped).
type originSet map[string]bool

// normalizeOrigin turns an Origin header value (or an allowed origin from
// the options) into its canonical form: scheme://host[:port] with the
// default port dropped, lower case. It refuses anything that is not a bare
// http(s) origin ("null", paths, user info, queries).
func normalizeOrigin(s string) (string, error) {
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

// defaultOrigins is what a browser page on the server's own origin sends:
// the origin of resource (the public MCP URL) and, when its host is a
// loopback address or "localhost", the other loopback spellings of it on the
// same scheme and port (127.0.0.1, localhost, [::1]).
func defaultOrigins(resource *url.URL) []string {
	scheme := strings.ToLower(resource.Scheme)
	port := resource.Port()
	out := []string{scheme + "://" + resource.Host}
	if isLoopback(resource.Hostname()) {
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

// newOriginSet normalises the allowed origins.
func newOriginSet(list []string) (originSet, error) {
	set := make(originSet, len(list))
	for _, o := range list {
		n, err := normalizeOrigin(o)
		if err != nil {
			return nil, err
		}
		set[n] = true
	}
	return set, nil
}

// allows reports whether an Origin header value is allowed. An empty value
// (no Origin header: CLI agents, server-side clients) is always allowed;
// anything unparseable, including "null", is not.
func (s originSet) allows(origin string) bool {
	if origin == "" {
		return true
	}
	n, err := normalizeOrigin(origin)
	return err == nil && s[n]
}
