package profile

import (
	"path/filepath"
	"strings"

	"github.com/agentbroker/agentbroker/acp"
)

// copilotPackage is the copilot profile's pinned package.
const copilotPackage = "@github/copilot@1.0.102"

// CopilotAgentMode is Copilot's default mode (its mode IDs are URLs): it
// asks before a tool runs. Set explicitly, not left to the agent.
const CopilotAgentMode = "https://agentclientprotocol.com/protocol/session-modes#agent"

// CopilotPkgCache is the directory under the agents directory holding
// Copilot's unpacked package (COPILOT_PKG_CACHE_HOME), shared read-only by
// every session.
const CopilotPkgCache = ".cache/copilot"

// CopilotPkgIndex is, relative to the agents directory, the file whose
// presence says the package was unpacked.
func CopilotPkgIndex() string {
	return filepath.Join(CopilotPkgCache, "pkg", "linux-x64", packageVersion(copilotPackage), "index.js")
}

// packageVersion is the version of a "name@version" package.
func packageVersion(pkg string) string {
	if i := strings.LastIndex(pkg, "@"); i > 0 {
		return pkg[i+1:]
	}
	return ""
}

func (b *builder) copilot() error {
	base, key := b.openAICompat()
	b.set("COPILOT_OFFLINE", "true")
	b.set("COPILOT_AUTO_UPDATE", "false")
	b.set("COPILOT_PROVIDER_BASE_URL", base)
	b.setSecret("COPILOT_PROVIDER_API_KEY", key)
	if b.spec.Model != "" {
		b.set("COPILOT_MODEL", b.spec.Model)
	}
	if b.spec.InstallDir != "" && len(b.spec.Command) == 0 {
		cache := filepath.Join(b.spec.InstallDir, CopilotPkgCache)
		b.set("COPILOT_PKG_CACHE_HOME", cache)
		b.l.alsoRequires = append(b.l.alsoRequires, b.p.requiredFiles(b.spec.InstallDir)[1:]...)
		b.note("Copilot reads its unpacked package from %s (shared, read-only), not from each session's home", cache)
	}
	b.note("send the MCP server %q in session/new; Copilot connects to it shortly after session/new returns", b.spec.MCP.Name)
	return nil
}

// copilotOwnTool: Copilot announces an MCP call with a tool_call
// update titled "<server>-<tool>" (kind "read" for a read-only tool, which
// it then runs unasked, "edit" otherwise), and titles its permission
// request with the tool's MCP title ("Update task") or, for a tool without
// one, its bare name, kind "other". Both must agree on one of our tools:
// the update names it, the request carries its title or name.
func copilotOwnTool(server string, req acp.RequestPermissionRequest, updates acp.ToolCall) bool {
	name, ok := cutPrefix(updates.Title, server+"-")
	if !ok || !isProjectToolName(name) {
		return false
	}
	switch updates.Kind {
	case acp.ToolKindRead, acp.ToolKindEdit, acp.ToolKindOther:
	default:
		return false
	}
	if req.ToolCall.ToolCallID != updates.ToolCallID {
		return false
	}
	for _, t := range projectTools {
		if t.name == name {
			return req.ToolCall.Title == t.title || req.ToolCall.Title == t.name
		}
	}
	return false
}
