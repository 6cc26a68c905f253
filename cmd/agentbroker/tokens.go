package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agentbroker/agentbroker/internal/adminapi"
	"github.com/agentbroker/agentbroker/internal/cliflag"
	"github.com/agentbroker/agentbroker/tokens"
)

// openTokens opens the data directory's store and token service, for
// `token inspect` alone: it must work with the broker stopped (a token
// refused while the broker is down is still worth diagnosing). SQLite in
// WAL mode serves it and a running broker together.
func openTokens(ctx context.Context, c *config, e *env) (*tokens.Service, func(), error) {
	log, err := c.logger(e.stderr)
	if err != nil {
		return nil, nil, err
	}
	st, _, err := openBrokerStore(ctx, c, log)
	if err != nil {
		return nil, nil, err
	}
	svc, err := tokens.New(ctx, st, st, c.tokenOptions(log))
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return svc, func() { st.Close() }, nil
}

// keysAnswer is what the key routes answer.
type keysAnswer struct {
	SigningKID string             `json:"signing_kid,omitempty"`
	Keys       []adminapi.KeyJSON `json:"keys"`
}

func keysCommand() *command {
	var jsonOut bool
	flags := func(fs *flag.FlagSet, c *config) { brokerFlags(fs, c); jsonFlag(fs, &jsonOut) }
	keysCall := func(ctx context.Context, c *config, e *env, method, path string) error {
		a, err := newAPIClient(c)
		if err != nil {
			return err
		}
		var out keysAnswer
		if err := a.call(ctx, method, path, nil, &out); err != nil {
			return err
		}
		if jsonOut {
			return printJSON(e.stdout, out)
		}
		if out.SigningKID != "" {
			fmt.Fprintf(e.stdout, "new signing key %s\n", out.SigningKID)
		}
		printKeys(e.stdout, out.Keys)
		return nil
	}
	return &command{
		name:    "keys",
		summary: "list, rotate and retire the token signing keys",
		children: []*command{
			{
				name: "list", summary: "list the signing keys", flags: flags,
				run: func(ctx context.Context, c *config, e *env, args []string) error {
					if len(args) > 0 {
						return usageError(e, "keys list takes flags only")
					}
					return keysCall(ctx, c, e, "GET", "/v1/keys")
				},
			},
			{
				name: "rotate", summary: "add a new signing key; older keys verify until retired", flags: flags,
				run: func(ctx context.Context, c *config, e *env, args []string) error {
					if len(args) > 0 {
						return usageError(e, "keys rotate takes flags only")
					}
					return keysCall(ctx, c, e, "POST", "/v1/keys/rotate")
				},
			},
			{
				name: "retire", args: "KID", summary: "retire a key: tokens it signed stop verifying", flags: flags,
				run: func(ctx context.Context, c *config, e *env, args []string) error {
					if len(args) != 1 {
						return usageError(e, "usage: agentbroker keys retire KID")
					}
					return keysCall(ctx, c, e, "POST", "/v1/keys/"+url.PathEscape(args[0])+"/retire")
				},
			},
		},
	}
}

func printKeys(w io.Writer, keys []adminapi.KeyJSON) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tCREATED\tSTATE")
	for _, k := range keys {
		state := "verifies"
		switch {
		case k.RetiredAt != nil:
			state = "retired " + k.RetiredAt.Format(time.RFC3339)
		case k.Signing:
			state = "signing"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", k.ID, k.CreatedAt.Format(time.RFC3339), state)
	}
	tw.Flush()
}

func tokenCommand() *command {
	var req adminapi.MintRequest
	var scopes string
	var jsonOut bool
	var revoke adminapi.RevokeRequest
	return &command{
		name:    "token",
		summary: "mint, inspect and revoke tokens",
		children: []*command{
			{
				name:    "mint",
				summary: "mint a token on the running broker and print it on stdout",
				flags: func(fs *flag.FlagSet, c *config) {
					brokerFlags(fs, c)
					fs.StringVar(&req.Subject, "subject", "cli", "the user the token acts for")
					fs.StringVar(&req.Purpose, "purpose", "", "what the token opens: mcp, proxy, viewer or admin")
					fs.StringVar(&req.Project, "project", "", "project ID or name (required but for admin tokens)")
					fs.StringVar(&req.Session, "session", "", "session ID (required but for admin tokens)")
					fs.StringVar(&req.Agent, "agent", "", "agent name: claude-code, codex or amp")
					fs.StringVar(&scopes, "scope", "", "scopes, comma- or space-separated (see tokens.AllScopes)")
					fs.Func("ttl", "lifetime: seconds, or a duration such as 30m (default: the service default, at most the broker's --token-max-ttl)", func(v string) error {
						d, err := cliflag.ParseDuration(v)
						if err != nil {
							return err
						}
						req.TTL = d.String()
						return nil
					})
					fs.BoolVar(&jsonOut, "json", false, "print the token, its jti and expiry as JSON")
				},
				run: func(ctx context.Context, c *config, e *env, args []string) error {
					if len(args) > 0 {
						return usageError(e, "token mint takes flags only")
					}
					req.Scopes = strings.FieldsFunc(scopes, func(r rune) bool { return r == ',' || r == ' ' })
					a, err := newAPIClient(c)
					if err != nil {
						return err
					}
					if req.Project != "" {
						if req.Project, err = a.projectID(ctx, req.Project); err != nil {
							return err
						}
					}
					var out adminapi.MintResponse
					if err := a.call(ctx, "POST", "/v1/tokens", req, &out); err != nil {
						return err
					}
					if jsonOut {
						return printJSON(e.stdout, out)
					}
					fmt.Fprintln(e.stdout, out.Token)
					return nil
				},
			},
			{
				name: "inspect",
				summary: "decode a token read from stdin, without trusting it, and mark what fails verification; " +
					"reads the data directory itself, so it works with the broker stopped",
				flags: func(fs *flag.FlagSet, c *config) { storeFlags(fs, c); tokenFlags(fs, c) },
				run: func(ctx context.Context, c *config, e *env, args []string) error {
					if len(args) > 0 {
						return usageError(e, "token inspect reads the token from stdin, never from the command line (it would show in ps and shell history)")
					}
					raw, err := readToken(e.stdin)
					if err != nil {
						return err
					}
					svc, done, err := openTokens(ctx, c, e)
					if err != nil {
						return err
					}
					defer done()
					return inspect(ctx, e.stdout, svc, raw)
				},
			},
			{
				name:    "revoke",
				summary: "revoke one token by jti, or every token of a session",
				flags: func(fs *flag.FlagSet, c *config) {
					brokerFlags(fs, c)
					fs.StringVar(&revoke.ID, "jti", "", "the token's jti (see token inspect)")
					fs.StringVar(&revoke.Session, "session", "", "a session ID: revokes all its tokens")
				},
				run: func(ctx context.Context, c *config, e *env, args []string) error {
					if len(args) > 0 || (revoke.ID == "") == (revoke.Session == "") {
						return usageError(e, "usage: agentbroker token revoke --jti J | --session S")
					}
					a, err := newAPIClient(c)
					if err != nil {
						return err
					}
					if err := a.call(ctx, "POST", "/v1/tokens/revoke", revoke, nil); err != nil {
						return err
					}
					if revoke.ID != "" {
						fmt.Fprintf(e.stdout, "revoked token %s\n", revoke.ID)
					} else {
						fmt.Fprintf(e.stdout, "revoked every token of session %s\n", revoke.Session)
					}
					return nil
				},
			},
		},
	}
}

// readToken reads one token from r: the first non-empty line, bounded.
func readToken(r io.Reader) (string, error) {
	sc := bufio.NewScanner(io.LimitReader(r, tokens.MaxTokenSize*2))
	sc.Buffer(make([]byte, 0, 4096), tokens.MaxTokenSize*2)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			return line, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read token from stdin: %w", err)
	}
	return "", errors.New("no token on stdin (pipe it in: agentbroker token inspect < token.txt)")
}

// inspect prints what a token says and what fails verification. It exits
// non-zero (errSilent) when the token would be refused.
func inspect(ctx context.Context, w io.Writer, svc *tokens.Service, raw string) error {
	in, err := tokens.Inspect(raw)
	if err != nil {
		fmt.Fprintf(w, "not a token: %v\n", err)
		return errSilent
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	fmt.Fprintln(w, "header (untrusted):")
	enc.Encode(in.Header)
	fmt.Fprintln(w, "payload (untrusted):")
	enc.Encode(in.Payload)
	rep := svc.Check(ctx, raw, "")
	fmt.Fprintln(w, "verification:")
	fmt.Fprint(w, rep.String())
	if !rep.Valid() {
		fmt.Fprintln(w, "INVALID: the broker would refuse this token")
		return errSilent
	}
	fmt.Fprintln(w, "VALID")
	return nil
}
