package reports

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// markdown renders r as summary.md; plots are the plot files written beside it.
func markdown(r *Report, plots []plotFile) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# mizar report: %s\n\n", cmp.Or(r.Scenario, "(unnamed run)"))
	header(&b, r)
	provisioningSection(&b, r)
	modesSection(&b, r)
	trafficSection(&b, r)
	targetsSection(&b, Targets(r))
	checksSection(&b, r.Checks)
	if len(plots) > 0 {
		b.WriteString("## Plots\n\n")
		for _, p := range plots {
			fmt.Fprintf(&b, "![%s](%s)\n\n", p.Title, p.File)
		}
	}
	if len(r.Notes) > 0 {
		b.WriteString("## Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// The header's fields as shown, with what is not known said so.
func commitText(r *Report) string {
	if r.Dirty {
		return cmp.Or(r.Commit, Unknown) + " (uncommitted changes)"
	}
	return cmp.Or(r.Commit, Unknown)
}

func cpuText(r *Report) string {
	if r.CPUs > 0 {
		return fmt.Sprintf("%s, %s", cmp.Or(r.CPU, Unknown), plural(r.CPUs, "CPU"))
	}
	return cmp.Or(r.CPU, Unknown)
}

func startedText(r *Report) string {
	if r.Started.IsZero() {
		return Unknown
	}
	return r.Started.UTC().Format(time.RFC3339)
}

func durationText(r *Report) string {
	return time.Duration(r.Seconds * float64(time.Second)).Round(time.Millisecond).String()
}

func header(b *strings.Builder, r *Report) {
	rows := [][]string{
		{"scenario", cmp.Or(r.Scenario, Unknown)},
		{"commit", commitText(r)},
		{"kernel", cmp.Or(r.Kernel, Unknown)},
		{"CPU", cpuText(r)},
		{"date", startedText(r)},
		{"duration", durationText(r)},
		{"schema", r.Schema},
	}
	for _, k := range slices.Sorted(maps.Keys(r.Config)) {
		rows = append(rows, []string{"config " + k, r.Config[k]})
	}
	table(b, []string{"run", ""}, rows)
}

// rank orders v as it comes in known, anything unknown last.
func rank(known []string, v string) int {
	if i := slices.Index(known, v); i >= 0 {
		return i
	}
	return len(known)
}

var (
	modeOrder  = []string{ModeMizar, ModeEveryHost}
	testOrder  = []string{TestTCPStream, TestUDPRate, TestTCPLatency}
	pathOrder  = []string{PathBouncer, PathDirect, PathRouted, PathVXLAN, PathRoutedOffload, PathVXLANOffload}
	percentile = map[string]func(Summary) float64{
		"p50": func(s Summary) float64 { return s.P50 },
		"p99": func(s Summary) float64 { return s.P99 },
	}
)

func sortedProvisioning(r *Report) []Provisioning {
	rows := slices.Clone(r.Provisioning)
	slices.SortStableFunc(rows, func(a, b Provisioning) int {
		return cmp.Or(cmp.Compare(rank(modeOrder, a.Mode), rank(modeOrder, b.Mode)), strings.Compare(a.Mode, b.Mode),
			cmp.Compare(a.Endpoints, b.Endpoints), cmp.Compare(a.Hosts, b.Hosts), cmp.Compare(a.Bouncers, b.Bouncers))
	})
	return rows
}

func provisioningSection(b *strings.Builder, r *Report) {
	if len(r.Provisioning) == 0 {
		return
	}
	b.WriteString("## Provisioning\n\n")
	b.WriteString("Times in ms per endpoint. Plumb is making the endpoint's namespace and veth; programmed is " +
		"the API call to every map write acknowledged; reachable is the API call to the first packet through " +
		"the overlay answered. Writes and hosts touched are per endpoint.\n\n")
	var rows [][]string
	for _, p := range sortedProvisioning(r) {
		rows = append(rows, []string{
			p.Mode, fmt.Sprint(p.Endpoints), fmt.Sprint(p.Hosts), fmt.Sprint(p.Bouncers),
			ms(p.Plumb, p.Plumb.P50), ms(p.Plumb, p.Plumb.P99),
			ms(p.Programmed, p.Programmed.P50), ms(p.Programmed, p.Programmed.P90), ms(p.Programmed, p.Programmed.P99), ms(p.Programmed, p.Programmed.Max),
			ms(p.Reachable, p.Reachable.P50), ms(p.Reachable, p.Reachable.P90), ms(p.Reachable, p.Reachable.P99), ms(p.Reachable, p.Reachable.Max),
			spread(p.Writes), spread(p.HostsTouched),
		})
	}
	table(b, []string{"mode", "endpoints", "hosts", "bouncers", "plumb p50", "plumb p99",
		"programmed p50", "p90", "p99", "max", "reachable p50", "p90", "p99", "max", "writes", "hosts touched"}, rows)
}

// ms shows v of s in milliseconds; "-" when s has no samples, v with its unit when the unit
// is not a time.
func ms(s Summary, v float64) string {
	if s.N == 0 {
		return "-"
	}
	if m, ok := toMS(s.Unit, v); ok {
		return num(m)
	}
	return num(v) + " " + s.Unit
}

// over is a/b as a ratio cell, "-" when it has no meaning.
func over(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return num(a/b) + "x"
}

// modesSection sets the two provisioning modes side by side at every size both measured.
func modesSection(b *strings.Builder, r *Report) {
	var rows [][]string
	for _, m := range mizarRows(r) {
		for _, e := range r.Provisioning {
			if e.Mode != ModeEveryHost || e.Endpoints != m.Endpoints || e.Hosts != m.Hosts || e.Bouncers != m.Bouncers {
				continue
			}
			rows = append(rows, []string{
				fmt.Sprint(m.Endpoints), fmt.Sprint(m.Hosts), fmt.Sprint(m.Bouncers),
				nonEmpty(m.Writes, m.Writes.Mean), nonEmpty(e.Writes, e.Writes.Mean), meanRatio(e.Writes, m.Writes),
				ms(m.Programmed, m.Programmed.P50), ms(e.Programmed, e.Programmed.P50), timeRatio(e.Programmed, m.Programmed, percentile["p50"]),
				ms(m.Programmed, m.Programmed.P99), ms(e.Programmed, e.Programmed.P99), timeRatio(e.Programmed, m.Programmed, percentile["p99"]),
			})
			break
		}
	}
	if len(rows) == 0 {
		return
	}
	b.WriteString("## mizar against every-host programming\n\n")
	b.WriteString("The same sizes provisioned both ways in this run. Writes are the mean map writes per endpoint; " +
		"times are programmed, in ms; ratios are every-host / mizar.\n\n")
	table(b, []string{"endpoints", "hosts", "bouncers", "writes mizar", "writes every-host", "ratio",
		"p50 mizar", "p50 every-host", "ratio", "p99 mizar", "p99 every-host", "ratio"}, rows)
}

func nonEmpty(s Summary, v float64) string {
	if s.N == 0 {
		return "-"
	}
	return num(v)
}

func meanRatio(a, b Summary) string {
	if a.N == 0 || b.N == 0 {
		return "-"
	}
	return over(a.Mean, b.Mean)
}

// timeRatio is pick(a) / pick(b), both in ms so that their units may differ.
func timeRatio(a, b Summary, pick func(Summary) float64) string {
	av, aok := toMS(a.Unit, pick(a))
	bv, bok := toMS(b.Unit, pick(b))
	if a.N == 0 || b.N == 0 || !aok || !bok {
		return "-"
	}
	return over(av, bv)
}

func sortedTraffic(r *Report) []Traffic {
	rows := slices.Clone(r.Traffic)
	slices.SortStableFunc(rows, func(a, b Traffic) int {
		return cmp.Or(cmp.Compare(rank(testOrder, a.Test), rank(testOrder, b.Test)), strings.Compare(a.Test, b.Test),
			strings.Compare(tool(a), tool(b)), cmp.Compare(a.Streams, b.Streams), cmp.Compare(a.Size, b.Size),
			cmp.Compare(rank(pathOrder, a.Path), rank(pathOrder, b.Path)), strings.Compare(a.Path, b.Path))
	})
	return rows
}

func trafficSection(b *strings.Builder, r *Report) {
	if len(r.Traffic) == 0 {
		return
	}
	b.WriteString("## Traffic\n\n")
	b.WriteString("Each figure's ratio to the baselines measured in this run with the same test, streams, size and " +
		"tool (figure / baseline). For tcp-rr the figure is the p50 round trip: lower is better.\n\n")
	var rows [][]string
	for _, t := range sortedTraffic(r) {
		row := []string{t.Test, t.Path, trafficConfig(t), num(t.Value), t.Unit,
			nonEmpty(t.Dist, t.Dist.P50), nonEmpty(t.Dist, t.Dist.P90), nonEmpty(t.Dist, t.Dist.P99)}
		for _, base := range []string{PathRouted, PathVXLAN, PathRoutedOffload} {
			cell := "-"
			if t.Path != base {
				if x, _, why := ratio(r, t, base); why == "" {
					cell = num(x) + "x"
				}
			}
			row = append(row, cell)
		}
		rows = append(rows, row)
	}
	table(b, []string{"test", "path", "config", "value", "unit", "dist p50", "p90", "p99",
		"x " + PathRouted, "x " + PathVXLAN, "x " + PathRoutedOffload}, rows)
}

func targetsSection(b *strings.Builder, ts []Target) {
	b.WriteString("## Targets\n\n")
	count := map[Status]int{}
	var rows [][]string
	for _, t := range ts {
		count[t.Status]++
		rows = append(rows, []string{t.Goal, t.Subject, t.Measured, string(t.Status)})
	}
	fmt.Fprintf(b, "%d met, %d missed, %d not measured.\n\n", count[Met], count[Missed], count[NotMeasured])
	table(b, []string{"target", "applied to", "measured", "status"}, rows)
}

func checksSection(b *strings.Builder, checks []Check) {
	if len(checks) == 0 {
		return
	}
	failed := 0
	var rows [][]string
	for _, c := range checks {
		result := "passed"
		if !c.Passed {
			result = "FAILED"
			failed++
		}
		rows = append(rows, []string{c.Name, result, c.Detail})
	}
	fmt.Fprintf(b, "## Checks\n\n%d of %d passed.\n\n", len(checks)-failed, len(checks))
	table(b, []string{"check", "result", "detail"}, rows)
}

// table writes a Markdown table; cells may hold any text.
func table(b *strings.Builder, header []string, rows [][]string) {
	line := func(cells []string) {
		b.WriteString("|")
		for _, c := range cells {
			c = strings.NewReplacer("|", `\|`, "\n", " ", "\r", " ").Replace(c)
			b.WriteString(" " + c + " |")
		}
		b.WriteString("\n")
	}
	line(header)
	b.WriteString("|" + strings.Repeat("---|", len(header)) + "\n")
	for _, r := range rows {
		line(r)
	}
	b.WriteString("\n")
}
