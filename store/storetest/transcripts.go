package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/agentbroker/agentbroker/store"
)

func testSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	p := newProject(t, s, "p")
	other := newProject(t, s, "other")

	before := time.Now()
	if err := s.PutSession(ctx, store.SessionRecord{ID: "s1", ProjectID: p.ID, Agent: "claude", Model: "opus", State: "running", Title: "first"}); err != nil {
		t.Fatalf("PutSession: %v", err)
	}
	after := time.Now()
	s1 := must[store.SessionRecord](t, "GetSession")(s.GetSession(ctx, p.ID, "s1"))
	checkStamp(t, "CreatedAt", s1.CreatedAt, before, after)
	same(t, "GetSession", s1, store.SessionRecord{ID: "s1", ProjectID: p.ID, Agent: "claude", Model: "opus",
		State: "running", Title: "first", CreatedAt: s1.CreatedAt, UpdatedAt: s1.CreatedAt})

	// A CreatedAt given on the first put is kept (to the microsecond)...
	started := time.Date(2001, 3, 1, 12, 0, 0, 123456789, time.FixedZone("X", 3600))
	if err := s.PutSession(ctx, store.SessionRecord{ID: "s2", ProjectID: p.ID, CreatedAt: started}); err != nil {
		t.Fatalf("PutSession(s2): %v", err)
	}
	s2 := must[store.SessionRecord](t, "GetSession")(s.GetSession(ctx, p.ID, "s2"))
	if !s2.CreatedAt.Equal(started.Truncate(time.Microsecond)) {
		t.Errorf("s2 CreatedAt = %v; want %v", s2.CreatedAt, started.Truncate(time.Microsecond))
	}
	// ... and a later put updates everything else but keeps it.
	time.Sleep(time.Millisecond)
	before = time.Now()
	if err := s.PutSession(ctx, store.SessionRecord{ID: "s1", ProjectID: p.ID, Agent: "claude", Model: "opus", State: "done", Title: "renamed", CreatedAt: started}); err != nil {
		t.Fatalf("PutSession(update): %v", err)
	}
	got := must[store.SessionRecord](t, "GetSession")(s.GetSession(ctx, p.ID, "s1"))
	checkStamp(t, "UpdatedAt", got.UpdatedAt, before, time.Now())
	same(t, "GetSession after update", got, store.SessionRecord{ID: "s1", ProjectID: p.ID, Agent: "claude", Model: "opus",
		State: "done", Title: "renamed", CreatedAt: s1.CreatedAt, UpdatedAt: got.UpdatedAt})

	err := s.PutSession(ctx, store.SessionRecord{ID: "s1", ProjectID: other.ID})
	wantErr(t, "PutSession(moved to another project)", err, store.ErrConflict)
	err = s.PutSession(ctx, store.SessionRecord{ID: "s9", ProjectID: "prj_nope"})
	wantErr(t, "PutSession(unknown project)", err, store.ErrNotFound)
	for name, r := range map[string]store.SessionRecord{
		"no ID":      {ProjectID: p.ID},
		"no project": {ID: "s9"},
		"long ID":    {ID: long(store.MaxIDLen + 1), ProjectID: p.ID},
		"long title": {ID: "s9", ProjectID: p.ID, Title: long(store.MaxTitleLen + 1)},
		"long model": {ID: "s9", ProjectID: p.ID, Model: long(store.MaxNameLen + 1)},
		"NUL state":  {ID: "s9", ProjectID: p.ID, State: "\x00"},
	} {
		wantErr(t, "PutSession("+name+")", s.PutSession(ctx, r), store.ErrInvalid)
	}
	_, err = s.GetSession(ctx, p.ID, "s9")
	wantErr(t, "GetSession(refused)", err, store.ErrNotFound)

	// Newest first (by CreatedAt: s2 was given an old one).
	if err := s.PutSession(ctx, store.SessionRecord{ID: "s3", ProjectID: p.ID}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range must[[]store.SessionRecord](t, "ListSessions")(s.ListSessions(ctx, p.ID, 0)) {
		ids = append(ids, r.ID)
	}
	if want := []string{"s3", "s1", "s2"}; !slices.Equal(ids, want) {
		t.Errorf("ListSessions = %v; want %v", ids, want)
	}
	if got := must[[]store.SessionRecord](t, "ListSessions(1)")(s.ListSessions(ctx, p.ID, 1)); len(got) != 1 || got[0].ID != "s3" {
		t.Errorf("ListSessions(limit 1) = %v; want s3", got)
	}
	if got, err := s.ListSessions(ctx, other.ID, 0); err != nil || len(got) != 0 {
		t.Errorf("ListSessions(other) = %v, %v; want none", got, err)
	}
	_, err = s.ListSessions(ctx, "prj_nope", 0)
	wantErr(t, "ListSessions(unknown project)", err, store.ErrNotFound)
}

func msg(session, project string, role store.MessageRole, content string) store.Message {
	return store.Message{SessionID: session, ProjectID: project, Role: role, Content: content}
}

func seqs(ms []store.Message) []int64 {
	var out []int64
	for _, m := range ms {
		out = append(out, m.Seq)
	}
	return out
}

func testMessages(t *testing.T, s store.Store) {
	ctx := t.Context()
	p := newProject(t, s, "p")
	other := newProject(t, s, "other")
	for _, r := range []store.SessionRecord{{ID: "s1", ProjectID: p.ID}, {ID: "s2", ProjectID: p.ID}, {ID: "o1", ProjectID: other.ID}} {
		if err := s.PutSession(ctx, r); err != nil {
			t.Fatal(err)
		}
	}

	if got, err := s.AppendMessages(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("AppendMessages(none) = %v, %v", got, err)
	}
	if got, err := s.SessionMessages(ctx, p.ID, "s1", 0, 0); err != nil || len(got) != 0 {
		t.Errorf("SessionMessages(no messages yet) = %v, %v; want none", got, err)
	}

	given := time.Date(2026, 1, 2, 3, 4, 5, 6789, time.UTC)
	before := time.Now()
	first := must[[]store.Message](t, "AppendMessages")(s.AppendMessages(ctx, []store.Message{
		msg("s1", p.ID, store.RoleUser, "hello"),
		msg("s1", p.ID, store.RoleAssistant, "hi there"),
		{SessionID: "s1", ProjectID: p.ID, Role: store.RoleTool, Content: "ran ls", CreatedAt: given},
	}))
	after := time.Now()
	if !slices.Equal(seqs(first), []int64{1, 2, 3}) {
		t.Fatalf("first batch seqs = %v; want 1 2 3", seqs(first))
	}
	checkStamp(t, "CreatedAt", first[0].CreatedAt, before, after)
	if !first[2].CreatedAt.Equal(given.Truncate(time.Microsecond)) {
		t.Errorf("given CreatedAt came back as %v; want %v", first[2].CreatedAt, given.Truncate(time.Microsecond))
	}
	if first[1].Role != store.RoleAssistant || first[1].Content != "hi there" || first[1].SessionID != "s1" || first[1].ProjectID != p.ID {
		t.Errorf("AppendMessages returned %+v", first[1])
	}

	// Several sessions in one batch: each its own sequence.
	second := must[[]store.Message](t, "AppendMessages(mixed)")(s.AppendMessages(ctx, []store.Message{
		msg("s2", p.ID, store.RoleUser, "other session"),
		msg("s1", p.ID, store.RoleThinking, "hmm"),
		msg("s2", p.ID, store.RolePlan, "1. do it"),
		msg("s1", p.ID, store.RoleAssistant, "done"),
	}))
	if !slices.Equal(seqs(second), []int64{1, 4, 2, 5}) {
		t.Errorf("mixed batch seqs = %v; want 1 4 2 5", seqs(second))
	}

	all := must[[]store.Message](t, "SessionMessages")(s.SessionMessages(ctx, p.ID, "s1", 0, 0))
	want := append(slices.Clone(first), second[1], second[3])
	if len(all) != len(want) {
		t.Fatalf("SessionMessages = %d messages; want %d", len(all), len(want))
	}
	for i := range all {
		same(t, fmt.Sprint("SessionMessages[", i, "]"), all[i], want[i])
	}
	for _, tt := range []struct {
		after int64
		limit int
		want  []int64
	}{
		{0, 2, []int64{1, 2}},
		{2, 2, []int64{3, 4}},
		{4, 2, []int64{5}},
		{5, 2, nil},
		{100, 0, nil},
		{-1, 0, []int64{1, 2, 3, 4, 5}},
	} {
		got := must[[]store.Message](t, "SessionMessages")(s.SessionMessages(ctx, p.ID, "s1", tt.after, tt.limit))
		if !slices.Equal(seqs(got), tt.want) {
			t.Errorf("SessionMessages(after %d, limit %d) = %v; want %v", tt.after, tt.limit, seqs(got), tt.want)
		}
	}

	// Refusals append nothing, even the valid messages of the batch.
	ok := msg("s1", p.ID, store.RoleUser, "should not be stored")
	for _, tt := range []struct {
		name   string
		bad    store.Message
		target error
	}{
		{"unknown session", msg("nope", p.ID, store.RoleUser, "x"), store.ErrNotFound},
		{"session of another project", msg("o1", p.ID, store.RoleUser, "x"), store.ErrNotFound},
		{"session named with another project", msg("s1", other.ID, store.RoleUser, "x"), store.ErrNotFound},
		{"unknown project", msg("s1", "prj_nope", store.RoleUser, "x"), store.ErrNotFound},
		{"no project", msg("s1", "", store.RoleUser, "x"), store.ErrInvalid},
		{"no session", msg("", p.ID, store.RoleUser, "x"), store.ErrInvalid},
		{"no role", msg("s1", p.ID, "", "x"), store.ErrInvalid},
		{"unknown role", msg("s1", p.ID, "system", "x"), store.ErrInvalid},
		{"no content", msg("s1", p.ID, store.RoleUser, ""), store.ErrInvalid},
		{"long content", msg("s1", p.ID, store.RoleUser, long(store.MaxTextLen+1)), store.ErrInvalid},
		{"NUL content", msg("s1", p.ID, store.RoleUser, "a\x00b"), store.ErrInvalid},
	} {
		_, err := s.AppendMessages(ctx, []store.Message{ok, tt.bad})
		wantErr(t, "AppendMessages("+tt.name+")", err, tt.target)
	}
	big := make([]store.Message, store.MaxAppend+1)
	for i := range big {
		big[i] = ok
	}
	_, err := s.AppendMessages(ctx, big)
	wantErr(t, "AppendMessages(over MaxAppend)", err, store.ErrInvalid)
	if got := must[[]store.Message](t, "SessionMessages")(s.SessionMessages(ctx, p.ID, "s1", 0, 0)); len(got) != 5 {
		t.Errorf("after refused batches s1 has %d messages; want 5", len(got))
	}

	_, err = s.SessionMessages(ctx, p.ID, "nope", 0, 0)
	wantErr(t, "SessionMessages(unknown session)", err, store.ErrNotFound)
	_, err = s.SessionMessages(ctx, other.ID, "s1", 0, 0)
	wantErr(t, "SessionMessages(session of another project)", err, store.ErrNotFound)
	_, err = s.SessionMessages(ctx, "prj_nope", "s1", 0, 0)
	wantErr(t, "SessionMessages(unknown project)", err, store.ErrNotFound)

	// The next append continues the sequence.
	third := must[[]store.Message](t, "AppendMessages")(s.AppendMessages(ctx, []store.Message{ok}))
	if third[0].Seq != 6 {
		t.Errorf("seq after refused batches = %d; want 6", third[0].Seq)
	}
}

// testConcurrentAppend appends from many goroutines at once: every session
// must end with unique, gapless seqs, and each batch's seqs consecutive.
func testConcurrentAppend(t *testing.T, s store.Store) {
	ctx := t.Context()
	p := newProject(t, s, "p")
	sessions := []string{"a", "b"}
	for _, id := range sessions {
		if err := s.PutSession(ctx, store.SessionRecord{ID: id, ProjectID: p.ID}); err != nil {
			t.Fatal(err)
		}
	}
	const (
		workers = 8
		rounds  = 10
		batch   = 3
	)
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := range workers {
		wg.Go(func() {
			session := sessions[w%len(sessions)]
			for r := range rounds {
				var ms []store.Message
				for i := range batch {
					ms = append(ms, msg(session, p.ID, store.RoleAssistant, fmt.Sprintf("w%d r%d m%d", w, r, i)))
				}
				got, err := s.AppendMessages(ctx, ms)
				if err != nil {
					errs <- err
					return
				}
				for i := 1; i < len(got); i++ {
					if got[i].Seq != got[0].Seq+int64(i) {
						errs <- fmt.Errorf("batch seqs %v are not consecutive", seqs(got))
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, id := range sessions {
		got := must[[]store.Message](t, "SessionMessages")(s.SessionMessages(ctx, p.ID, id, 0, store.MaxMessageLimit))
		want := workers / len(sessions) * rounds * batch
		if len(got) != want {
			t.Errorf("session %s has %d messages; want %d", id, len(got), want)
		}
		contents := map[string]bool{}
		for i, m := range got {
			if m.Seq != int64(i+1) {
				t.Errorf("session %s message %d has seq %d; want %d (gapless)", id, i, m.Seq, i+1)
				break
			}
			if contents[m.Content] {
				t.Errorf("session %s: %q stored twice", id, m.Content)
			}
			contents[m.Content] = true
		}
	}
}

// testSessionLookup checks what a fleet of brokers needs of session
// records: one found by its ID alone, its config kept in the record, and
// the sessions of every project listed by state.
func testSessionLookup(t *testing.T, s store.Store) {
	ctx := t.Context()
	p := newProject(t, s, "p")
	other := newProject(t, s, "other")
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	cfg := []byte(`{"profile":"claude","mcp":{"token_id":"tok_1"},"text":"ünïcödé \u2028 «»"}`)
	for i, r := range []store.SessionRecord{
		{ID: "a", ProjectID: p.ID, State: "idle", Config: cfg, CreatedAt: t0.Add(3 * time.Minute)},
		{ID: "b", ProjectID: other.ID, State: "prompting", CreatedAt: t0.Add(1 * time.Minute)},
		{ID: "c", ProjectID: p.ID, State: "stopped", CreatedAt: t0.Add(2 * time.Minute)},
		{ID: "d", ProjectID: other.ID, State: "idle", CreatedAt: t0.Add(3 * time.Minute)},
	} {
		if err := s.PutSession(ctx, r); err != nil {
			t.Fatalf("PutSession %d: %v", i, err)
		}
	}

	a := must[store.SessionRecord](t, "SessionByID")(s.SessionByID(ctx, "a"))
	if a.ProjectID != p.ID || a.State != "idle" || string(a.Config) != string(cfg) || !a.CreatedAt.Equal(t0.Add(3*time.Minute)) {
		t.Errorf("SessionByID(a) = %+v (config %s); want a of %s with its config", a, a.Config, p.ID)
	}
	same(t, "SessionByID(a) against GetSession", a, must[store.SessionRecord](t, "GetSession")(s.GetSession(ctx, p.ID, "a")))
	b := must[store.SessionRecord](t, "SessionByID")(s.SessionByID(ctx, "b"))
	if b.ProjectID != other.ID || b.Config != nil {
		t.Errorf("SessionByID(b) = %+v; want b of %s, no config", b, other.ID)
	}
	for _, id := range []string{"nope", "", long(store.MaxIDLen + 1)} {
		_, err := s.SessionByID(ctx, id)
		wantErr(t, "SessionByID("+id[:min(len(id), 8)]+")", err, store.ErrNotFound)
	}

	// A later put without a config keeps it; one with a config replaces it.
	if err := s.PutSession(ctx, store.SessionRecord{ID: "a", ProjectID: p.ID, State: "prompting"}); err != nil {
		t.Fatal(err)
	}
	if got := must[store.SessionRecord](t, "SessionByID")(s.SessionByID(ctx, "a")); string(got.Config) != string(cfg) || got.State != "prompting" {
		t.Errorf("after a put without config: %+v, config %s; want the config kept", got, got.Config)
	}
	cfg2 := []byte(`{"profile":"codex"}`)
	if err := s.PutSession(ctx, store.SessionRecord{ID: "a", ProjectID: p.ID, State: "idle", Config: cfg2}); err != nil {
		t.Fatal(err)
	}
	if got := must[store.SessionRecord](t, "SessionByID")(s.SessionByID(ctx, "a")); string(got.Config) != string(cfg2) {
		t.Errorf("after a put with a new config: %s; want %s", got.Config, cfg2)
	}
	for name, c := range map[string][]byte{
		"not JSON":   []byte(`{"x":`),
		"not object": []byte(`[1,2]`),
		"string":     []byte(`"x"`),
		"empty":      {},
		"too long":   []byte(`{"x":"` + long(store.MaxConfigLen) + `"}`),
	} {
		err := s.PutSession(ctx, store.SessionRecord{ID: "a", ProjectID: p.ID, Config: c})
		wantErr(t, "PutSession(config "+name+")", err, store.ErrInvalid)
	}
	if got := must[store.SessionRecord](t, "SessionByID")(s.SessionByID(ctx, "a")); string(got.Config) != string(cfg2) || got.State != "idle" {
		t.Errorf("after refused puts: %+v, config %s; want unchanged", got, got.Config)
	}

	ids := func(rs []store.SessionRecord) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	for _, tt := range []struct {
		states []string
		want   []string
	}{
		{[]string{"idle"}, []string{"a", "d"}}, // same CreatedAt: by ID
		{[]string{"idle", "prompting"}, []string{"b", "a", "d"}},
		{[]string{"stopped", "starting"}, []string{"c"}},
		{[]string{"starting"}, nil},
		{nil, nil},
	} {
		got, err := s.SessionsByState(ctx, tt.states...)
		if err != nil || !slices.Equal(ids(got), tt.want) {
			t.Errorf("SessionsByState(%v) = %v, %v; want %v", tt.states, ids(got), err, tt.want)
		}
	}
	got := must[[]store.SessionRecord](t, "SessionsByState")(s.SessionsByState(ctx, "idle"))
	if len(got) == 2 && string(got[0].Config) != string(cfg2) {
		t.Errorf("SessionsByState: a's config = %s; want %s", got[0].Config, cfg2)
	}
	_, err := s.SessionsByState(ctx, make([]string, store.MaxStates+1)...)
	wantErr(t, "SessionsByState(too many states)", err, store.ErrInvalid)
}
