package profile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/agentbroker/agentbroker/acp"
	"github.com/agentbroker/agentbroker/catalog"
)

// gemini configures Gemini CLI (@google/gemini-cli, run with --acp). The
// MCP server comes through session/new (Gemini connects to it during
// session/new), the credential and the model through the environment,
// quiet settings through $HOME/.gemini/settings.json.
func (b *builder) gemini() error {
	// In a folder it does not trust, Gemini CLI skips HTTP MCP servers
	// without a word: the session's working directory is trusted.
	b.set("GEMINI_CLI_TRUST_WORKSPACE", "true")
	// It would otherwise relaunch itself in a child process (for memory
	// flags), which the supervisor would not see.
	b.set("GEMINI_CLI_NO_RELAUNCH", "1")
	b.set("GEMINI_TELEMETRY_ENABLED", "false")
	if b.spec.Model != "" {
		// An explicit model: its "auto" router (an extra classifier call
		// with a model of its choosing) is not used.
		b.set("GEMINI_MODEL", b.spec.Model)
	}
	c := b.spec.Credential
	switch c.kind() {
	case KindAPIKey:
		b.setSecret("GEMINI_API_KEY", c.Secret)
		if c.BaseURL != "" {
			b.set("GOOGLE_GEMINI_BASE_URL", c.BaseURL)
		}
	case KindPlatformProxy:
		// The root URL, without /v1beta; with it set, session/new picks the
		// "gateway" auth method by itself. The key goes as x-goog-api-key.
		b.set("GOOGLE_GEMINI_BASE_URL", proxyURL(b.spec.ProxyBaseURL, catalog.ProviderGoogle))
		b.setSecret("GEMINI_API_KEY", c.Secret)
	}
	settings, _ := json.MarshalIndent(map[string]any{
		"privacy": map[string]any{"usageStatisticsEnabled": false},
		"general": map[string]any{"enableAutoUpdate": false, "enableAutoUpdateNotification": false},
	}, "", "  ")
	dir := filepath.Join(b.home, ".gemini")
	b.l.Dirs = append(b.l.Dirs, dir)
	b.l.Files = append(b.l.Files, File{Path: filepath.Join(dir, "settings.json"), Mode: 0o600, Content: settings})
	b.note("send the MCP server %q in session/new (http, header Authorization: Bearer <MCP token>)", b.spec.MCP.Name)
	b.note("after session/new, session/set_mode %q: tool calls come to the broker as permission requests (yolo runs them unasked)", b.p.InitialMode)
	return nil
}

// geminiOwnTool recognises Gemini CLI's permission request for a tool of
// our MCP server, as the request or the session's tool_call update
// describes it (each on its own: kind, title and ID are never taken from
// two descriptions).
func geminiOwnTool(server string, req acp.RequestPermissionRequest, updates acp.ToolCall) bool {
	return either(req, updates, func(tc acp.ToolCall) bool { return geminiToolCall(server, tc) })
}

// geminiToolCall: Gemini CLI describes a call to a tool of our MCP server
// with kind "other", title "<tool> (<server> MCP Server)" and a tool-call
// ID that Gemini derives from the function it offered the model,
// "mcp_<server>_<tool>__…". All must agree: the title alone is text, and
// an underscore in a server or tool name makes the ID alone ambiguous.
func geminiToolCall(server string, tc acp.ToolCall) bool {
	if tc.Kind != "" && tc.Kind != acp.ToolKindOther {
		return false
	}
	tool, ok := strings.CutSuffix(tc.Title, " ("+server+" MCP Server)")
	if !ok || tool == "" || strings.ContainsAny(tool, " ()") {
		return false
	}
	return strings.HasPrefix(tc.ToolCallID, "mcp_"+server+"_"+tool+"__")
}

// geminiPrepareLoad makes Gemini CLI's session/load find the session's
// chat. Its loadSession first starts recording a fresh chat for the same
// ID, in chats/session-<UTC minute>-<first 8 of the ID>.jsonl: when that
// is the session's own file (a relaunch within the minute the file was
// named after), the fresh start appends to it and rewrites its messages to
// the opening context, and the listing that follows skips the file as not
// resumable ("No previous sessions found for this project"). Renaming the
// session's files out of that pattern first leaves the fresh start a new
// file of its own; the listing still finds the renamed chat (any
// chats/session-*.jsonl, by the session ID inside) and Gemini goes on
// recording into it.
//
// Everything happens inside home (os.Root: a link placed by the agent
// cannot lead outside it), only to regular files named for this session.
func geminiPrepareLoad(home, acpID string) error {
	if len(acpID) < 8 || strings.ContainsAny(acpID[:8], `/\.`) {
		return fmt.Errorf("%w: ACP session ID %q", ErrBadValue, truncate(acpID))
	}
	root, err := os.OpenRoot(home)
	if err != nil {
		return fmt.Errorf("gemini resume: %w", err)
	}
	defer root.Close()
	projects, err := fs.ReadDir(root.FS(), ".gemini/tmp")
	if errors.Is(err, fs.ErrNotExist) {
		return nil // nothing recorded yet: session/load will say so
	}
	if err != nil {
		return fmt.Errorf("gemini resume: %w", err)
	}
	suffix := "-" + acpID[:8] + ".jsonl"
	for _, p := range projects {
		if !p.IsDir() {
			continue
		}
		dir := path.Join(".gemini/tmp", p.Name(), "chats")
		files, err := fs.ReadDir(root.FS(), dir)
		if err != nil {
			continue
		}
		for _, f := range files {
			name := f.Name()
			if !f.Type().IsRegular() || !strings.HasPrefix(name, "session-") || !strings.HasSuffix(name, suffix) {
				continue
			}
			base := strings.TrimSuffix(name, ".jsonl")
			for n := 1; ; n++ {
				to := fmt.Sprintf("%s-r%d.jsonl", base, n)
				if _, err := root.Lstat(path.Join(dir, to)); errors.Is(err, fs.ErrNotExist) {
					if err := root.Rename(path.Join(dir, name), path.Join(dir, to)); err != nil {
						return fmt.Errorf("gemini resume: %w", err)
					}
					break
				}
				if n >= 100 {
					return fmt.Errorf("gemini resume: too many resumed copies of %s", name)
				}
			}
		}
	}
	return nil
}
