package storetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentbroker/agentbroker/store"
)

func testProjects(t *testing.T, s store.Store) {
	ctx := t.Context()
	before := time.Now()
	p := must[store.Project](t, "CreateProject")(s.CreateProject(ctx, store.Project{
		ID:            "ignored",
		Name:          "Broker",
		Description:   "The agent broker",
		RepoPath:      "/src/broker",
		RepoURL:       "https://example.com/broker.git",
		DefaultBranch: "main",
		Instructions:  "# Rules\n\nRun the tests. Ünïcödé is fine.",
	}))
	after := time.Now()
	checkID(t, p.ID, "prj_")
	checkStamp(t, "CreatedAt", p.CreatedAt, before, after)
	if !p.UpdatedAt.Equal(p.CreatedAt) {
		t.Errorf("UpdatedAt %v != CreatedAt %v on creation", p.UpdatedAt, p.CreatedAt)
	}
	want := store.Project{ID: p.ID, Name: "Broker", Description: "The agent broker", RepoPath: "/src/broker",
		RepoURL: "https://example.com/broker.git", DefaultBranch: "main",
		Instructions: "# Rules\n\nRun the tests. Ünïcödé is fine.", CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt}
	same(t, "CreateProject", p, want)
	same(t, "GetProject", must[store.Project](t, "GetProject")(s.GetProject(ctx, p.ID)), want)

	_, err := s.GetProject(ctx, "prj_nope")
	wantErr(t, "GetProject(unknown)", err, store.ErrNotFound)

	// Validation: refused with ErrInvalid, nothing stored.
	invalid := []struct {
		name string
		p    store.Project
	}{
		{"no name", store.Project{}},
		{"blank name", store.Project{Name: " \t\n"}},
		{"long name", store.Project{Name: long(store.MaxNameLen + 1)}},
		{"NUL in name", store.Project{Name: "a\x00b"}},
		{"bad UTF-8", store.Project{Name: "ok", Description: "\xff\xfe"}},
		{"long description", store.Project{Name: "ok", Description: long(store.MaxTextLen + 1)}},
		{"long instructions", store.Project{Name: "ok", Instructions: long(store.MaxTextLen + 1)}},
		{"long repo URL", store.Project{Name: "ok", RepoURL: long(store.MaxRefLen + 1)}},
		{"long repo path", store.Project{Name: "ok", RepoPath: long(store.MaxRefLen + 1)}},
		{"long branch", store.Project{Name: "ok", DefaultBranch: long(store.MaxNameLen + 1)}},
	}
	for _, tt := range invalid {
		_, err := s.CreateProject(ctx, tt.p)
		wantErr(t, "CreateProject("+tt.name+")", err, store.ErrInvalid)
		tt.p.ID = p.ID
		_, err = s.UpdateProject(ctx, tt.p)
		wantErr(t, "UpdateProject("+tt.name+")", err, store.ErrInvalid)
	}
	same(t, "GetProject after refused updates", must[store.Project](t, "GetProject")(s.GetProject(ctx, p.ID)), want)
	// At the limits is fine.
	edge := must[store.Project](t, "CreateProject(at limits)")(s.CreateProject(ctx, store.Project{
		Name: long(store.MaxNameLen), Instructions: long(store.MaxTextLen)}))
	if len(edge.Instructions) != store.MaxTextLen {
		t.Errorf("instructions at the limit came back as %d bytes", len(edge.Instructions))
	}

	// Update replaces every field but ID and CreatedAt.
	time.Sleep(time.Millisecond)
	before = time.Now()
	u := must[store.Project](t, "UpdateProject")(s.UpdateProject(ctx, store.Project{
		ID: p.ID, Name: "Broker 2", Instructions: "new rules", CreatedAt: time.Unix(1, 0)}))
	after = time.Now()
	checkStamp(t, "UpdatedAt", u.UpdatedAt, before, after)
	want = store.Project{ID: p.ID, Name: "Broker 2", Instructions: "new rules", CreatedAt: p.CreatedAt, UpdatedAt: u.UpdatedAt}
	same(t, "UpdateProject", u, want)
	same(t, "GetProject after update", must[store.Project](t, "GetProject")(s.GetProject(ctx, p.ID)), want)
	_, err = s.UpdateProject(ctx, store.Project{ID: "prj_nope", Name: "x"})
	wantErr(t, "UpdateProject(unknown)", err, store.ErrNotFound)

	// List: by name, case-insensitive; every project, unique IDs.
	for _, name := range []string{"beta", "Alpha", "gamma"} {
		newProject(t, s, name)
	}
	list := must[[]store.Project](t, "ListProjects")(s.ListProjects(ctx))
	var names []string
	seen := map[string]bool{}
	for _, p := range list {
		names = append(names, p.Name)
		if seen[p.ID] {
			t.Errorf("ListProjects: ID %s twice", p.ID)
		}
		seen[p.ID] = true
	}
	wantNames := []string{"Alpha", "beta", "Broker 2", "gamma", long(store.MaxNameLen)}
	if !slices.Equal(names, wantNames) {
		t.Errorf("ListProjects names = %q; want %q", names, wantNames)
	}
}

func testTasks(t *testing.T, s store.Store) {
	ctx := t.Context()
	p := newProject(t, s, "p")
	before := time.Now()
	task := must[store.Task](t, "CreateTask")(s.CreateTask(ctx, store.Task{
		ID: "ignored", ProjectID: p.ID, Title: "Write the migration", Description: "tables and triggers",
		Notes: "see the docs", OutputSummary: "", SessionID: "sess-1", CreatedAt: time.Unix(1, 0)}))
	after := time.Now()
	checkID(t, task.ID, "tsk_")
	checkStamp(t, "CreatedAt", task.CreatedAt, before, after)
	want := store.Task{ID: task.ID, ProjectID: p.ID, Title: "Write the migration", Description: "tables and triggers",
		Status: store.TaskDraft, Notes: "see the docs", SessionID: "sess-1", CreatedAt: task.CreatedAt, UpdatedAt: task.CreatedAt}
	same(t, "CreateTask", task, want)
	same(t, "GetTask", must[store.Task](t, "GetTask")(s.GetTask(ctx, p.ID, task.ID)), want)

	for _, st := range store.TaskStatuses() {
		got := must[store.Task](t, "CreateTask("+string(st)+")")(s.CreateTask(ctx, store.Task{ProjectID: p.ID, Title: "t", Status: st}))
		if got.Status != st {
			t.Errorf("CreateTask(status %s) stored %s", st, got.Status)
		}
	}

	_, err := s.GetTask(ctx, p.ID, "tsk_nope")
	wantErr(t, "GetTask(unknown)", err, store.ErrNotFound)
	_, err = s.CreateTask(ctx, store.Task{ProjectID: "prj_nope", Title: "t"})
	wantErr(t, "CreateTask(unknown project)", err, store.ErrNotFound)

	invalid := []struct {
		name string
		t    store.Task
	}{
		{"no project", store.Task{Title: "t"}},
		{"no title", store.Task{ProjectID: p.ID}},
		{"blank title", store.Task{ProjectID: p.ID, Title: "   "}},
		{"long title", store.Task{ProjectID: p.ID, Title: long(store.MaxTitleLen + 1)}},
		{"unknown status", store.Task{ProjectID: p.ID, Title: "t", Status: "done"}},
		{"long description", store.Task{ProjectID: p.ID, Title: "t", Description: long(store.MaxTextLen + 1)}},
		{"long notes", store.Task{ProjectID: p.ID, Title: "t", Notes: long(store.MaxTextLen + 1)}},
		{"long summary", store.Task{ProjectID: p.ID, Title: "t", OutputSummary: long(store.MaxTextLen + 1)}},
		{"NUL in notes", store.Task{ProjectID: p.ID, Title: "t", Notes: "a\x00"}},
		{"bad UTF-8 title", store.Task{ProjectID: p.ID, Title: "\xc3"}},
		{"long session", store.Task{ProjectID: p.ID, Title: "t", SessionID: long(store.MaxIDLen + 1)}},
	}
	for _, tt := range invalid {
		_, err := s.CreateTask(ctx, tt.t)
		wantErr(t, "CreateTask("+tt.name+")", err, store.ErrInvalid)
	}
	if n := len(must[[]store.Task](t, "ListTasks")(s.ListTasks(ctx, p.ID, store.TaskFilter{}))); n != 1+len(store.TaskStatuses()) {
		t.Errorf("ListTasks after refused creations: %d tasks; want %d", n, 1+len(store.TaskStatuses()))
	}
}

func testTaskUpdates(t *testing.T, s store.Store) {
	ctx := t.Context()
	p := newProject(t, s, "p")
	orig := must[store.Task](t, "CreateTask")(s.CreateTask(ctx, store.Task{
		ProjectID: p.ID, Title: "title", Description: "desc", Notes: "notes", Status: store.TaskQueued, SessionID: "s1"}))

	// Setting nothing changes nothing, UpdatedAt included.
	got := must[store.Task](t, "UpdateTask(nothing)")(s.UpdateTask(ctx, p.ID, orig.ID, store.TaskUpdate{}))
	same(t, "UpdateTask(nothing)", got, orig)

	time.Sleep(time.Millisecond)
	before := time.Now()
	got = must[store.Task](t, "UpdateTask")(s.UpdateTask(ctx, p.ID, orig.ID, store.TaskUpdate{
		Status: ptr(store.TaskInProgress), Notes: ptr("more notes"), SessionID: ptr("")}))
	after := time.Now()
	checkStamp(t, "UpdatedAt", got.UpdatedAt, before, after)
	want := orig
	want.Status, want.Notes, want.SessionID, want.UpdatedAt = store.TaskInProgress, "more notes", "", got.UpdatedAt
	same(t, "UpdateTask", got, want)
	same(t, "GetTask after update", must[store.Task](t, "GetTask")(s.GetTask(ctx, p.ID, orig.ID)), want)

	got = must[store.Task](t, "UpdateTask(all)")(s.UpdateTask(ctx, p.ID, orig.ID, store.TaskUpdate{
		Title: ptr("T2"), Description: ptr(""), Status: ptr(store.TaskCompleted), Notes: ptr(""),
		OutputSummary: ptr("done it"), SessionID: ptr("s2")}))
	want = store.Task{ID: orig.ID, ProjectID: p.ID, Title: "T2", Status: store.TaskCompleted, OutputSummary: "done it",
		SessionID: "s2", CreatedAt: orig.CreatedAt, UpdatedAt: got.UpdatedAt}
	same(t, "UpdateTask(all)", got, want)

	for name, u := range map[string]store.TaskUpdate{
		"empty title":    {Title: ptr("")},
		"blank title":    {Title: ptr(" ")},
		"empty status":   {Status: ptr(store.TaskStatus(""))},
		"unknown status": {Status: ptr(store.TaskStatus("DONE"))},
		"long notes":     {Notes: ptr(long(store.MaxTextLen + 1))},
		"NUL":            {Description: ptr("\x00")},
		"long title":     {Title: ptr(long(store.MaxTitleLen + 1)), Notes: ptr("fine")},
	} {
		_, err := s.UpdateTask(ctx, p.ID, orig.ID, u)
		wantErr(t, "UpdateTask("+name+")", err, store.ErrInvalid)
	}
	same(t, "GetTask after refused updates", must[store.Task](t, "GetTask")(s.GetTask(ctx, p.ID, orig.ID)), want)
	_, err := s.UpdateTask(ctx, p.ID, "tsk_nope", store.TaskUpdate{Title: ptr("x")})
	wantErr(t, "UpdateTask(unknown)", err, store.ErrNotFound)
	_, err = s.UpdateTask(ctx, p.ID, "tsk_nope", store.TaskUpdate{})
	wantErr(t, "UpdateTask(unknown, nothing)", err, store.ErrNotFound)
}

func testListTasks(t *testing.T, s store.Store) {
	ctx := t.Context()
	p := newProject(t, s, "p")
	empty := newProject(t, s, "empty")
	specs := []struct {
		status  store.TaskStatus
		session string
	}{
		{store.TaskQueued, "s1"},
		{store.TaskQueued, "s2"},
		{store.TaskCompleted, "s1"},
		{store.TaskDraft, ""},
		{store.TaskQueued, "s1"},
	}
	var all []store.Task
	for i, sp := range specs {
		all = append(all, must[store.Task](t, "CreateTask")(s.CreateTask(ctx, store.Task{
			ProjectID: p.ID, Title: fmt.Sprintf("task %d", i), Status: sp.status, SessionID: sp.session})))
	}
	// Newest first: ids picks tasks by creation index, newest first.
	ids := func(idx ...int) []string {
		var out []string
		for _, i := range idx {
			out = append(out, all[i].ID)
		}
		return out
	}
	for _, tt := range []struct {
		name string
		f    store.TaskFilter
		want []string
	}{
		{"all", store.TaskFilter{}, ids(4, 3, 2, 1, 0)},
		{"queued", store.TaskFilter{Status: store.TaskQueued}, ids(4, 1, 0)},
		{"s1", store.TaskFilter{SessionID: "s1"}, ids(4, 2, 0)},
		{"queued s1", store.TaskFilter{Status: store.TaskQueued, SessionID: "s1"}, ids(4, 0)},
		{"failed", store.TaskFilter{Status: store.TaskFailed}, nil},
		{"unknown session", store.TaskFilter{SessionID: "nope"}, nil},
		{"limit 2", store.TaskFilter{Limit: 2}, ids(4, 3)},
		{"queued limit 1", store.TaskFilter{Status: store.TaskQueued, Limit: 1}, ids(4)},
		{"negative limit", store.TaskFilter{Limit: -1}, ids(4, 3, 2, 1, 0)},
		{"huge limit", store.TaskFilter{Limit: 1 << 30}, ids(4, 3, 2, 1, 0)},
	} {
		got := must[[]store.Task](t, "ListTasks("+tt.name+")")(s.ListTasks(ctx, p.ID, tt.f))
		if !slices.Equal(taskIDs(got), tt.want) {
			t.Errorf("ListTasks(%s) = %v; want %v", tt.name, taskIDs(got), tt.want)
		}
	}
	got := must[[]store.Task](t, "ListTasks")(s.ListTasks(ctx, p.ID, store.TaskFilter{}))
	same(t, "ListTasks[0]", got[0], all[4])

	if got, err := s.ListTasks(ctx, empty.ID, store.TaskFilter{}); err != nil || len(got) != 0 {
		t.Errorf("ListTasks(empty project) = %v, %v; want none", got, err)
	}
	_, err := s.ListTasks(ctx, "prj_nope", store.TaskFilter{})
	wantErr(t, "ListTasks(unknown project)", err, store.ErrNotFound)
	_, err = s.ListTasks(ctx, p.ID, store.TaskFilter{Status: "DONE"})
	wantErr(t, "ListTasks(unknown status)", err, store.ErrInvalid)
}

func testKnowledge(t *testing.T, s store.Store) {
	ctx := t.Context()
	p := newProject(t, s, "p")
	before := time.Now()
	k := must[store.Knowledge](t, "AddKnowledge")(s.AddKnowledge(ctx, store.Knowledge{
		ID: "ignored", ProjectID: p.ID, Title: "Deploys", Body: "Run the migration first.",
		Tags: []string{"ops", " deploy ", "ops", `<b>&"q"</b>`, "deploy", "日本"}, SessionID: "s1"}))
	after := time.Now()
	checkID(t, k.ID, "kn_")
	checkStamp(t, "CreatedAt", k.CreatedAt, before, after)
	want := store.Knowledge{ID: k.ID, ProjectID: p.ID, Title: "Deploys", Body: "Run the migration first.",
		Tags: []string{"ops", "deploy", `<b>&"q"</b>`, "日本"}, SessionID: "s1", CreatedAt: k.CreatedAt, UpdatedAt: k.CreatedAt}
	same(t, "AddKnowledge", k, want)
	same(t, "GetKnowledge", must[store.Knowledge](t, "GetKnowledge")(s.GetKnowledge(ctx, p.ID, k.ID)), want)

	// No tags read back as an empty, non-nil slice.
	bare := must[store.Knowledge](t, "AddKnowledge(no tags)")(s.AddKnowledge(ctx, store.Knowledge{ProjectID: p.ID, Title: "t", Body: "b"}))
	if got := must[store.Knowledge](t, "GetKnowledge")(s.GetKnowledge(ctx, p.ID, bare.ID)); got.Tags == nil || len(got.Tags) != 0 {
		t.Errorf("Tags of an entry without tags = %#v; want []string{}", got.Tags)
	}
	// MaxTags counts distinct tags.
	var tags []string
	for i := range store.MaxTags {
		tags = append(tags, fmt.Sprint("t", i))
	}
	must[store.Knowledge](t, "AddKnowledge(MaxTags and a repeat)")(s.AddKnowledge(ctx, store.Knowledge{
		ProjectID: p.ID, Title: "t", Body: "b", Tags: append(slices.Clone(tags), "t0")}))

	_, err := s.GetKnowledge(ctx, p.ID, "kn_nope")
	wantErr(t, "GetKnowledge(unknown)", err, store.ErrNotFound)
	_, err = s.AddKnowledge(ctx, store.Knowledge{ProjectID: "prj_nope", Title: "t", Body: "b"})
	wantErr(t, "AddKnowledge(unknown project)", err, store.ErrNotFound)
	for _, tt := range []struct {
		name string
		k    store.Knowledge
	}{
		{"no project", store.Knowledge{Title: "t", Body: "b"}},
		{"no title", store.Knowledge{ProjectID: p.ID, Body: "b"}},
		{"no body", store.Knowledge{ProjectID: p.ID, Title: "t"}},
		{"blank body", store.Knowledge{ProjectID: p.ID, Title: "t", Body: "\n"}},
		{"long title", store.Knowledge{ProjectID: p.ID, Title: long(store.MaxTitleLen + 1), Body: "b"}},
		{"long body", store.Knowledge{ProjectID: p.ID, Title: "t", Body: long(store.MaxTextLen + 1)}},
		{"too many tags", store.Knowledge{ProjectID: p.ID, Title: "t", Body: "b", Tags: append(slices.Clone(tags), "one more")}},
		{"long tag", store.Knowledge{ProjectID: p.ID, Title: "t", Body: "b", Tags: []string{long(store.MaxTagLen + 1)}}},
		{"empty tag", store.Knowledge{ProjectID: p.ID, Title: "t", Body: "b", Tags: []string{"a", " "}}},
		{"NUL tag", store.Knowledge{ProjectID: p.ID, Title: "t", Body: "b", Tags: []string{"a\x00"}}},
		{"NUL body", store.Knowledge{ProjectID: p.ID, Title: "t", Body: "b\x00"}},
	} {
		_, err := s.AddKnowledge(ctx, tt.k)
		wantErr(t, "AddKnowledge("+tt.name+")", err, store.ErrInvalid)
	}

	// Updates.
	got := must[store.Knowledge](t, "UpdateKnowledge(nothing)")(s.UpdateKnowledge(ctx, p.ID, k.ID, store.KnowledgeUpdate{}))
	same(t, "UpdateKnowledge(nothing)", got, want)
	time.Sleep(time.Millisecond)
	before = time.Now()
	got = must[store.Knowledge](t, "UpdateKnowledge(tags)")(s.UpdateKnowledge(ctx, p.ID, k.ID, store.KnowledgeUpdate{
		Tags: &[]string{"z", "a", "z"}}))
	checkStamp(t, "UpdatedAt", got.UpdatedAt, before, time.Now())
	want.Tags, want.UpdatedAt = []string{"z", "a"}, got.UpdatedAt
	same(t, "UpdateKnowledge(tags)", got, want)
	got = must[store.Knowledge](t, "UpdateKnowledge(body)")(s.UpdateKnowledge(ctx, p.ID, k.ID, store.KnowledgeUpdate{
		Title: ptr("Deploying"), Body: ptr("New body"), Tags: &[]string{}}))
	want.Title, want.Body, want.Tags, want.UpdatedAt = "Deploying", "New body", []string{}, got.UpdatedAt
	same(t, "UpdateKnowledge(body)", got, want)
	for name, u := range map[string]store.KnowledgeUpdate{
		"empty title":   {Title: ptr("")},
		"empty body":    {Body: ptr("")},
		"too many tags": {Tags: ptr(append(slices.Clone(tags), "x"))},
		"long tag":      {Tags: &[]string{strings.Repeat("é", store.MaxTagLen)}},
	} {
		_, err := s.UpdateKnowledge(ctx, p.ID, k.ID, u)
		wantErr(t, "UpdateKnowledge("+name+")", err, store.ErrInvalid)
	}
	same(t, "GetKnowledge after updates", must[store.Knowledge](t, "GetKnowledge")(s.GetKnowledge(ctx, p.ID, k.ID)), want)
	_, err = s.UpdateKnowledge(ctx, p.ID, "kn_nope", store.KnowledgeUpdate{Title: ptr("x")})
	wantErr(t, "UpdateKnowledge(unknown)", err, store.ErrNotFound)

	// List: newest first.
	list := must[[]store.Knowledge](t, "ListKnowledge")(s.ListKnowledge(ctx, p.ID, 0))
	if len(list) != 3 || list[2].ID != k.ID || list[1].ID != bare.ID {
		t.Errorf("ListKnowledge = %d entries, last two %v; want 3, newest first", len(list), list)
	}
	same(t, "ListKnowledge[2]", list[2], want)
	if list := must[[]store.Knowledge](t, "ListKnowledge(1)")(s.ListKnowledge(ctx, p.ID, 1)); len(list) != 1 || list[0].ID == k.ID || list[0].ID == bare.ID {
		t.Errorf("ListKnowledge(limit 1) = %v; want the newest", list)
	}
	_, err = s.ListKnowledge(ctx, "prj_nope", 0)
	wantErr(t, "ListKnowledge(unknown project)", err, store.ErrNotFound)
}

// testListLimits checks the default list limits.
func testListLimits(t *testing.T, s store.Store) {
	ctx := t.Context()
	p := newProject(t, s, "p")
	n := store.DefaultListLimit + 1
	for i := range n {
		must[store.Task](t, "CreateTask")(s.CreateTask(ctx, store.Task{ProjectID: p.ID, Title: "t"}))
		must[store.Knowledge](t, "AddKnowledge")(s.AddKnowledge(ctx, store.Knowledge{ProjectID: p.ID, Title: "t", Body: "b"}))
		if err := s.PutSession(ctx, store.SessionRecord{ID: fmt.Sprint("s", i), ProjectID: p.ID}); err != nil {
			t.Fatal(err)
		}
	}
	msgs := make([]store.Message, store.DefaultMessageLimit+1)
	for i := range msgs {
		msgs[i] = store.Message{SessionID: "s0", ProjectID: p.ID, Role: store.RoleUser, Content: "m"}
	}
	must[[]store.Message](t, "AppendMessages")(s.AppendMessages(ctx, msgs))

	check := func(what string, got, want int, err error) {
		t.Helper()
		if err != nil || got != want {
			t.Errorf("%s = %d rows, %v; want %d", what, got, err, want)
		}
	}
	ts, err := s.ListTasks(ctx, p.ID, store.TaskFilter{})
	check("ListTasks(default)", len(ts), store.DefaultListLimit, err)
	ts, err = s.ListTasks(ctx, p.ID, store.TaskFilter{Limit: store.MaxListLimit + 1})
	check("ListTasks(over max)", len(ts), n, err)
	ks, err := s.ListKnowledge(ctx, p.ID, 0)
	check("ListKnowledge(default)", len(ks), store.DefaultListLimit, err)
	ks, err = s.ListKnowledge(ctx, p.ID, store.MaxListLimit+1)
	check("ListKnowledge(over max)", len(ks), n, err)
	ss, err := s.ListSessions(ctx, p.ID, 0)
	check("ListSessions(default)", len(ss), store.DefaultListLimit, err)
	ss, err = s.ListSessions(ctx, p.ID, -5)
	check("ListSessions(negative)", len(ss), store.DefaultListLimit, err)
	ms, err := s.SessionMessages(ctx, p.ID, "s0", 0, 0)
	check("SessionMessages(default)", len(ms), store.DefaultMessageLimit, err)
	ms, err = s.SessionMessages(ctx, p.ID, "s0", 0, store.MaxMessageLimit+1)
	check("SessionMessages(over max)", len(ms), len(msgs), err)
	hits, err := s.SearchTasks(ctx, p.ID, "t", 0)
	check("SearchTasks(default)", len(hits), store.DefaultSearchLimit, err)
	if n <= store.MaxSearchLimit {
		t.Fatalf("the test needs more than MaxSearchLimit rows to check the ceiling")
	}
	hits, err = s.SearchTasks(ctx, p.ID, "t", 1<<30)
	check("SearchTasks(huge)", len(hits), store.MaxSearchLimit, err)
	khits, err := s.SearchKnowledge(ctx, p.ID, "b", 3)
	check("SearchKnowledge(3)", len(khits), 3, err)
	mhits, err := s.SearchMessages(ctx, p.ID, "m", 0)
	check("SearchMessages(default)", len(mhits), store.DefaultSearchLimit, err)
}
