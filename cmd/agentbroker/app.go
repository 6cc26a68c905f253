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

	"github.com/agentbroker/agentbroker/internal/termtext"
	"github.com/agentbroker/agentbroker/sessions"
)

// env is the process's outside world, injected so tests can run commands
// in-process.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
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

// envPrefix is the one prefix under which every flag has an environment twin:
// --data-dir is AGENTBROKER_DATA_DIR.
const envPrefix = "AGENTBROKER_"

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
	// interspersed: flags may follow the positional arguments
	// (`task run TASK --agent A`).
	interspersed bool
}

func commands() []*command {
	return []*command{
		serveCommand(),
		sessionCommand(),
		projectCommand(),
		taskCommand(),
		knowledgeCommand(),
		catalogCommand(),
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
		if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
			printHelp(e.stdout, cmd, path)
			if len(args) == 0 {
				return errUsage
			}
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
	cfg := defaultConfig(e.getenv)
	fs := flag.NewFlagSet(strings.Join(path, " "), flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	if cmd.flags != nil {
		cmd.flags(fs, cfg)
	}
	fs.Usage = func() { printUsage(e.stderr, cmd, path, fs) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	var positional []string
	for cmd.interspersed && fs.NArg() > 0 {
		positional = append(positional, fs.Arg(0))
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return errUsage
		}
	}
	if err := applyEnv(fs, e.getenv); err != nil {
		fmt.Fprintf(e.stderr, "%s: %v\n", strings.Join(path, " "), err)
		return errUsage
	}
	return cmd.run(ctx, cfg, e, append(positional, fs.Args()...))
}

// applyEnv gives every flag not set on the command line the value of its
// environment twin, when that is set. The command line wins.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
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
	fmt.Fprintf(w, "\nEvery flag can also be set in the environment: --data-dir is %s.\n", envName("data-dir"))
	fmt.Fprintf(w, "Run '%s <command> -h' for a command's flags.\n", strings.Join(path, " "))
}

func printUsage(w io.Writer, cmd *command, path []string, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: %s [flags] %s\n\n%s\n", strings.Join(path, " "), cmd.args, cmd.summary)
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	if len(names) == 0 {
		return
	}
	sort.Strings(names)
	fmt.Fprintln(w, "\nFlags (environment twin in brackets):")
	for _, n := range names {
		f := fs.Lookup(n)
		def := ""
		if f.DefValue != "" && f.DefValue != "false" {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "  --%s [%s]\n      %s%s\n", n, envName(n), f.Usage, def)
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

	AnthropicUpstream string
	OpenAIUpstream    string
	AnthropicKeyFile  string
	OpenAIKeyFile     string
	ShutdownTimeout   time.Duration
	Issuer            string
	TokenMaxTTL       time.Duration
	AdminTokenTTL     time.Duration
}

func defaultConfig(getenv func(string) string) *config {
	return &config{
		DataDir:         defaultDataDir(getenv),
		LogFormat:       "text",
		LogLevel:        "info",
		Listen:          "127.0.0.1:7420",
		BrokerURL:       "http://127.0.0.1:7420",
		ShutdownTimeout: 15 * time.Second,
		AgentSandbox:    "on",
		AgentNetwork:    "broker",
		Issuer:          "agentbroker",
		TokenMaxTTL:     24 * time.Hour,
		AdminTokenTTL:   90 * 24 * time.Hour,
		LeaseTTL:        sessions.DefaultLeaseTTL,

		AnthropicUpstream: "https://api.anthropic.com",
		OpenAIUpstream:    "https://api.openai.com",
	}
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
