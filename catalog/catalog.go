package catalog

import (
	"cmp"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Provider is who serves a model: the upstream API the proxy sends it to.
type Provider string

// The providers the proxy can route to.
const (
	ProviderAnthropic Provider = "anthropic"
	ProviderOpenAI    Provider = "openai"
)

// Endpoint is an API style a model serves and an agent speaks.
type Endpoint string

// The API styles.
const (
	// EndpointMessages is Anthropic's Messages API (POST /v1/messages).
	EndpointMessages Endpoint = "messages"
	// EndpointResponses is OpenAI's Responses API (POST /v1/responses).
	EndpointResponses Endpoint = "responses"
	// EndpointChat is OpenAI's Chat Completions API (POST /v1/chat/completions).
	EndpointChat Endpoint = "chat"
)

// Status is where a model is in its lifecycle.
type Status string

// The lifecycle states.
const (
	// StatusPreview models route but may change or vanish at short notice;
	// they are never an agent's default.
	StatusPreview Status = "preview"
	// StatusActive models are fully supported.
	StatusActive Status = "active"
	// StatusDeprecated models still route, but have a replacement that
	// pickers show next to them.
	StatusDeprecated Status = "deprecated"
	// StatusRetired models no longer exist upstream. They stay in the
	// catalog so that Resolve can answer "retired, use X".
	StatusRetired Status = "retired"
)

// MaxFileSize is the largest catalog file (embedded or override) accepted.
const MaxFileSize = 4 << 20

// SchemaVersion is the only catalog file format this package reads. A
// file's "schema_version" may be omitted; if present it must equal this.
const SchemaVersion = 1

// Model is one canonical model.
type Model struct {
	// ID is the canonical wire ID, the string the provider accepts.
	ID string `json:"id"`
	// Provider is who serves the model (routing uses this, never DetectProvider).
	Provider Provider `json:"provider"`
	// Lab is who made the model; it may differ from Provider.
	Lab         string `json:"lab"`
	DisplayName string `json:"display_name"`
	// Family groups a line of models (claude-opus, gpt-mini, o …) for pickers.
	Family string `json:"family"`
	// Aliases are other exact wire IDs for this same model (dated
	// snapshots). Exact strings only, never patterns.
	Aliases []string `json:"aliases,omitempty"`
	Limits  Limits   `json:"limits"`
	Prices  Prices   `json:"prices"`
	// ReasoningEfforts are the values the model accepts for its effort
	// setting (none, minimal, low, medium, high, xhigh, max); empty when
	// it has none or when the catalog does not record them.
	ReasoningEfforts []string `json:"reasoning_efforts,omitempty"`
	// Endpoints are the API styles the model serves.
	Endpoints  []Endpoint `json:"endpoints,omitempty"`
	Lifecycle  Lifecycle  `json:"lifecycle"`
	Provenance Provenance `json:"provenance"`
	// Note records why a value was chosen where sources disagree.
	Note string `json:"note,omitempty"`
}

// Serves reports whether the model serves the API style ep.
func (m *Model) Serves(ep Endpoint) bool { return slices.Contains(m.Endpoints, ep) }

// Limits are token limits. Zero means unknown (allowed only for retired models).
type Limits struct {
	// Context is the context window: input and output together.
	Context int64 `json:"context"`
	// MaxInput caps the prompt when it is smaller than Context; 0 means Context.
	MaxInput  int64 `json:"max_input,omitempty"`
	MaxOutput int64 `json:"max_output"`
}

// Prices are in micro-USD per million tokens ($3/M is 3000000), so that a
// price times a token count is exactly pico-USD. A zero cache price means the
// provider has no separate price for those tokens: Cost bills them as input.
type Prices struct {
	Input        int64 `json:"input"`
	Output       int64 `json:"output"`
	CacheRead    int64 `json:"cache_read,omitempty"`
	CacheWrite5m int64 `json:"cache_write_5m,omitempty"`
	CacheWrite1h int64 `json:"cache_write_1h,omitempty"`
	// Tiers are long-context prices, ascending by threshold.
	Tiers []PriceTier `json:"tiers,omitempty"`
}

// PriceTier replaces every price of a request whose prompt (input plus
// cache read plus cache write tokens) exceeds AboveInputTokens.
type PriceTier struct {
	AboveInputTokens int64 `json:"above_input_tokens"`
	Input            int64 `json:"input"`
	Output           int64 `json:"output"`
	CacheRead        int64 `json:"cache_read,omitempty"`
	CacheWrite5m     int64 `json:"cache_write_5m,omitempty"`
	CacheWrite1h     int64 `json:"cache_write_1h,omitempty"`
}

// Lifecycle is a model's status, its dates (YYYY-MM-DD) and its replacement.
// Resolve reads only Status: dates are records, not a clock.
type Lifecycle struct {
	Status Status `json:"status"`
	// Released is required except for retired models.
	Released string `json:"released,omitempty"`
	// Deprecated is when the provider announced the deprecation.
	Deprecated string `json:"deprecated,omitempty"`
	// Shutdown is when requests start to fail: past for a retired model,
	// announced for a deprecated one.
	Shutdown string `json:"shutdown,omitempty"`
	// Replacement is the canonical ID to use instead; required for
	// deprecated and retired models, forbidden otherwise.
	Replacement string `json:"replacement,omitempty"`
}

// Provenance says where a model's row comes from and when it was last checked.
type Provenance struct {
	Source     string `json:"source"`
	VerifiedOn string `json:"verified_on"`
}

// Policy is what one agent may use.
type Policy struct {
	Agent string `json:"agent"`
	// API is the API style the agent speaks; every model it is allowed
	// (unless retired) must serve it.
	API Endpoint `json:"api"`
	// Default is the model a new session gets: selectable and active.
	Default string `json:"default"`
	// Selectable are the canonical IDs a picker offers: a subset of Allowed.
	Selectable []string `json:"selectable"`
	// Allowed are the canonical IDs the proxy lets this agent use (their
	// aliases are allowed with them). Side-call models (titles,
	// summaries) are allowed without being selectable.
	Allowed []string `json:"allowed"`
	// SideModels are the models every session of this agent may also use
	// besides the one it was given, whatever that one is: the agent's own
	// side calls (titles, summaries, classifiers). Each is allowed and not
	// retired. A session's inference token is good for its model and these
	// (Catalog.ResolveSession); empty means the chosen model alone.
	SideModels []SideModel `json:"side_models,omitempty"`
	Note       string      `json:"note,omitempty"`
}

// SideModel is a model an agent calls on its own, next to the session's.
type SideModel struct {
	// ID is the canonical model ID.
	ID string `json:"id"`
	// Use says what the agent calls it for, for people and pickers.
	Use string `json:"use"`
}

func (p Policy) clone() Policy {
	p.Selectable = slices.Clone(p.Selectable)
	p.Allowed = slices.Clone(p.Allowed)
	p.SideModels = slices.Clone(p.SideModels)
	return p
}

// file is the JSON document: the embedded catalog and an override share it.
type file struct {
	// SchemaVersion is optional (absent means SchemaVersion); any other
	// version is refused, as its fields may mean something else.
	SchemaVersion int      `json:"schema_version,omitempty"`
	Models        []Model  `json:"models,omitempty"`
	Agents        []Policy `json:"agents,omitempty"`
}

//go:embed data/catalog.json
var embeddedJSON []byte

// Catalog is a loaded, validated catalog. It is immutable.
type Catalog struct {
	models   []*Model          // sorted: provider, family, newest first, ID
	byID     map[string]*Model // canonical IDs
	byWire   map[string]*Model // canonical IDs and aliases
	policies map[string]*policy
	agents   []string // sorted
	hash     string
}

type policy struct {
	Policy
	allowed    map[string]bool
	selectable map[string]bool
}

// embeddedParsed is the embedded JSON decoded once, before any merging.
var embeddedParsed = sync.OnceValues(func() (*file, []Problem) { return decode(embeddedJSON, sourceEmbedded) })

// embedded is parsed once; the data is proven valid by TestEmbeddedIsValid.
var embedded = sync.OnceValues(func() (*Catalog, error) { return load(nil) })

// Embedded returns the embedded catalog, parsed once. It panics if the
// embedded data is invalid, which TestEmbeddedIsValid rules out at build time.
func Embedded() *Catalog {
	c, err := embedded()
	if err != nil {
		panic("catalog: embedded data is invalid: " + err.Error())
	}
	return c
}

// Load returns the embedded catalog with override layered on top (nil means
// the embedded catalog alone). In the override, a model whose id exists
// replaces that model, a new id is added, and an agent policy replaces that
// agent's policy (or adds an agent). The merged result must pass every
// invariant; otherwise the error is a *ValidationError listing every
// problem, and errors.Is(err, ErrInvalidCatalog).
func Load(override []byte) (*Catalog, error) {
	if override == nil {
		return embedded()
	}
	return load(override)
}

func load(override []byte) (*Catalog, error) {
	f, problems := merge(override)
	if len(problems) > 0 {
		return nil, &ValidationError{Problems: problems}
	}
	return build(f)
}

// Check validates the embedded catalog merged with override (nil: the
// embedded one alone) and returns every problem found, or nil. JSON
// problems (syntax, unknown or duplicate fields, wrong types, trailing
// data, size) come first and alone, since invariants cannot be checked on a
// file that does not decode; otherwise every invariant violation is listed.
func Check(override []byte) []Problem {
	_, problems := merge(override)
	return problems
}

// merge decodes the embedded file and the override, layers them and
// validates the result.
func merge(override []byte) (*file, []Problem) {
	parsed, problems := embeddedParsed()
	if len(problems) > 0 {
		return nil, problems
	}
	// A shallow copy: merging replaces and appends entries, and nothing
	// ever writes into a Model or Policy, so their slices can be shared.
	base := &file{SchemaVersion: parsed.SchemaVersion, Models: slices.Clone(parsed.Models), Agents: slices.Clone(parsed.Agents)}
	// origin maps "model:<id>" and "agent:<name>" to the file the entry
	// came from, to locate problems.
	origin := make(map[string]string)
	for _, m := range base.Models {
		origin["model:"+m.ID] = sourceEmbedded
	}
	for _, p := range base.Agents {
		origin["agent:"+p.Agent] = sourceEmbedded
	}
	if override != nil {
		over, decodeProblems := decode(override, sourceOverride)
		if len(decodeProblems) > 0 {
			return nil, decodeProblems
		}
		problems = layer(base, over, origin)
	}
	problems = append(problems, validate(base, origin)...)
	if len(problems) > 0 {
		return nil, problems
	}
	return base, nil
}

// layer applies over onto base in place. Duplicates inside the override are
// problems (which entry should win would be a guess).
func layer(base, over *file, origin map[string]string) []Problem {
	var problems []Problem
	modelAt := make(map[string]int, len(base.Models))
	for i, m := range base.Models {
		modelAt[m.ID] = i
	}
	seen := make(map[string]bool)
	for i, m := range over.Models {
		if seen[m.ID] {
			problems = append(problems, Problem{Source: sourceOverride, Model: m.ID, Field: fmt.Sprintf("models[%d].id", i),
				Message: "the override lists this model twice"})
			continue
		}
		seen[m.ID] = true
		origin["model:"+m.ID] = sourceOverride
		if j, ok := modelAt[m.ID]; ok {
			base.Models[j] = m
		} else {
			modelAt[m.ID] = len(base.Models)
			base.Models = append(base.Models, m)
		}
	}
	agentAt := make(map[string]int, len(base.Agents))
	for i, p := range base.Agents {
		agentAt[p.Agent] = i
	}
	seen = make(map[string]bool)
	for i, p := range over.Agents {
		if seen[p.Agent] {
			problems = append(problems, Problem{Source: sourceOverride, Agent: p.Agent, Field: fmt.Sprintf("agents[%d].agent", i),
				Message: "the override lists this agent twice"})
			continue
		}
		seen[p.Agent] = true
		origin["agent:"+p.Agent] = sourceOverride
		if j, ok := agentAt[p.Agent]; ok {
			base.Agents[j] = p
		} else {
			agentAt[p.Agent] = len(base.Agents)
			base.Agents = append(base.Agents, p)
		}
	}
	return problems
}

// build indexes a validated file.
func build(f *file) (*Catalog, error) {
	c := &Catalog{
		byID:     make(map[string]*Model, len(f.Models)),
		byWire:   make(map[string]*Model),
		policies: make(map[string]*policy, len(f.Agents)),
	}
	for i := range f.Models {
		m := &f.Models[i]
		c.models = append(c.models, m)
		c.byID[m.ID] = m
		c.byWire[m.ID] = m
		for _, a := range m.Aliases {
			c.byWire[a] = m
		}
	}
	slices.SortFunc(c.models, func(a, b *Model) int {
		return cmp.Or(
			cmp.Compare(a.Provider, b.Provider),
			cmp.Compare(a.Family, b.Family),
			-cmp.Compare(a.Lifecycle.Released, b.Lifecycle.Released),
			cmp.Compare(a.ID, b.ID),
		)
	})
	for _, p := range f.Agents {
		pi := &policy{Policy: p.clone(), allowed: make(map[string]bool), selectable: make(map[string]bool)}
		for _, id := range p.Allowed {
			pi.allowed[id] = true
		}
		for _, id := range p.Selectable {
			pi.selectable[id] = true
		}
		c.policies[p.Agent] = pi
		c.agents = append(c.agents, p.Agent)
	}
	slices.Sort(c.agents)

	canon := file{SchemaVersion: f.SchemaVersion, Models: slices.Clone(f.Models), Agents: slices.Clone(f.Agents)}
	slices.SortFunc(canon.Models, func(a, b Model) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(canon.Agents, func(a, b Policy) int { return cmp.Compare(a.Agent, b.Agent) })
	b, err := json.Marshal(canon)
	if err != nil {
		return nil, fmt.Errorf("catalog: encode for hashing: %w", err)
	}
	sum := sha256.Sum256(b)
	c.hash = hex.EncodeToString(sum[:])
	return c, nil
}

// Models returns every model, retired ones included, ordered by provider,
// family, newest release first, then ID. The models are shared: read-only.
func (c *Catalog) Models() []*Model { return slices.Clone(c.models) }

// Agents returns the names of the agents with a policy, sorted.
func (c *Catalog) Agents() []string { return slices.Clone(c.agents) }

// Policy returns a copy of agent's policy, or an error wrapping ErrUnknownAgent.
func (c *Catalog) Policy(agent string) (Policy, error) {
	p, err := c.policy(agent)
	if err != nil {
		return Policy{}, err
	}
	return p.clone(), nil
}

func (c *Catalog) policy(agent string) (*policy, error) {
	p, ok := c.policies[agent]
	if !ok {
		return nil, fmt.Errorf("%w %s (known agents: %s)", ErrUnknownAgent, quote(agent), strings.Join(c.agents, ", "))
	}
	return p, nil
}

// Lookup finds a model by canonical ID or alias, for display and
// diagnostics. It is not an allowlist check: the proxy must use Resolve.
func (c *Catalog) Lookup(wireID string) (*Model, bool) {
	m, ok := c.byWire[wireID]
	return m, ok
}

// Hash is the hex SHA-256 of a canonical JSON encoding of the merged
// catalog (models sorted by ID, agents by name), suitable as an HTTP ETag.
func (c *Catalog) Hash() string { return c.hash }
