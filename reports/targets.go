package reports

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// The targets. Traffic targets are ratios of an overlay figure to the plain-routing
// baseline of the same run; provisioning targets are read from the mizar-mode sweep.
const (
	TargetThroughput     = 0.8  // tcp-stream overlay / plain-routing, at least
	TargetPacketRate     = 1.0  // udp-rate overlay / plain-routing, at least
	TargetLatency        = 1.1  // tcp-rr p50 overlay / plain-routing, at most
	TargetProgrammedP99  = 5.0  // ms, p99 programmed at TargetEndpoints, at most
	TargetReachableP99   = 50.0 // ms, p99 reachable at TargetEndpoints, at most
	TargetEndpoints      = 1000 // the size the absolute provisioning targets apply to
	TargetFlatBase       = 100  // the size the largest size's p99 is compared with
	TargetFlat           = 1.25 // p99 at the largest size / p99 at TargetFlatBase, at most
	targetRatioTolerance = 1e-9
)

// Status is the outcome of one target.
type Status string

const (
	Met         Status = "met"
	Missed      Status = "missed"
	NotMeasured Status = "not measured" // the report lacks the figure or its baseline
)

// Target is one of the targets evaluated on one report's data.
type Target struct {
	Goal     string // what is wanted, e.g. "tcp-stream >= 0.8x plain-routing"
	Subject  string // what it was applied to, e.g. "bouncer, 1 stream, 131072 B"
	Measured string // the figure that decided, or why there is none
	Status   Status
}

// Key names a target across reports, for Compare.
func (t Target) Key() string { return t.Goal + " | " + t.Subject }

// Targets evaluates every target on r. A target whose figure, or whose baseline, is absent
// is NotMeasured: a run that skipped the baseline has not met anything.
func Targets(r *Report) []Target {
	var ts []Target
	ts = append(ts, trafficTargets(r, TestTCPStream, "throughput", TargetThroughput, true)...)
	ts = append(ts, trafficTargets(r, TestUDPRate, "packet rate", TargetPacketRate, true)...)
	ts = append(ts, trafficTargets(r, TestTCPLatency, "p50 latency", TargetLatency, false)...)
	return append(ts, provisioningTargets(r)...)
}

// isBaseline says whether path is one of the kernel's paths the overlay is measured against.
func isBaseline(path string) bool {
	switch path {
	case PathRouted, PathVXLAN, PathRoutedOffload, PathVXLANOffload:
		return true
	}
	return false
}

// tool is t's load generator; an empty one is the default in-process generator.
func tool(t Traffic) string { return cmp.Or(t.Tool, "mizar") }

// baselineOf finds the figure of path measured like t: same test, streams, size and tool.
func baselineOf(r *Report, t Traffic, path string) (Traffic, bool) {
	for _, b := range r.Traffic {
		if b.Path == path && b.Test == t.Test && b.Streams == t.Streams && b.Size == t.Size && tool(b) == tool(t) {
			return b, true
		}
	}
	return Traffic{}, false
}

// ratio is t's value over its baseline on path, or why it has none.
func ratio(r *Report, t Traffic, path string) (x float64, baseline Traffic, why string) {
	b, ok := baselineOf(r, t, path)
	switch {
	case !ok:
		return 0, b, fmt.Sprintf("no %s figure with the same streams, size and tool", path)
	case b.Unit != t.Unit:
		return 0, b, fmt.Sprintf("units differ: %s vs %s %s", t.Unit, path, b.Unit)
	case b.Value <= 0 || math.IsNaN(b.Value) || math.IsNaN(t.Value):
		return 0, b, fmt.Sprintf("%s figure is %v", path, b.Value)
	}
	return t.Value / b.Value, b, ""
}

func trafficTargets(r *Report, test, what string, want float64, atLeast bool) []Target {
	var ts []Target
	// Plain routing is the target's baseline; with the endpoints' offloads on (the kernel's
	// default, and what the tc agent leaves them) it is measured too, and judged the same way.
	for _, base := range []string{PathRouted, PathRoutedOffload} {
		if base != PathRouted && !slices.ContainsFunc(r.Traffic, func(t Traffic) bool { return t.Path == base }) {
			continue
		}
		ts = append(ts, trafficTargetsOver(r, test, what, base, want, atLeast)...)
	}
	return ts
}

func trafficTargetsOver(r *Report, test, what, base string, want float64, atLeast bool) []Target {
	op := "<="
	if atLeast {
		op = ">="
	}
	goal := fmt.Sprintf("%s %s %s %sx %s", test, what, op, num(want), base)
	var ts []Target
	seen := map[string]bool{}
	for _, t := range r.Traffic {
		if t.Test != test || isBaseline(t.Path) {
			continue
		}
		seen[t.Path] = true
		target := Target{Goal: goal, Subject: trafficLabel(t), Status: NotMeasured}
		x, b, why := ratio(r, t, base)
		if why != "" {
			target.Measured = why
		} else {
			target.Measured = fmt.Sprintf("%sx (%s / %s %s)", num(x), num(t.Value), num(b.Value), t.Unit)
			target.Status = verdict(x, want, atLeast)
		}
		ts = append(ts, target)
	}
	// The two overlay paths the issue names are always listed, so that a run which left one
	// out shows it instead of passing silently.
	for _, path := range []string{PathBouncer, PathDirect} {
		if !seen[path] {
			ts = append(ts, Target{Goal: goal, Subject: path, Measured: "no figure", Status: NotMeasured})
		}
	}
	return ts
}

func verdict(got, want float64, atLeast bool) Status {
	ok := got <= want*(1+targetRatioTolerance)
	if atLeast {
		ok = got >= want*(1-targetRatioTolerance)
	}
	if ok {
		return Met
	}
	return Missed
}

// trafficLabel names a traffic figure's path and configuration.
func trafficLabel(t Traffic) string { return t.Path + ", " + trafficConfig(t) }

// trafficConfig names what a traffic figure was measured with, apart from its path.
func trafficConfig(t Traffic) string {
	var parts []string
	if t.Streams > 0 {
		parts = append(parts, plural(t.Streams, "stream"))
	}
	if t.Size > 0 {
		parts = append(parts, fmt.Sprintf("%d B", t.Size))
	}
	if tool(t) != "mizar" {
		parts = append(parts, tool(t))
	}
	if len(parts) == 0 {
		return "default"
	}
	return strings.Join(parts, ", ")
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// sizeLabel names a provisioning row's size.
func sizeLabel(p Provisioning) string {
	return fmt.Sprintf("%d endpoints, %s, %s", p.Endpoints, plural(p.Hosts, "host"), plural(p.Bouncers, "bouncer"))
}

// mizarRows are the mizar-mode provisioning rows, smallest first.
func mizarRows(r *Report) []Provisioning {
	var rows []Provisioning
	for _, p := range sortedProvisioning(r) {
		if p.Mode == ModeMizar {
			rows = append(rows, p)
		}
	}
	return rows
}

func provisioningTargets(r *Report) []Target {
	rows := mizarRows(r)
	var ts []Target
	absolute := func(what string, want float64, get func(Provisioning) Summary) {
		goal := fmt.Sprintf("p99 %s <= %s ms at %d endpoints", what, num(want), TargetEndpoints)
		found := false
		for _, p := range rows {
			if p.Endpoints != TargetEndpoints {
				continue
			}
			found = true
			ts = append(ts, msTarget(goal, sizeLabel(p), get(p), want))
		}
		if !found {
			ts = append(ts, Target{Goal: goal, Subject: ModeMizar, Measured: fmt.Sprintf("no size of %d endpoints", TargetEndpoints), Status: NotMeasured})
		}
	}
	absolute("programmed", TargetProgrammedP99, func(p Provisioning) Summary { return p.Programmed })
	absolute("reachable", TargetReachableP99, func(p Provisioning) Summary { return p.Reachable })
	ts = append(ts, flatTarget(rows, "programmed", func(p Provisioning) Summary { return p.Programmed }))
	ts = append(ts, flatTarget(rows, "reachable", func(p Provisioning) Summary { return p.Reachable }))
	return append(ts, writesTargets(rows)...)
}

func msTarget(goal, subject string, s Summary, want float64) Target {
	t := Target{Goal: goal, Subject: subject, Status: NotMeasured}
	ms, ok := toMS(s.Unit, s.P99)
	switch {
	case s.N == 0:
		t.Measured = "no samples"
	case !ok:
		t.Measured = fmt.Sprintf("unit %q is not a time", s.Unit)
	default:
		t.Measured = fmt.Sprintf("%s ms (n=%d)", num(ms), s.N)
		t.Status = verdict(ms, want, false)
	}
	return t
}

// flatTarget compares p99 at the largest size with p99 at TargetFlatBase endpoints, on the
// same hosts and bouncers when the sweep has such a row.
func flatTarget(rows []Provisioning, what string, get func(Provisioning) Summary) Target {
	t := Target{
		Goal:    fmt.Sprintf("p99 %s at the largest size <= %sx p99 at %d endpoints", what, num(TargetFlat), TargetFlatBase),
		Subject: ModeMizar,
		Status:  NotMeasured,
	}
	var base, largest *Provisioning
	for i := range rows {
		if get(rows[i]).N == 0 {
			continue
		}
		if rows[i].Endpoints == TargetFlatBase && base == nil {
			base = &rows[i]
		}
		if largest == nil || rows[i].Endpoints > largest.Endpoints {
			largest = &rows[i]
		}
	}
	if largest != nil && base != nil {
		for i := range rows {
			if rows[i].Endpoints == TargetFlatBase && rows[i].Hosts == largest.Hosts && rows[i].Bouncers == largest.Bouncers && get(rows[i]).N > 0 {
				base = &rows[i]
				break
			}
		}
	}
	switch {
	case base == nil:
		t.Measured = fmt.Sprintf("no size of %d endpoints", TargetFlatBase)
		return t
	case largest.Endpoints <= TargetFlatBase:
		t.Measured = fmt.Sprintf("no size larger than %d endpoints", TargetFlatBase)
		return t
	}
	t.Subject = fmt.Sprintf("%s: %d vs %d endpoints", ModeMizar, largest.Endpoints, base.Endpoints)
	big, okBig := toMS(get(*largest).Unit, get(*largest).P99)
	small, okSmall := toMS(get(*base).Unit, get(*base).P99)
	switch {
	case !okBig || !okSmall:
		t.Measured = fmt.Sprintf("units %q, %q are not both times", get(*largest).Unit, get(*base).Unit)
	case small <= 0:
		t.Measured = fmt.Sprintf("p99 at %d endpoints is %v", base.Endpoints, small)
	default:
		x := big / small
		t.Measured = fmt.Sprintf("%sx (%s / %s ms)", num(x), num(big), num(small))
		t.Status = verdict(x, TargetFlat, false)
	}
	return t
}

// writesTargets checks, per size, that every endpoint cost exactly its network's bouncers
// plus one (its host) map writes: the work per endpoint does not depend on the hosts.
func writesTargets(rows []Provisioning) []Target {
	const goal = "map writes per endpoint = bouncers + 1, whatever the hosts"
	var ts []Target
	for _, p := range rows {
		t := Target{Goal: goal, Subject: sizeLabel(p), Status: NotMeasured}
		want := float64(p.Bouncers + 1)
		switch {
		case p.Writes.N == 0:
			t.Measured = "no samples"
		default:
			t.Measured = fmt.Sprintf("%s, want %s", spread(p.Writes), num(want))
			t.Status = Missed
			if math.Abs(p.Writes.Min-want) < targetRatioTolerance && math.Abs(p.Writes.Max-want) < targetRatioTolerance {
				t.Status = Met
			}
		}
		ts = append(ts, t)
	}
	if len(ts) == 0 {
		ts = append(ts, Target{Goal: goal, Subject: ModeMizar, Measured: "no provisioning figure", Status: NotMeasured})
	}
	return ts
}

// spread shows a per-endpoint count: one number when every endpoint had it, else min-max.
func spread(s Summary) string {
	if s.N == 0 {
		return "-"
	}
	if s.Min == s.Max {
		return num(s.Min)
	}
	return fmt.Sprintf("%s-%s (mean %s)", num(s.Min), num(s.Max), num(s.Mean))
}

// toMS converts v in unit to milliseconds; false when unit is not a time.
func toMS(unit string, v float64) (float64, bool) {
	switch unit {
	case "ns":
		return v / 1e6, true
	case "us", "µs":
		return v / 1e3, true
	case "ms":
		return v, true
	case "s":
		return v * 1e3, true
	}
	return 0, false
}

// num prints a figure with the digits that matter: 3 significant ones, no exponent for the
// ranges these reports hold, no trailing zeros.
func num(v float64) string {
	a := math.Abs(v)
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return fmt.Sprint(v)
	case a >= 100 || v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a < 0.001:
		return strconv.FormatFloat(v, 'e', 2, 64)
	}
	digits := 2 - int(math.Floor(math.Log10(a)))
	s := strconv.FormatFloat(v, 'f', digits, 64)
	return strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
}
