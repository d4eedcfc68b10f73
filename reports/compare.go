package reports

import (
	"fmt"
	"slices"
	"strings"
)

// figure is one number of a report that Compare can match across reports.
type figure struct {
	name string
	v    float64
}

// Compare shows what changed from run a to run b, as Markdown: every figure the two share
// (old, new, new/old), the rows only one has, and the targets and checks whose outcome
// changed.
func Compare(a, b *Report) string {
	var out strings.Builder
	out.WriteString("# mizar report comparison\n\n")
	row := func(name string, f func(*Report) string) []string { return []string{name, f(a), f(b)} }
	table(&out, []string{"", "old (A)", "new (B)"}, [][]string{
		row("scenario", func(r *Report) string { return r.Scenario }),
		row("commit", commitText),
		row("kernel", func(r *Report) string { return r.Kernel }),
		row("CPU", cpuText),
		row("date", startedText),
		row("duration", durationText),
	})
	compareFigures(&out, "Provisioning", "times in ms", provisioningFigures(a), provisioningFigures(b))
	compareFigures(&out, "Traffic", "ratios are to the baseline of the same run", trafficFigures(a), trafficFigures(b))
	compareOutcomes(&out, a, b)
	return out.String()
}

// keyed is a report's figures by the row they belong to, rows in report order.
type keyed struct {
	rows    []string
	figures map[string][]figure
}

func (k *keyed) add(row string, fs []figure) {
	if k.figures == nil {
		k.figures = map[string][]figure{}
	}
	// A repeated row (the same size or test measured twice) keeps its first figures, the
	// ones summary.md's ratios are computed from too.
	if _, dup := k.figures[row]; !dup {
		k.rows = append(k.rows, row)
		k.figures[row] = fs
	}
}

func provisioningFigures(r *Report) keyed {
	var k keyed
	for _, p := range sortedProvisioning(r) {
		var fs []figure
		times := func(what string, s Summary) {
			for _, q := range []struct {
				name string
				v    float64
			}{{"p50", s.P50}, {"p90", s.P90}, {"p99", s.P99}, {"max", s.Max}} {
				if v, ok := toMS(s.Unit, q.v); ok && s.N > 0 {
					fs = append(fs, figure{what + " " + q.name, v})
				}
			}
		}
		times("plumb", p.Plumb)
		times("programmed", p.Programmed)
		times("reachable", p.Reachable)
		if p.Writes.N > 0 {
			fs = append(fs, figure{"writes per endpoint (mean)", p.Writes.Mean})
		}
		if p.HostsTouched.N > 0 {
			fs = append(fs, figure{"hosts touched per endpoint (mean)", p.HostsTouched.Mean})
		}
		k.add(p.Mode+", "+sizeLabel(p), fs)
	}
	return k
}

func trafficFigures(r *Report) keyed {
	var k keyed
	for _, t := range sortedTraffic(r) {
		fs := []figure{{"value (" + t.Unit + ")", t.Value}}
		if t.Dist.N > 0 {
			fs = append(fs, figure{"dist p50", t.Dist.P50}, figure{"dist p90", t.Dist.P90}, figure{"dist p99", t.Dist.P99})
		}
		for _, base := range []string{PathRouted, PathVXLAN} {
			if x, _, why := ratio(r, t, base); t.Path != base && why == "" {
				fs = append(fs, figure{"x " + base, x})
			}
		}
		k.add(t.Test+", "+trafficLabel(t), fs)
	}
	return k
}

func compareFigures(out *strings.Builder, title, note string, a, b keyed) {
	if len(a.rows) == 0 && len(b.rows) == 0 {
		return
	}
	fmt.Fprintf(out, "## %s\n\nOld, new and new / old; %s.\n\n", title, note)
	var rows [][]string
	var onlyA, onlyB []string
	for _, name := range a.rows {
		fb, ok := b.figures[name]
		if !ok {
			onlyA = append(onlyA, name)
			continue
		}
		for _, f := range a.figures[name] {
			i := slices.IndexFunc(fb, func(g figure) bool { return g.name == f.name })
			if i < 0 {
				rows = append(rows, []string{name, f.name, num(f.v), "-", "-"})
				continue
			}
			rows = append(rows, []string{name, f.name, num(f.v), num(fb[i].v), over(fb[i].v, f.v)})
		}
		for _, g := range fb {
			if !slices.ContainsFunc(a.figures[name], func(f figure) bool { return f.name == g.name }) {
				rows = append(rows, []string{name, g.name, "-", num(g.v), "-"})
			}
		}
	}
	for _, name := range b.rows {
		if _, ok := a.figures[name]; !ok {
			onlyB = append(onlyB, name)
		}
	}
	if len(rows) > 0 {
		table(out, []string{"measured", "figure", "old", "new", "ratio"}, rows)
	}
	for _, only := range []struct {
		which string
		rows  []string
	}{{"old (A)", onlyA}, {"new (B)", onlyB}} {
		if len(only.rows) > 0 {
			fmt.Fprintf(out, "Only in %s: %s.\n\n", only.which, strings.Join(only.rows, "; "))
		}
	}
}

// compareOutcomes lists targets and checks whose outcome differs between a and b.
func compareOutcomes(out *strings.Builder, a, b *Report) {
	ta, tb := Targets(a), Targets(b)
	var rows [][]string
	same := 0
	for _, p := range pairTargets(ta, tb) {
		switch {
		case p.old == nil:
			rows = append(rows, []string{p.new.Goal, p.new.Subject, "absent", outcome(*p.new)})
		case p.new == nil:
			rows = append(rows, []string{p.old.Goal, p.old.Subject, outcome(*p.old), "absent"})
		case p.old.Status != p.new.Status:
			subject := p.old.Subject
			if p.new.Subject != subject {
				subject += " -> " + p.new.Subject
			}
			rows = append(rows, []string{p.old.Goal, subject, outcome(*p.old), outcome(*p.new)})
		default:
			same++
		}
	}
	out.WriteString("## Targets that changed\n\n")
	fmt.Fprintf(out, "%d changed, %d unchanged.\n\n", len(rows), same)
	if len(rows) > 0 {
		table(out, []string{"target", "applied to", "old", "new"}, rows)
	}

	result := func(c Check) string {
		if c.Passed {
			return "passed"
		}
		if c.Detail == "" {
			return "FAILED"
		}
		return "FAILED: " + c.Detail
	}
	rows = nil
	for _, c := range a.Checks {
		i := slices.IndexFunc(b.Checks, func(d Check) bool { return d.Name == c.Name })
		switch {
		case i < 0:
			rows = append(rows, []string{c.Name, result(c), "absent"})
		case b.Checks[i].Passed != c.Passed:
			rows = append(rows, []string{c.Name, result(c), result(b.Checks[i])})
		}
	}
	for _, d := range b.Checks {
		if !slices.ContainsFunc(a.Checks, func(c Check) bool { return c.Name == d.Name }) {
			rows = append(rows, []string{d.Name, "absent", result(d)})
		}
	}
	if len(rows) > 0 {
		out.WriteString("## Checks that changed\n\n")
		table(out, []string{"check", "old", "new"}, rows)
	}
}

func outcome(t Target) string { return string(t.Status) + ": " + t.Measured }

type targetPair struct{ old, new *Target }

// pairTargets matches the targets of two reports by goal and subject, then pairs what is left
// of a goal when each side has one: "p99 at 1000 endpoints" of a run that had no such size is
// the same target as the measured one, under another subject.
func pairTargets(ta, tb []Target) []targetPair {
	var pairs []targetPair
	usedB := make([]bool, len(tb))
	var leftA []int
	for i := range ta {
		j := slices.IndexFunc(tb, func(u Target) bool { return u.Key() == ta[i].Key() })
		if j < 0 {
			leftA = append(leftA, i)
			continue
		}
		usedB[j] = true
		pairs = append(pairs, targetPair{&ta[i], &tb[j]})
	}
	count := func(ts []Target, left func(int) bool, goal string) (n, last int) {
		for i := range ts {
			if left(i) && ts[i].Goal == goal {
				n, last = n+1, i
			}
		}
		return n, last
	}
	isLeftA := func(i int) bool { return slices.Contains(leftA, i) }
	isLeftB := func(j int) bool { return !usedB[j] }
	for _, i := range leftA {
		na, _ := count(ta, isLeftA, ta[i].Goal)
		nb, j := count(tb, isLeftB, ta[i].Goal)
		if na == 1 && nb == 1 {
			usedB[j] = true
			pairs = append(pairs, targetPair{&ta[i], &tb[j]})
			continue
		}
		pairs = append(pairs, targetPair{old: &ta[i]})
	}
	for j := range tb {
		if !usedB[j] {
			pairs = append(pairs, targetPair{new: &tb[j]})
		}
	}
	return pairs
}
