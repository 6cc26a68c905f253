package tokens

import (
	"fmt"
	"strconv"
	"strings"
)

// Scope is one permission a token carries. The vocabulary is closed: every
// scope is one of the constants below, and Mint refuses any other.
//
// The vocabulary, and which audience each scope may appear on:
//
//	scope            audiences     grants
//	---------------  ------------  ------------------------------------------------------------
//	project:read     mcp, admin    read the project: its metadata and instructions
//	tasks:read       mcp, admin    list and read the project's tasks
//	tasks:write      mcp, admin    create, update and close tasks
//	knowledge:read   mcp, admin    search and read the project's knowledge
//	knowledge:write  mcp, admin    add and edit knowledge entries
//	sessions:read    mcp, admin    read the transcripts of earlier sessions of the project
//	tasks:manage     mcp, admin    update any task of the project, not only the one bound to the
//	                               token's session (tasks:write alone allows only that one)
//	inference        proxy, admin  call models through the inference proxy (catalog-checked)
//	session:view     viewer, admin watch one session's event stream
//	session:control  viewer, admin prompt, cancel and answer permission requests in one session
//	admin            admin         everything on the admin API
//
// A scope outside its audiences is refused at Mint (ErrInvalidGrant) and
// never satisfies a check (Claims.HasScope), so an MCP token cannot carry
// "inference" and a proxy token cannot carry "tasks:write".
//
// admin implies every other scope, but on the admin audience only: a token
// minted for AudienceAdmin with "admin" passes RequireScope(c, ScopeTasksRead),
// while the same check on any other audience needs the scope itself. A token
// is still only valid for its own audience (Verify checks aud first), so an
// admin token opens nothing at the MCP endpoint, the proxy or a viewer.
type Scope string

// The scope vocabulary; see Scope for the table.
const (
	ScopeProjectRead    Scope = "project:read"
	ScopeTasksRead      Scope = "tasks:read"
	ScopeTasksWrite     Scope = "tasks:write"
	ScopeKnowledgeRead  Scope = "knowledge:read"
	ScopeKnowledgeWrite Scope = "knowledge:write"
	ScopeSessionsRead   Scope = "sessions:read"
	ScopeInference      Scope = "inference"
	ScopeSessionView    Scope = "session:view"
	ScopeSessionControl Scope = "session:control"
	ScopeAdmin          Scope = "admin"
	ScopeTasksManage    Scope = "tasks:manage"
)

// vocabulary is the scope table in its canonical order (the order of the
// "scope" claim). A scope's bit in Scopes is its index here: append only.
var vocabulary = [...]Scope{
	ScopeProjectRead,
	ScopeTasksRead,
	ScopeTasksWrite,
	ScopeKnowledgeRead,
	ScopeKnowledgeWrite,
	ScopeSessionsRead,
	ScopeInference,
	ScopeSessionView,
	ScopeSessionControl,
	ScopeAdmin,
	ScopeTasksManage,
}

// AllScopes returns the whole vocabulary in canonical order (a fresh slice).
func AllScopes() []Scope {
	out := make([]Scope, len(vocabulary))
	copy(out, vocabulary[:])
	return out
}

// Known reports whether s is in the vocabulary.
func (s Scope) Known() bool { return s.bit() != 0 }

func (s Scope) bit() uint32 {
	for i, v := range vocabulary {
		if v == s {
			return 1 << i
		}
	}
	return 0
}

// Scopes is an immutable set of known scopes. The zero value is the empty
// set. It is comparable, safe to copy and to share between goroutines.
type Scopes struct{ bits uint32 }

// ParseScopes parses a space-separated scope list (the "scope" claim, a CLI
// flag). Repeated scopes are fine; an unknown one is an error wrapping
// ErrUnknownScope. The empty string is the empty set.
func ParseScopes(s string) (Scopes, error) {
	var set Scopes
	for _, f := range strings.Fields(s) {
		b := Scope(f).bit()
		if b == 0 {
			return Scopes{}, fmt.Errorf("%w: %s", ErrUnknownScope, strconv.Quote(f))
		}
		set.bits |= b
	}
	return set, nil
}

// NewScopes builds a set from scopes; an unknown one is an error wrapping
// ErrUnknownScope.
func NewScopes(list ...Scope) (Scopes, error) {
	var set Scopes
	for _, s := range list {
		b := s.bit()
		if b == 0 {
			return Scopes{}, fmt.Errorf("%w: %s", ErrUnknownScope, strconv.Quote(string(s)))
		}
		set.bits |= b
	}
	return set, nil
}

// parseKnownScopes parses the scope claim of a verified token, dropping
// names it does not know (a newer broker's scope grants nothing here).
func parseKnownScopes(s string) Scopes {
	var set Scopes
	for _, f := range strings.Fields(s) {
		set.bits |= Scope(f).bit()
	}
	return set
}

// Has reports whether s is in the set. It is plain membership: the admin
// implication lives in Claims.HasScope and RequireScope.
func (set Scopes) Has(s Scope) bool {
	b := s.bit()
	return b != 0 && set.bits&b != 0
}

// Len is the number of scopes in the set.
func (set Scopes) Len() int {
	n := 0
	for b := set.bits; b != 0; b &= b - 1 {
		n++
	}
	return n
}

// List returns the scopes in canonical order.
func (set Scopes) List() []Scope {
	out := make([]Scope, 0, set.Len())
	for i, v := range vocabulary {
		if set.bits&(1<<i) != 0 {
			out = append(out, v)
		}
	}
	return out
}

// String is the space-separated list in canonical order, as in the claim.
func (set Scopes) String() string {
	var b strings.Builder
	for i, v := range vocabulary {
		if set.bits&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(string(v))
		}
	}
	return b.String()
}

// MarshalText encodes the set as its String form.
func (set Scopes) MarshalText() ([]byte, error) { return []byte(set.String()), nil }

// UnmarshalText decodes a space-separated list, as ParseScopes.
func (set *Scopes) UnmarshalText(b []byte) error {
	s, err := ParseScopes(string(b))
	if err != nil {
		return err
	}
	*set = s
	return nil
}

// Audience is what a token is for: the one place that accepts it (the JWT
// "aud" claim). Every token has exactly one.
type Audience string

// The audiences. A token minted for one is refused by every other.
const (
	// AudienceMCP is the project-context MCP endpoint the agent calls back.
	AudienceMCP Audience = "agentbroker:mcp"
	// AudienceProxy is the inference proxy (model calls).
	AudienceProxy Audience = "agentbroker:proxy"
	// AudienceViewer is a session viewer (browser or terminal).
	AudienceViewer Audience = "agentbroker:viewer"
	// AudienceAdmin is the admin API.
	AudienceAdmin Audience = "agentbroker:admin"
)

// Audiences returns every audience (a fresh slice).
func Audiences() []Audience {
	return []Audience{AudienceMCP, AudienceProxy, AudienceViewer, AudienceAdmin}
}

// Known reports whether a is one of the audience constants.
func (a Audience) Known() bool { return a.allowed().bits != 0 }

// SessionBound reports whether tokens for a must name a project and a
// session (every audience but the admin API).
func (a Audience) SessionBound() bool { return a.Known() && a != AudienceAdmin }

// AllowedScopes is the set of scopes a token for a may carry (see the table
// on Scope); empty for an unknown audience.
func (a Audience) AllowedScopes() Scopes { return a.allowed() }

func (a Audience) allowed() Scopes {
	switch a {
	case AudienceMCP:
		return mustScopes(ScopeProjectRead, ScopeTasksRead, ScopeTasksWrite,
			ScopeKnowledgeRead, ScopeKnowledgeWrite, ScopeSessionsRead, ScopeTasksManage)
	case AudienceProxy:
		return mustScopes(ScopeInference)
	case AudienceViewer:
		return mustScopes(ScopeSessionView, ScopeSessionControl)
	case AudienceAdmin:
		return Scopes{bits: 1<<len(vocabulary) - 1}
	}
	return Scopes{}
}

func mustScopes(list ...Scope) Scopes {
	s, err := NewScopes(list...)
	if err != nil {
		panic(err) // the table above names only constants
	}
	return s
}
