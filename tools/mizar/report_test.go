package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mizar-net/mizar/reports"
)

// runFolder writes a small run: one provisioning size and a throughput figure with its
// baseline.
func runFolder(t *testing.T, bouncerMbits float64) string {
	t.Helper()
	ms := []float64{1, 2, 3, 4}
	r := &reports.Report{
		Schema: reports.SchemaVersion, Scenario: "cli-test", Commit: "abc", Kernel: "6.18.0", CPU: "cpu", CPUs: 2,
		Started: time.Date(2026, 12, 2, 16, 0, 0, 0, time.UTC), Seconds: 2,
		Provisioning: []reports.Provisioning{{
			Mode: reports.ModeMizar, Endpoints: 4, Hosts: 3, Bouncers: 1,
			Programmed: reports.Summarize("ms", ms), ProgrammedMS: ms,
			Writes: reports.Summarize("writes", []float64{2, 2, 2, 2}),
		}},
		Traffic: []reports.Traffic{
			{Test: reports.TestTCPStream, Path: reports.PathRouted, Streams: 1, Value: 1000, Unit: "Mbit/s", Tool: "mizar"},
			{Test: reports.TestTCPStream, Path: reports.PathBouncer, Streams: 1, Value: bouncerMbits, Unit: "Mbit/s", Tool: "mizar"},
		},
	}
	dir := filepath.Join(t.TempDir(), "run")
	if err := reports.Write(dir, r); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestReportRenders(t *testing.T) {
	dir := runFolder(t, 900)
	for _, f := range []string{reports.SummaryFile, reports.PlotThroughput, reports.PlotCDFProgrammed} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	var stdout, stderr bytes.Buffer
	if err := mizar([]string{"report", dir}, &stdout, &stderr); err != nil {
		t.Fatalf("mizar report: %v\n%s", err, stderr.String())
	}
	summary, err := os.ReadFile(filepath.Join(dir, reports.SummaryFile))
	if err != nil {
		t.Fatalf("summary.md not re-rendered: %v", err)
	}
	if stdout.String() != string(summary) {
		t.Errorf("printed summary differs from summary.md:\n%s\n---\n%s", stdout.String(), summary)
	}
	for _, want := range []string{"# mizar report: cli-test", "| bouncer, 1 stream | 0.9x (900 / 1000 Mbit/s) | met |"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout.String())
		}
	}
	for _, f := range []string{reports.PlotThroughput, reports.PlotCDFProgrammed} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("plot not re-rendered: %v", err)
		}
	}
}

func TestReportCompare(t *testing.T) {
	a, b := runFolder(t, 900), runFolder(t, 700)
	var stdout, stderr bytes.Buffer
	if err := mizar([]string{"report", "--compare", a, filepath.Join(b, reports.ReportFile)}, &stdout, &stderr); err != nil {
		t.Fatalf("mizar report --compare: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{
		"| tcp-stream, bouncer, 1 stream | value (Mbit/s) | 900 | 700 | 0.778x |",
		"| tcp-stream throughput >= 0.8x plain-routing | bouncer, 1 stream | met: 0.9x (900 / 1000 Mbit/s) | missed: 0.7x (700 / 1000 Mbit/s) |",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("comparison lacks %q:\n%s", want, stdout.String())
		}
	}
}

func TestReportErrors(t *testing.T) {
	bad := t.TempDir()
	file := filepath.Join(bad, reports.ReportFile)
	if err := os.WriteFile(file, []byte(`{"schema": "mizar-report/v2"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	good := runFolder(t, 900)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"report"}, "accepts 1 arg"},
		{[]string{"report", good, good}, "accepts 1 arg"},
		{[]string{"report", "--compare", good}, "accepts 2 arg"},
		{[]string{"report", bad}, file},
		{[]string{"report", "--compare", good, bad}, "mizar-report/v2"},
		{[]string{"report", filepath.Join(bad, "missing")}, "missing"},
		{[]string{"report", filepath.Join(good, reports.ReportFile)}, "not a run folder"},
	} {
		var stdout, stderr bytes.Buffer
		err := mizar(tc.args, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("mizar %v: %v, want an error naming %q", tc.args, err, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(bad, reports.SummaryFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused report was rendered (stat: %v)", err)
	}
}
