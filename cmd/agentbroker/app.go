package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/agentbroker/agentbroker/catalog"
	"github.com/agentbroker/agentbroker/internal/cliflag"
	"github.com/agentbroker/agentbroker/internal/termtext"
	"github.com/agentbroker/agentbroker/sessions"
)

// env is the process's outside world, injected so tests can run commands
// in-process.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// daemon, when set, is told whether the command run is a daemon
	// (command.daemon): main decides the exit code of a signal with it.
	daemon *bool
}

// forTerminal returns e with stdout and stderr escaping terminal control
// characters (termtext). Commands print text from agents, prompts, tools,
// the store and the broker's errors; this is the one place it is made
// safe, so no print of it needs to remember to.
func (e *env) forTerminal() *env {
	out := *e
	out.stdout = termtext.NewWriter(e.stdout)
	out.stderr = termtext.NewWriter(e.stderr)
	return &out
}

var (
	// errUsage: the command line was wrong; the message is already printed.
	errUsage = errors.New("usage")
	// errSilent: the command failed and has already said why.
	errSilent = errors.New("failed")
)

// envPrefix is the prefix of the flags' environment twins: --data-dir is
// AGENTBROKER_DATA_DIR.
const envPrefix = "AGENTBROKER_"

// envTwins are the flags that have an environment twin: settings of a
// deployment (where the data is, where the broker listens or is reached,
// key files, logging, the agents' confinement). Flags that say what one
// command does (--project, --json, --status, --title…) have none, so a
// stray variable cannot silently change what a command shows or writes.
var envTwins = map[string]bool{
	"data-dir": true, "url": true, "token-file": true, "log-format": true, "log-level": true,
	"catalog-file": true, "listen": true, "public-url": true, "allowed-origin": true,
	"shutdown-timeout": true, "admin-token-ttl": true, "issuer": true, "token-max-ttl": true,
	"anthropic-upstream": true, "openai-upstream": true, "anthropic-key-file": true, "openai-key-file": true,
	"agents-dir": true, "sessions-dir": true, "custom-agent": true, "custom-agent-env": true, "amp-command": true,
	"agent-sandbox": true, "agent-user": true, "agent-network": true, "agent-read": true, "agent-write": true,
	"agent-allow-port": true, "database": true, "node-id": true, "lease-ttl": true,
	// The MCP bridge is configured by the broker, through its environment.
	"mcp-url": true,
}

// hasEnvTwin reports whether flag name has an environment twin: one of
// envTwins, or a provider's upstream or key file (one pair per row of the
// catalog's provider table: --gemini-upstream, --openai-key-file…).
func hasEnvTwin(name string) bool {
	if envTwins[name] {
		return true
	}
	for _, p := range catalog.Providers() {
		if name == string(p.Name)+"-upstream" || name == string(p.Name)+"-key-file" {
			return true
		}
	}
	return false
}

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// command is one subcommand. Commands with children dispatch on their next
// argument.
type command struct {
	name     string
	args     string // synopsis of positional arguments
	summary  string
	flags    func(fs *flag.FlagSet, c *config)
	run      func(ctx context.Context, c *config, e *env, args []string) error
	children []*command
	// stdio: stdin and stdout are a protocol stream (an agent, a bridge),
	// written as they are; every other command's output is escaped for
	// the terminal (env.forTerminal).
	stdio bool
	// daemon: the command runs until a signal asks it to stop, and then
	// stops cleanly (exit 0); any other command stopped by a signal exits
	// 128+signal (130 for Ctrl-C).
	daemon bool
}

func commands() []*command {
	return []*command{
		serveCommand(),
		sessionCommand(),
		projectCommand(),
		taskCommand(),
		knowledgeCommand(),
		catalogCommand(),
		agentsCommand(),
		usageCommand(),
		keysCommand(),
		tokenCommand(),
		bridgeCommand(),
		demoCommand(),
		refagentCommand(),
		versionCommand(),
	}
}

// run parses args and runs the chosen command.
func run(ctx context.Context, args []string, e *env) error {
	root := &command{name: "agentbroker", children: commands()}
	return dispatch(ctx, root, []string{"agentbroker"}, args, e)
}

func dispatch(ctx context.Context, cmd *command, path, args []string, e *env) error {
	if len(cmd.children) > 0 {
		if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
			printHelp(e.stdout, cmd, path)
			if len(args) == 0 {
				return errUsage
			}
			return nil
		}
		if args[0] == "help" {
			return helpFor(e, cmd, path, args[1:])
		}
		if len(path) == 1 && (args[0] == "--version" || args[0] == "-version") {
			fmt.Fprintln(e.stdout, versionString())
			return nil
		}
		for _, child := range cmd.children {
			if child.name == args[0] {
				return dispatch(ctx, child, append(path, child.name), args[1:], e)
			}
		}
		fmt.Fprintf(e.stderr, "%s: unknown command %q\n\n", strings.Join(path, " "), args[0])
		printHelp(e.stderr, cmd, path)
		return errUsage
	}

	if !cmd.stdio {
		e = e.forTerminal()
	}
	if e.daemon != nil {
		// A protocol peer (an agent, the MCP bridge) stopped by its parent
		// stops cleanly too.
		*e.daemon = cmd.daemon || cmd.stdio
	}
	cfg := defaultConfig(e.getenv)
	fs := newFlagSet(cmd, path, cfg, e)
	positional, err := cliflag.ParseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if err := applyEnv(fs, e.getenv); err != nil {
		fmt.Fprintf(e.stderr, "%s: %v\n", strings.Join(path, " "), err)
		return errUsage
	}
	return cmd.run(ctx, cfg, e, positional)
}

func newFlagSet(cmd *command, path []string, cfg *config, e *env) *flag.FlagSet {
	fs := flag.NewFlagSet(strings.Join(path, " "), flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	if cmd.flags != nil {
		cmd.flags(fs, cfg)
	}
	fs.Usage = func() { printUsage(e.stderr, cmd, path, fs) }
	return fs
}

// helpFor prints the help of the command named by args under cmd:
// `agentbroker help serve`, `agentbroker help session start`.
func helpFor(e *env, cmd *command, path, args []string) error {
	for len(args) > 0 && len(cmd.children) > 0 {
		var next *command
		for _, c := range cmd.children {
			if c.name == args[0] {
				next = c
			}
		}
		if next == nil {
			fmt.Fprintf(e.stderr, "%s: unknown command %q\n\n", strings.Join(path, " "), args[0])
			printHelp(e.stderr, cmd, path)
			return errUsage
		}
		cmd, path, args = next, append(path, next.name), args[1:]
	}
	if len(args) > 0 {
		return usageError(e, "%s has no subcommands", strings.Join(path, " "))
	}
	if len(cmd.children) > 0 {
		printHelp(e.stdout, cmd, path)
		return nil
	}
	fs := newFlagSet(cmd, path, defaultConfig(e.getenv), e)
	printUsage(e.stdout, cmd, path, fs)
	return nil
}

// applyEnv gives every flag that has an environment twin (envTwins), and
// is not set on the command line, the twin's value when that is set. The
// command line wins.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil || !hasEnvTwin(f.Name) {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %v", envName(f.Name), v, e)
			}
		}
	})
	return err
}

func printHelp(w io.Writer, cmd *command, path []string) {
	fmt.Fprintf(w, "Usage: %s <command> [flags]\n\nCommands:\n", strings.Join(path, " "))
	for _, c := range cmd.children {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nSettings of a deployment (--data-dir, --url, --listen, key files, logging…) can also be set in\n"+
		"the environment: --data-dir is %s. Flags may follow the arguments; \"--\" ends them.\n", envName("data-dir"))
	fmt.Fprintf(w, "Run '%s help <command>' for a command's flags.\n", strings.Join(path, " "))
}

func printUsage(w io.Writer, cmd *command, path []string, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: %s [flags] %s\n\n%s\n", strings.Join(path, " "), cmd.args, cmd.summary)
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	if len(names) == 0 {
		return
	}
	sort.Strings(names)
	fmt.Fprintln(w, "\nFlags (the environment twin, where there is one, in brackets):")
	for _, n := range names {
		f := fs.Lookup(n)
		def := ""
		if f.DefValue != "" && f.DefValue != "false" {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		twin := ""
		if hasEnvTwin(n) {
			twin = " [" + envName(n) + "]"
		}
		fmt.Fprintf(w, "  --%s%s\n      %s%s\n", n, twin, f.Usage, def)
	}
}

// config is every setting, typed. Each command registers the flags it uses.
type config struct {
	DataDir     string
	Database    string // --database: a PostgreSQL URL (secret: never logged)
	NodeID      string
	LeaseTTL    time.Duration
	LogFormat   string
	LogLevel    string
	CatalogFile string

	Listen         string
	PublicURL      string
	AllowedOrigins stringsFlag

	// BrokerURL is --url; empty means the URL the broker wrote into the
	// data directory (brokerURLFile).
	BrokerURL string
	TokenFile string

	// onReady, when set (the demo), is told the broker's URL once it serves.
	onReady func(url string)

	AgentsDir      string
	SessionsDir    string
	AgentSandbox   string
	AgentUser      string
	AgentNetwork   string
	AgentRead      stringsFlag
	AgentWrite     stringsFlag
	AgentPorts     stringsFlag
	CustomAgent    string
	CustomAgentEnv stringsFlag
	AmpCommand     string

	// Providers are the inference proxy's upstreams, one per row of the
	// catalog's provider table (--<provider>-upstream, --<provider>-key-file).
	Providers       map[catalog.Provider]*providerConfig
	ShutdownTimeout time.Duration
	Issuer          string
	TokenMaxTTL     time.Duration
	AdminTokenTTL   time.Duration
}

func defaultConfig(getenv func(string) string) *config {
	return &config{
		DataDir:         defaultDataDir(getenv),
		LogFormat:       "text",
		LogLevel:        "info",
		Listen:          "127.0.0.1:7420",
		ShutdownTimeout: 15 * time.Second,
		AgentSandbox:    "on",
		AgentNetwork:    "broker",
		Issuer:          "agentbroker",
		TokenMaxTTL:     24 * time.Hour,
		AdminTokenTTL:   90 * 24 * time.Hour,
		LeaseTTL:        sessions.DefaultLeaseTTL,

		Providers: defaultProviders(),
	}
}

// providerConfig is where the inference proxy sends one provider's calls
// and where the platform's key for it is.
type providerConfig struct {
	Upstream string
	KeyFile  string
}

func defaultProviders() map[catalog.Provider]*providerConfig {
	out := map[catalog.Provider]*providerConfig{}
	for _, p := range catalog.Providers() {
		out[p.Name] = &providerConfig{Upstream: p.DefaultUpstream}
	}
	return out
}

// defaultDataDir follows the XDG base directory spec.
func defaultDataDir(getenv func(string) string) string {
	if d := getenv("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "agentbroker")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "share", "agentbroker")
	}
	return filepath.Join(os.TempDir(), "agentbroker")
}

// storeFlags are the flags of every command that opens the data directory.
func storeFlags(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for the database, keys and the admin token")
	databaseFlag(fs, c)
	logFlags(fs, c)
}

func logFlags(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format on stderr: text or json")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn or error")
}

func catalogFlag(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.CatalogFile, "catalog-file", c.CatalogFile, "operator override file layered on the embedded model catalog")
}

// logger builds the process's logger on stderr.
func (c *config) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.LogFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", c.LogFormat)
}

// usageError prints msg and the command's usage hint.
func usageError(e *env, format string, a ...any) error {
	fmt.Fprintf(e.stderr, format+"\n", a...)
	return errUsage
}
