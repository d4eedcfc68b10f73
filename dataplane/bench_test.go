package dataplane

import (
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

// benchRuns is how many single runs make one figure. Each run is Repeat=1: with Repeat>1 the
// kernel re-runs the program on the buffer the previous run already rewrote, so an
// encapsulating or rewriting program would measure the wrong path.
const benchRuns = 100_000

type benchPath struct {
	name    string
	prog    Program
	setup   func(t testing.TB, d *Dataplane)
	in      func(t testing.TB) []byte
	verdict uint32
}

// runner measures one path: the program, its input and the verdict every run must return (a
// benchmark of a drop is no figure).
type runner struct {
	name    string
	prog    *ebpf.Program
	in      []byte
	ingress uint32
	verdict uint32
	total   time.Duration
	runs    int
}

func newRunner(b *testing.B, d *Dataplane, p benchPath) *runner {
	prog, err := d.program(p.prog)
	must(b, err)
	r := &runner{name: p.name, prog: prog, in: p.in(b), verdict: p.verdict}
	if p.prog == Agent {
		r.ingress = loIfindex
	}
	return r
}

func (r *runner) run(b *testing.B, n int) {
	for range n {
		got, _, dur, err := testRun(r.prog, r.in, r.ingress)
		if err != nil {
			b.Fatal(err)
		}
		if got != r.verdict {
			b.Fatalf("%s: verdict %s, want %s", r.name, verdictNames[got], verdictNames[r.verdict])
		}
		r.total += dur
		r.runs++
	}
}

func (r *runner) mean() time.Duration { return r.total / time.Duration(r.runs) }

// interleaved measures a path and the reference in alternating blocks of single runs, so that
// both see the same machine: on a shared VM the speed drifts within seconds.
func interleaved(b *testing.B, path, ref *runner) {
	const block = 1000
	for path.runs < benchRuns {
		ref.run(b, block)
		path.run(b, block)
	}
}

// BenchmarkPaths reports ns per packet of every path and its ratio to a reference XDP program
// (swap MACs, XDP_TX) measured in the same run. Run with -benchtime 1x: each figure is already
// the mean of 100,000 runs.
func BenchmarkPaths(b *testing.B) {
	bouncer := func(t testing.TB, d *Dataplane) {
		withNeighbors(t, d)
		must(t, d.UpsertNetwork(Network{VNI: vni, NetID: netAID, CIDR: netA, Bouncer: true}))
		must(t, d.UpsertVPC(VPC{VNI: vni, Bouncer: true, Dividers: []netip.Addr{d1IP}}))
		must(t, d.UpsertBouncerEntries(BouncerEntry{VNI: vni, IP: ep2IP, Host: h3IP}))
	}
	divider := func(t testing.TB, d *Dataplane) {
		withNeighbors(t, d)
		must(t, d.UpsertNetwork(Network{VNI: vni, NetID: netAID, CIDR: netA}))
		must(t, d.UpsertNetwork(Network{VNI: vni, NetID: netBID, CIDR: netB}))
		must(t, d.SetBouncers(vni, netBID, []netip.Addr{h3IP}))
		must(t, d.UpsertVPC(VPC{VNI: vni, Divider: true, Dividers: []netip.Addr{selfIP}}))
	}
	agentHost := func(t testing.TB, d *Dataplane) {
		withPort(t, d)
		withNeighbors(t, d)
		must(t, d.SetBouncers(vni, netAID, []netip.Addr{b1IP}))
		must(t, d.UpsertEndpoint(Endpoint{VNI: vni, IP: ep4IP, MAC: ep4MAC, Ifindex: ep4If, NetID: netAID, VPC: vpcCIDR}))
	}
	toEp2 := func(f *flow) { f.src, f.srcMAC, f.dst = ep1IP, ep1MAC, ep2IP }
	toEp3 := func(f *flow) { f.src, f.srcMAC, f.dst = ep1IP, ep1MAC, ep3IP }
	paths := []benchPath{
		{"agent_encap_to_bouncer", Agent, agentHost, fromEp1(nil), xdpRedirect},
		{"agent_direct_path", Agent, func(t testing.TB, d *Dataplane) {
			agentHost(t, d)
			learn(t, d, ep2IP, h3IP)
		}, fromEp1(nil), xdpRedirect},
		{"agent_same_host", Agent, agentHost, fromEp1(func(f *flow) { f.dst = ep4IP }), xdpRedirect},
		{"agent_arp_reply", Agent, agentHost, func(t testing.TB) []byte { return arpRequest(t, ep1MAC, ep1IP, ep2IP) }, xdpTX},
		{"bouncer_to_host", Transit, bouncer, geneveIn(nil, toEp2), xdpTX},
		{"divider_to_bouncer", Transit, divider, geneveIn(nil, toEp3), xdpTX},
		{"local_delivery", Transit, withEndpoint, geneveIn(nil, nil), xdpRedirect},
	}
	targets := map[string]float64{ // the original Mizar's ratio to the same reference, halved
		"agent_encap_to_bouncer": 747.0 / 111 / 2,
		"bouncer_to_host":        658.0 / 111 / 2,
		"divider_to_bouncer":     921.0 / 111 / 2,
		"local_delivery":         826.0 / 111 / 2,
	}

	for _, p := range paths {
		b.Run(p.name, func(b *testing.B) {
			d := newDP(b)
			p.setup(b, d)
			path := newRunner(b, d, p)
			ref := newRunner(b, d, benchPath{"reference", Reference, nil, fromEp1(nil), xdpTX})
			interleaved(b, path, ref)
			for range b.N {
			}
			ns, refNS := path.mean(), ref.mean()
			ratio := float64(ns) / float64(refNS)
			b.ReportMetric(float64(ns.Nanoseconds()), "ns/pkt")
			b.ReportMetric(float64(refNS.Nanoseconds()), "ref-ns/pkt")
			b.ReportMetric(ratio, "x-ref")
			limit := 2.5
			if t, ok := targets[p.name]; ok && t < limit {
				limit = t
			}
			verdict := "met"
			if ratio > limit {
				verdict = "MISSED"
			}
			b.Logf("%s: %d ns/pkt, %.2fx the reference's %d ns in the same run; target <= %.2fx: %s", p.name, ns.Nanoseconds(), ratio, refNS.Nanoseconds(), limit, verdict)
		})
	}
}
