package catalog

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// Handler serves the model picker at GET (and HEAD) /v1/models?agent=A: the
// JSON array ForUI(A) returns. The catalog is immutable, so every payload is
// rendered once; the ETag is the catalog's Hash, and a matching
// If-None-Match gets 304. A missing agent is 400, an unknown agent 404,
// both with a JSON body {"error": "..."}.
func Handler(c *Catalog) http.Handler {
	payloads := make(map[string][]byte, len(c.agents))
	for _, agent := range c.agents {
		entries, err := c.ForUI(agent)
		if err != nil {
			panic("catalog: ForUI of a listed agent failed: " + err.Error()) // impossible: agent comes from c
		}
		b, err := json.Marshal(entries)
		if err != nil {
			panic("catalog: encode picker: " + err.Error()) // impossible: plain types
		}
		payloads[agent] = append(b, '\n')
	}
	etag := `"` + c.hash + `"`
	known := strings.Join(c.agents, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		h := w.Header()
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "method not allowed")
			return
		}
		agent := req.URL.Query().Get("agent")
		body, ok := payloads[agent]
		switch {
		case agent == "":
			writeError(w, http.StatusBadRequest, "the agent query parameter is required (one of: "+known+")")
			return
		case !ok:
			writeError(w, http.StatusNotFound, "unknown agent "+strconv.Quote(agent)+" (one of: "+known+")")
			return
		}
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "public, max-age=60")
		h.Set("ETag", etag)
		h.Set("X-Content-Type-Options", "nosniff")
		if etagMatches(req.Header.Get("If-None-Match"), etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Length", strconv.Itoa(len(body)))
		if req.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(body)
	})
}

func writeError(w http.ResponseWriter, code int, msg string) {
	b, _ := json.Marshal(map[string]string{"error": msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// etagMatches reports whether an If-None-Match value (a list, "*", weak
// tags allowed) names etag.
func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, tag := range strings.Split(header, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == "*" || tag == etag {
			return true
		}
	}
	return false
}
