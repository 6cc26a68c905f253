package sessions

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/agentbroker/agentbroker/store"
)

// crashStore is a broker's store that "dies" right after it has written
// the state event for state crashAt: from then on nothing more is written
// (neither the session record that would follow the event, nor anything
// else), as if the broker had been killed with SIGKILL at that point.
type crashStore struct {
	Store
	crashAt State
	armed   atomic.Bool
	crashed atomic.Bool
}

var errCrashed = errors.New("the broker was killed")

func (c *crashStore) AppendEvents(ctx context.Context, evs []store.Event) error {
	if c.crashed.Load() {
		return errCrashed
	}
	for i, e := range evs {
		if c.armed.Load() && e.Type == EventState {
			var v struct{ State State }
			if json.Unmarshal(e.Data, &v) == nil && v.State == c.crashAt {
				c.crashed.Store(true)
				return c.Store.AppendEvents(ctx, evs[:i+1])
			}
		}
	}
	return c.Store.AppendEvents(ctx, evs)
}

func (c *crashStore) PutSession(ctx context.Context, s store.SessionRecord) error {
	if c.crashed.Load() {
		return errCrashed
	}
	return c.Store.PutSession(ctx, s)
}

// TestKillBetweenEventAndRecord: a state change is an event, then the
// session record. A kill between the two left record and log disagreeing,
// and recovery, which trusted the record, ended a finished turn a second
// time ("killed after idle") or left a started turn without an end
// ("killed after prompting"). Recovery now takes the state from the log
// (issue 17).
func TestKillBetweenEventAndRecord(t *testing.T) {
	t.Parallel()
	for _, crashAt := range []State{StateIdle, StatePrompting} {
		t.Run("killed after "+string(crashAt), func(t *testing.T) {
			t.Parallel()
			db := openDB(t)
			var cs *crashStore
			b1 := newBroker(t, brokerOpts{db: db, tweak: func(o *Options) {
				cs = &crashStore{Store: o.Store, crashAt: crashAt}
				o.Store = cs
			}})
			cr := b1.create("allow-all", "")
			id := cr.Session.ID
			cs.armed.Store(true)
			// The turn's first state (prompting) or its last (idle) is the
			// last thing the store gets.
			b1.prompt(id, cr.ViewerToken, "first")
			if !cs.crashed.Load() {
				t.Fatal("the store never crashed")
			}
			ctx := context.Background()
			rec, _ := db.GetSession(ctx, b1.project.ID, id)
			b2 := newBroker(t, brokerOpts{db: db, dataDir: b1.dataDir, project: &b1.project})
			if _, err := b2.mgr.Recover(ctx); err != nil {
				t.Fatal(err)
			}
			// Every turn that began has exactly one end.
			ends := 0
			for _, e := range b2.events(id) {
				var v struct{ Turn int }
				json.Unmarshal(e.Data, &v)
				if (e.Type == EventTurnEnd || e.Type == EventTurnFailed) && v.Turn == 1 {
					ends++
				}
			}
			if ends != 1 {
				t.Fatalf("record said %q, log said %q: turn 1 has %d ends, want 1", rec.State, crashAt, ends)
			}
			if in, _ := b2.mgr.Get(ctx, id); in.State != StateReady {
				got := in.State
				t.Errorf("after recovery: %s, want ready", got)
			}
		})
	}
}
