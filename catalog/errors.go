package catalog

import (
	"errors"
	"fmt"
	"strings"
)

// Errors callers branch on. Resolve, CheckEndpoint, DetectProvider and Cost
// wrap them with the IDs involved; match them with errors.Is.
var (
	// ErrUnknownAgent: the agent has no policy in the catalog.
	ErrUnknownAgent = errors.New("catalog: unknown agent")
	// ErrUnknownModel: the wire ID is neither a canonical ID nor an alias.
	ErrUnknownModel = errors.New("catalog: unknown model")
	// ErrModelNotAllowed: the model exists but the agent's policy does not allow it.
	ErrModelNotAllowed = errors.New("catalog: model not allowed")
	// ErrNotSessionModel: the agent may use the model, but the session
	// asking was given another one and the model is not one of the
	// agent's side models.
	ErrNotSessionModel = errors.New("catalog: not the session's model")
	// ErrRetired: the model is retired upstream. The error is a *RetiredError
	// naming the replacement.
	ErrRetired = errors.New("catalog: model is retired")
	// ErrWrongEndpoint: the model does not serve the API style asked for,
	// or the agent does not speak it.
	ErrWrongEndpoint = errors.New("catalog: wrong endpoint")
	// ErrUnknownProvider: DetectProvider does not recognise the ID's shape.
	ErrUnknownProvider = errors.New("catalog: unknown provider")
	// ErrInvalidCatalog: Load refused the catalog; the error is a *ValidationError.
	ErrInvalidCatalog = errors.New("catalog: invalid catalog")
	// ErrInvalidUsage: Cost was given a negative token count or no model.
	ErrInvalidUsage = errors.New("catalog: invalid usage")
	// ErrOverflow: a cost does not fit in an int64 of pico-USD.
	ErrOverflow = errors.New("catalog: cost overflows int64 pico-USD")
)

// RetiredError is returned by Resolve for a retired model. errors.Is(err,
// ErrRetired) holds.
type RetiredError struct {
	// Model is the wire ID as the client sent it.
	Model string
	// Replacement is the active canonical ID to use instead (the end of the
	// replacement chain).
	Replacement string
}

func (e *RetiredError) Error() string {
	if e.Replacement == "" {
		return fmt.Sprintf("model %q is retired", e.Model)
	}
	return fmt.Sprintf("model %q is retired; use %q", e.Model, e.Replacement)
}

// Is reports whether target is ErrRetired.
func (e *RetiredError) Is(target error) bool { return target == ErrRetired }

// Unwrap returns ErrRetired.
func (e *RetiredError) Unwrap() error { return ErrRetired }

// Where a problem was found.
const (
	sourceEmbedded = "embedded"
	sourceOverride = "override"
)

// Problem is one thing wrong with a catalog, located as precisely as the
// check allows.
type Problem struct {
	// Source is the file the offending entry comes from: "embedded" or "override".
	Source string `json:"source,omitempty"`
	// Model is the canonical ID of the model concerned, if any.
	Model string `json:"model,omitempty"`
	// Agent is the agent whose policy is concerned, if any.
	Agent string `json:"agent,omitempty"`
	// Field is the JSON path of the offending value (within the model or
	// policy when one is named, within the file otherwise).
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// String renders the problem on one line, e.g.
// `override: model "gpt-5.5": prices.cache_read: cache read price 6000000 is above the input price 5000000`.
func (p Problem) String() string {
	var b strings.Builder
	if p.Source != "" {
		b.WriteString(p.Source + ": ")
	}
	if p.Model != "" {
		fmt.Fprintf(&b, "model %q: ", p.Model)
	}
	if p.Agent != "" {
		fmt.Fprintf(&b, "agent %q: ", p.Agent)
	}
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// ValidationError is Load's error for a catalog with problems; it lists
// every one. errors.Is(err, ErrInvalidCatalog) holds.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "catalog: %d problem(s):", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  " + p.String())
	}
	return b.String()
}

// Is reports whether target is ErrInvalidCatalog.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidCatalog }

// Unwrap returns ErrInvalidCatalog.
func (e *ValidationError) Unwrap() error { return ErrInvalidCatalog }
