package profile

import "fmt"

// CheckExtraEnv reports, before any session starts, whether extra
// ("KEY=value" entries, as a serve flag gives them for the profile called
// name) may be added to that profile's agents: well formed, and no
// variable the profile sets itself. The custom profile sets only HOME (and
// PATH, LANG and TMPDIR, which extra may replace), so OPENAI_BASE_URL and
// the like are the operator's to give it.
func CheckExtraEnv(name Name, extra []string) error {
	p, err := Lookup(name)
	if err != nil {
		return err
	}
	spec := LaunchSpec{
		SessionID: "check", SessionDir: "/nonexistent/session", Cwd: "/nonexistent/cwd",
		InstallDir: "/nonexistent/agents", ExtraEnv: extra,
		Credential: Credential{Kind: p.Credentials[0], Secret: NewSecret("placeholder")},
	}
	if p.NeedsCommand {
		spec.Command = []string{"/nonexistent/agent"}
	}
	if p.NeedsMCP {
		spec.MCP = MCPServer{Name: "agentbroker", URL: "http://127.0.0.1:1/mcp", Token: NewSecret("placeholder")}
	}
	switch spec.Credential.Kind {
	case KindNone:
		spec.Credential.Secret = Secret{}
	case KindPlatformProxy:
		spec.ProxyBaseURL = "http://127.0.0.1:1"
	case KindOAuthToken:
		spec.Credential.Secret = NewSecret(`{"placeholder":true}`)
	}
	if _, err := build(p, spec); err != nil {
		return fmt.Errorf("the %s profile's extra environment: %w", name, err)
	}
	return nil
}
