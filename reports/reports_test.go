package reports

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// spreadSamples are n per-endpoint times from base to just under 2*base: p99 is about 2*base
// whatever n, the flat profile the issue wants.
func spreadSamples(n int, base float64) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = base * (1 + float64(i)/float64(n))
	}
	return s
}

func constant(n int, v float64) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = v
	}
	return s
}

func provisioning(mode string, endpoints, hosts, bouncers int, programmedBase, reachableBase float64, writes int) Provisioning {
	prog, reach := spreadSamples(endpoints, programmedBase), spreadSamples(endpoints, reachableBase)
	touched := bouncers + 1
	if mode == ModeEveryHost {
		touched = hosts
	}
	p := Provisioning{
		Mode: mode, Endpoints: endpoints, Hosts: hosts, Bouncers: bouncers,
		Plumb:        Summarize("ms", spreadSamples(endpoints, 3)),
		Programmed:   Summarize("ms", prog),
		Reachable:    Summarize("ms", reach),
		Writes:       Summarize("writes", constant(endpoints, float64(writes))),
		HostsTouched: Summarize("hosts", constant(endpoints, float64(touched))),
		ProgrammedMS: prog,
		ReachableMS:  reach,
	}
	if reachableBase == 0 { // the mode does not measure it
		p.Reachable, p.ReachableMS = Summary{}, nil
	}
	return p
}

func traffic(test, path string, streams, size int, value float64, unit string) Traffic {
	return Traffic{Test: test, Path: path, Streams: streams, Size: size, Seconds: 5, Value: value, Unit: unit,
		Dist: Summarize(unit, []float64{value * 0.9, value, value * 1.1}), Tool: "mizar"}
}

// synthetic is a report where every target is met.
func synthetic() *Report {
	r := &Report{
		Schema: SchemaVersion, Scenario: "bench", Commit: "0123456789abcdef0123456789abcdef01234567", Dirty: true,
		Kernel: "6.18.0", CPU: "Test CPU @ 3.0GHz", CPUs: 2,
		Started: time.Date(2026, 12, 2, 15, 0, 0, 0, time.UTC), Seconds: 93.5,
		Config: map[string]string{"sizes": "10,100,1000", "mode": "generic"},
	}
	for _, n := range []int{10, 100, 1000} {
		r.Provisioning = append(r.Provisioning,
			provisioning(ModeMizar, n, 10, 2, 1, 10, 3),
			provisioning(ModeEveryHost, n, 10, 2, 4, 0, 10))
	}
	for _, streams := range []int{1, 4} {
		r.Traffic = append(r.Traffic,
			traffic(TestTCPStream, PathRouted, streams, 131072, 10000, "Mbit/s"),
			traffic(TestTCPStream, PathVXLAN, streams, 131072, 8000, "Mbit/s"),
			traffic(TestTCPStream, PathBouncer, streams, 131072, 8500, "Mbit/s"),
			traffic(TestTCPStream, PathDirect, streams, 131072, 9000, "Mbit/s"))
	}
	r.Traffic = append(r.Traffic,
		traffic(TestUDPRate, PathRouted, 1, 64, 500000, "pps"),
		traffic(TestUDPRate, PathVXLAN, 1, 64, 450000, "pps"),
		traffic(TestUDPRate, PathBouncer, 1, 64, 520000, "pps"),
		traffic(TestUDPRate, PathDirect, 1, 64, 550000, "pps"),
		traffic(TestTCPLatency, PathRouted, 1, 1, 50, "us"),
		traffic(TestTCPLatency, PathVXLAN, 1, 1, 55, "us"),
		traffic(TestTCPLatency, PathBouncer, 1, 1, 53, "us"),
		traffic(TestTCPLatency, PathDirect, 1, 1, 52, "us"))
	r.Checks = []Check{
		{Name: "writes per endpoint flat", Passed: true, Detail: "3 at 10 and 50 hosts"},
		{Name: "direct path taken", Passed: false, Detail: "bouncer counters grew by 12 | after learning"},
	}
	r.Notes = []string{"synthetic data"}
	return r
}

var allPlots = []string{PlotCDFProgrammed, PlotCDFReachable, PlotScale, PlotThroughput, PlotPacketRate, PlotLatency}

func TestWriteLoadRender(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	want := synthetic()
	if err := Write(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("loaded report differs from the written one:\n got %+v\nwant %+v", got, want)
	}
	data, err := os.ReadFile(filepath.Join(dir, ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "\n  \"schema\": \"mizar-report/v1\",\n") {
		t.Errorf("report.json is not indented JSON starting with its schema:\n%.200s", data)
	}
	summary, err := os.ReadFile(filepath.Join(dir, SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range allPlots {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("plot not written: %v", err)
		}
		if !strings.Contains(string(summary), "]("+p+")") {
			t.Errorf("summary.md does not show %s", p)
		}
	}

	// Render brings back what was removed, identical, from report.json alone.
	if err := os.Remove(filepath.Join(dir, SummaryFile)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, PlotScale)); err != nil {
		t.Fatal(err)
	}
	if err := Render(dir); err != nil {
		t.Fatal(err)
	}
	again, err := os.ReadFile(filepath.Join(dir, SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(summary) {
		t.Errorf("re-rendered summary.md differs:\n%s\n---\n%s", again, summary)
	}
	if _, err := os.Stat(filepath.Join(dir, PlotScale)); err != nil {
		t.Errorf("re-render did not write the plot: %v", err)
	}
}

func TestRenderRemovesPlotsWithoutData(t *testing.T) {
	dir := t.TempDir()
	r := synthetic()
	if err := Write(dir, r); err != nil {
		t.Fatal(err)
	}
	r.Traffic = nil
	for i := range r.Provisioning {
		r.Provisioning[i].ReachableMS = nil
	}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ReportFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Render(dir); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{PlotThroughput, PlotPacketRate, PlotLatency, PlotCDFReachable} {
		if _, err := os.Stat(filepath.Join(dir, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived a render without its data (stat: %v)", p, err)
		}
	}
	for _, p := range []string{PlotCDFProgrammed, PlotScale} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

func TestEmptyReport(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, &Report{Scenario: "nothing"}); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !reflect.DeepEqual(names, []string{ReportFile, SummaryFile}) {
		t.Errorf("run folder of an empty report holds %v, want only report.json and summary.md", names)
	}
	r, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range Targets(r) {
		if target.Status != NotMeasured {
			t.Errorf("empty report: %s (%s) is %s, want not measured", target.Goal, target.Subject, target.Status)
		}
	}
}

func TestLoadRefusesBadFiles(t *testing.T) {
	for _, tc := range []struct {
		name, content string
		want          []string
		schema        bool
	}{
		{"unknown schema", `{"schema": "mizar-report/v99", "scenario": "x"}`, []string{"mizar-report/v99", SchemaVersion}, true},
		{"no schema", `{"scenario": "x"}`, []string{`no "schema" field`}, true},
		{"syntax", "{\n  \"schema\": \"mizar-report/v1\",\n  \"cpus\": 2,,\n}", []string{"line 3 column"}, false},
		{"type", "{\n  \"schema\": \"mizar-report/v1\",\n  \"cpus\": \"two\"\n}", []string{"line 3", "cpus"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, ReportFile)
			if err := os.WriteFile(file, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, path := range []string{dir, file} {
				_, err := Load(path)
				if err == nil {
					t.Fatalf("Load(%s) accepted %s", path, tc.content)
				}
				for _, w := range append(tc.want, file) {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not name %q", err, w)
					}
				}
				if errors.Is(err, ErrSchema) != tc.schema {
					t.Errorf("errors.Is(%v, ErrSchema) = %v, want %v", err, !tc.schema, tc.schema)
				}
			}
			if err := Render(dir); err == nil {
				t.Error("Render accepted the file")
			}
			if _, err := os.Stat(filepath.Join(dir, SummaryFile)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused report was rendered (stat: %v)", err)
			}
		})
	}
}

func TestWriteRefusesOtherSchema(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	r := synthetic()
	r.Schema = "mizar-report/v0"
	if err := Write(dir, r); !errors.Is(err, ErrSchema) {
		t.Fatalf("Write of schema v0: %v, want ErrSchema", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused Write made the folder (stat: %v)", err)
	}
}

func TestWriteRefusesNaN(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	r := synthetic()
	r.Traffic[3].Dist.P99 = math.NaN()
	err := Write(dir, r)
	if err == nil || !strings.Contains(err.Error(), "report.traffic[3].dist.p99 (NaN)") {
		t.Fatalf("Write with a NaN: %v, want an error naming report.traffic[3].dist.p99", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused Write made the folder (stat: %v)", err)
	}
}

// statusOf finds the one target whose goal and subject start as given.
func statusOf(t *testing.T, ts []Target, goal, subject string) Target {
	t.Helper()
	var found []Target
	for _, x := range ts {
		if strings.HasPrefix(x.Goal, goal) && strings.HasPrefix(x.Subject, subject) {
			found = append(found, x)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d targets match %q / %q, want 1: %+v", len(found), goal, subject, found)
	}
	return found[0]
}

func TestTargets(t *testing.T) {
	find := func(r *Report, test, path string, streams int) *Traffic {
		for i := range r.Traffic {
			if x := &r.Traffic[i]; x.Test == test && x.Path == path && x.Streams == streams {
				return x
			}
		}
		panic("no such traffic " + test + " " + path)
	}
	row := func(r *Report, mode string, endpoints int) *Provisioning {
		for i := range r.Provisioning {
			if p := &r.Provisioning[i]; p.Mode == mode && p.Endpoints == endpoints {
				return p
			}
		}
		panic("no such provisioning row")
	}
	for _, tc := range []struct {
		name    string
		change  func(r *Report)
		goal    string // prefix of the target's goal
		subject string // prefix of its subject
		want    Status
	}{
		{"throughput met", nil, "tcp-stream throughput >= 0.8x", "bouncer, 1 stream", Met},
		{"throughput missed", func(r *Report) { find(r, TestTCPStream, PathBouncer, 4).Value = 7000 },
			"tcp-stream throughput", "bouncer, 4 streams", Missed},
		{"throughput exactly at target", func(r *Report) { find(r, TestTCPStream, PathDirect, 1).Value = 8000 },
			"tcp-stream throughput", "direct, 1 stream", Met},
		{"throughput without plain-routing baseline", func(r *Report) { find(r, TestTCPStream, PathRouted, 1).Path = "gone" },
			"tcp-stream throughput", "bouncer, 1 stream", NotMeasured},
		{"vxlan is no substitute for the plain-routing baseline", func(r *Report) {
			find(r, TestTCPStream, PathRouted, 4).Path = "gone"
			find(r, TestTCPStream, PathVXLAN, 4).Value = 1
		}, "tcp-stream throughput", "direct, 4 streams", NotMeasured},
		{"baseline of another size", func(r *Report) { find(r, TestUDPRate, PathRouted, 1).Size = 1400 },
			"udp-rate", "direct", NotMeasured},
		{"baseline of another tool", func(r *Report) { find(r, TestUDPRate, PathRouted, 1).Tool = "iperf3" },
			"udp-rate", "bouncer", NotMeasured},
		{"baseline in another unit", func(r *Report) { find(r, TestUDPRate, PathRouted, 1).Unit = "kpps" },
			"udp-rate", "bouncer", NotMeasured},
		{"overlay path not run", func(r *Report) { find(r, TestUDPRate, PathDirect, 1).Path = PathRouted + "-old" },
			"udp-rate", "direct", NotMeasured},
		{"packet rate met", nil, "udp-rate packet rate >= 1x", "bouncer", Met},
		{"packet rate missed", func(r *Report) { find(r, TestUDPRate, PathBouncer, 1).Value = 499999 },
			"udp-rate", "bouncer", Missed},
		{"latency met", nil, "tcp-rr p50 latency <= 1.1x", "bouncer", Met},
		{"latency missed", func(r *Report) { find(r, TestTCPLatency, PathDirect, 1).Value = 56 },
			"tcp-rr", "direct", Missed},
		{"programmed p99 met", nil, "p99 programmed <= 5 ms at 1000", "1000 endpoints", Met},
		{"programmed p99 missed", func(r *Report) { row(r, ModeMizar, 1000).Programmed.P99 = 5.2 },
			"p99 programmed <= 5 ms", "1000 endpoints", Missed},
		{"programmed p99 in us", func(r *Report) {
			p := row(r, ModeMizar, 1000)
			p.Programmed = Summarize("us", spreadSamples(1000, 3000))
		}, "p99 programmed <= 5 ms", "1000 endpoints", Missed},
		{"every-host mode does not count", func(r *Report) {
			row(r, ModeMizar, 1000).Mode = "gone"
		}, "p99 programmed <= 5 ms", ModeMizar, NotMeasured},
		{"reachable p99 met", nil, "p99 reachable <= 50 ms", "1000 endpoints", Met},
		{"reachable p99 missed", func(r *Report) { row(r, ModeMizar, 1000).Reachable.P99 = 51 },
			"p99 reachable <= 50 ms", "1000 endpoints", Missed},
		{"reachable not measured", func(r *Report) { row(r, ModeMizar, 1000).Reachable = Summary{} },
			"p99 reachable <= 50 ms", "1000 endpoints", NotMeasured},
		{"flat programmed met", nil, "p99 programmed at the largest", "mizar: 1000 vs 100", Met},
		{"flat programmed missed", func(r *Report) { row(r, ModeMizar, 1000).Programmed.P99 = 2 * 1.26 },
			"p99 programmed at the largest", "mizar: 1000 vs 100", Missed},
		{"flat reachable met", nil, "p99 reachable at the largest", "mizar: 1000 vs 100", Met},
		{"flat without the size of 100", func(r *Report) { row(r, ModeMizar, 100).Endpoints = 200 },
			"p99 reachable at the largest", ModeMizar, NotMeasured},
		{"flat when 100 is the largest", func(r *Report) { row(r, ModeMizar, 1000).Endpoints = 50 },
			"p99 programmed at the largest", ModeMizar, NotMeasured},
		{"writes met", nil, "map writes per endpoint", "1000 endpoints, 10 hosts, 2 bouncers", Met},
		{"writes missed when some endpoint wrote more", func(r *Report) { row(r, ModeMizar, 100).Writes.Max = 4 },
			"map writes per endpoint", "100 endpoints", Missed},
		{"writes missed when they follow the hosts", func(r *Report) {
			p := row(r, ModeMizar, 1000)
			p.Hosts, p.Writes = 50, Summarize("writes", constant(1000, 51))
		}, "map writes per endpoint", "1000 endpoints, 50 hosts", Missed},
		{"writes not measured", func(r *Report) { row(r, ModeMizar, 10).Writes = Summary{} },
			"map writes per endpoint", "10 endpoints", NotMeasured},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := synthetic()
			if tc.change != nil {
				tc.change(r)
			}
			got := statusOf(t, Targets(r), tc.goal, tc.subject)
			if got.Status != tc.want {
				t.Errorf("%s (%s): %s, measured %q; want %s", got.Goal, got.Subject, got.Status, got.Measured, tc.want)
			}
		})
	}

	// The synthetic report meets every target, and each one is evaluated.
	for _, target := range Targets(synthetic()) {
		if target.Status != Met {
			t.Errorf("synthetic: %s (%s) %s: %s", target.Goal, target.Subject, target.Status, target.Measured)
		}
	}
}

func TestTargetsWithoutAnyBaseline(t *testing.T) {
	r := synthetic()
	var kept []Traffic
	for _, x := range r.Traffic {
		if !isBaseline(x.Path) {
			kept = append(kept, x)
		}
	}
	r.Traffic = kept
	n := 0
	for _, target := range Targets(r) {
		if strings.HasPrefix(target.Goal, "tcp-") || strings.HasPrefix(target.Goal, "udp-") {
			n++
			if target.Status != NotMeasured {
				t.Errorf("%s (%s) is %s without a baseline", target.Goal, target.Subject, target.Status)
			}
		}
	}
	if n != 8 { // tcp-stream: 2 paths x 2 stream counts; udp-rate and tcp-rr: 2 paths each
		t.Errorf("%d traffic targets, want 8", n)
	}
}

func TestSummary(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, synthetic()); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for _, want := range []string{
		"# mizar report: bench",
		"| commit | 0123456789abcdef0123456789abcdef01234567 (uncommitted changes) |",
		"| kernel | 6.18.0 |",
		"| CPU | Test CPU @ 3.0GHz, 2 CPUs |",
		"| date | 2026-12-02T15:00:00Z |",
		"| duration | 1m33.5s |",
		"| config sizes | 10,100,1000 |",
		// mizar at 1000: plumb 3..6, programmed 1..2, reachable 10..20, 3 writes on 3 hosts.
		"| mizar | 1000 | 10 | 2 | 4.5 | 5.97 | 1.5 | 1.9 | 1.99 | 2 | 15 | 19 | 19.9 | 20 | 3 | 3 |",
		// every-host does not measure reachable.
		"| every-host | 10 | 10 | 2 | 4.2 | 5.7 | 5.6 | 7.2 | 7.6 | 7.6 | - | - | - | - | 10 | 10 |",
		// writes 3 vs 10, p50 1.4 vs 5.6 ms at 10 endpoints.
		"| 10 | 10 | 2 | 3 | 10 | 3.33x | 1.4 | 5.6 | 4x | 1.9 | 7.6 | 4x |",
		"| tcp-stream | bouncer | 1 stream, 131072 B | 8500 | Mbit/s | 8500 | 9350 | 9350 | 0.85x | 1.06x |",
		"| tcp-stream | plain-routing | 4 streams, 131072 B | 10000 | Mbit/s | 10000 | 11000 | 11000 | - | 1.25x |",
		"| tcp-rr | direct | 1 stream, 1 B | 52 | us |",
		"| udp-rate | vxlan | 1 stream, 64 B | 450000 | pps | 450000 | 495000 | 495000 | 0.9x | - |",
		"| tcp-stream throughput >= 0.8x plain-routing | bouncer, 1 stream, 131072 B | 0.85x (8500 / 10000 Mbit/s) | met |",
		"| p99 programmed <= 5 ms at 1000 endpoints | 1000 endpoints, 10 hosts, 2 bouncers | 1.99 ms (n=1000) | met |",
		"| map writes per endpoint = bouncers + 1, whatever the hosts | 100 endpoints, 10 hosts, 2 bouncers | 3, want 3 | met |",
		"1 of 2 passed.",
		`| direct path taken | FAILED | bouncer counters grew by 12 \| after learning |`,
		"- synthetic data",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("summary.md lacks %q", want)
		}
	}
	if m := regexp.MustCompile(`(\d+) met, (\d+) missed, (\d+) not measured`).FindStringSubmatch(s); m == nil || m[2] != "0" || m[3] != "0" {
		t.Errorf("targets count line: %v", m)
	}
	if t.Failed() {
		t.Log(s)
	}
}

func TestCompare(t *testing.T) {
	a, b := synthetic(), synthetic()
	b.Commit, b.Dirty = "fedcba9876543210fedcba9876543210fedcba98", false
	for i := range b.Traffic {
		if x := &b.Traffic[i]; x.Test == TestTCPStream && x.Path == PathBouncer && x.Streams == 4 {
			x.Value = 5000
		}
	}
	b.Traffic = append(b.Traffic, traffic(TestTCPStream, "tc-egress", 1, 131072, 9900, "Mbit/s"))
	b.Provisioning = b.Provisioning[:len(b.Provisioning)-2] // no size of 1000 in the new run
	b.Checks[1].Passed = true

	s := Compare(a, b)
	for _, want := range []string{
		"| commit | 0123456789abcdef0123456789abcdef01234567 (uncommitted changes) | fedcba9876543210fedcba9876543210fedcba98 |",
		"| tcp-stream, bouncer, 4 streams, 131072 B | value (Mbit/s) | 8500 | 5000 | 0.588x |",
		"| tcp-stream, bouncer, 4 streams, 131072 B | x plain-routing | 0.85 | 0.5 | 0.588x |",
		"| tcp-stream, direct, 1 stream, 131072 B | value (Mbit/s) | 9000 | 9000 | 1x |",
		"| mizar, 100 endpoints, 10 hosts, 2 bouncers | programmed p99 | 1.98 | 1.98 | 1x |",
		"| mizar, 10 endpoints, 10 hosts, 2 bouncers | writes per endpoint (mean) | 3 | 3 | 1x |",
		"Only in old (A): mizar, 1000 endpoints, 10 hosts, 2 bouncers; every-host, 1000 endpoints, 10 hosts, 2 bouncers.",
		"Only in new (B): tcp-stream, tc-egress, 1 stream, 131072 B.",
		"| tcp-stream throughput >= 0.8x plain-routing | bouncer, 4 streams, 131072 B | met: 0.85x (8500 / 10000 Mbit/s) | missed: 0.5x (5000 / 10000 Mbit/s) |",
		"| p99 programmed <= 5 ms at 1000 endpoints | 1000 endpoints, 10 hosts, 2 bouncers -> mizar | met: 1.99 ms (n=1000) | not measured: no size of 1000 endpoints |",
		"| p99 reachable at the largest size <= 1.25x p99 at 100 endpoints | mizar: 1000 vs 100 endpoints -> mizar | met: 1x (19.9 / 19.8 ms) | not measured: no size larger than 100 endpoints |",
		"| map writes per endpoint = bouncers + 1, whatever the hosts | 1000 endpoints, 10 hosts, 2 bouncers | met: 3, want 3 | absent |",
		"| tcp-stream throughput >= 0.8x plain-routing | tc-egress, 1 stream, 131072 B | absent | met: 0.99x (9900 / 10000 Mbit/s) |",
		"| direct path taken | FAILED: bouncer counters grew by 12 \\| after learning | passed |",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("comparison lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(s)
	}

	same := Compare(a, a)
	if !strings.Contains(same, "0 changed, ") || strings.Contains(same, "Checks that changed") || strings.Contains(same, "Only in") {
		t.Errorf("a report compared with itself shows changes:\n%s", same)
	}
}

func TestPlotsAreSVG(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, synthetic()); err != nil {
		t.Fatal(err)
	}
	for _, p := range allPlots {
		f, err := os.Open(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		dec := xml.NewDecoder(f)
		var root string
		elements := 0
		for {
			tok, err := dec.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s is not well-formed XML: %v", p, err)
			}
			if se, ok := tok.(xml.StartElement); ok {
				if root == "" {
					root = se.Name.Local
				}
				elements++
			}
		}
		if root != "svg" || elements < 20 {
			t.Errorf("%s: root <%s>, %d elements; want an <svg> with a drawing in it", p, root, elements)
		}
	}
}

func TestCPUModel(t *testing.T) {
	for _, tc := range []struct{ cpuinfo, want string }{
		{"processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n", "Intel(R) Xeon(R) CPU @ 2.20GHz"},
		{"processor\t: 0\nBogoMIPS\t: 50.00\nCPU part\t: 0xd0c\n\nHardware\t: BCM2835\nModel\t: Raspberry Pi 4 Model B Rev 1.4\n", "Raspberry Pi 4 Model B Rev 1.4"},
		{"processor\t: 0\n", Unknown},
	} {
		if got := cpuModel([]byte(tc.cpuinfo)); got != tc.want {
			t.Errorf("cpuModel: %q, want %q", got, tc.want)
		}
	}
	model, cpus := CPUModel()
	if model == "" || cpus < 1 {
		t.Errorf("CPUModel() = %q, %d", model, cpus)
	}
	if k := Kernel(); k == Unknown || k == "" {
		t.Errorf("Kernel() = %q", k)
	}
}

func TestGitCommit(t *testing.T) {
	if commit, dirty := GitCommit(t.TempDir()); commit != Unknown || dirty {
		t.Errorf("outside a checkout: %q, %v; want unknown, false", commit, dirty)
	}
	dir := t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	file := filepath.Join(dir, "a")
	if err := os.WriteFile(file, []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	git("add", "a")
	git("commit", "-q", "-m", "one")
	head := git("rev-parse", "HEAD")
	if commit, dirty := GitCommit(dir); commit != head || dirty {
		t.Errorf("clean checkout: %q, %v; want %q, false", commit, dirty, head)
	}
	if err := os.WriteFile(file, []byte("2"), 0o644); err != nil {
		t.Fatal(err)
	}
	if commit, dirty := GitCommit(dir); commit != head || !dirty {
		t.Errorf("changed checkout: %q, %v; want %q, true", commit, dirty, head)
	}
	r := New("x", dir)
	if r.Schema != SchemaVersion || r.Commit != head || !r.Dirty || r.Kernel == "" || r.CPUs < 1 || r.Started.IsZero() {
		t.Errorf("New: %+v", r)
	}
}
