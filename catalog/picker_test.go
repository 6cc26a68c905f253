package catalog

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestPickerGolden keeps each agent's picker payload as a reviewed file:
// a catalog change that alters what a person sees shows up as a diff.
// Refresh with: go test ./catalog -run TestPickerGolden -update
func TestPickerGolden(t *testing.T) {
	c := Embedded()
	for _, agent := range c.Agents() {
		entries, err := c.ForUI(agent)
		if err != nil {
			t.Fatal(err)
		}
		got, err := json.MarshalIndent(entries, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, '\n')
		path := filepath.Join("testdata", "picker-"+agent+".golden.json")
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test ./catalog -run TestPickerGolden -update)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s picker differs from %s (if intended, run go test ./catalog -run TestPickerGolden -update and review the diff)\ngot:\n%s", agent, path, got)
		}
	}
}
