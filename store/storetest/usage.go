package storetest

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/agentbroker/agentbroker/store"
)

// testUsage checks usage records and their totals: by session, task,
// project, day and model, within a time range, and what is refused.
func testUsage(t *testing.T, s store.Store) {
	ctx := t.Context()
	p, q := newProject(t, s, "p"), newProject(t, s, "q")
	for _, r := range []store.SessionRecord{{ID: "s1", ProjectID: p.ID}, {ID: "s2", ProjectID: p.ID}, {ID: "s3", ProjectID: q.ID}} {
		if err := s.PutSession(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing recorded: one zero total, no groups.
	if got := must[[]store.UsageSum](t, "UsageTotals")(s.UsageTotals(ctx, store.UsageFilter{ProjectID: p.ID})); !reflect.DeepEqual(got, []store.UsageSum{{}}) {
		t.Fatalf("empty total = %+v; want one zero sum", got)
	}
	if got := must[[]store.UsageSum](t, "UsageTotals")(s.UsageTotals(ctx, store.UsageFilter{GroupBy: store.UsageByDay})); len(got) != 0 {
		t.Fatalf("empty grouping = %+v; want none", got)
	}

	day1 := time.Date(2026, 3, 1, 23, 59, 0, 0, time.UTC)
	day2 := day1.Add(2 * time.Minute) // the next UTC day
	recs := []store.UsageRecord{
		{SessionID: "s1", ProjectID: p.ID, TaskID: "t1", Model: "m-a", Provider: "anthropic", InputTokens: 10, OutputTokens: 20,
			CacheReadTokens: 30, CacheWriteTokens: 40, CostPicoUSD: 1_000_000_000_001, Outcome: "ok", At: day1},
		{SessionID: "s1", ProjectID: p.ID, TaskID: "t1", Model: "m-b", Provider: "openai", InputTokens: 1, OutputTokens: 2,
			CostPicoUSD: 999_999_999_999, Outcome: "ok", At: day2},
		{SessionID: "s2", ProjectID: p.ID, Model: "m-a", Provider: "anthropic", InputTokens: 5, CostPicoUSD: 7, Outcome: "ok", At: day2},
		{SessionID: "s2", ProjectID: p.ID, Outcome: "refused", At: day2}, // a refusal: a call, no cost
		{SessionID: "s3", ProjectID: q.ID, TaskID: "t1", Model: "m-a", InputTokens: 100, CostPicoUSD: 100, Outcome: "ok", At: day1},
	}
	for i, r := range recs {
		if err := s.AddUsage(ctx, r); err != nil {
			t.Fatalf("AddUsage %d: %v", i, err)
		}
	}
	before := time.Now()
	if err := s.AddUsage(ctx, store.UsageRecord{SessionID: "s1", ProjectID: p.ID, Outcome: "ok"}); err != nil {
		t.Fatalf("AddUsage with no time: %v", err)
	}
	after := time.Now()
	if got := must[[]store.UsageSum](t, "UsageTotals")(s.UsageTotals(ctx, store.UsageFilter{SessionID: "s1", Since: before.Truncate(time.Microsecond), Until: after.Add(time.Microsecond)})); got[0].Calls != 1 {
		t.Errorf("a record without a time is not stamped now: %+v", got)
	}

	total := func(f store.UsageFilter) []store.UsageSum {
		t.Helper()
		return must[[]store.UsageSum](t, "UsageTotals")(s.UsageTotals(ctx, f))
	}
	for name, tt := range map[string]struct {
		f    store.UsageFilter
		want []store.UsageSum
	}{
		"session": {store.UsageFilter{SessionID: "s1", Until: day2.Add(time.Hour)},
			[]store.UsageSum{{Calls: 2, InputTokens: 11, OutputTokens: 22, CacheReadTokens: 30, CacheWriteTokens: 40, CostPicoUSD: 2_000_000_000_000}}},
		"project": {store.UsageFilter{ProjectID: p.ID, Until: day2.Add(time.Hour)},
			[]store.UsageSum{{Calls: 4, InputTokens: 16, OutputTokens: 22, CacheReadTokens: 30, CacheWriteTokens: 40, CostPicoUSD: 2_000_000_000_007}}},
		"task across projects": {store.UsageFilter{TaskID: "t1"},
			[]store.UsageSum{{Calls: 3, InputTokens: 111, OutputTokens: 22, CacheReadTokens: 30, CacheWriteTokens: 40, CostPicoUSD: 2_000_000_000_100}}},
		"task in a project": {store.UsageFilter{ProjectID: q.ID, TaskID: "t1"},
			[]store.UsageSum{{Calls: 1, InputTokens: 100, CostPicoUSD: 100}}},
		"since is inclusive, until exclusive": {store.UsageFilter{ProjectID: p.ID, Since: day2, Until: day2.Add(time.Microsecond)},
			[]store.UsageSum{{Calls: 3, InputTokens: 6, OutputTokens: 2, CostPicoUSD: 1_000_000_000_006}}},
		"by day": {store.UsageFilter{ProjectID: p.ID, Until: day2.Add(time.Hour), GroupBy: store.UsageByDay}, []store.UsageSum{
			{Key: "2026-03-01", Calls: 1, InputTokens: 10, OutputTokens: 20, CacheReadTokens: 30, CacheWriteTokens: 40, CostPicoUSD: 1_000_000_000_001},
			{Key: "2026-03-02", Calls: 3, InputTokens: 6, OutputTokens: 2, CostPicoUSD: 1_000_000_000_006}}},
		"by session": {store.UsageFilter{ProjectID: p.ID, Until: day2.Add(time.Hour), GroupBy: store.UsageBySession}, []store.UsageSum{
			{Key: "s1", Calls: 2, InputTokens: 11, OutputTokens: 22, CacheReadTokens: 30, CacheWriteTokens: 40, CostPicoUSD: 2_000_000_000_000},
			{Key: "s2", Calls: 2, InputTokens: 5, CostPicoUSD: 7}}},
		"by task": {store.UsageFilter{ProjectID: p.ID, Until: day2.Add(time.Hour), GroupBy: store.UsageByTask}, []store.UsageSum{
			{Key: "", Calls: 2, InputTokens: 5, CostPicoUSD: 7},
			{Key: "t1", Calls: 2, InputTokens: 11, OutputTokens: 22, CacheReadTokens: 30, CacheWriteTokens: 40, CostPicoUSD: 2_000_000_000_000}}},
		"by model": {store.UsageFilter{Until: day2.Add(time.Hour), GroupBy: store.UsageByModel}, []store.UsageSum{
			{Key: "", Calls: 1},
			{Key: "m-a", Calls: 3, InputTokens: 115, OutputTokens: 20, CacheReadTokens: 30, CacheWriteTokens: 40, CostPicoUSD: 1_000_000_000_108},
			{Key: "m-b", Calls: 1, InputTokens: 1, OutputTokens: 2, CostPicoUSD: 999_999_999_999}}},
		"nothing matches": {store.UsageFilter{SessionID: "nope"}, []store.UsageSum{{}}},
	} {
		if got := total(tt.f); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: UsageTotals = %+v; want %+v", name, got, tt.want)
		}
	}

	// Refused: an unknown grouping, a session not recorded (or recorded
	// in another project), negative counts, fields over their limits.
	if _, err := s.UsageTotals(ctx, store.UsageFilter{GroupBy: "week"}); err == nil {
		t.Error("UsageTotals by week succeeded")
	} else {
		wantErr(t, "UsageTotals by week", err, store.ErrInvalid)
	}
	for name, tt := range map[string]struct {
		r    store.UsageRecord
		want error
	}{
		"unknown session":      {store.UsageRecord{SessionID: "nope", ProjectID: p.ID}, store.ErrNotFound},
		"session of another":   {store.UsageRecord{SessionID: "s3", ProjectID: p.ID}, store.ErrNotFound},
		"no session":           {store.UsageRecord{ProjectID: p.ID}, store.ErrInvalid},
		"no project":           {store.UsageRecord{SessionID: "s1"}, store.ErrInvalid},
		"negative tokens":      {store.UsageRecord{SessionID: "s1", ProjectID: p.ID, OutputTokens: -1}, store.ErrInvalid},
		"negative cost":        {store.UsageRecord{SessionID: "s1", ProjectID: p.ID, CostPicoUSD: -1}, store.ErrInvalid},
		"model over its limit": {store.UsageRecord{SessionID: "s1", ProjectID: p.ID, Model: strings.Repeat("m", store.MaxNameLen+1)}, store.ErrInvalid},
		"task over its limit":  {store.UsageRecord{SessionID: "s1", ProjectID: p.ID, TaskID: strings.Repeat("t", store.MaxIDLen+1)}, store.ErrInvalid},
	} {
		wantErr(t, name+": AddUsage", s.AddUsage(ctx, tt.r), tt.want)
	}
	if got := total(store.UsageFilter{ProjectID: p.ID}); got[0].Calls != 5 {
		t.Errorf("refused records were kept: %d calls in project p; want 5", got[0].Calls)
	}
}

// testTaskBudget: a task's budget is kept, changed and removed; a negative
// one is refused.
func testTaskBudget(t *testing.T, s store.Store) {
	ctx := t.Context()
	p := newProject(t, s, "p")
	task := must[store.Task](t, "CreateTask")(s.CreateTask(ctx, store.Task{ProjectID: p.ID, Title: "t", BudgetPicoUSD: 5_000_000_000_000}))
	if got := must[store.Task](t, "GetTask")(s.GetTask(ctx, p.ID, task.ID)); got.BudgetPicoUSD != 5_000_000_000_000 {
		t.Errorf("budget read back = %d", got.BudgetPicoUSD)
	}
	if got := must[store.Task](t, "UpdateTask")(s.UpdateTask(ctx, p.ID, task.ID, store.TaskUpdate{BudgetPicoUSD: ptr[int64](1)})); got.BudgetPicoUSD != 1 {
		t.Errorf("budget after update = %d", got.BudgetPicoUSD)
	}
	if got := must[store.Task](t, "UpdateTask")(s.UpdateTask(ctx, p.ID, task.ID, store.TaskUpdate{Notes: ptr("n")})); got.BudgetPicoUSD != 1 {
		t.Errorf("an update without a budget changed it to %d", got.BudgetPicoUSD)
	}
	if got := must[[]store.Task](t, "ListTasks")(s.ListTasks(ctx, p.ID, store.TaskFilter{})); len(got) != 1 || got[0].BudgetPicoUSD != 1 {
		t.Errorf("listed = %+v", got)
	}
	_, err := s.UpdateTask(ctx, p.ID, task.ID, store.TaskUpdate{BudgetPicoUSD: ptr[int64](-1)})
	wantErr(t, "UpdateTask with a negative budget", err, store.ErrInvalid)
	_, err = s.CreateTask(ctx, store.Task{ProjectID: p.ID, Title: "t", BudgetPicoUSD: -1})
	wantErr(t, "CreateTask with a negative budget", err, store.ErrInvalid)
}
