package testbed

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mizar-net/mizar/controlplane"
	"github.com/mizar-net/mizar/reports"
)

// TestProvisionCI is the small provisioning experiment CI runs: 200 endpoints over 5 and over
// 20 hosts in both modes. It fails when an endpoint's map writes rise with the number of hosts
// in Mizar's mode (they must be bouncers + 1 at both), when every-host mode's do not (the
// comparison would be fake), or when an endpoint does not answer through the overlay. Timings
// are logged, not asserted.
func TestProvisionCI(t *testing.T) {
	requireRoot(t)
	var progress strings.Builder
	start := time.Now()
	prefix := NewPrefix()
	t.Cleanup(func() {
		// Everything the sweep made is gone, even though it skips deleting links one by one.
		left, err := filepath.Glob(filepath.Join(NetnsDir, prefix+"*"))
		if err != nil || len(left) > 0 {
			t.Errorf("namespaces left behind: %v %v", left, err)
		}
	})
	res, err := MeasureProvisioning(context.Background(), ProvisionOptions{
		Prefix:   prefix,
		Sizes:    []Size{{200, 5}, {200, 20}},
		Bouncers: 2,
		Progress: &progress,
	}, nil)
	t.Log("progress:\n" + progress.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sweep took %s", time.Since(start).Round(time.Millisecond))
	for _, r := range res {
		t.Log(provisionLine(r))
	}
	if len(res) != 4 {
		t.Fatalf("%d results, want 4 (2 sizes x 2 modes)", len(res))
	}
	checks := ProvisioningChecks(res)
	if len(checks) != 3 {
		t.Errorf("%d checks, want 3: %+v", len(checks), checks)
	}
	for _, c := range checks {
		if !c.Passed {
			t.Errorf("check failed: %s: %s", c.Name, c.Detail)
		} else {
			t.Logf("check passed: %s: %s", c.Name, c.Detail)
		}
	}
}

func provisionLine(r reports.Provisioning) string {
	return fmt.Sprintf("%-10s %5d eps/%2d hosts: plumb p50 %.2f p99 %.2f ms | programmed p50 %.2f p99 %.2f max %.2f ms | reachable n=%d p50 %.2f p99 %.2f max %.2f ms | writes %g..%g (p50 %g) | hosts touched p50 %g",
		r.Mode, r.Endpoints, r.Hosts, r.Plumb.P50, r.Plumb.P99, r.Programmed.P50, r.Programmed.P99, r.Programmed.Max,
		r.Reachable.N, r.Reachable.P50, r.Reachable.P99, r.Reachable.Max, r.Writes.Min, r.Writes.Max, r.Writes.P50, r.HostsTouched.P50)
}

// TestProvisioningChecksCanFail: each property fails on results that break it, and passes on
// results that keep it.
func TestProvisioningChecksCanFail(t *testing.T) {
	writes := func(v ...float64) reports.Summary { return reports.Summarize("writes", v) }
	reach := func(n int) reports.Summary { return reports.Summarize("ms", make([]float64, n)) }
	good := []reports.Provisioning{
		{Mode: reports.ModeMizar, Endpoints: 2, Hosts: 5, Bouncers: 2, Writes: writes(3, 3), Reachable: reach(2)},
		{Mode: reports.ModeMizar, Endpoints: 2, Hosts: 20, Bouncers: 2, Writes: writes(3, 3), Reachable: reach(2)},
		{Mode: reports.ModeEveryHost, Endpoints: 2, Hosts: 5, Bouncers: 2, Writes: writes(5, 6), Reachable: reach(2)},
		{Mode: reports.ModeEveryHost, Endpoints: 2, Hosts: 20, Bouncers: 2, Writes: writes(20, 21), Reachable: reach(2)},
	}
	passed := func(rs []reports.Provisioning) map[string]bool {
		out := map[string]bool{}
		for _, c := range ProvisioningChecks(rs) {
			out[c.Name] = c.Passed
		}
		return out
	}
	for name, ok := range passed(good) {
		if !ok {
			t.Errorf("good results fail %q", name)
		}
	}
	const (
		flat    = "mizar: writes per endpoint = bouncers + 1 at every number of hosts"
		grow    = "every-host: writes per endpoint grow with the number of hosts"
		unreach = "every endpoint reachable through the overlay"
	)
	for _, tc := range []struct {
		name  string
		spoil func(rs []reports.Provisioning)
		fails string
	}{
		{"mizar writes rise with hosts", func(rs []reports.Provisioning) { rs[1].Writes = writes(3, 4) }, flat},
		{"mizar writes not bouncers+1", func(rs []reports.Provisioning) { rs[0].Writes, rs[1].Writes = writes(5, 5), writes(5, 5) }, flat},
		{"every-host writes flat", func(rs []reports.Provisioning) { rs[3].Writes = writes(5, 6) }, grow},
		{"an endpoint unreachable", func(rs []reports.Provisioning) { rs[1].Reachable = reach(1) }, unreach},
		{"every-host endpoint unreachable", func(rs []reports.Provisioning) { rs[2].Reachable = reach(0) }, unreach},
	} {
		rs := slices.Clone(good)
		tc.spoil(rs)
		got := passed(rs)
		if ok, present := got[tc.fails]; !present || ok {
			t.Errorf("%s: check %q passed (present %t)", tc.name, tc.fails, present)
		}
	}
}

// TestProvisionOptionsInvalid: bad options are refused before anything is built.
func TestProvisionOptionsInvalid(t *testing.T) {
	for _, o := range []ProvisionOptions{
		{Sizes: []Size{{0, 5}}},
		{Sizes: []Size{{10, 1}}},
		{Sizes: []Size{{10, 2}}, Bouncers: 3},
		{Sizes: []Size{{10, 5}}, Modes: []string{"per-host"}},
		{Sizes: []Size{{10, 5}}, ReachTimeout: -1},
	} {
		if _, err := MeasureProvisioning(context.Background(), o, nil); !errors.Is(err, controlplane.ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", o, err)
		}
	}
}
