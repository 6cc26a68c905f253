// Package console is the broker's web console: a few HTML, CSS and
// JavaScript module files embedded in the binary and served at / and under
// /console/, with nothing to build. The console holds no state on the
// server: it signs in with the admin token (kept in the tab's
// sessionStorage) or a viewer token from a link's URL fragment, and talks
// to the broker only through the public HTTP API and the sessions'
// WebSocket.
//
// Every response carries a strict Content-Security-Policy (scripts, styles
// and connections from the broker's own origin only, no inline script, no
// framing, no form submission), X-Content-Type-Options: nosniff and an
// explicit Content-Type. Only the embedded files are served; anything else
// is 404.
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// Mux is where Mount puts the routes (*http.ServeMux and the broker's
// internal/server.Server satisfy it).
type Mux interface {
	Handle(pattern string, h http.Handler)
}

// Prefix is the path under which the console's assets are served.
const Prefix = "/console/"

// Agent is an agent the broker can launch, as the start form offers it.
type Agent struct {
	// Name is the session profile (POST /v1/sessions "agent").
	Name string `json:"name"`
	// Title is what the start form calls it (the profile's title).
	Title string `json:"title,omitempty"`
	// CatalogAgent is whose models it may use (GET /v1/models?agent=…);
	// "" when the agent picks its own and the broker takes no model.
	CatalogAgent string `json:"catalog_agent"`
	// Credentials are the credential kinds it accepts.
	Credentials []string `json:"credentials"`
	// NotInstalled: its adapter is not in the agents directory at its
	// pinned version (as serve found it at start): a session would be
	// refused until `agentbroker agents install` puts it there.
	NotInstalled bool `json:"not_installed,omitempty"`
}

// Options configure Handler and Mount. Nil means the zero value.
type Options struct {
	// Agents are the agents the start form offers, in this order: the ones
	// this broker is configured to launch. None: the form offers none.
	Agents []Agent
}

// AgentsPath serves Options.Agents as JSON, for the start form.
const AgentsPath = Prefix + "agents.json"

// Mount serves the console at exactly / and its assets under /console/.
// It shadows no other route: "GET /{$}" matches only the root.
func Mount(mux Mux, opts *Options) {
	h := Handler(opts)
	mux.Handle("GET /{$}", h)
	mux.Handle("GET "+Prefix, h)
}

type file struct {
	body        []byte
	contentType string
	etag        string
}

// contentTypes lists what the console serves; a file of another kind in
// static/ is not served.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// Handler serves / (index.html), Prefix+name for every embedded file, and
// AgentsPath. HEAD, If-None-Match (the content's SHA-256) and Range work as
// in http.ServeContent.
func Handler(opts *Options) http.Handler {
	var o Options
	if opts != nil {
		o = *opts
	}
	files := map[string]file{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct, ok := contentTypes[path.Ext(p)]
		if !ok {
			return nil
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		files[strings.TrimPrefix(p, "static/")] = newFile(b, ct)
		return nil
	})
	if err != nil {
		panic("console: read embedded files: " + err.Error()) // impossible: the files are compiled in
	}
	agents := append([]Agent{}, o.Agents...)
	for i, a := range agents {
		if a.Credentials == nil {
			agents[i].Credentials = []string{}
		}
	}
	b, err := json.Marshal(agents)
	if err != nil {
		panic("console: encode agents: " + err.Error()) // impossible: plain types
	}
	files[strings.TrimPrefix(AgentsPath, Prefix)] = newFile(b, "application/json")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setHeaders(w.Header(), r.Host)
		name := "index.html"
		if r.URL.Path != "/" {
			rest, ok := strings.CutPrefix(r.URL.Path, Prefix)
			if !ok {
				http.NotFound(w, r)
				return
			}
			name = rest
		}
		f, ok := files[name]
		if !ok || name == "index.html" && r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", f.contentType)
		h.Set("ETag", f.etag)
		// Revalidate every time: the files change with the binary, and
		// the ETag makes the check cheap.
		h.Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.body))
	})
}

func newFile(body []byte, contentType string) file {
	sum := sha256.Sum256(body)
	return file{body: body, contentType: contentType, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
}

// hostRE is what a Host header may look like to be named in the policy
// (a name or an IPv4/IPv6 address, and a port).
var hostRE = regexp.MustCompile(`^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$`)

// setHeaders sets the console's security headers. connect-src names the
// WebSocket origins of the page's own host as well as 'self': 'self'
// covers ws: and wss: on the same host in CSP Level 3 browsers only.
func setHeaders(h http.Header, host string) {
	connect := "'self'"
	if hostRE.MatchString(host) {
		connect += " ws://" + host + " wss://" + host
	}
	h.Set("Content-Security-Policy", strings.Join([]string{
		"default-src 'self'",
		"script-src 'self'",
		"style-src 'self'",
		"img-src 'self'",
		"connect-src " + connect,
		"object-src 'none'",
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
	}, "; "))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}
