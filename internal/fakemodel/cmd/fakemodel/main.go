// Command fakemodel serves the scripted model upstream (package fakemodel)
// on loopback, for the examples and anyone trying the broker without a
// model provider. It prints its URL on one line of stdout and serves until
// it gets SIGINT or SIGTERM. The key it accepts comes from
// FAKEMODEL_API_KEY (default fakemodel.DefaultAPIKey), never a flag. Each
// request is logged on stderr (auth_ok=false: it did not carry exactly
// that key).
//
//	fakemodel --tool get_task --prompt 'task (tsk_[a-z0-9]+)' --args '{"id":"$1"}'
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"regexp"
	"syscall"

	"github.com/agentbroker/agentbroker/internal/fakemodel"
)

func main() {
	tool := flag.String("tool", "", "ask for the offered tool whose name ends with this")
	prompt := flag.String("prompt", "", "only when the latest user message matches this regexp; its groups fill $1… in --args")
	args := flag.String("args", "{}", "the tool's arguments, a JSON object")
	reply := flag.String("reply", "", "the text before the tool's result in the final answer")
	flag.Parse()

	// A line per request on stderr (path, model, whether the expected key
	// and no other came): the examples check that no request carried
	// anything else, such as a session's inference token.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts := &fakemodel.Options{APIKey: os.Getenv("FAKEMODEL_API_KEY"), Logger: logger}
	if *tool != "" {
		r := fakemodel.Rule{Tool: *tool, Arguments: json.RawMessage(*args), Reply: *reply}
		if *prompt != "" {
			re, err := regexp.Compile(*prompt)
			if err != nil {
				fmt.Fprintln(os.Stderr, "fakemodel: --prompt:", err)
				os.Exit(2)
			}
			r.Prompt = re
		}
		opts.Rules = []fakemodel.Rule{r}
	}
	s := fakemodel.New(opts)
	url, err := s.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakemodel:", err)
		os.Exit(1)
	}
	defer s.Close()
	fmt.Println(url)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
}
