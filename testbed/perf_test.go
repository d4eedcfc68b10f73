package testbed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/mizar-net/mizar/reports"
)

// iperf3Agree bounds ours/iperf3, one stream each on the direct path of the same run, a second
// apart. Both write 128 KiB chunks into the same kernel path and count at the receiver, so what
// may differ is the user-space cost per byte (Go vs C, small next to the kernel's) and the noise
// of a 2-core machine shared with other jobs. Ratios seen there: 0.94, 1.04, 1.08 and 1.22, once
// 1.33 (5 s windows) and once 1.66 (3 s windows, median of 3 rounds), iperf3 being the one that
// dips. The bounds leave room for that and still catch a generator that counts wrong by a
// unit: bytes for bits (8x), kbit for Mbit (1000x).
const (
	iperf3AgreeLow  = 0.5
	iperf3AgreeHigh = 1.8
)

// TestPerfTraffic runs a short MeasureTraffic and checks that every figure is there and
// non-zero and that each path was the one measured (the counters say so). It asserts no speed.
func TestPerfTraffic(t *testing.T) {
	requireRoot(t)
	iperf := "none"
	if bin, err := exec.LookPath("iperf3"); err == nil {
		iperf = bin
	} else if os.Getenv("CI") == "true" {
		t.Fatalf("iperf3 not on PATH (make deps installs it): the cross-check cannot run: %v", err)
	} else {
		t.Log("iperf3 not on PATH: no cross-check")
	}
	prefix := NewPrefix()
	evidence := map[string][]PathEvidence{}
	// Two rounds: the second attaches the overlay again after the baselines detached it.
	opts := TrafficOptions{
		Duration: 500 * time.Millisecond, Warmup: 100 * time.Millisecond, Streams: 2, Rounds: 2, Prefix: prefix, Iperf3: iperf,
		Evidence: func(e PathEvidence) { evidence[e.Path] = append(evidence[e.Path], e) },
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	figs, err := MeasureTraffic(context.Background(), opts, log)
	if ns, links := leftovers(t, prefix); len(ns)+len(links) > 0 {
		t.Errorf("left behind: netns %v, links %v", ns, links)
		_ = Clean(prefix)
	}
	if err != nil {
		t.Fatalf("measure traffic: %v", err)
	}

	type key struct {
		test, path, tool string
		streams          int
	}
	got := map[key]reports.Traffic{}
	for _, f := range figs {
		t.Logf("%-22s %-10s streams %d %-6s %10.1f %-6s (p50 %.1f p99 %.1f, n %d) loss %.3f",
			f.Path, f.Test, f.Streams, f.Tool, f.Value, f.Unit, f.Dist.P50, f.Dist.P99, f.Dist.N, f.Loss)
		got[key{f.Test, f.Path, f.Tool, f.Streams}] = f
	}
	for _, path := range TrafficPaths {
		for _, k := range []key{
			{reports.TestTCPStream, path, reports.ToolMizar, 1},
			{reports.TestTCPStream, path, reports.ToolMizar, opts.Streams},
			{reports.TestUDPRate, path, reports.ToolMizar, 1},
			{reports.TestTCPLatency, path, reports.ToolMizar, 1},
		} {
			f, ok := got[k]
			switch {
			case !ok:
				t.Errorf("%s on %s (%d streams): not measured", k.test, k.path, k.streams)
			case !(f.Value > 0) || f.Dist.N == 0 || f.Seconds <= 0 || f.Unit == "" || f.Dist.Unit != f.Unit:
				t.Errorf("%s on %s: value %v %s over %vs, %d samples in %q: want a positive figure with samples", k.test, k.path, f.Value, f.Unit, f.Seconds, f.Dist.N, f.Dist.Unit)
			}
		}
		if n := len(evidence[path]); n != opts.Rounds {
			t.Errorf("path %s: evidence from %d rounds, want %d", path, n, opts.Rounds)
		}
		for _, e := range evidence[path] {
			checkEvidence(t, e)
		}
	}

	if iperf == "none" {
		return
	}
	ours, ok1 := got[key{reports.TestTCPStream, reports.PathDirect, reports.ToolMizar, 1}]
	theirs, ok2 := got[key{reports.TestTCPStream, reports.PathDirect, reports.ToolIperf3, 1}]
	if !ok1 || !ok2 {
		t.Fatalf("cross-check on the direct path: ours measured %t, iperf3 %t", ok1, ok2)
	}
	ratio := ours.Value / theirs.Value
	t.Logf("cross-check on the direct path: ours %.0f Mbit/s, iperf3 %.0f Mbit/s, ratio %.2f", ours.Value, theirs.Value, ratio)
	if ratio < iperf3AgreeLow || ratio > iperf3AgreeHigh {
		t.Errorf("ours %.0f Mbit/s vs iperf3 %.0f Mbit/s on the same path: ratio %.2f outside [%.1f, %.1f]", ours.Value, theirs.Value, ratio, iperf3AgreeLow, iperf3AgreeHigh)
	}
}

// checkEvidence asserts what the counters must show for a path, apart from PathEvidence.Check.
func checkEvidence(t *testing.T, e PathEvidence) {
	t.Helper()
	t.Logf("%s: bounced %d, to a bouncer %d, direct %d", e.Path, e.Bounced, e.EncapBouncer, e.DirectHit)
	switch e.Path {
	case reports.PathBouncer:
		if e.Bounced == 0 || e.DirectHit != 0 {
			t.Errorf("bouncer path: bounced %d, direct %d: want bounced > 0, direct 0", e.Bounced, e.DirectHit)
		}
	case reports.PathDirect:
		if e.Bounced != 0 || e.DirectHit == 0 {
			t.Errorf("direct path: bounced %d, direct %d: want bounced 0, direct > 0", e.Bounced, e.DirectHit)
		}
	default:
		if e.Bounced+e.EncapBouncer+e.DirectHit != 0 {
			t.Errorf("baseline %s went through the overlay: %+v", e.Path, e)
		}
	}
}

// TestPerfEvidence shows the path check can fail: counters that contradict the path are
// refused.
func TestPerfEvidence(t *testing.T) {
	for _, c := range []struct {
		ev   PathEvidence
		want bool
	}{
		{PathEvidence{Path: reports.PathBouncer, Bounced: 10, EncapBouncer: 10}, true},
		{PathEvidence{Path: reports.PathBouncer, Bounced: 10, EncapBouncer: 10, DirectHit: 1}, false},
		{PathEvidence{Path: reports.PathBouncer}, false},
		{PathEvidence{Path: reports.PathDirect, DirectHit: 10}, true},
		{PathEvidence{Path: reports.PathDirect, DirectHit: 10, Bounced: 1}, false},
		{PathEvidence{Path: reports.PathDirect}, false},
		{PathEvidence{Path: reports.PathRouted}, true},
		{PathEvidence{Path: reports.PathVXLAN, DirectHit: 1}, false},
		{PathEvidence{Path: reports.PathRoutedOffload, EncapBouncer: 1}, false},
	} {
		err := c.ev.Check()
		if ok := err == nil; ok != c.want {
			t.Errorf("%+v: check passed %t, want %t (%v)", c.ev, ok, c.want, err)
		}
		if err != nil && !errors.Is(err, ErrWrongPath) {
			t.Errorf("%+v: %v does not wrap ErrWrongPath", c.ev, err)
		}
	}
}

// TestPerfOptions refuses options that cannot be measured.
func TestPerfOptions(t *testing.T) {
	for _, o := range []TrafficOptions{
		{Streams: 100},
		{UDPSize: 4},
		{Interval: 2 * time.Second, Duration: time.Second},
		{Paths: []string{"geneve"}},
		{MTU: 100},
	} {
		if _, err := MeasureTraffic(context.Background(), o, nil); err == nil {
			t.Errorf("%s: accepted", fmt.Sprintf("%+v", o))
		}
	}
}
