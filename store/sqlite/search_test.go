package sqlite

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/agentbroker/agentbroker/store"
)

func TestFTSQuery(t *testing.T) {
	t.Parallel()
	many := strings.Repeat("w ", store.MaxSearchWords) // one distinct word
	var distinct []string
	for i := range store.MaxSearchWords + 5 {
		distinct = append(distinct, "w"+strings.Repeat("x", i))
	}
	tests := []struct {
		in, want string
	}{
		{"migrations", `"migrations"`},
		{"  two   words ", `"two" "words"`},
		{`say "hi"`, `"say" """hi"""`},
		{`NEAR(a b)`, `"NEAR(a" "b)"`},
		{`a OR b NOT c AND d`, `"a" "OR" "b" "NOT" "c" "AND" "d"`},
		{`col:val -x ^y z*`, `"col:val" "-x" "^y" "z*"`},
		{`{a b}:c`, `"{a" "b}:c"`},
		{`* ) ( ... "" - :`, ``},
		{"Word word WORD other", `"Word" "other"`},
		{"a\x00b\tc\r\nd", `"a" "b" "c" "d"`},
		{"ok\xffbad", `"ok" "bad"`},
		{"日本語 🚀 ünï", `"日本語" "ünï"`},
		{many, `"w"`},
		{strings.Join(distinct, " "), `"` + strings.Join(distinct[:store.MaxSearchWords], `" "`) + `"`},
	}
	for _, tt := range tests {
		got, err := ftsQuery(tt.in)
		if tt.want == "" {
			if !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), "empty search") {
				t.Errorf("ftsQuery(%q) = %q, %v; want an empty-search ErrInvalid", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ftsQuery(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := ftsQuery(strings.Repeat("a", store.MaxQueryLen+1)); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("ftsQuery(over MaxQueryLen) = %v; want ErrInvalid", err)
	}
}

// ftsCount counts the rows the index itself returns for text, without the
// join to the content table that every search does: a stale index entry
// shows here even when the join would hide it.
func ftsCount(t *testing.T, db *DB, table, text string) int {
	t.Helper()
	q, err := ftsQuery(text)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.w.QueryRow(`SELECT count(*) FROM `+table+` WHERE `+table+` MATCH ?`, q).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// integrity runs FTS5's integrity-check on the three indexes, which also
// compares each with its content table.
func integrity(t *testing.T, db *DB) {
	t.Helper()
	for _, table := range []string{"tasks_fts", "knowledge_fts", "messages_fts"} {
		if _, err := db.w.Exec(`INSERT INTO ` + table + ` (` + table + `, rank) VALUES ('integrity-check', 1)`); err != nil {
			t.Errorf("%s integrity-check: %v", table, err)
		}
	}
}

// TestFTSInSync checks that the triggers keep the indexes equal to their
// tables through inserts, updates and deletes (deletes have no API yet;
// they happen by SQL, and by cascade when a project is deleted).
func TestFTSInSync(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openTemp(t)
	defer db.Close()

	p, err := db.CreateProject(ctx, store.Project{Name: "p"})
	if err != nil {
		t.Fatal(err)
	}
	task, err := db.CreateTask(ctx, store.Task{ProjectID: p.ID, Title: "Rotate keys", Description: "quarterly rotation", OutputSummary: "nothing yet"})
	if err != nil {
		t.Fatal(err)
	}
	gone, err := db.CreateTask(ctx, store.Task{ProjectID: p.ID, Title: "Obsolete chore", Notes: "zeppelin"})
	if err != nil {
		t.Fatal(err)
	}
	k, err := db.AddKnowledge(ctx, store.Knowledge{ProjectID: p.ID, Title: "Keys", Body: "quarterly", Tags: []string{"security"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PutSession(ctx, store.SessionRecord{ID: "s1", ProjectID: p.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AppendMessages(ctx, []store.Message{{SessionID: "s1", ProjectID: p.ID, Role: store.RoleUser, Content: "quarterly zeppelin"}}); err != nil {
		t.Fatal(err)
	}
	integrity(t, db)

	// Updates: the old text leaves the index, the new text enters it.
	if _, err := db.UpdateTask(ctx, p.ID, task.ID, store.TaskUpdate{Description: ptr("monthly rotation"), OutputSummary: ptr("rotated")}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateKnowledge(ctx, p.ID, k.ID, store.KnowledgeUpdate{Body: ptr("monthly"), Tags: &[]string{"secrets"}}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		table, text string
		want        int
	}{
		{"tasks_fts", "quarterly", 0},
		{"tasks_fts", "nothing yet", 0},
		{"tasks_fts", "monthly", 1},
		{"tasks_fts", "rotated", 1},
		{"knowledge_fts", "quarterly", 0},
		{"knowledge_fts", "security", 0},
		{"knowledge_fts", "monthly secrets", 1},
		{"messages_fts", "quarterly", 1},
	} {
		if n := ftsCount(t, db, tt.table, tt.text); n != tt.want {
			t.Errorf("after updates, %s has %d rows for %q; want %d", tt.table, n, tt.text, tt.want)
		}
	}
	// A status-only update does not touch the index (the trigger is on the
	// text columns) and loses nothing.
	if _, err := db.UpdateTask(ctx, p.ID, task.ID, store.TaskUpdate{Status: ptr(store.TaskCompleted)}); err != nil {
		t.Fatal(err)
	}
	if n := ftsCount(t, db, "tasks_fts", "monthly"); n != 1 {
		t.Errorf("after a status update, %d rows for monthly; want 1", n)
	}
	integrity(t, db)

	// A deleted row no longer matches.
	if _, err := db.w.Exec(`DELETE FROM tasks WHERE id = ?`, gone.ID); err != nil {
		t.Fatal(err)
	}
	if n := ftsCount(t, db, "tasks_fts", "zeppelin"); n != 0 {
		t.Errorf("deleted task still in the index (%d rows)", n)
	}
	if hits, err := db.SearchTasks(ctx, p.ID, "obsolete", 0); err != nil || len(hits) != 0 {
		t.Errorf("SearchTasks(deleted) = %v, %v; want nothing", hits, err)
	}
	integrity(t, db)

	// Deleting the project cascades to everything, indexes included.
	if _, err := db.w.Exec(`DELETE FROM projects WHERE id = ?`, p.ID); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"tasks_fts", "knowledge_fts", "messages_fts"} {
		if n := ftsCount(t, db, table, "monthly quarterly rotation secrets zeppelin"); n != 0 {
			t.Errorf("after the project's deletion %s still matches (%d rows)", table, n)
		}
		var n int
		if err := db.w.QueryRow(`SELECT count(*) FROM ` + table + `_docsize`).Scan(&n); err != nil || n != 0 {
			t.Errorf("after the project's deletion %s holds %d documents, %v", table, n, err)
		}
	}
	integrity(t, db)
}

// TestIntegrityCheckDetectsDrift shows that integrity() can fail: with the
// update trigger gone, the index drifts from the table.
func TestIntegrityCheckDetectsDrift(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openTemp(t)
	defer db.Close()
	p, _ := db.CreateProject(ctx, store.Project{Name: "p"})
	task, err := db.CreateTask(ctx, store.Task{ProjectID: p.ID, Title: "before"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.w.Exec(`DROP TRIGGER tasks_fts_update`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.w.Exec(`UPDATE tasks SET title = 'after' WHERE id = ?`, task.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.w.Exec(`INSERT INTO tasks_fts (tasks_fts, rank) VALUES ('integrity-check', 1)`); err == nil {
		t.Fatal("integrity-check passed on an index that drifted from its table")
	}
}

func TestSnippetFormat(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openTemp(t)
	defer db.Close()
	p, _ := db.CreateProject(ctx, store.Project{Name: "p"})
	body := strings.Repeat("filler words here. ", 20) + "The staging deploy needs a migration first. " + strings.Repeat("more filler text. ", 20)
	if _, err := db.AddKnowledge(ctx, store.Knowledge{ProjectID: p.ID, Title: "Deploys", Body: body}); err != nil {
		t.Fatal(err)
	}
	hits, err := db.SearchKnowledge(ctx, p.ID, "migrations", 0)
	if err != nil || len(hits) != 1 {
		t.Fatalf("SearchKnowledge = %v, %v", hits, err)
	}
	got := hits[0].Snippet
	if !strings.Contains(got, "«migration»") || !strings.HasPrefix(got, "…") || !strings.HasSuffix(got, "…") {
		t.Errorf("snippet = %q; want «migration» inside a …-elided excerpt", got)
	}
	if n := len(strings.Fields(got)); n > snippetTokens+2 {
		t.Errorf("snippet has %d words; want about %d", n, snippetTokens)
	}
}

func TestSearchPlansUseIndexes(t *testing.T) {
	t.Parallel()
	db := openTemp(t)
	defer db.Close()
	for _, tt := range []struct{ query, want string }{
		{`SELECT id FROM tasks WHERE project_id = ?1 ORDER BY created_at DESC, pk DESC LIMIT 5`, "tasks_by_project"},
		{`SELECT id FROM tasks WHERE project_id = ?1 AND status = ?2 ORDER BY created_at DESC, pk DESC LIMIT 5`, "tasks_by_status"},
		{`SELECT id FROM tasks WHERE project_id = ?1 AND session_id = ?2 ORDER BY created_at DESC, pk DESC LIMIT 5`, "tasks_by_session"},
		{`SELECT id FROM sessions WHERE project_id = ?1 ORDER BY created_at DESC, rowid DESC LIMIT 5`, "sessions_by_project"},
		{`SELECT seq FROM messages WHERE session_id = ?1 AND project_id = ?2 AND seq > ?3 ORDER BY seq LIMIT 5`, "sqlite_autoindex_messages_1"},
	} {
		rows, err := db.r.Query(`EXPLAIN QUERY PLAN `+tt.query, "a", "b", 0)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		p := strings.Join(plan, "; ")
		if !strings.Contains(p, tt.want) || strings.Contains(p, "TEMP B-TREE") {
			t.Errorf("plan of %q = %q; want %s without a sort", tt.query, p, tt.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }
