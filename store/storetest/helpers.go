package storetest

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentbroker/agentbroker/store"
)

// ptr returns a pointer to v, for the Update structs.
func ptr[T any](v T) *T { return &v }

// wantErr fails unless err wraps target.
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s = %v; want %v", what, err, target)
	}
}

// must fails the test at once on an error.
func must[T any](t *testing.T, what string) func(T, error) T {
	t.Helper()
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}

// checkStamp checks a time the store set: UTC, whole microseconds, and
// within [before, after] (before truncated to microseconds).
func checkStamp(t *testing.T, what string, got, before, after time.Time) {
	t.Helper()
	if got.Location() != time.UTC {
		t.Errorf("%s = %v; want UTC", what, got)
	}
	if got.Nanosecond()%1000 != 0 {
		t.Errorf("%s = %v; want microsecond precision, as stored", what, got)
	}
	if got.Before(before.Truncate(time.Microsecond)) || got.After(after) {
		t.Errorf("%s = %v; want between %v and %v", what, got, before, after)
	}
}

// checkID checks a store-made ID: the prefix, then URL-safe characters.
func checkID(t *testing.T, id, prefix string) {
	t.Helper()
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok || len(rest) < 12 {
		t.Errorf("ID %q: want %q and at least 12 more characters", id, prefix)
	}
	if strings.Trim(rest, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != "" {
		t.Errorf("ID %q is not URL-safe", id)
	}
}

// same fails unless got and want are equal, times compared as instants.
func same[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(normTimes(got), normTimes(want)) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// normTimes returns v with every time.Time field as UTC, so that equal
// instants in different locations compare equal.
func normTimes[T any](v T) T {
	rv := reflect.ValueOf(&v).Elem()
	if rv.Kind() == reflect.Struct {
		for i := range rv.NumField() {
			if f := rv.Field(i); f.Type() == reflect.TypeFor[time.Time]() && f.CanSet() {
				f.Set(reflect.ValueOf(f.Interface().(time.Time).UTC()))
			}
		}
	}
	return v
}

// long is a string of n bytes.
func long(n int) string { return strings.Repeat("x", n) }

// newProject creates a project named name.
func newProject(t *testing.T, s store.Store, name string) store.Project {
	t.Helper()
	return must[store.Project](t, "CreateProject")(s.CreateProject(t.Context(), store.Project{Name: name}))
}

func taskIDs(ts []store.Task) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.ID)
	}
	return out
}

func hitIDs[T any](hits []store.SearchHit[T], id func(T) string) []string {
	var out []string
	for _, h := range hits {
		out = append(out, id(h.Item))
	}
	return out
}

func taskID(t store.Task) string           { return t.ID }
func knowledgeID(k store.Knowledge) string { return k.ID }
func messageID(m store.Message) string     { return m.SessionID + "#" + strconv.FormatInt(m.Seq, 10) }
