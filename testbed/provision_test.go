package testbed

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

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
	res, err := MeasureProvisioning(context.Background(), ProvisionOptions{
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

