package storetest

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/agentbroker/agentbroker/store"
)

func testEvents(t *testing.T, s store.Store) {
	ctx := t.Context()
	p := newProject(t, s, "p")
	for _, id := range []string{"s1", "s2"} {
		if err := s.PutSession(ctx, store.SessionRecord{ID: id, ProjectID: p.ID}); err != nil {
			t.Fatal(err)
		}
	}
	ev := func(session string, seq int64) store.Event {
		return store.Event{SessionID: session, Seq: seq, Type: "update", Data: []byte(fmt.Sprintf(`{"n":%d}`, seq))}
	}
	if last, err := s.LastEventSeq(ctx, "s1"); err != nil || last != 0 {
		t.Fatalf("LastEventSeq on an empty log = %d, %v", last, err)
	}
	// One batch may span sessions.
	if err := s.AppendEvents(ctx, []store.Event{ev("s1", 1), ev("s2", 1), ev("s1", 2), ev("s1", 3)}); err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
	got, err := s.Events(ctx, "s1", 0, 0)
	if err != nil || len(got) != 3 {
		t.Fatalf("Events(s1) = %d events, %v", len(got), err)
	}
	for i, e := range got {
		if e.Seq != int64(i+1) || string(e.Data) != fmt.Sprintf(`{"n":%d}`, i+1) || e.Type != "update" || e.CreatedAt.IsZero() {
			t.Fatalf("event %d = %+v", i, e)
		}
	}
	if got, _ := s.Events(ctx, "s1", 2, 0); len(got) != 1 || got[0].Seq != 3 {
		t.Fatalf("Events after 2 = %+v", got)
	}
	if got, _ := s.Events(ctx, "s1", 0, 2); len(got) != 2 {
		t.Fatalf("Events with limit 2 = %d", len(got))
	}
	if last, _ := s.LastEventSeq(ctx, "s1"); last != 3 {
		t.Fatalf("LastEventSeq(s1) = %d", last)
	}

	// A gap, a repeat, or an unknown session refuses the whole batch.
	for name, tt := range map[string]struct {
		batch []store.Event
		want  error
	}{
		"gap":             {[]store.Event{ev("s1", 5)}, store.ErrConflict},
		"repeat":          {[]store.Event{ev("s1", 3)}, store.ErrConflict},
		"out of order":    {[]store.Event{ev("s1", 5), ev("s1", 4)}, store.ErrConflict},
		"unknown session": {[]store.Event{ev("nope", 1)}, store.ErrNotFound},
		"later bad event": {[]store.Event{ev("s1", 4), ev("s2", 7)}, store.ErrConflict},
		"bad JSON":        {[]store.Event{{SessionID: "s1", Seq: 4, Type: "x", Data: []byte("{")}}, store.ErrInvalid},
		"no type":         {[]store.Event{{SessionID: "s1", Seq: 4, Data: []byte("{}")}}, store.ErrInvalid},
		"zero seq":        {[]store.Event{{SessionID: "s1", Seq: 0, Type: "x", Data: []byte("{}")}}, store.ErrInvalid},
		"too big": {[]store.Event{{SessionID: "s1", Seq: 4, Type: "x",
			Data: []byte(`"` + strings.Repeat("a", store.MaxEventData) + `"`)}}, store.ErrInvalid},
	} {
		if err := s.AppendEvents(ctx, tt.batch); !errors.Is(err, tt.want) {
			t.Errorf("%s: AppendEvents = %v; want %v", name, err, tt.want)
		}
	}
	if last, _ := s.LastEventSeq(ctx, "s1"); last != 3 {
		t.Fatalf("a refused batch left events behind: last seq %d", last)
	}
	if last, _ := s.LastEventSeq(ctx, "s2"); last != 1 {
		t.Fatalf("a refused batch left events behind in s2: last seq %d", last)
	}
}
