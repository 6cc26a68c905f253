package storetest

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/agentbroker/agentbroker/store"
)

// seeded is one project with one of everything, all carrying text.
type seeded struct {
	project   store.Project
	task      store.Task
	knowledge store.Knowledge
	session   store.SessionRecord
	message   store.Message
}

// seedProject creates a project and, in it, a task, a knowledge entry, a session
// and a message, each holding text.
func seedProject(t *testing.T, s store.Store, name, session, text string) seeded {
	t.Helper()
	ctx := t.Context()
	var d seeded
	d.project = newProject(t, s, name)
	d.task = must[store.Task](t, "CreateTask")(s.CreateTask(ctx, store.Task{
		ProjectID: d.project.ID, Title: name + " task", Description: text, SessionID: session}))
	d.knowledge = must[store.Knowledge](t, "AddKnowledge")(s.AddKnowledge(ctx, store.Knowledge{
		ProjectID: d.project.ID, Title: name + " entry", Body: text, Tags: []string{name}, SessionID: session}))
	d.session = store.SessionRecord{ID: session, ProjectID: d.project.ID, Title: name + " session"}
	if err := s.PutSession(ctx, d.session); err != nil {
		t.Fatal(err)
	}
	d.message = must[[]store.Message](t, "AppendMessages")(s.AppendMessages(ctx, []store.Message{
		msg(session, d.project.ID, store.RoleAssistant, text)}))[0]
	return d
}

// searchAll runs the three searches in project and checks that every hit
// belongs to it. It returns the hits' IDs and the first error.
func searchAll(t *testing.T, s store.Store, projectID, query string, limit int) (tasks, knowledge, messages []string, err error) {
	t.Helper()
	ctx := t.Context()
	th, err1 := s.SearchTasks(ctx, projectID, query, limit)
	kh, err2 := s.SearchKnowledge(ctx, projectID, query, limit)
	mh, err3 := s.SearchMessages(ctx, projectID, query, limit)
	for _, h := range th {
		if h.Item.ProjectID != projectID {
			t.Errorf("SearchTasks(%s, %.40q) leaked task %s of project %s", projectID, query, h.Item.ID, h.Item.ProjectID)
		}
	}
	for _, h := range kh {
		if h.Item.ProjectID != projectID {
			t.Errorf("SearchKnowledge(%s, %.40q) leaked entry %s of project %s", projectID, query, h.Item.ID, h.Item.ProjectID)
		}
	}
	for _, h := range mh {
		if h.Item.ProjectID != projectID {
			t.Errorf("SearchMessages(%s, %.40q) leaked a message of session %s, project %s", projectID, query, h.Item.SessionID, h.Item.ProjectID)
		}
	}
	return hitIDs(th, taskID), hitIDs(kh, knowledgeID), hitIDs(mh, messageID), errors.Join(err1, err2, err3)
}

// testIsolation checks that nothing of project A is reachable through
// project B: every Get, Update, List and Search by B of A's items.
func testIsolation(t *testing.T, s store.Store) {
	ctx := t.Context()
	const text = "the shared secret phrase about deployments"
	a := seedProject(t, s, "alpha", "sa", text)
	b := seedProject(t, s, "bravo", "sb", text)
	B := b.project.ID

	_, err := s.GetTask(ctx, B, a.task.ID)
	wantErr(t, "GetTask(B, A's task)", err, store.ErrNotFound)
	_, err = s.UpdateTask(ctx, B, a.task.ID, store.TaskUpdate{Title: ptr("stolen")})
	wantErr(t, "UpdateTask(B, A's task)", err, store.ErrNotFound)
	_, err = s.UpdateTask(ctx, B, a.task.ID, store.TaskUpdate{})
	wantErr(t, "UpdateTask(B, A's task, nothing)", err, store.ErrNotFound)
	same(t, "A's task after B's update", must[store.Task](t, "GetTask")(s.GetTask(ctx, a.project.ID, a.task.ID)), a.task)
	if got := must[[]store.Task](t, "ListTasks")(s.ListTasks(ctx, B, store.TaskFilter{})); !slices.Equal(taskIDs(got), []string{b.task.ID}) {
		t.Errorf("ListTasks(B) = %v; want only %s", taskIDs(got), b.task.ID)
	}
	if got := must[[]store.Task](t, "ListTasks")(s.ListTasks(ctx, B, store.TaskFilter{SessionID: "sa"})); len(got) != 0 {
		t.Errorf("ListTasks(B, A's session) = %v; want none", taskIDs(got))
	}

	_, err = s.GetKnowledge(ctx, B, a.knowledge.ID)
	wantErr(t, "GetKnowledge(B, A's entry)", err, store.ErrNotFound)
	_, err = s.UpdateKnowledge(ctx, B, a.knowledge.ID, store.KnowledgeUpdate{Body: ptr("stolen")})
	wantErr(t, "UpdateKnowledge(B, A's entry)", err, store.ErrNotFound)
	_, err = s.UpdateKnowledge(ctx, B, a.knowledge.ID, store.KnowledgeUpdate{})
	wantErr(t, "UpdateKnowledge(B, A's entry, nothing)", err, store.ErrNotFound)
	same(t, "A's entry after B's update", must[store.Knowledge](t, "GetKnowledge")(s.GetKnowledge(ctx, a.project.ID, a.knowledge.ID)), a.knowledge)
	if got := must[[]store.Knowledge](t, "ListKnowledge")(s.ListKnowledge(ctx, B, 0)); len(got) != 1 || got[0].ID != b.knowledge.ID {
		t.Errorf("ListKnowledge(B) = %v; want only %s", got, b.knowledge.ID)
	}

	_, err = s.GetSession(ctx, B, "sa")
	wantErr(t, "GetSession(B, A's session)", err, store.ErrNotFound)
	wantErr(t, "PutSession(A's session into B)", s.PutSession(ctx, store.SessionRecord{ID: "sa", ProjectID: B, Title: "stolen"}), store.ErrConflict)
	same(t, "A's session after B's put", must[store.SessionRecord](t, "GetSession")(s.GetSession(ctx, a.project.ID, "sa")).Title, a.session.Title)
	if got := must[[]store.SessionRecord](t, "ListSessions")(s.ListSessions(ctx, B, 0)); len(got) != 1 || got[0].ID != "sb" {
		t.Errorf("ListSessions(B) = %v; want only sb", got)
	}
	_, err = s.SessionMessages(ctx, B, "sa", 0, 0)
	wantErr(t, "SessionMessages(B, A's session)", err, store.ErrNotFound)
	_, err = s.AppendMessages(ctx, []store.Message{msg("sa", B, store.RoleUser, "injected")})
	wantErr(t, "AppendMessages(A's session as B)", err, store.ErrNotFound)
	if got := must[[]store.Message](t, "SessionMessages")(s.SessionMessages(ctx, a.project.ID, "sa", 0, 0)); len(got) != 1 {
		t.Errorf("A's session has %d messages after B's append; want 1", len(got))
	}

	// Search: the same text in both; each project finds only its own.
	for _, q := range []string{"shared secret", "deployment", "alpha", "bravo", "sa", a.task.ID} {
		for _, p := range []seeded{a, b} {
			ts, ks, ms, err := searchAll(t, s, p.project.ID, q, 0)
			if err != nil {
				t.Errorf("search %q in %s: %v", q, p.project.Name, err)
			}
			if q == "shared secret" && (!slices.Equal(ts, []string{p.task.ID}) || !slices.Equal(ks, []string{p.knowledge.ID}) ||
				!slices.Equal(ms, []string{messageID(p.message)})) {
				t.Errorf("search %q in %s = %v %v %v; want its own three items", q, p.project.Name, ts, ks, ms)
			}
		}
	}
	// A limit of one cannot drop a project's only match in favour of
	// another project's better one.
	if _, err := s.UpdateTask(ctx, a.project.ID, a.task.ID, store.TaskUpdate{Title: ptr("shared secret shared secret")}); err != nil {
		t.Fatal(err)
	}
	if ts, _, _, err := searchAll(t, s, B, "shared secret", 1); err != nil || !slices.Equal(ts, []string{b.task.ID}) {
		t.Errorf("search with limit 1 in B = %v, %v; want B's task", ts, err)
	}

	// A project that does not exist is not found, whatever the call.
	const nope = "prj_nope"
	_, err = s.SearchTasks(ctx, nope, "shared", 0)
	wantErr(t, "SearchTasks(unknown project)", err, store.ErrNotFound)
	_, err = s.SearchKnowledge(ctx, nope, "shared", 0)
	wantErr(t, "SearchKnowledge(unknown project)", err, store.ErrNotFound)
	_, err = s.SearchMessages(ctx, nope, "shared", 0)
	wantErr(t, "SearchMessages(unknown project)", err, store.ErrNotFound)
	// In a project that exists, no match is no error.
	if ts, ks, ms, err := searchAll(t, s, B, "zebra", 0); err != nil || len(ts)+len(ks)+len(ms) != 0 {
		t.Errorf("search for an absent word = %v %v %v, %v; want nothing", ts, ks, ms, err)
	}
}

func testSearch(t *testing.T, s store.Store) {
	ctx := t.Context()
	p := newProject(t, s, "p")
	task := func(title, desc, notes, summary string) store.Task {
		return must[store.Task](t, "CreateTask")(s.CreateTask(ctx, store.Task{
			ProjectID: p.ID, Title: title, Description: desc, Notes: notes, OutputSummary: summary}))
	}
	mig := task("Write the database migration", "Add the tables.", "", "")
	login := task("Fix the login page", "", "The Migrations ran fine though.", "")
	deploy := task("Deploy staging", "Roll out the new build to staging and watch the dashboards for an hour.", "", "")
	mention := task("Unrelated chores", strings.Repeat("Tidy up the docs and the examples. ", 10)+"Maybe deploy later.", "", "")
	summary := task("Résumé parser", "", "", "Parses CVs; handles naïve café text.")

	for _, tt := range []struct {
		query string
		want  []string // in rank order when more than one
		any   bool     // order not checked
	}{
		{"migrations", []string{mig.ID, login.ID}, true},   // stemming both ways
		{"MIGRATION", []string{mig.ID, login.ID}, true},    // case
		{"database migration", []string{mig.ID}, false},    // every word must match
		{"migration  login", []string{login.ID}, false},    // in different fields
		{"login database", nil, false},                     // no task has both
		{"deploy", []string{deploy.ID, mention.ID}, false}, // the title match ranks first
		{"resume cafe naive", []string{summary.ID}, false}, // diacritics folded
		{"CVs", []string{summary.ID}, false},
		{"staging-deploy", nil, false},                 // a phrase, not two words
		{"deploy staging", []string{deploy.ID}, false}, //
		{"zebra", nil, false},
	} {
		hits, err := s.SearchTasks(ctx, p.ID, tt.query, 0)
		if err != nil {
			t.Errorf("SearchTasks(%q): %v", tt.query, err)
			continue
		}
		got := hitIDs(hits, taskID)
		if tt.any {
			slices.Sort(got)
			tt.want = slices.Sorted(slices.Values(tt.want))
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("SearchTasks(%q) = %v; want %v", tt.query, got, tt.want)
		}
		for _, h := range hits {
			if !strings.Contains(h.Snippet, "«") || !strings.Contains(h.Snippet, "»") {
				t.Errorf("SearchTasks(%q): snippet %q does not mark the match", tt.query, h.Snippet)
			}
		}
	}
	hits := must[[]store.SearchHit[store.Task]](t, "SearchTasks")(s.SearchTasks(ctx, p.ID, "database", 0))
	if len(hits) != 1 || !strings.Contains(hits[0].Snippet, "«database»") {
		t.Fatalf("SearchTasks(database) = %+v; want one hit, the word marked", hits)
	}
	same(t, "SearchTasks hit item", hits[0].Item, mig)
	if hits := must[[]store.SearchHit[store.Task]](t, "SearchTasks")(s.SearchTasks(ctx, p.ID, "docs", 0)); len(hits) != 1 || len(hits[0].Snippet) > 200 {
		t.Errorf("SearchTasks(docs) snippet = %q; want a short excerpt", hits[0].Snippet)
	}

	// Knowledge: title, body and tags are searched.
	k := must[store.Knowledge](t, "AddKnowledge")(s.AddKnowledge(ctx, store.Knowledge{
		ProjectID: p.ID, Title: "Release checklist", Body: "Tag the commit, then run the migrations.", Tags: []string{"ops", "how-to"}}))
	other := must[store.Knowledge](t, "AddKnowledge")(s.AddKnowledge(ctx, store.Knowledge{
		ProjectID: p.ID, Title: "Coding style", Body: "Use gofmt.", Tags: []string{"go"}}))
	for q, want := range map[string][]string{
		"checklist": {k.ID}, "migration": {k.ID}, "ops": {k.ID}, "how-to": {k.ID}, "gofmt": {other.ID}, "go": {other.ID},
		"ops gofmt": nil,
	} {
		hits, err := s.SearchKnowledge(ctx, p.ID, q, 0)
		if got := hitIDs(hits, knowledgeID); err != nil || !slices.Equal(got, want) {
			t.Errorf("SearchKnowledge(%q) = %v, %v; want %v", q, got, err, want)
		}
	}
	khits := must[[]store.SearchHit[store.Knowledge]](t, "SearchKnowledge")(s.SearchKnowledge(ctx, p.ID, "commit", 0))
	if len(khits) != 1 || !strings.Contains(khits[0].Snippet, "«commit»") {
		t.Errorf("SearchKnowledge(commit) = %+v; want the word marked", khits)
	}
	same(t, "SearchKnowledge hit item", khits[0].Item, k)

	// Messages, across the project's sessions.
	for _, id := range []string{"s1", "s2"} {
		if err := s.PutSession(ctx, store.SessionRecord{ID: id, ProjectID: p.ID}); err != nil {
			t.Fatal(err)
		}
	}
	m1 := must[[]store.Message](t, "AppendMessages")(s.AppendMessages(ctx, []store.Message{
		msg("s1", p.ID, store.RoleUser, "please add a migration"),
		msg("s1", p.ID, store.RoleAssistant, "added the migrations, running the tests"),
		msg("s2", p.ID, store.RoleTool, "go test ./... ok"),
	}))
	mhits := must[[]store.SearchHit[store.Message]](t, "SearchMessages")(s.SearchMessages(ctx, p.ID, "migrating", 0))
	if got := hitIDs(mhits, messageID); len(got) != 2 || !slices.Contains(got, "s1#1") || !slices.Contains(got, "s1#2") {
		t.Errorf("SearchMessages(migrating) = %v; want s1#1 and s1#2", got)
	}
	mhits = must[[]store.SearchHit[store.Message]](t, "SearchMessages")(s.SearchMessages(ctx, p.ID, "ok test", 0))
	if len(mhits) != 1 || mhits[0].Item.SessionID != "s2" || !strings.Contains(mhits[0].Snippet, "«ok»") {
		t.Fatalf("SearchMessages(ok test) = %+v; want s2#1", mhits)
	}
	same(t, "SearchMessages hit item", mhits[0].Item, m1[2])

	for _, q := range []string{"", "   ", "\t\n"} {
		_, err := s.SearchTasks(ctx, p.ID, q, 0)
		wantErr(t, "SearchTasks(empty)", err, store.ErrInvalid)
		_, err = s.SearchKnowledge(ctx, p.ID, q, 0)
		wantErr(t, "SearchKnowledge(empty)", err, store.ErrInvalid)
		_, err = s.SearchMessages(ctx, p.ID, q, 0)
		wantErr(t, "SearchMessages(empty)", err, store.ErrInvalid)
	}
}

// testSearchAfterUpdate checks that search follows updates: the new text
// is found, the old text no longer is.
func testSearchAfterUpdate(t *testing.T, s store.Store) {
	ctx := t.Context()
	p := newProject(t, s, "p")
	task := must[store.Task](t, "CreateTask")(s.CreateTask(ctx, store.Task{ProjectID: p.ID, Title: "Rotate the keys", Notes: "quarterly"}))
	k := must[store.Knowledge](t, "AddKnowledge")(s.AddKnowledge(ctx, store.Knowledge{ProjectID: p.ID, Title: "Keys", Body: "rotate quarterly", Tags: []string{"security"}}))

	found := func(q string) (bool, bool) {
		t.Helper()
		th := must[[]store.SearchHit[store.Task]](t, "SearchTasks")(s.SearchTasks(ctx, p.ID, q, 0))
		kh := must[[]store.SearchHit[store.Knowledge]](t, "SearchKnowledge")(s.SearchKnowledge(ctx, p.ID, q, 0))
		return len(th) == 1 && th[0].Item.ID == task.ID, len(kh) == 1 && kh[0].Item.ID == k.ID
	}
	if ft, fk := found("quarterly"); !ft || !fk {
		t.Fatalf("before the update: found %v, %v; want both", ft, fk)
	}
	if _, err := s.UpdateTask(ctx, p.ID, task.ID, store.TaskUpdate{Notes: ptr("monthly"), Status: ptr(store.TaskQueued)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateKnowledge(ctx, p.ID, k.ID, store.KnowledgeUpdate{Body: ptr("rotate monthly"), Tags: &[]string{"secrets"}}); err != nil {
		t.Fatal(err)
	}
	if ft, fk := found("quarterly"); ft || fk {
		t.Errorf("old text still found after the update: %v, %v", ft, fk)
	}
	if _, fk := found("security"); fk {
		t.Errorf("old tag still found after the update")
	}
	if ft, fk := found("monthly"); !ft || !fk {
		t.Errorf("new text not found after the update: %v, %v", ft, fk)
	}
	if _, fk := found("secrets"); !fk {
		t.Errorf("new tag not found after the update")
	}
	// A status-only update keeps the text searchable.
	if _, err := s.UpdateTask(ctx, p.ID, task.ID, store.TaskUpdate{Status: ptr(store.TaskCompleted)}); err != nil {
		t.Fatal(err)
	}
	if ft, _ := found("rotate"); !ft {
		t.Errorf("task not found after a status update")
	}
}

// testHostileSearch feeds the searches text that would be syntax if it
// reached the query language: none may fail with anything but ErrInvalid
// (for queries without a word), and none may return another project's rows.
func testHostileSearch(t *testing.T, s store.Store) {
	const text = "alpha col val near a b x or and not title deploy 日本語 ünïcödé drop table"
	a := seedProject(t, s, "alpha", "sa", text)
	seedProject(t, s, "bravo", "sb", text+" bravo only")

	var words strings.Builder
	for words.Len() < 10<<10 {
		words.WriteString("alpha deploy lorem ipsum dolor sit amet ")
	}
	for _, tt := range []struct {
		query   string
		invalid bool // no word in it
		matches bool // A's items match
	}{
		{`"`, true, false},
		{`""`, true, false},
		{`"alpha`, false, true},
		{`alpha"`, false, true},
		{`al"pha`, false, false},
		{`NEAR(a b)`, false, true},     // the phrase "near a", and "b"
		{`NEAR(a b, 2)`, false, false}, // "2" is nowhere
		{`near a b`, false, true},
		{`*`, true, false},
		{`alph*`, false, false},
		{`alpha*`, false, true},
		{`a OR`, false, true},
		{`OR`, false, true},
		{`AND`, false, true},
		{`NOT`, false, true},
		{`alpha NOT bravo`, false, false}, // "not" and "bravo" are words: A has no "bravo"
		{`-x`, false, true},
		{`-bravo`, false, false},
		{`col:val`, false, true},
		{`title:alpha`, false, false},
		{`{title}:alpha`, false, false},
		{`title : alpha`, false, true},
		{`)`, true, false},
		{`(`, true, false},
		{`(alpha)`, false, true},
		{`^alpha`, false, true},
		{`alpha + deploy`, false, true},
		{`'alpha'`, false, true},
		{`alpha; DROP TABLE x; --`, false, true},
		{`%_`, true, false},
		{`...`, true, false},
		{`🚀`, true, false},
		{`🚀 alpha`, false, true},
		{`日本語`, false, true},
		{`unicode`, false, true},
		{`Ünïcödé`, false, true},
		{"alpha\x00deploy", false, true},
		{"\x00", true, false},
		{"alpha\xff\xfedeploy", false, true},
		{"\xff", true, false},
		{"alpha\tdeploy\r\n", false, true},
		{words.String(), false, false}, // lorem is nowhere
		{strings.Repeat("alpha ", 2000), false, true},
		{"", true, false},
		{long(store.MaxQueryLen + 1), true, false},
	} {
		ts, ks, ms, err := searchAll(t, s, a.project.ID, tt.query, 0)
		switch {
		case tt.invalid:
			if !errors.Is(err, store.ErrInvalid) {
				t.Errorf("search %.40q = %v; want ErrInvalid", tt.query, err)
			}
			continue
		case err != nil:
			t.Errorf("search %.40q: %v", tt.query, err)
			continue
		}
		n := len(ts) + len(ks) + len(ms)
		if tt.matches && n != 3 || !tt.matches && n != 0 {
			t.Errorf("search %.40q = %v %v %v; want %v", tt.query, ts, ks, ms, map[bool]string{true: "A's three items", false: "nothing"}[tt.matches])
		}
	}
}
