package catalog

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	t.Parallel()
	c := Embedded()
	srv := httptest.NewServer(Handler(c))
	defer srv.Close()
	get := func(method, query string, header ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+"/v1/models"+query, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}

	for _, agent := range c.Agents() {
		resp, body := get("GET", "?agent="+agent)
		if resp.StatusCode != 200 || resp.Header.Get("ETag") != `"`+c.Hash()+`"` || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d %v", agent, resp.StatusCode, resp.Header)
		}
		// The payload is the picker: the same bytes as the golden file's content.
		var got, want []PickerEntry
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatal(err)
		}
		golden, err := os.ReadFile(filepath.Join("testdata", "picker-"+agent+".golden.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(golden, &want); err != nil {
			t.Fatal(err)
		}
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(want)
		if string(gb) != string(wb) {
			t.Errorf("%s: payload differs from the golden picker", agent)
		}
		if resp, _ := get("GET", "?agent="+agent, "If-None-Match", `W/"x", `+resp.Header.Get("ETag")); resp.StatusCode != 304 {
			t.Errorf("%s: If-None-Match = %d, want 304", agent, resp.StatusCode)
		}
	}
	if resp, body := get("HEAD", "?agent=codex"); resp.StatusCode != 200 || body != "" {
		t.Errorf("HEAD = %d %q", resp.StatusCode, body)
	}
	if resp, body := get("GET", "?agent=nobody"); resp.StatusCode != 404 || !strings.Contains(body, `unknown agent \"nobody\"`) {
		t.Errorf("unknown agent = %d %s", resp.StatusCode, body)
	}
	if resp, body := get("GET", ""); resp.StatusCode != 400 || !strings.Contains(body, "agent query parameter is required") {
		t.Errorf("no agent = %d %s", resp.StatusCode, body)
	}
	if resp, _ := get("POST", "?agent=codex"); resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST = %d", resp.StatusCode)
	}
}
