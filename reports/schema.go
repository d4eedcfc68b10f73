// Package reports turns measurements into a run folder: report.json (the schema below),
// summary.md, and plots. The JSON schema is versioned: a reader refuses a schema it does not
// know, and a field is never given a new meaning under the same version.
package reports

import (
	"math"
	"slices"
	"time"
)

// SchemaVersion names the layout of report.json. Bump it when a field changes meaning.
const SchemaVersion = "mizar-report/v1"

// Report is one run: where it ran, what it measured.
type Report struct {
	Schema   string    `json:"schema"`   // SchemaVersion
	Scenario string    `json:"scenario"` // what was run: a scenario file or a named experiment
	Commit   string    `json:"commit"`   // git commit of the code that ran ("unknown" outside a checkout)
	Dirty    bool      `json:"dirty"`    // the checkout had uncommitted changes
	Kernel   string    `json:"kernel"`   // uname -r
	CPU      string    `json:"cpu"`      // model name from /proc/cpuinfo
	CPUs     int       `json:"cpus"`     // CPUs the run could use (runtime.NumCPU)
	Started  time.Time `json:"started"`  // when the run began, RFC 3339 in UTC
	Seconds  float64   `json:"seconds"`  // wall time of the whole run
	// Config is what the run was asked to do (sizes, durations, attach mode), as strings so
	// that the schema does not change with every new knob.
	Config map[string]string `json:"config,omitempty"`

	Provisioning []Provisioning `json:"provisioning,omitempty"`
	Traffic      []Traffic      `json:"traffic,omitempty"`
	// Checks are pass/fail properties the run verified (e.g. writes per endpoint flat).
	Checks []Check  `json:"checks,omitempty"`
	Notes  []string `json:"notes,omitempty"`
}

// Summary is the distribution of one quantity's samples. Unit is part of it so that no
// reader has to guess ("ms", "us", "Mbit/s", "pps", "writes").
type Summary struct {
	Unit string  `json:"unit"`
	N    int     `json:"n"`
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

// Provisioning modes.
const (
	// ModeMizar programs an endpoint on its host and its network's bouncers only.
	ModeMizar = "mizar"
	// ModeEveryHost programs every endpoint onto every host: the per-host flow programming
	// Mizar argues against, measured in the same run for comparison.
	ModeEveryHost = "every-host"
)

// Provisioning is one size of a provisioning sweep in one mode.
type Provisioning struct {
	Mode      string `json:"mode"` // ModeMizar or ModeEveryHost
	Endpoints int    `json:"endpoints"`
	Hosts     int    `json:"hosts"`
	Bouncers  int    `json:"bouncers"` // per network
	// Plumb is the time to make each endpoint's namespace and veth, apart from the rest.
	Plumb Summary `json:"plumb"`
	// Programmed is API call to every map write of the endpoint acknowledged.
	Programmed Summary `json:"programmed"`
	// Reachable is API call to the first packet through the overlay answered by it; zero N
	// when the mode does not measure it.
	Reachable Summary `json:"reachable"`
	// Writes is map writes per endpoint; HostsTouched is hosts written per endpoint.
	Writes       Summary `json:"writes"`
	HostsTouched Summary `json:"hosts_touched"`
	// Samples keeps the raw per-endpoint times (ms) for CDF plots; may be omitted.
	ProgrammedMS []float64 `json:"programmed_ms,omitempty"`
	ReachableMS  []float64 `json:"reachable_ms,omitempty"`
}

// Traffic paths: the overlay's and the baselines measured on the same namespaces.
const (
	PathBouncer = "bouncer"       // overlay, every packet through a bouncer
	PathDirect  = "direct"        // overlay, host to host after learning
	PathRouted  = "plain-routing" // baseline: kernel routing, no overlay
	PathVXLAN   = "vxlan"         // baseline: the kernel's VXLAN overlay
	// The same baselines with the endpoints' TX checksum offload (and so TSO) on, as the
	// kernel has it by default. The overlay needs it off (its XDP program sees what the
	// endpoint sends before an offload would complete it), so the fair baselines above have it
	// off too; these show what the offload is worth.
	PathRoutedOffload = "plain-routing-offload"
	PathVXLANOffload  = "vxlan-offload"
)

// Traffic generators.
const (
	ToolMizar  = "mizar"  // in-process Go (testbed)
	ToolIperf3 = "iperf3" // cross-check
)

// Traffic tests.
const (
	TestTCPStream  = "tcp-stream" // bulk TCP, Streams parallel connections, Mbit/s
	TestUDPRate    = "udp-rate"   // small UDP datagrams received per second, pps
	TestTCPLatency = "tcp-rr"     // TCP request/response round trip, us
)

// Traffic is one test on one path. Value is the headline figure (throughput or rate; for
// latency the p50); Dist holds per-interval or per-transaction samples' summary.
type Traffic struct {
	Test    string  `json:"test"`
	Path    string  `json:"path"`
	Streams int     `json:"streams,omitempty"`
	Size    int     `json:"size,omitempty"` // payload bytes per write/datagram/request
	Seconds float64 `json:"seconds"`
	Value   float64 `json:"value"`
	Unit    string  `json:"unit"`
	Dist    Summary `json:"dist"`
	// Tool says what generated the load: "mizar" (in-process Go) or "iperf3" (cross-check).
	Tool string `json:"tool"`
	// MTU is the underlay MTU the run used (endpoints get it minus the overlay's overhead on
	// every path, baselines included).
	MTU int `json:"mtu,omitempty"`
	// Loss is the fraction of datagrams sent that were not received (udp-rate).
	Loss float64 `json:"loss,omitempty"`
}

// Check is a property the run verified.
type Check struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	Detail string `json:"detail"`
}

// Summarize computes a Summary of samples (nearest-rank percentiles).
func Summarize(unit string, samples []float64) Summary {
	s := Summary{Unit: unit, N: len(samples)}
	if len(samples) == 0 {
		return s
	}
	sorted := slices.Clone(samples)
	slices.Sort(sorted)
	sum := 0.0
	for _, v := range sorted {
		sum += v
	}
	rank := func(p float64) float64 {
		i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
		return sorted[max(0, min(i, len(sorted)-1))]
	}
	s.Min, s.Max, s.Mean = sorted[0], sorted[len(sorted)-1], sum/float64(len(sorted))
	s.P50, s.P90, s.P99 = rank(50), rank(90), rank(99)
	return s
}

// Durations converts durations to float samples in the given unit (time.Millisecond...).
func Durations(ds []time.Duration, unit time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d) / float64(unit)
	}
	return out
}
