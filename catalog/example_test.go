package catalog_test

import (
	"errors"
	"fmt"

	"github.com/agentbroker/agentbroker/catalog"
)

// The proxy resolves the model of every request, then checks the route.
func ExampleCatalog_Resolve() {
	c := catalog.Embedded()

	r, err := c.Resolve("amp", "claude-opus-4-6")
	fmt.Println(r.Model.ID, r.Model.Provider, r.Endpoint, r.Alias, err)
	fmt.Println(r.CheckEndpoint(catalog.EndpointMessages))

	r, _ = c.Resolve("codex", "gpt-5.5-2026-04-23")
	fmt.Println(r.Model.ID, r.Alias)

	_, err = c.Resolve("claude-code", "claude-3-opus-20240229")
	fmt.Println(err, errors.Is(err, catalog.ErrRetired))

	_, err = c.Resolve("claude-code", "gpt-5.5")
	fmt.Println(errors.Is(err, catalog.ErrModelNotAllowed))

	_, err = c.Resolve("codex", "llama-3")
	fmt.Println(err)
	// Output:
	// claude-opus-4-6 anthropic messages false <nil>
	// <nil>
	// gpt-5.5 true
	// model "claude-3-opus-20240229" is retired; use "claude-opus-4-8" true
	// true
	// catalog: unknown model "llama-3"
}

// A picker lists the selectable models, the default first.
func ExampleCatalog_ForUI() {
	entries, err := catalog.Embedded().ForUI("codex")
	if err != nil {
		panic(err)
	}
	for _, e := range entries {
		fmt.Println(e.ID, e.DisplayName, e.Default, e.ReasoningEfforts)
	}
	// Output:
	// gpt-5.5 GPT-5.5 true [none low medium high xhigh]
	// gpt-5.4 GPT-5.4 false [none low medium high xhigh]
	// gpt-5.2 GPT-5.2 false [none low medium high xhigh]
	// gpt-5.4-mini GPT-5.4 mini false [none low medium high xhigh]
	// gpt-5.3-codex GPT-5.3 Codex false [low medium high xhigh]
}

func ExampleCost() {
	m, _ := catalog.Embedded().Lookup("gpt-5.5")
	// 300k prompt tokens: above 272k, so the long-context prices apply.
	cost, err := catalog.Cost(m, catalog.Usage{InputTokens: 200_000, CacheReadTokens: 100_000, OutputTokens: 10_000})
	fmt.Println(cost, cost.MicroUSD(), err)
	// Output: $2.550000 2550000 <nil>
}

func ExampleDetectProvider() {
	for _, id := range []string{"o3", "o4-mini", "claude-opus-4-6", "omni", "llama-3"} {
		p, err := catalog.DetectProvider(id)
		fmt.Printf("%s: %q %v\n", id, p, errors.Is(err, catalog.ErrUnknownProvider))
	}
	// Output:
	// o3: "openai" false
	// o4-mini: "openai" false
	// claude-opus-4-6: "anthropic" false
	// omni: "" true
	// llama-3: "" true
}
