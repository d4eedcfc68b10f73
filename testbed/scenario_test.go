package testbed

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mizar-net/mizar/dataplane"
	scenario "github.com/mizar-net/mizar/scenarios"
)

// TestScenarioLibrary plays every scenario of scenarios/ on real namespaces.
func TestScenarioLibrary(t *testing.T) {
	requireRoot(t)
	files, err := filepath.Glob("../scenarios/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios found: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			sc, err := scenario.Load(f)
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			prefix := NewPrefix()
			_, err = RunScenario(context.Background(), sc, RunOptions{Prefix: prefix, Progress: &out}, nil)
			t.Logf("%s\n%s", sc.Name, out.String())
			if err != nil {
				t.Fatal(err)
			}
			assertNothingLeft(t, prefix)
		})
	}
}

// TestScenarioCheckCanFail breaks the data plane under the quickstart scenario (the bouncer
// forgets every endpoint, and hosts forget what they learned) and expects its reach checks to fail.
func TestScenarioCheckCanFail(t *testing.T) {
	requireRoot(t)
	sc, err := scenario.Load("../scenarios/quickstart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	broken := false
	_, err = RunScenario(context.Background(), sc, RunOptions{StopOnFailure: true, BeforeStep: func(i int, c *Cluster) {
		if broken {
			return
		}
		broken = true
		for _, h := range c.Hosts() {
			// A fresh, empty data plane in place of each host's programmed one.
			h.DP.Close()
			dp, err := dataplane.New(dataplane.Config{})
			if err != nil {
				t.Fatal(err)
			}
			h.DP = dp
		}
	}}, nil)
	if err == nil {
		t.Fatal("quickstart passed with every host's data plane wiped")
	}
	t.Logf("as expected: %v", err)
}

// assertNothingLeft looks for this run's names only: other packages' tests run alongside.
func assertNothingLeft(t *testing.T, prefix string) {
	entries, _ := os.ReadDir(NetnsDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			t.Errorf("namespace %s left behind", e.Name())
		}
	}
}
