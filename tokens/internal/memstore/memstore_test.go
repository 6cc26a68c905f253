package memstore_test

import (
	"context"
	"testing"

	"github.com/agentbroker/agentbroker/store"
	"github.com/agentbroker/agentbroker/store/storetest"
	"github.com/agentbroker/agentbroker/tokens/internal/memstore"
)

// full adds the parts of store.Store the tokens package does not use, so
// the in-memory store can run the conformance suite every store passes.
type full struct{ *memstore.Store }

func (full) Ping(context.Context) error                      { return nil }
func (full) SchemaVersion(context.Context) (int, int, error) { return 1, 1, nil }
func (full) Close() error                                    { return nil }

func TestConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) store.Store { return full{memstore.New()} })
}
