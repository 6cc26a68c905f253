package memstore_test

import (
	"testing"

	"github.com/agentbroker/agentbroker/store/storetest"
	"github.com/agentbroker/agentbroker/tokens/internal/memstore"
)

// closer adds the Close the conformance suite calls; the in-memory store
// holds nothing to release.
type closer struct{ *memstore.Store }

func (closer) Close() error { return nil }

func TestConformance(t *testing.T) {
	storetest.RunTokens(t, func(*testing.T) storetest.TokenStore { return closer{memstore.New()} })
}
