package profile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/agentbroker/agentbroker/acp"
	"github.com/agentbroker/agentbroker/catalog"
)

// Sentinel errors, for errors.Is.
var (
	// ErrMissingSecret: a credential or token the launch needs is empty.
	ErrMissingSecret = errors.New("missing secret")
	// ErrBadValue: an input is malformed (a URL or token with a control
	// character, a relative path, a reserved environment variable…).
	ErrBadValue = errors.New("bad value")
	// ErrUnsupportedCredential: the profile does not accept this kind.
	ErrUnsupportedCredential = errors.New("unsupported credential kind")
	// ErrUnknownProfile: no profile by that name.
	ErrUnknownProfile = errors.New("unknown agent profile")
	// ErrNotInstalled: the agent's entry point is not in the install
	// directory (reported by Prepare).
	ErrNotInstalled = errors.New("agent not installed")
)

// Name names a profile.
type Name string

// The profiles.
const (
	ClaudeCode Name = "claude-code"
	Codex      Name = "codex"
	CodexZed   Name = "codex-zed"
	Amp        Name = "amp"
	Custom     Name = "custom"
	Gemini     Name = "gemini"
	OpenCode   Name = "opencode"
	Copilot    Name = "copilot"
	Qwen       Name = "qwen"
)

// MCPConnect says when an agent connects to the MCP servers it was given,
// which is when the broker can expect the session's MCP token to reach
// tools/list (the readiness signal).
type MCPConnect string

const (
	// MCPAtSessionNew: during ACP session/new (Claude Code, Codex).
	MCPAtSessionNew MCPConnect = "session/new"
	// MCPAtFirstPrompt: only when the first prompt starts (Amp).
	MCPAtFirstPrompt MCPConnect = "first-prompt"
	// MCPAfterSessionNew: shortly after session/new has returned (Copilot
	// about 0.1 s, Qwen Code about 0.5 s later): the session is ready, and
	// its first prompt sent, only once the token has reached tools/list.
	MCPAfterSessionNew MCPConnect = "after-session/new"
)

// Environment variables the broker defines.
const (
	// EnvMCPToken holds the MCP bearer token for agents that read their MCP
	// servers from a config file (Codex: bearer_token_env_var).
	EnvMCPToken = "AGENTBROKER_MCP_TOKEN"
	// EnvInferenceToken holds the inference token that Codex sends to the
	// platform proxy (the provider block's env_key).
	EnvInferenceToken = "AGENTBROKER_INFERENCE_TOKEN"
	// ProviderID is the id of the model provider block the broker writes
	// into Codex's config.toml.
	ProviderID = "agentbroker"
)

// DefaultPATH is the agent's PATH when the LaunchSpec sets none; the install
// directory's node_modules/.bin is put in front of it.
const DefaultPATH = "/usr/local/bin:/usr/bin:/bin"

// Profile describes one kind of agent.
type Profile struct {
	Name Name
	// Title is what people call the agent (pickers, tables).
	Title string
	// Agent is the catalog agent name its models come from; "" for custom.
	Agent string
	// Package is the npm package (name@version) to install into the install
	// directory; "" when the command is configured.
	Package string
	// Entry is the entry point relative to the install directory: a script
	// run with Node, or an executable when RunWithNode is false.
	Entry       string
	RunWithNode bool
	// Args follow the entry point on the command line ("--acp"; never a
	// secret).
	Args []string
	// MCPConnect says when the agent connects to its MCP servers.
	MCPConnect MCPConnect
	// InitialMode is the ACP session mode to set with session/set_mode right
	// after session/new, or "" to leave the agent's default.
	InitialMode string
	// IgnoresStdinEOF: closing stdin does not stop it (Zed's codex-acp), so
	// a stop goes on to SIGTERM.
	IgnoresStdinEOF bool
	// Credentials are the kinds it accepts.
	Credentials []CredentialKind
	// NeedsCommand: LaunchSpec.Command is required (no installable entry).
	NeedsCommand bool
	// NeedsMCP: LaunchSpec.MCP is required.
	NeedsMCP bool
	// ModelCatalog, when set, is how the agent prints its own model catalog
	// (an entry relative to the install directory, run like Entry, and its
	// arguments): the broker reads it into LaunchSpec.AgentModels so that
	// the agent's configuration can add the catalog's facts for the models
	// it lacks.
	ModelCatalog []string
	// KnownModels, when set, are the only catalog models the agent has
	// metadata for and cannot be given it for others (no ModelCatalog): a
	// session with another model is refused at create.
	KnownModels []string

	// configure is the profile's config writer: it sets the agent's
	// environment, files and notes from the spec (after the common part:
	// HOME, TMPDIR, PATH, the command).
	configure func(*builder) error
	// checkOAuth validates an oauth-token secret; nil means a plain token.
	checkOAuth func(Secret) error
	// noBaseURL, when set, says why an api-key credential may not carry a
	// BaseURL for this agent.
	noBaseURL string
	// ownTool, when set, recognises a call to our own MCP server's tools in
	// this agent's session/request_permission, as the request and the
	// session's tool_call updates describe it (each agent describes it its
	// own way); acp's generic recognition (Claude's, Codex's shapes)
	// applies besides.
	ownTool acp.ToolRecognizer
	// NoResume, when set, says why the broker does not resume the agent's
	// sessions with session/load although it advertises loadSession.
	NoResume string
	// prepareLoad, when set, readies the agent's files in home for
	// session/load of the ACP session acpID (Launch.PrepareLoad).
	prepareLoad func(home, acpID string) error
	// alsoInstalled are files, relative to the install directory, that an
	// install must provide besides Entry (what a post-install step made).
	alsoInstalled []string
	// postInstall, when set, is a step `agents install` runs once after
	// npm installed Package into dir (PostInstallFor).
	postInstall func(p Profile, dir string) *PostInstall
}

var profiles = []Profile{
	{
		Name:        ClaudeCode,
		Title:       "Claude Code",
		Agent:       "claude-code",
		Package:     "@agentclientprotocol/claude-agent-acp@0.101.0",
		Entry:       "node_modules/@agentclientprotocol/claude-agent-acp/dist/index.js",
		RunWithNode: true,
		MCPConnect:  MCPAtSessionNew,
		// "default" sends permission requests to the broker; the agent's own
		// default, "auto", makes an extra classifier model call.
		InitialMode: "default",
		Credentials: []CredentialKind{KindAPIKey, KindOAuthToken, KindPlatformProxy},
		NeedsMCP:    true,
		configure:   (*builder).claude,
	},
	{
		Name:        Codex,
		Title:       "Codex",
		Agent:       "codex",
		Package:     "@agentclientprotocol/codex-acp@2.6.0",
		Entry:       "node_modules/@agentclientprotocol/codex-acp/dist/index.js",
		RunWithNode: true,
		MCPConnect:  MCPAtSessionNew,
		// MCP tool calls come to the broker as permission requests; "agent"
		// (auto review) makes an extra reviewer model call. Also set through
		// INITIAL_AGENT_MODE.
		InitialMode: "workspace-write",
		Credentials: []CredentialKind{KindAPIKey, KindOAuthToken, KindPlatformProxy},
		NeedsMCP:    true,
		// Codex 0.166 knows only gpt-5.5 of the catalog's models; for any
		// other it warns "Model metadata for … not found" in every reply.
		ModelCatalog: []string{"node_modules/@openai/codex/bin/codex.js", "debug", "models", "--bundled"},
		configure:    (*builder).codex,
		checkOAuth:   checkAuthJSON,
	},
	{
		Name:    CodexZed,
		Title:   "Codex (Zed's adapter)",
		Agent:   "codex",
		Package: "@zed-industries/codex-acp@0.16.0",
		Entry:   "node_modules/@zed-industries/codex-acp-linux-x64/bin/codex-acp",
		// Zed's modes are read-only (its default), auto and full-access;
		// "auto" is workspace-write with approvals.
		MCPConnect:      MCPAtSessionNew,
		InitialMode:     "auto",
		IgnoresStdinEOF: true,
		Credentials:     []CredentialKind{KindAPIKey, KindOAuthToken, KindPlatformProxy},
		NeedsMCP:        true,
		// The models in its bundled catalog (the strings of its binary): for
		// any other it warns "Model metadata for … not found" in every reply,
		// and it has no command that prints the catalog to build on.
		KnownModels: []string{"gpt-5.5", "gpt-5.4", "gpt-5.4-mini", "gpt-5.3-codex", "gpt-5.2"},
		configure:   (*builder).codex,
		checkOAuth:  checkAuthJSON,
	},
	{
		Name:         Amp,
		Title:        "Amp",
		Agent:        "amp",
		MCPConnect:   MCPAtFirstPrompt,
		Credentials:  []CredentialKind{KindAPIKey},
		NeedsCommand: true,
		NeedsMCP:     true,
		configure:    (*builder).amp,
		noBaseURL:    "Amp's model calls run on Amp's servers: no custom base URL",
	},
	{
		Name:         Custom,
		Title:        "Custom (the broker's --custom-agent)",
		MCPConnect:   MCPAtSessionNew,
		Credentials:  []CredentialKind{KindNone},
		NeedsCommand: true,
		configure:    (*builder).custom,
	},
	{
		Name:        Gemini,
		Title:       "Gemini CLI",
		Agent:       "gemini",
		Package:     "@google/gemini-cli@0.61.0",
		Entry:       "node_modules/@google/gemini-cli/bundle/gemini.js",
		RunWithNode: true,
		Args:        []string{"--acp"},
		MCPConnect:  MCPAtSessionNew,
		// "default" asks (session/request_permission: proceed_once,
		// proceed_always_tool, proceed_always_server, cancel); yolo runs
		// every tool unasked; autoEdit and plan exist too.
		InitialMode: "default",
		Credentials: []CredentialKind{KindAPIKey, KindPlatformProxy},
		NeedsMCP:    true,
		configure:   (*builder).gemini,
		ownTool:     geminiOwnTool,
		// Its session/load fails within the minute its chat file is named
		// after: geminiPrepareLoad moves the file out of the way first.
		prepareLoad: geminiPrepareLoad,
	},
	{
		// OpenCode's own ACP mode (opencode acp), a native binary from the
		// opencode-ai package. Its model is an OpenAI-compatible provider
		// (the bundled @ai-sdk/openai-compatible: nothing to download)
		// pointed at the proxy's Chat Completions route, configured through
		// OPENCODE_CONFIG_CONTENT. It connects to MCP during session/new.
		Name:        OpenCode,
		Title:       "OpenCode",
		Agent:       "opencode",
		Package:     "opencode-ai@1.18.33",
		Entry:       "node_modules/opencode-linux-x64/bin/opencode",
		Args:        []string{"acp"},
		MCPConnect:  MCPAtSessionNew,
		Credentials: []CredentialKind{KindAPIKey, KindPlatformProxy},
		NeedsMCP:    true,
		configure:   (*builder).opencode,
		ownTool:     openCodeOwnTool,
	},
	{
		// GitHub Copilot CLI's ACP mode, offline, in its
		// bring-your-own-provider mode (no GitHub login): an
		// OpenAI-compatible provider pointed at the proxy's Chat Completions
		// route. The npm package's native binary unpacks its JavaScript
		// (235 MB) into $COPILOT_PKG_CACHE_HOME/pkg on first start:
		// `agentbroker agents install` unpacks it once into the agents
		// directory, and every session reads it from there. Copilot connects
		// to MCP about 0.1 s after session/new returns.
		Name:        Copilot,
		Title:       "Copilot CLI",
		Agent:       "copilot",
		Package:     copilotPackage,
		Entry:       "node_modules/@github/copilot-linux-x64/copilot",
		Args:        []string{"--acp", "--no-auto-update"},
		MCPConnect:  MCPAfterSessionNew,
		InitialMode: CopilotAgentMode,
		Credentials: []CredentialKind{KindAPIKey, KindPlatformProxy},
		NeedsMCP:    true,
		configure:   (*builder).copilot,
		ownTool:     copilotOwnTool,
		// Its package, unpacked once into the shared cache.
		alsoInstalled: []string{CopilotPkgIndex()},
		postInstall:   copilotPostInstall,
	},
	{
		// Qwen Code's ACP mode (a Gemini CLI fork) with its OpenAI auth
		// type: OPENAI_BASE_URL, OPENAI_API_KEY and OPENAI_MODEL, pointed at
		// the proxy's Chat Completions route. Its default mode, "auto",
		// makes a classifier call and then asks with two allow_once options,
		// one of which switches the mode: the profile sets "default"
		// explicitly (it asks before tools run). Our MCP tools are declared
		// visible in its settings, or they hide behind its deferred tool
		// search. It connects to MCP about 0.5 s after session/new returns.
		Name:        Qwen,
		Title:       "Qwen Code",
		Agent:       "qwen",
		Package:     "@qwen-code/qwen-code@0.24.4",
		Entry:       "node_modules/@qwen-code/qwen-code/cli.js",
		RunWithNode: true,
		Args:        []string{"--acp"},
		MCPConnect:  MCPAfterSessionNew,
		InitialMode: "default",
		Credentials: []CredentialKind{KindAPIKey, KindPlatformProxy},
		NeedsMCP:    true,
		configure:   (*builder).qwen,
		ownTool:     qwenOwnTool,
	},
}

// All returns every profile, in a fixed order.
func All() []Profile {
	out := make([]Profile, len(profiles))
	for i, p := range profiles {
		out[i] = p.clone()
	}
	return out
}

// Lookup returns the profile called name.
func Lookup(name Name) (Profile, error) {
	for _, p := range profiles {
		if p.Name == name {
			return p.clone(), nil
		}
	}
	return Profile{}, fmt.Errorf("%w: %q", ErrUnknownProfile, name)
}

// ModelCatalogCommand returns the command that prints the agent's own model
// catalog for a launch with spec (its InstallDir and Node), and false when
// the profile has none or the agent is not installed from the registry.
func (p Profile) ModelCatalogCommand(spec LaunchSpec) (path string, args []string, ok bool) {
	if len(p.ModelCatalog) == 0 || len(spec.Command) > 0 || spec.InstallDir == "" {
		return "", nil, false
	}
	entry := filepath.Join(spec.InstallDir, filepath.FromSlash(p.ModelCatalog[0]))
	args = slices.Clone(p.ModelCatalog[1:])
	if !p.RunWithNode {
		return entry, args, true
	}
	node := spec.Node
	if node == "" {
		node = "node"
	}
	return node, append([]string{entry}, args...), true
}

func (p Profile) clone() Profile {
	p.Credentials = slices.Clone(p.Credentials)
	p.ModelCatalog = slices.Clone(p.ModelCatalog)
	p.KnownModels = slices.Clone(p.KnownModels)
	p.Args = slices.Clone(p.Args)
	p.alsoInstalled = slices.Clone(p.alsoInstalled)
	return p
}

// Installable reports whether the broker installs the agent from the npm
// registry into its agents directory (Package and Entry are set); the
// others are started by a command the operator configures.
func (p Profile) Installable() bool { return p.Package != "" && !p.NeedsCommand }

// Accepts reports whether the profile accepts credentials of kind k.
func (p Profile) Accepts(k CredentialKind) bool { return slices.Contains(p.Credentials, k) }

// MCPServer is the broker's MCP endpoint for one session.
type MCPServer struct {
	// Name is the server's name as the agent sees it (its tools become
	// mcp__<Name>__<tool>): letters, digits, '_' and '-'.
	Name string
	// URL is the streamable HTTP endpoint.
	URL string
	// Token is the session's MCP bearer token.
	Token Secret
}

// LaunchSpec is what the broker knows about one session's agent.
type LaunchSpec struct {
	// SessionID identifies the session (for notes; it is not a path).
	SessionID string
	// SessionDir is the per-session directory the caller created, mode
	// 0700; HOME, TMPDIR and CODEX_HOME are made inside it.
	SessionDir string
	// Cwd is the agent's working directory (the project checkout).
	Cwd string
	// Model is the catalog model ID to use, or "" for the agent's default.
	Model string
	// Models are the catalog's facts about Model and the side models the
	// session may also use, for agents whose configuration carries them.
	Models []ModelFacts
	// AgentModels is the agent's own model catalog, as the profile's
	// ModelCatalog command printed it, or nil.
	AgentModels []byte
	// AllowedModels are the catalog's models this agent may use: an entry
	// the agent's own catalog has for one of them is what a missing model's
	// entry is based on.
	AllowedModels []string
	// MCP is the broker's MCP server; required except for custom.
	MCP MCPServer
	// Credential is how the agent reaches its model.
	Credential Credential
	// ProxyBaseURL is the broker's base URL (scheme, host, port, optional
	// path prefix), required with KindPlatformProxy and ignored otherwise.
	ProxyBaseURL string
	// InstallDir holds node_modules with the profile's Package; its
	// node_modules/.bin goes first on the agent's PATH. With Command set it
	// contributes only that PATH entry (for Amp: where the amp CLI is).
	InstallDir string
	// Command is the agent's command line, overriding InstallDir; required
	// for amp and custom. Its first element is looked up in the agent's
	// PATH when it has no slash. Never put a secret in it.
	Command []string
	// Node is the Node.js binary for RunWithNode profiles; "" means "node"
	// in the agent's PATH.
	Node string
	// ExtraEnv adds "KEY=value" entries. They may replace PATH, LANG and
	// TMPDIR, but not a variable the profile sets (HOME, credentials,
	// AGENTBROKER_*…): that is an ErrBadValue. They are not treated as
	// secrets.
	ExtraEnv []string
}

// File is a file to write before the agent starts.
type File struct {
	Path string
	Mode fs.FileMode
	// Content is what is written when no file exists. For a merged file
	// (Merged reports true) Prepare merges it into the existing file.
	Content []byte
	// Secret marks content that must never be logged (Codex's auth.json).
	Secret bool
	// KeepExisting: Prepare leaves an existing file as it is (the agent
	// owns it once written, as Codex owns auth.json, which it refreshes).
	KeepExisting bool

	merge func(existing []byte) ([]byte, error)
}

// Merged reports whether Prepare merges Content into an existing file.
func (f File) Merged() bool { return f.merge != nil }

// String describes the file without its content.
func (f File) String() string {
	return fmt.Sprintf("%s (%04o, %d bytes)", f.Path, f.Mode.Perm(), len(f.Content))
}

// Format prints String for every verb: a file's content may be secret.
func (f File) Format(s fmt.State, _ rune) { fmt.Fprint(s, f.String()) }

// MarshalJSON describes the file without its content.
func (f File) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{"path": f.Path, "mode": fmt.Sprintf("%04o", f.Mode.Perm()), "bytes": len(f.Content)})
}

// Launch is how to start one agent: the command for the supervisor, the
// files to write first, and what the ACP client should do after initialize.
type Launch struct {
	Profile Name
	// Path and Args are the command (Args excludes the program name).
	Path string
	Args []string
	// Env is the complete environment, sorted by key.
	Env []string
	// SecretEnv names the Env entries that hold secrets.
	SecretEnv []string
	// Dir is the working directory (LaunchSpec.Cwd).
	Dir string
	// Dirs are created by Prepare, mode 0700, before Files are written.
	Dirs []string
	// Files are written by Prepare, mode 0600, before the agent starts.
	Files []File
	// AuthMethod is the ACP authenticate methodId to call after
	// initialize, or "" when none is needed.
	AuthMethod string
	// InitialMode is the session mode to set after session/new, or "".
	InitialMode string
	// MCPConnect says when the agent connects to the MCP server.
	MCPConnect MCPConnect
	// OwnTool, when set, recognises the agent's permission requests for
	// our MCP server's tools (acp.ConnOptions.ProjectTool).
	OwnTool acp.ToolRecognizer
	// NoResume, when set, says why the agent's sessions are not resumed
	// with session/load (the profile's NoResume).
	NoResume string
	// LoopbackPorts are TCP ports on 127.0.0.1 the agent serves itself and
	// connects to (OpenCode's ACP mode talks to its own HTTP server): a
	// confinement that limits TCP connect must allow them.
	LoopbackPorts []uint16
	// Notes are human-readable remarks about this launch.
	Notes []string

	sessionDir   string
	home         string
	loadPrep     func(home, acpID string) error
	requires     string   // the entry point that must exist, or ""
	alsoRequires []string // other files the install must provide
	install      string   // how to install it
}

// Getenv returns the value of key in Env.
func (l *Launch) Getenv(key string) (string, bool) {
	for _, kv := range l.Env {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v, true
		}
	}
	return "", false
}

// RedactedEnv returns Env with the values of SecretEnv replaced by
// "[REDACTED]", for logs.
func (l *Launch) RedactedEnv() []string {
	out := make([]string, len(l.Env))
	for i, kv := range l.Env {
		k, _, _ := strings.Cut(kv, "=")
		if slices.Contains(l.SecretEnv, k) {
			kv = k + "=" + redacted
		}
		out[i] = kv
	}
	return out
}

// String describes the launch without secrets.
func (l Launch) String() string {
	return fmt.Sprintf("%s launch: %s %q env %q files %v", l.Profile, l.Path, l.Args, l.RedactedEnv(), l.Files)
}

// Format prints String for every verb, so that no verb (%#v, %+v, %d)
// prints Env's secret values. Env itself, printed on its own, is not
// protected: log RedactedEnv.
func (l Launch) Format(s fmt.State, _ rune) { fmt.Fprint(s, l.String()) }

// MarshalJSON writes the redacted view that LogValue gives.
func (l Launch) MarshalJSON() ([]byte, error) {
	files := make([]string, len(l.Files))
	for i, f := range l.Files {
		files[i] = f.Path
	}
	return json.Marshal(map[string]any{
		"profile": l.Profile, "path": l.Path, "args": l.Args, "env": l.RedactedEnv(), "files": files,
	})
}

// LogValue implements slog.LogValuer without secrets.
func (l Launch) LogValue() slog.Value {
	files := make([]string, len(l.Files))
	for i, f := range l.Files {
		files[i] = f.Path
	}
	return slog.GroupValue(
		slog.String("profile", string(l.Profile)),
		slog.String("path", l.Path),
		slog.Any("args", l.Args),
		slog.Any("env", l.RedactedEnv()),
		slog.Any("files", files),
	)
}

// Build turns spec into the launch of profile name. It validates every
// input and reads nothing from disk: Prepare checks the install and merges
// existing files.
func Build(name Name, spec LaunchSpec) (*Launch, error) {
	p, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	l, err := build(p, spec)
	if err != nil {
		return nil, fmt.Errorf("build %s launch: %w", name, err)
	}
	return l, nil
}

// builder accumulates a launch.
type builder struct {
	p      Profile
	spec   LaunchSpec
	l      *Launch
	env    map[string]string
	owned  map[string]bool // keys ExtraEnv may not set
	home   string
	secret []string // every secret value, to prove none reaches argv
}

func (b *builder) set(key, value string) {
	b.env[key] = value
	b.owned[key] = true
}

func (b *builder) setSecret(key string, s Secret) {
	b.set(key, s.Reveal())
	b.l.SecretEnv = append(b.l.SecretEnv, key)
	b.secret = append(b.secret, s.Reveal())
}

func (b *builder) note(format string, args ...any) {
	b.l.Notes = append(b.l.Notes, fmt.Sprintf(format, args...))
}

// reservedEnv are variables ExtraEnv may never set, whatever the profile:
// the ones any profile sets and the credentials of every provider.
var reservedEnv = []string{
	"HOME", "CODEX_HOME", "CODEX_CONFIG", "INITIAL_AGENT_MODE",
	"ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "ANTHROPIC_MODEL",
	"CLAUDE_CODE_OAUTH_TOKEN", "IS_SANDBOX",
	"OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL", "CODEX_API_KEY", "AMP_API_KEY",
	"GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL",
	"OPENCODE_CONFIG_CONTENT", "COPILOT_PROVIDER_API_KEY", "COPILOT_PROVIDER_BASE_URL", "COPILOT_OFFLINE",
}

func build(p Profile, spec LaunchSpec) (*Launch, error) {
	if err := validateCommon(p, spec); err != nil {
		return nil, err
	}
	b := &builder{
		p:    p,
		spec: spec,
		l: &Launch{Profile: p.Name, Dir: spec.Cwd, MCPConnect: p.MCPConnect, InitialMode: p.InitialMode, sessionDir: spec.SessionDir,
			OwnTool: p.ownTool, NoResume: p.NoResume},
		env:   map[string]string{},
		owned: map[string]bool{},
		home:  filepath.Join(spec.SessionDir, "home"),
	}
	// The custom profile reserves only what it sets itself (HOME): its
	// agent is the operator's, and may well read OPENAI_BASE_URL.
	if p.Name != Custom {
		for _, k := range reservedEnv {
			b.owned[k] = true
		}
	}
	tmp := filepath.Join(spec.SessionDir, "tmp")
	b.l.Dirs = []string{b.home, tmp}
	b.l.home, b.l.loadPrep = b.home, p.prepareLoad
	path := DefaultPATH
	if spec.InstallDir != "" {
		path = filepath.Join(spec.InstallDir, "node_modules", ".bin") + ":" + path
	}
	b.env["PATH"] = path
	b.env["LANG"] = "C.UTF-8"
	b.env["TMPDIR"] = tmp
	b.set("HOME", b.home)

	if err := b.command(); err != nil {
		return nil, err
	}
	if err := p.configure(b); err != nil {
		return nil, err
	}
	if err := b.extraEnv(); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(b.env))
	for k := range b.env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b.l.Env = append(b.l.Env, k+"="+b.env[k])
	}
	slices.Sort(b.l.SecretEnv)
	// Belt and braces: no secret may reach the command line.
	for _, s := range b.secret {
		for _, a := range append([]string{b.l.Path}, b.l.Args...) {
			if s != "" && strings.Contains(a, s) {
				return nil, fmt.Errorf("%w: a secret appears in the command line", ErrBadValue)
			}
		}
	}
	if p.IgnoresStdinEOF {
		b.note("the agent ignores stdin EOF: stopping it takes SIGTERM after the grace period")
	}
	return b.l, nil
}

// command resolves the command line from Command or the install directory.
func (b *builder) command() error {
	spec, p := b.spec, b.p
	if len(spec.Command) > 0 {
		b.l.Path, b.l.Args = spec.Command[0], slices.Clone(spec.Command[1:])
		return nil
	}
	if p.NeedsCommand {
		return fmt.Errorf("%w: the %s profile needs a Command (its adapter is not installed from the registry)", ErrBadValue, p.Name)
	}
	if spec.InstallDir == "" {
		return fmt.Errorf("%w: neither InstallDir nor Command is set", ErrBadValue)
	}
	entry := filepath.Join(spec.InstallDir, filepath.FromSlash(p.Entry))
	b.l.requires = entry
	b.l.install = fmt.Sprintf("agentbroker agents install %s, or npm install --prefix %s %s", p.Name, spec.InstallDir, p.Package)
	if p.RunWithNode {
		node := spec.Node
		if node == "" {
			node = "node"
		}
		b.l.Path, b.l.Args = node, append([]string{entry}, p.Args...)
	} else {
		b.l.Path, b.l.Args = entry, slices.Clone(p.Args)
	}
	return nil
}

// extraEnv applies ExtraEnv last, refusing keys the profile owns.
func (b *builder) extraEnv() error {
	seen := map[string]bool{}
	for _, kv := range b.spec.ExtraEnv {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !envKeyRE.MatchString(k) {
			return fmt.Errorf("%w: ExtraEnv entry %q is not KEY=value", ErrBadValue, truncate(kv))
		}
		if hasControl(v) {
			return fmt.Errorf("%w: ExtraEnv %s has a control character", ErrBadValue, k)
		}
		if seen[k] {
			return fmt.Errorf("%w: ExtraEnv sets %s twice", ErrBadValue, k)
		}
		seen[k] = true
		if b.owned[k] || strings.HasPrefix(k, "AGENTBROKER_") {
			return fmt.Errorf("%w: ExtraEnv may not set %s: the %s profile owns it", ErrBadValue, k, b.p.Name)
		}
		b.env[k] = v
	}
	return nil
}

var (
	envKeyRE     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	serverNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

func validateCommon(p Profile, spec LaunchSpec) error {
	if spec.SessionID == "" || len(spec.SessionID) > 256 || hasControl(spec.SessionID) {
		return fmt.Errorf("%w: SessionID %q is empty, too long or has a control character", ErrBadValue, truncate(spec.SessionID))
	}
	for _, f := range []struct{ name, v string }{{"SessionDir", spec.SessionDir}, {"Cwd", spec.Cwd}} {
		if err := checkAbsPath(f.name, f.v); err != nil {
			return err
		}
	}
	if spec.InstallDir != "" {
		if err := checkAbsPath("InstallDir", spec.InstallDir); err != nil {
			return err
		}
	}
	if len(spec.Model) > 256 || hasControl(spec.Model) {
		return fmt.Errorf("%w: Model %q is too long or has a control character", ErrBadValue, truncate(spec.Model))
	}
	for i, a := range spec.Command {
		if hasControl(a) || (i == 0 && a == "") {
			return fmt.Errorf("%w: Command[%d] is empty or has a control character", ErrBadValue, i)
		}
	}
	if hasControl(spec.Node) {
		return fmt.Errorf("%w: Node has a control character", ErrBadValue)
	}
	if err := validateMCP(p, spec.MCP); err != nil {
		return err
	}
	return validateCredential(p, spec)
}

func validateMCP(p Profile, m MCPServer) error {
	if !p.NeedsMCP && m.Name == "" && m.URL == "" && m.Token.IsZero() {
		return nil // custom without MCP
	}
	if !serverNameRE.MatchString(m.Name) {
		return fmt.Errorf("%w: MCP server name %q: want 1 to 64 letters, digits, '_' or '-'", ErrBadValue, truncate(m.Name))
	}
	if err := checkURL("MCP URL", m.URL, true); err != nil {
		return err
	}
	return checkToken("MCP token", m.Token)
}

func validateCredential(p Profile, spec LaunchSpec) error {
	c := spec.Credential
	k := c.kind()
	switch k {
	case KindNone, KindAPIKey, KindOAuthToken, KindPlatformProxy:
	default:
		return fmt.Errorf("%w: %q", ErrUnsupportedCredential, c.Kind)
	}
	if !p.Accepts(k) {
		if k == KindNone {
			return fmt.Errorf("%w: the %s profile needs a credential (one of %v)", ErrMissingSecret, p.Name, p.Credentials)
		}
		return fmt.Errorf("%w: the %s profile accepts %v, not %s", ErrUnsupportedCredential, p.Name, p.Credentials, k)
	}
	if c.BaseURL != "" {
		if k != KindAPIKey {
			return fmt.Errorf("%w: Credential.BaseURL is for api-key credentials only, not %s", ErrBadValue, k)
		}
		if p.noBaseURL != "" {
			return fmt.Errorf("%w: %s", ErrUnsupportedCredential, p.noBaseURL)
		}
		if err := checkURL("Credential.BaseURL", c.BaseURL, false); err != nil {
			return err
		}
	}
	switch k {
	case KindNone:
		if !c.Secret.IsZero() {
			return fmt.Errorf("%w: a credential of kind none carries a secret", ErrBadValue)
		}
	case KindOAuthToken:
		if p.checkOAuth != nil {
			return p.checkOAuth(c.Secret)
		}
		return checkToken("OAuth token", c.Secret)
	case KindPlatformProxy:
		if spec.ProxyBaseURL == "" {
			return fmt.Errorf("%w: a platform-proxy credential needs ProxyBaseURL", ErrBadValue)
		}
		if err := checkURL("ProxyBaseURL", spec.ProxyBaseURL, false); err != nil {
			return err
		}
		return checkToken("inference token", c.Secret)
	default:
		return checkToken("API key", c.Secret)
	}
	return nil
}

// proxyURL is the base URL an agent is given for provider p's API through
// the platform proxy at base: the broker's URL and the provider's
// AgentBasePath in the catalog's provider table.
func proxyURL(base string, p catalog.Provider) string {
	info, ok := catalog.LookupProvider(p)
	if !ok {
		panic("profile: provider " + string(p) + " is not in the catalog's table")
	}
	return strings.TrimRight(base, "/") + info.AgentBasePath
}

func (b *builder) custom() error {
	if b.spec.MCP.Name != "" {
		b.note("send the MCP server %q in session/new", b.spec.MCP.Name)
	}
	return nil
}

func (b *builder) amp() error {
	b.setSecret("AMP_API_KEY", b.spec.Credential.Secret)
	if b.spec.Model != "" {
		b.note("Amp picks its model through its amp-mode config option, not a model ID: Model %q is not applied", b.spec.Model)
	}
	b.note("send the MCP server %q in session/new; Amp connects to it only when the first prompt starts", b.spec.MCP.Name)
	b.note("amp-acp runs the amp CLI, which must be on the agent's PATH")
	return nil
}
