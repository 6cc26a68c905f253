package oauth

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestClientMetadataDocument: a client whose client_id is the https URL of
// its metadata document signs in without registering: its redirect URIs
// come from the document, which must name itself; the connection works.
func TestClientMetadataDocument(t *testing.T) {
	w := newWorld(t)
	redirect := "http://127.0.0.1:41414/callback"
	docs := map[string]any{}
	tls := httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		d, ok := docs[r.URL.Path]
		if !ok {
			http.NotFound(rw, r)
			return
		}
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(d)
	}))
	defer tls.Close()
	w.as.fetch = tls.Client() // trusts the test certificate; dials loopback
	good := tls.URL + "/client.json"
	docs["/client.json"] = map[string]any{"client_id": good, "client_name": "CIMD client", "redirect_uris": []string{redirect},
		"token_endpoint_auth_method": "none"}
	docs["/liar.json"] = map[string]any{"client_id": tls.URL + "/other.json", "redirect_uris": []string{redirect}}
	docs["/secret.json"] = map[string]any{"client_id": tls.URL + "/secret.json", "redirect_uris": []string{redirect},
		"token_endpoint_auth_method": "client_secret_basic"}

	m := w.do(http.MethodGet, MetadataPath, nil).json(t)
	if m["client_id_metadata_document_supported"] != true {
		t.Errorf("metadata: %v", m)
	}

	p := newPKCE()
	id := w.authorize(good, redirect, p)
	code := w.consent(id, w.projA.ID, "project:read")
	r := w.exchange(good, redirect, code, p.verifier)
	if r.status != http.StatusOK {
		t.Fatalf("exchange: %d %s", r.status, r.body)
	}
	if r := w.mcpCall(r.json(t)["access_token"].(string), "get_project", nil); r.status != http.StatusOK || !strings.Contains(string(r.body), "alpha") {
		t.Errorf("get_project: %d %s", r.status, r.body)
	}
	if c := w.connections(); c[0]["client_name"] != "CIMD client" || c[0]["client_id"] != good {
		t.Errorf("connection: %v", c)
	}

	for name, cid := range map[string]string{
		"client_id not its URL": tls.URL + "/liar.json",
		"confidential client":   tls.URL + "/secret.json",
		"no document":           tls.URL + "/missing.json",
		"no path":               tls.URL + "/",
	} {
		r := w.authorizeRaw(url.Values{"response_type": {"code"}, "client_id": {cid}, "redirect_uri": {redirect},
			"code_challenge": {newPKCE().challenge}, "code_challenge_method": {"S256"}})
		if r.status != http.StatusBadRequest || r.header.Get("Location") != "" || r.json(t)["error"] != "invalid_client" {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	// A redirect URI the document does not list.
	r = w.authorizeRaw(url.Values{"response_type": {"code"}, "client_id": {good}, "redirect_uri": {"https://evil.example/cb"},
		"code_challenge": {newPKCE().challenge}, "code_challenge_method": {"S256"}})
	if r.status != http.StatusBadRequest || r.header.Get("Location") != "" {
		t.Errorf("unlisted redirect: %d %s", r.status, r.body)
	}
}

// TestClientMetadataFence: the broker's own fetch refuses a document on a
// loopback or private address (after resolution), so a client_id cannot
// make it read inside.
func TestClientMetadataFence(t *testing.T) {
	w := newWorld(t)
	tls := httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		t.Errorf("the fence let a request through to %s", r.URL)
	}))
	defer tls.Close()
	for _, u := range []string{tls.URL + "/client.json", "https://localhost:1/x", "https://10.0.0.1/x", "https://[::1]/x", "https://169.254.169.254/latest"} {
		_, err := w.as.fetchMetadataDocument(context.Background(), u)
		if err == nil || !strings.Contains(err.Error(), "non-public address") {
			t.Errorf("%s: %v; want refused as non-public", u, err)
		}
	}
}

// FuzzMetadataDocument: parseMetadataDocument never panics and accepts
// only documents naming their own URL, public, with valid redirect URIs.
func FuzzMetadataDocument(f *testing.F) {
	const id = "https://client.example/c.json"
	f.Add([]byte(`{"client_id":"` + id + `","redirect_uris":["http://127.0.0.1/cb"]}`))
	f.Add([]byte(`{"client_id":"x","redirect_uris":["http://127.0.0.1/cb"],"client_secret":"s"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseMetadataDocument(id, b)
		if err != nil {
			return
		}
		var d struct {
			ClientID string `json:"client_id"`
		}
		if json.Unmarshal(b, &d) != nil || d.ClientID != id || c.ID != id || len(c.RedirectURIs) == 0 {
			t.Fatalf("accepted %q as %+v", b, c)
		}
		for _, u := range c.RedirectURIs {
			if checkRedirectURI(u) != nil {
				t.Fatalf("accepted redirect %q", u)
			}
		}
	})
}
