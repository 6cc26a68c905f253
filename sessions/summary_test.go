package sessions

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/agentbroker/agentbroker/store"
)

// eventReads records the Events reads of a store.
type eventReads struct {
	Store
	mu    sync.Mutex
	after map[string][]int64 // session → the afterSeq of each read
}

func (r *eventReads) Events(ctx context.Context, id string, after int64, limit int) ([]store.Event, error) {
	r.mu.Lock()
	r.after[id] = append(r.after[id], after)
	r.mu.Unlock()
	return r.Store.Events(ctx, id, after, limit)
}

func (r *eventReads) reads(id string) []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.after[id]...)
}

// A session's record carries what its log said when it was written, so
// that Recover and Get of an ended session read no log from its start.
func TestRecordCarriesSummary(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b1 := newBroker(t, brokerOpts{})
	cr := b1.create("allow-all", "first")
	id := cr.Session.ID
	b1.waitEvent(id, 0, EventState, func(d map[string]any) bool { return d["state"] == "idle" })
	if err := b1.mgr.Close(ctx); err != nil {
		t.Fatal(err)
	}
	rec, err := b1.db.SessionByID(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var sc scanned
	if err := json.Unmarshal(rec.Config, &sc); err != nil {
		t.Fatalf("record config %s: %v", rec.Config, err)
	}
	last, _ := b1.db.LastEventSeq(ctx, id)
	if sc.Seq != last || sc.State != StateInterrupted || !sc.Resumable || sc.Cfg == nil || sc.Cfg.MCP.TokenID == "" ||
		sc.ACPID == "" || sc.Turns != 1 || sc.Agent.PID == 0 {
		t.Fatalf("record summary = %+v (log at %d); want it to say everything up to the last event", sc, last)
	}

	reads := &eventReads{after: map[string][]int64{}}
	b2 := newBroker(t, brokerOpts{db: b1.db, dataDir: b1.dataDir, project: &b1.project, tweak: func(o *Options) {
		reads.Store = o.Store
		o.Store = reads
	}})
	got, err := b2.mgr.Recover(ctx)
	if err != nil || len(got) != 1 || got[0].ID != id || got[0].State != StateReady {
		t.Fatalf("Recover = %+v, %v", got, err)
	}
	if _, err := b2.mgr.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	info, err := b2.mgr.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if info.State != StateStopped || info.MCP == nil || info.MCP.TokenID == "" || info.ACPSessionID != sc.ACPID || info.Turn != 1 {
		t.Errorf("Get of the ended session = %+v; want its configuration and ACP session from the record", info)
	}
	last, _ = b2.db.LastEventSeq(ctx, id)
	if info.LastEventSeq != last {
		t.Errorf("Get: LastEventSeq = %d; want %d", info.LastEventSeq, last)
	}
	for _, after := range reads.reads(id) {
		if after == 0 {
			t.Errorf("the session's log was read from its start (reads after %v); the record should have spared it", reads.reads(id))
			break
		}
	}
}

// A record written by an older broker (no summary) or one ahead of its
// log is rebuilt from the whole log.
func TestSummaryFallsBackToLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBroker(t, brokerOpts{})
	cr := b.create("allow-all", "")
	id := cr.Session.ID
	if _, err := b.mgr.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	rec, err := b.db.SessionByID(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	want, err := b.mgr.scanFrom(ctx, id, scanned{})
	if err != nil {
		t.Fatal(err)
	}
	for name, config := range map[string][]byte{
		"none":   nil,
		"ahead":  []byte(`{"seq": 1000000, "state": "idle"}`),
		"broken": []byte(`{"seq": "x"}`),
	} {
		r := rec
		r.Config = config
		got, err := b.mgr.summary(ctx, r)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.Seq != want.Seq || got.State != StateStopped || got.Cfg == nil || got.ACPID != want.ACPID {
			t.Errorf("summary of a record with config %s = %+v; want the log's %+v", name, got, want)
		}
	}
}
