package console

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func serve(t *testing.T, h http.Handler, method, path string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func mux() *http.ServeMux {
	m := http.NewServeMux()
	Mount(m, &Options{Agents: []Agent{{Name: "custom", Credentials: []string{"none"}}}})
	// Stand-ins for the broker's other routes, to prove the console shadows none.
	m.Handle("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("healthz")) }))
	m.Handle("/v1/", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("admin fallback")) }))
	return m
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	m := mux()
	tests := []struct {
		method, path string
		code         int
		contentType  string
		body         string
	}{
		{"GET", "/", 200, "text/html; charset=utf-8", `<script type="module" src="/console/app.js">`},
		{"HEAD", "/", 200, "text/html; charset=utf-8", ""},
		{"GET", "/console/app.js", 200, "text/javascript; charset=utf-8", "import"},
		{"GET", "/console/session.js", 200, "text/javascript; charset=utf-8", "data-seq"},
		{"GET", "/console/style.css", 200, "text/css; charset=utf-8", ":root"},
		{"GET", "/console/icon.svg", 200, "image/svg+xml", "<svg"},
		{"GET", "/console/agents.json", 200, "application/json", `[{"name":"custom","catalog_agent":"","credentials":["none"]}]`},
		{"GET", "/console/", 404, "text/plain; charset=utf-8", ""},
		{"GET", "/console/index.html", 404, "text/plain; charset=utf-8", ""}, // the page lives at / only
		{"GET", "/console/nope.js", 404, "text/plain; charset=utf-8", ""},
		{"GET", "/index.html", 404, "text/plain; charset=utf-8", ""},
		{"GET", "/favicon.ico", 404, "text/plain; charset=utf-8", ""},
		{"POST", "/", 405, "text/plain; charset=utf-8", ""},
		{"GET", "/healthz", 200, "", "healthz"},
		{"GET", "/v1/anything", 200, "", "admin fallback"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			t.Parallel()
			rec := serve(t, m, tt.method, tt.path)
			if rec.Code != tt.code {
				t.Fatalf("%s %s = %d; want %d", tt.method, tt.path, rec.Code, tt.code)
			}
			if tt.contentType != "" && rec.Header().Get("Content-Type") != tt.contentType {
				t.Errorf("Content-Type = %q; want %q", rec.Header().Get("Content-Type"), tt.contentType)
			}
			if !strings.Contains(rec.Body.String(), tt.body) {
				t.Errorf("body lacks %q:\n%.300s", tt.body, rec.Body.String())
			}
			if tt.method == "HEAD" && rec.Body.Len() != 0 {
				t.Errorf("HEAD has a body")
			}
		})
	}
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	h := Handler(nil)
	for _, path := range []string{"/", "/console/app.js", "/console/missing.js"} {
		rec := serve(t, h, "GET", path)
		csp := rec.Header().Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'",
			"connect-src 'self' ws://example.com wss://example.com", "frame-ancestors 'none'", "form-action 'none'",
			"object-src 'none'", "base-uri 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") || strings.Contains(csp, "*") || strings.Contains(csp, "data:") {
			t.Errorf("%s: CSP %q allows more than the broker's origin", path, csp)
		}
		for k, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
			"Referrer-Policy": "no-referrer"} {
			if got := rec.Header().Get(k); got != want {
				t.Errorf("%s: %s = %q; want %q", path, k, got, want)
			}
		}
	}
	// A Host header that is not a host does not reach the policy.
	req := httptest.NewRequest("GET", "/", nil)
	req.Host = "evil.example; script-src *"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self';") || strings.Contains(csp, "evil") {
		t.Errorf("CSP with a junk Host = %q", csp)
	}
}

func TestRevalidation(t *testing.T) {
	t.Parallel()
	h := Handler(nil)
	rec := serve(t, h, "GET", "/console/app.js")
	etag := rec.Header().Get("ETag")
	if etag == "" || rec.Header().Get("Cache-Control") != "no-cache" {
		t.Fatalf("ETag %q, Cache-Control %q", etag, rec.Header().Get("Cache-Control"))
	}
	if rec := serve(t, h, "GET", "/console/app.js", "If-None-Match", etag); rec.Code != http.StatusNotModified {
		t.Fatalf("If-None-Match with the ETag = %d; want 304", rec.Code)
	}
	if rec := serve(t, h, "GET", "/console/style.css", "If-None-Match", etag); rec.Code != http.StatusOK {
		t.Fatalf("another file's ETag = %d; want 200", rec.Code)
	}
}

// TestEmbeddedFiles: everything the page loads is embedded and served,
// nothing is loaded from elsewhere, and no script or style is inline (the
// CSP would block it).
func TestEmbeddedFiles(t *testing.T) {
	t.Parallel()
	h := Handler(nil)
	served := map[string]bool{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name := strings.TrimPrefix(p, "static/")
		path := Prefix + name
		if name == "index.html" {
			path = "/"
		}
		rec := serve(t, h, "GET", path)
		if rec.Code != 200 {
			t.Errorf("embedded %s is not served at %s: %d", name, path, rec.Code)
		}
		served[name] = true
		body := rec.Body.String()
		if m := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`).FindString(body); m != "" &&
			!strings.Contains(m, "www.w3.org") { // the SVG namespace is a name, not a request
			t.Errorf("%s names an external address %q", name, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"index.html", "app.js", "api.js", "dom.js", "session.js", "stream.js", "agents.js", "tasks.js", "style.css", "icon.svg"} {
		if !served[want] {
			t.Errorf("%s is not embedded", want)
		}
	}

	index := serve(t, h, "GET", "/").Body.String()
	for _, m := range regexp.MustCompile(`(?:src|href)="(/console/[^"]+)"`).FindAllStringSubmatch(index, -1) {
		if rec := serve(t, h, "GET", m[1]); rec.Code != 200 {
			t.Errorf("index.html loads %s: %d", m[1], rec.Code)
		}
	}
	if regexp.MustCompile(`<script(?:[^>]*)>[^<]+</script>`).MatchString(index) || strings.Contains(index, "style=") ||
		regexp.MustCompile(`\son[a-z]+=`).MatchString(index) {
		t.Errorf("index.html has inline script or style")
	}
	imports := regexp.MustCompile(`from "\./([a-z]+\.js)"`)
	for name := range served {
		if !strings.HasSuffix(name, ".js") {
			continue
		}
		for _, m := range imports.FindAllStringSubmatch(serve(t, h, "GET", Prefix+name).Body.String(), -1) {
			if !served[m[1]] {
				t.Errorf("%s imports %s, which is not embedded", name, m[1])
			}
		}
	}
}

// TestAgents: the start form's agents are the ones given, in order, as
// JSON; none given is an empty list, not null.
func TestAgents(t *testing.T) {
	t.Parallel()
	given := []Agent{
		{Name: "codex", CatalogAgent: "codex", Credentials: []string{"api-key", "platform-proxy"}},
		{Name: "custom"},
	}
	for _, tt := range []struct {
		opts *Options
		want []Agent
	}{
		{nil, []Agent{}},
		{&Options{}, []Agent{}},
		{&Options{Agents: given}, []Agent{given[0], {Name: "custom", Credentials: []string{}}}},
	} {
		rec := serve(t, Handler(tt.opts), "GET", AgentsPath)
		var got []Agent
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != 200 {
			t.Fatalf("%s = %d %s (%v)", AgentsPath, rec.Code, rec.Body, err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("agents %+v; want %+v", got, tt.want)
		}
	}
	if given[1].Credentials != nil {
		t.Errorf("Handler changed the caller's Agents")
	}
}
