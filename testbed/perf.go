package testbed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/mizar-net/mizar/dataplane"
	"github.com/mizar-net/mizar/reports"
)

// ErrWrongPath reports traffic that did not take the path it was measured as: the bouncer path
// without bounced packets, the direct path through a bouncer, a baseline through the overlay.
var ErrWrongPath = errors.New("traffic took the wrong path")

// TrafficPaths are the paths MeasureTraffic knows, in the order it measures them: the overlay's
// first (they need its programs attached), then the baselines on the same endpoint namespaces
// with the overlay detached, then the baselines with the endpoints' TX offloads back on.
var TrafficPaths = []string{
	reports.PathBouncer, reports.PathDirect,
	reports.PathRouted, reports.PathVXLAN,
	reports.PathVXLANOffload, reports.PathRoutedOffload,
}

// TrafficOptions shapes MeasureTraffic. Zero fields take the defaults shown.
type TrafficOptions struct {
	Duration time.Duration // measured window of each figure; 5s
	Warmup   time.Duration // load before each window, not counted; 300ms
	Interval time.Duration // sampling interval of the per-interval figures; 100ms
	Streams  int           // connections of the multi-stream TCP test; 4
	Rounds   int           // passes over every path; 1
	UDPSize  int           // UDP payload bytes, at least 8; 64
	RRSize   int           // TCP request and response bytes; 1
	MTU      int           // underlay MTU; 1500 (endpoints get it minus dataplane.Overhead)
	Mode     dataplane.Mode
	// Agent is the encapsulation point on the endpoints' hosts: dataplane.AgentTC (default,
	// as the host agent's; its endpoints keep their TX offloads and receive through GRO) or
	// dataplane.Agent (XDP; its endpoints need TX checksum offload off).
	Agent dataplane.Program
	// Paths to measure (default TrafficPaths); they are measured in TrafficPaths' order.
	Paths []string
	// Iperf3 is the iperf3 binary for the cross-check: "" looks it up on PATH (and skips the
	// cross-check when it is not there), "none" skips it.
	Iperf3 string
	// Iperf3Path is the path the cross-check runs on (default direct).
	Iperf3Path string
	Prefix     string // run prefix (default NewPrefix())
	// Evidence, when set, is called after each path with what the counters showed.
	Evidence func(PathEvidence)
}

func (o *TrafficOptions) defaults() error {
	if o.Duration == 0 {
		o.Duration = 5 * time.Second
	}
	if o.Warmup == 0 {
		o.Warmup = 300 * time.Millisecond
	}
	if o.Interval == 0 {
		o.Interval = 100 * time.Millisecond
	}
	if o.Streams == 0 {
		o.Streams = 4
	}
	if o.Rounds == 0 {
		o.Rounds = 1
	}
	if o.UDPSize == 0 {
		o.UDPSize = 64
	}
	if o.RRSize == 0 {
		o.RRSize = 1
	}
	if o.MTU == 0 {
		o.MTU = 1500
	}
	if o.Agent == "" {
		o.Agent = dataplane.AgentTC
	}
	if len(o.Paths) == 0 {
		o.Paths = TrafficPaths
	}
	if o.Iperf3Path == "" {
		o.Iperf3Path = reports.PathDirect
	}
	if o.Prefix == "" {
		o.Prefix = NewPrefix()
	}
	switch {
	case o.Duration < 0 || o.Warmup < 0 || o.Interval <= 0 || o.Interval > o.Duration:
		return fmt.Errorf("traffic options: duration %v, warmup %v, interval %v: want interval in (0, duration]", o.Duration, o.Warmup, o.Interval)
	case o.Rounds < 1:
		return fmt.Errorf("traffic options: rounds %d: want at least 1", o.Rounds)
	case o.Streams < 1 || o.Streams > 64:
		return fmt.Errorf("traffic options: streams %d: want 1..64", o.Streams)
	case o.Agent != dataplane.AgentTC && o.Agent != dataplane.Agent:
		return fmt.Errorf("traffic options: agent %q: want %q or %q", o.Agent, dataplane.AgentTC, dataplane.Agent)
	case o.UDPSize < 8 || o.UDPSize > o.MTU-dataplane.Overhead-28:
		return fmt.Errorf("traffic options: udp size %d: want 8..%d (tag, endpoint MTU)", o.UDPSize, o.MTU-dataplane.Overhead-28)
	case o.RRSize < 1 || o.RRSize > 1<<20:
		return fmt.Errorf("traffic options: rr size %d: want 1..1048576", o.RRSize)
	case o.MTU < 576+dataplane.Overhead || o.MTU > 65535:
		return fmt.Errorf("traffic options: mtu %d: want %d..65535", o.MTU, 576+dataplane.Overhead)
	}
	for _, p := range o.Paths {
		if !slices.Contains(TrafficPaths, p) {
			return fmt.Errorf("traffic options: path %q: want one of %v", p, TrafficPaths)
		}
	}
	if !slices.Contains(TrafficPaths, o.Iperf3Path) {
		return fmt.Errorf("traffic options: iperf3 path %q: want one of %v", o.Iperf3Path, TrafficPaths)
	}
	return nil
}

// iperf3 returns the binary to cross-check with, or "" for none.
func (o *TrafficOptions) iperf3() string {
	switch o.Iperf3 {
	case "none":
		return ""
	case "":
		bin, err := exec.LookPath("iperf3")
		if err != nil {
			return ""
		}
		return bin
	}
	return o.Iperf3
}

// PathEvidence is what the overlay's counters showed while one path was measured: the
// bouncer's bounced packets and, summed over the endpoints' hosts, the agents' packets sent to
// a bouncer and straight to the learned host.
type PathEvidence struct {
	Path         string
	Bounced      uint64
	EncapBouncer uint64
	DirectHit    uint64
}

// Check tells whether the counters fit the path: the bouncer path bounced and never went
// direct, the direct path went direct and bounced nothing, a baseline touched no overlay program.
func (e PathEvidence) Check() error {
	var ok bool
	switch e.Path {
	case reports.PathBouncer:
		ok = e.Bounced > 0 && e.EncapBouncer > 0 && e.DirectHit == 0
	case reports.PathDirect:
		ok = e.DirectHit > 0 && e.Bounced == 0
	default:
		ok = e.Bounced == 0 && e.EncapBouncer == 0 && e.DirectHit == 0
	}
	if !ok {
		return fmt.Errorf("path %s: bounced %d, encapsulated to a bouncer %d, direct %d: %w", e.Path, e.Bounced, e.EncapBouncer, e.DirectHit, ErrWrongPath)
	}
	return nil
}

// Measurement is one run of a generator.
type Measurement struct {
	Value   float64 // throughput or rate over the window; for latency the p50
	Unit    string
	Seconds float64   // length of the window
	Samples []float64 // per interval (throughput, rate) or per transaction (latency), in Unit
	Loss    float64   // fraction of datagrams sent that did not arrive (UDP)
}

// MeasureTraffic builds two endpoints on two hosts with the network's bouncer on a third, and
// measures on each asked path, on the same endpoint namespaces: bulk TCP with one and
// opts.Streams connections, the rate of small UDP datagrams received, and TCP request/response
// latency. With iperf3 available, it also runs iperf3 (one stream) on opts.Iperf3Path right
// after ours. With opts.Rounds > 1 it goes through every path again (re-attaching the overlay)
// so that a slow spell of a shared machine hits every path alike: a figure's value is then the
// median of its rounds and its distribution pools every round's samples. Each path's counters
// must show the path was taken (ErrWrongPath otherwise). Everything it made is removed before it
// returns; the figures measured so far are returned with any error.
func MeasureTraffic(ctx context.Context, opts TrafficOptions, log *slog.Logger) (_ []reports.Traffic, err error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	bed, err := newTrafficBed(opts, log)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, bed.close()) }()
	iperf := opts.iperf3()
	var runs []figureRun
	for round := range opts.Rounds {
		for _, path := range TrafficPaths {
			if !slices.Contains(opts.Paths, path) {
				continue
			}
			if err := ctx.Err(); err != nil {
				return summarizeRuns(runs), err
			}
			if err := bed.use(path); err != nil {
				return summarizeRuns(runs), fmt.Errorf("round %d: set up path %s: %w", round+1, path, err)
			}
			before, err := bed.counters()
			if err != nil {
				return summarizeRuns(runs), err
			}
			rs, err := bed.measure(ctx, path, iperf != "" && path == opts.Iperf3Path, iperf)
			runs = append(runs, rs...)
			if err != nil {
				return summarizeRuns(runs), fmt.Errorf("round %d: path %s: %w", round+1, path, err)
			}
			ev, err := bed.evidence(path, before)
			if err != nil {
				return summarizeRuns(runs), err
			}
			log.Info("path measured", "round", round+1, "path", path, "bounced", ev.Bounced, "encap_bouncer", ev.EncapBouncer, "direct_hit", ev.DirectHit)
			if opts.Evidence != nil {
				opts.Evidence(ev)
			}
			if err := ev.Check(); err != nil {
				return summarizeRuns(runs), err
			}
		}
	}
	return summarizeRuns(runs), nil
}

// figureRun is one round of one figure.
type figureRun struct {
	f reports.Traffic // what was measured, values unset
	m Measurement
}

// summarizeRuns merges the rounds of each figure, in the order figures were first measured.
func summarizeRuns(runs []figureRun) []reports.Traffic {
	type key struct {
		test, path, tool string
		streams          int
	}
	var order []key
	byKey := map[key][]figureRun{}
	for _, r := range runs {
		k := key{r.f.Test, r.f.Path, r.f.Tool, r.f.Streams}
		if _, ok := byKey[k]; !ok {
			order = append(order, k)
		}
		byKey[k] = append(byKey[k], r)
	}
	var out []reports.Traffic
	for _, k := range order {
		rs := byKey[k]
		f := rs[0].f
		var values, samples []float64
		for _, r := range rs {
			values = append(values, r.m.Value)
			samples = append(samples, r.m.Samples...)
			f.Seconds += r.m.Seconds
			f.Loss += r.m.Loss / float64(len(rs))
		}
		f.Unit = rs[0].m.Unit
		f.Value = median(values)
		f.Dist = reports.Summarize(f.Unit, samples)
		out = append(out, f)
	}
	return out
}

// trafficBed is the overlay of MeasureTraffic and the state of its baselines.
type trafficBed struct {
	opts TrafficOptions
	log  *slog.Logger
	lab  *Lab
	o    *Overlay
	a, b *OverlayEndpoint

	detached bool // overlay programs removed, hosts forward by kernel routing
	vxlan    bool // vx0 made on both hosts
	offload  bool // endpoints' TX checksum offload on
}

// vxlanNet addresses the hosts' vx0 devices.
var vxlanNet = netip.MustParsePrefix("10.255.255.0/24")

const vxlanDev = "vx0"

func newTrafficBed(opts TrafficOptions, log *slog.Logger) (_ *trafficBed, err error) {
	t := &trafficBed{opts: opts, log: log, lab: NewLab(opts.Prefix, log)}
	defer func() {
		if err != nil {
			err = errors.Join(err, t.close())
		}
	}()
	t.o, err = BuildOverlay(t.lab, OverlaySpec{Hosts: 3, Bouncers: []int{2}, Endpoints: []int{0, 1}, MTU: opts.MTU, Mode: opts.Mode,
		Agent: opts.Agent, EndpointGRO: opts.Agent == dataplane.AgentTC,
		// Native XDP on a veth takes frames above about a page only multi-buffer.
		XDPFrags: opts.MTU > 3500}, log)
	if errors.Is(err, unix.ERANGE) {
		// The kernel refuses native XDP on a veth whose frames may not fit one page (about
		// 3500 bytes) unless the program handles fragments (xdp.frags), which ours do not.
		return nil, fmt.Errorf("underlay mtu %d too large for native XDP on a veth (at most about 3500): %w", opts.MTU, err)
	}
	if err != nil {
		return nil, err
	}
	t.a, t.b = t.o.Endpoints[0], t.o.Endpoints[1]
	t.offload = t.agentOffload()
	// The host side of each endpoint's veth takes the MAC the agent answers ARP with, so that
	// the endpoints' neighbour entries stay right when kernel routing (proxy ARP) takes over.
	for _, ep := range t.o.Endpoints {
		if err := SetMAC(ep.Host.NS, ep.HostVeth, gatewayMAC); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func (t *trafficBed) close() error {
	var errs []error
	if t.o != nil {
		errs = append(errs, t.o.Close())
	}
	return errors.Join(append(errs, t.lab.Close())...)
}

// use sets the bed up for path.
func (t *trafficBed) use(path string) error {
	switch path {
	case reports.PathBouncer, reports.PathDirect:
		if err := t.attach(); err != nil {
			return err
		}
		direct := path == reports.PathDirect
		for _, ep := range []*OverlayEndpoint{t.a, t.b} {
			if err := ep.Host.DP.SetDirectPath(direct); err != nil {
				return err
			}
		}
		if direct {
			return t.learn()
		}
	case reports.PathRouted, reports.PathRoutedOffload, reports.PathVXLAN, reports.PathVXLANOffload:
		if err := t.detach(); err != nil {
			return err
		}
		if err := t.setOffload(path == reports.PathRoutedOffload || path == reports.PathVXLANOffload); err != nil {
			return err
		}
		if path == reports.PathVXLAN || path == reports.PathVXLANOffload {
			return t.routeVXLAN()
		}
		return t.routeUnderlay()
	default:
		return fmt.Errorf("unknown path %q", path)
	}
	return nil
}

// learn has each endpoint's host learn where the other endpoint lives: packets through the
// bouncer teach it.
func (t *trafficBed) learn() error {
	vni := t.o.Spec.VNI
	for range 10 {
		if err := t.ping(t.a, t.b); err != nil {
			return err
		}
		if err := t.ping(t.b, t.a); err != nil {
			return err
		}
		_, ab := t.a.Host.DP.Learned(vni, t.b.IP)
		_, ba := t.b.Host.DP.Learned(vni, t.a.IP)
		if ab && ba {
			return nil
		}
	}
	return errors.New("hosts did not learn the direct path")
}

// ping checks that from reaches to. One lost echo of three is tolerated (and logged): on a
// loaded machine a reply can miss its second after a test filled every queue.
func (t *trafficBed) ping(from, to *OverlayEndpoint) error {
	res, err := Ping(from.NS, to.IP, 3, time.Second)
	if errors.Is(err, ErrPacketLoss) && res.Received >= 2 {
		t.log.Warn("echo lost", "from", from.IP, "to", to.IP, "received", res.Received, "sent", res.Sent)
		return nil
	}
	return err
}

// detach removes every overlay program and has the endpoints' hosts forward by kernel routing:
// IP forwarding on, proxy ARP on the endpoint's veth (the endpoints are on one subnet and ARP
// for each other), a route to the local endpoint.
func (t *trafficBed) detach() error {
	if t.detached {
		return nil
	}
	if err := t.o.Detach(); err != nil {
		return err
	}
	t.detached = true
	for _, ep := range []*OverlayEndpoint{t.a, t.b} {
		ns, veth := ep.Host.NS, ep.HostVeth
		for key, v := range map[string]string{
			"net/ipv4/ip_forward":                     "1",
			"net/ipv4/conf/" + veth + "/proxy_arp":    "1",
			"net/ipv4/neigh/" + veth + "/proxy_delay": "0",
		} {
			if err := SetSysctl(ns, key, v); err != nil {
				return err
			}
		}
		if err := replaceRoute(ns, netip.PrefixFrom(ep.IP, 32), netip.Addr{}, veth); err != nil {
			return err
		}
	}
	return nil
}

// attach brings the overlay back after detach: its programs, and the endpoints' TX checksum
// offload off (the agent sees what the endpoint sends before an offload would complete it). The
// hosts' routes and proxy ARP stay: nothing from an endpoint or in Geneve reaches them.
func (t *trafficBed) attach() error {
	if !t.detached {
		return nil
	}
	if err := t.setOffload(t.agentOffload()); err != nil {
		return err
	}
	if err := t.o.Attach(); err != nil {
		return err
	}
	t.detached = false
	return nil
}

// routeUnderlay routes each endpoint's host to the other endpoint via the other host.
func (t *trafficBed) routeUnderlay() error {
	for _, pair := range [][2]*OverlayEndpoint{{t.a, t.b}, {t.b, t.a}} {
		from, to := pair[0], pair[1]
		if err := replaceRoute(from.Host.NS, netip.PrefixFrom(to.IP, 32), to.Host.IP, "eth0"); err != nil {
			return err
		}
	}
	return nil
}

// routeVXLAN makes a VXLAN device on each endpoint's host, pointed at the other host, and
// routes each host to the other endpoint through it.
func (t *trafficBed) routeVXLAN() error {
	vxIP := func(i int) netip.Addr { a, _ := nthAddr(vxlanNet, 1+i); return a }
	pairs := [][2]*OverlayEndpoint{{t.a, t.b}, {t.b, t.a}}
	if !t.vxlan {
		for i, pair := range pairs {
			from, to := pair[0], pair[1]
			if err := addVXLAN(from.Host.NS, from.Host.IP, to.Host.IP, t.o.Spec.VNI, t.opts.MTU); err != nil {
				return err
			}
			if err := AddAddr(from.Host.NS, vxlanDev, netip.PrefixFrom(vxIP(i), vxlanNet.Bits())); err != nil {
				return err
			}
		}
		t.vxlan = true
	}
	for i, pair := range pairs {
		from, to := pair[0], pair[1]
		if err := replaceRoute(from.Host.NS, netip.PrefixFrom(to.IP, 32), vxIP(1-i), vxlanDev); err != nil {
			return err
		}
	}
	return nil
}

// vxlanOverhead is what VXLAN adds to an inner frame: outer IPv4, UDP, VXLAN, inner Ethernet.
const vxlanOverhead = 20 + 8 + 8 + 14

// addVXLAN makes vx0 in ns: VXLAN over IPv4 from local to remote (the kernel's default port
// 4789, no learning), with the largest MTU the underlay carries.
func addVXLAN(ns *Namespace, local, remote netip.Addr, vni uint32, underlayMTU int) error {
	h, err := handleFor(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	eth, err := h.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("find eth0 in %s: %w", ns, err)
	}
	vx := &netlink.Vxlan{
		LinkAttrs:    netlink.LinkAttrs{Name: vxlanDev, MTU: underlayMTU - vxlanOverhead},
		VxlanId:      int(vni),
		VtepDevIndex: eth.Attrs().Index,
		SrcAddr:      net.IP(local.AsSlice()),
		Group:        net.IP(remote.AsSlice()), // a unicast group is the remote end
		Port:         4789,
	}
	if err := h.LinkAdd(vx); err != nil {
		return fmt.Errorf("add vxlan %s in %s: %w", vxlanDev, ns, err)
	}
	if err := h.LinkSetUp(vx); err != nil {
		return fmt.Errorf("set %s in %s up: %w", vxlanDev, ns, err)
	}
	return nil
}

// replaceRoute sets the IPv4 route to dst in ns, via gw when valid (on-link otherwise), out of
// ifname, replacing any route to dst.
func replaceRoute(ns *Namespace, dst netip.Prefix, gw netip.Addr, ifname string) error {
	return withLink(ns, ifname, func(h *netlink.Handle, l netlink.Link) error {
		r := &netlink.Route{Family: unix.AF_INET, Dst: ipNet(dst, true), LinkIndex: l.Attrs().Index}
		if gw.IsValid() {
			r.Gw = net.IP(gw.AsSlice())
		} else {
			r.Scope = netlink.SCOPE_LINK
		}
		if err := h.RouteReplace(r); err != nil {
			return fmt.Errorf("route %s via %s dev %s in %s: %w", dst, gw, ifname, ns, err)
		}
		return nil
	})
}

// setOffload turns the endpoints' TX checksum offload (and with it TSO) on or off.
// agentOffload is the endpoints' TX checksum offload the agent works with (see PlumbEndpoint).
func (t *trafficBed) agentOffload() bool { return t.opts.Agent == dataplane.AgentTC }

func (t *trafficBed) setOffload(on bool) error {
	if t.offload == on {
		return nil
	}
	var v uint32
	if on {
		v = 1
	}
	for _, ep := range []*OverlayEndpoint{t.a, t.b} {
		if _, err := ethtool(ep.NS, "eth0", unix.ETHTOOL_STXCSUM, v); err != nil {
			return fmt.Errorf("set tx checksum of eth0 in %s to %t: %w", ep.NS, on, err)
		}
	}
	t.offload = on
	return nil
}

// counters reads the bouncer's and the endpoint hosts' counters.
func (t *trafficBed) counters() ([]dataplane.Counters, error) {
	var out []dataplane.Counters
	for _, h := range t.o.Hosts {
		c, err := h.DP.Counters()
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func (t *trafficBed) evidence(path string, before []dataplane.Counters) (PathEvidence, error) {
	after, err := t.counters()
	if err != nil {
		return PathEvidence{}, err
	}
	ev := PathEvidence{Path: path}
	for i, h := range t.o.Hosts {
		d := after[i].Sub(before[i])
		if slices.Contains(t.o.Spec.Bouncers, i) {
			ev.Bounced += d.Get(dataplane.ReasonBounced)
		}
		if h == t.a.Host || h == t.b.Host {
			ev.EncapBouncer += d.Get(dataplane.ReasonEncapBouncer)
			ev.DirectHit += d.Get(dataplane.ReasonDirectHit)
		}
	}
	return ev, nil
}

// measure runs every test on the path set up, from endpoint a to endpoint b.
func (t *trafficBed) measure(ctx context.Context, path string, crossCheck bool, iperf string) ([]figureRun, error) {
	if err := t.ping(t.a, t.b); err != nil {
		return nil, fmt.Errorf("before measuring: %w", err)
	}
	o := t.opts
	var out []figureRun
	run := func(test, tool string, streams, size int, gen func() (Measurement, error)) error {
		m, err := gen()
		if err != nil {
			return fmt.Errorf("%s (%s, %d streams): %w", test, tool, streams, err)
		}
		t.log.Info("measured", "path", path, "test", test, "tool", tool, "streams", streams, "value", m.Value, "unit", m.Unit, "loss", m.Loss)
		out = append(out, figureRun{reports.Traffic{Test: test, Path: path, Streams: streams, Size: size, Tool: tool, MTU: o.MTU}, m})
		return nil
	}
	a, b := t.a.NS, t.b.NS
	for _, streams := range slices.Compact([]int{1, o.Streams}) {
		if err := run(reports.TestTCPStream, reports.ToolMizar, streams, tcpChunk, func() (Measurement, error) {
			return TCPThroughput(ctx, a, b, t.b.IP, streams, o)
		}); err != nil {
			return out, err
		}
		if crossCheck && streams == 1 {
			if err := run(reports.TestTCPStream, reports.ToolIperf3, streams, tcpChunk, func() (Measurement, error) {
				return Iperf3Throughput(ctx, iperf, a, b, t.b.IP, streams, o)
			}); err != nil {
				return out, err
			}
		}
	}
	if err := run(reports.TestUDPRate, reports.ToolMizar, 1, o.UDPSize, func() (Measurement, error) {
		return UDPRate(ctx, a, b, t.b.IP, o)
	}); err != nil {
		return out, err
	}
	err := run(reports.TestTCPLatency, reports.ToolMizar, 1, o.RRSize, func() (Measurement, error) {
		return TCPLatency(ctx, a, b, t.b.IP, o)
	})
	return out, err
}

// tcpChunk is the size of each write of the bulk TCP test (iperf3's default for TCP too).
const tcpChunk = 128 << 10

// ioSlack is how long past its window a test may take to wind down before its sockets time out.
const ioSlack = 10 * time.Second

// TCPThroughput runs bulk TCP from client to a server on addr in server over streams
// connections for o.Warmup then o.Duration, and fills f with the bytes the server received in
// the window (Mbit/s) and per interval. A connection that breaks or makes no progress for a
// second fails it.
func TCPThroughput(ctx context.Context, client, server *Namespace, addr netip.Addr, streams int, o TrafficOptions) (Measurement, error) {
	ln, err := listenTCP(server, addr, 0)
	if err != nil {
		return Measurement{}, err
	}
	defer ln.Close()
	deadline := time.Now().Add(o.Warmup + o.Duration + ioSlack)
	if err := ln.SetDeadline(deadline); err != nil {
		return Measurement{}, err
	}
	var (
		received atomic.Int64
		stopped  atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		conns    []*net.TCPConn
	)
	failed := make(chan error, 2*streams+1)
	fail := func(what string, err error) {
		if !stopped.Load() {
			failed <- fmt.Errorf("tcp stream: %s: %w", what, err)
		}
	}
	keep := func(c *net.TCPConn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	defer func() {
		stopped.Store(true)
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()
	wg.Go(func() {
		for range streams {
			c, err := ln.AcceptTCP()
			if err != nil {
				fail("accept", err)
				return
			}
			keep(c)
			wg.Go(func() {
				buf := make([]byte, 256<<10)
				for {
					n, err := c.Read(buf)
					received.Add(int64(n))
					if err != nil {
						fail("read", err) // io.EOF too: the client does not close first
						return
					}
				}
			})
		}
	})
	raddr := ln.Addr().(*net.TCPAddr).AddrPort()
	data := randomBytes(1, tcpChunk)
	for range streams {
		c, err := dialTCP(client, raddr, deadline)
		if err != nil {
			return Measurement{}, err
		}
		keep(c)
		if err := c.SetDeadline(deadline); err != nil {
			return Measurement{}, err
		}
		wg.Go(func() {
			for !stopped.Load() {
				if _, err := c.Write(data); err != nil {
					fail("write", err)
					return
				}
			}
		})
	}
	n, samples, secs, err := window(ctx, received.Load, o, failed, nil)
	if err != nil {
		return Measurement{}, err
	}
	return Measurement{Value: float64(n) * 8 / 1e6 / secs, Unit: "Mbit/s", Seconds: secs, Samples: scale(samples, 8/1e6)}, nil
}

// UDPRate blasts o.UDPSize-byte datagrams from client to a receiver on addr in server, in
// batches (sendmmsg, recvmmsg) so that the generator costs little per packet, for o.Warmup
// then o.Duration, and fills f with the datagrams received per second in the window, per
// interval, and the fraction of those sent in the window that did not arrive.
func UDPRate(ctx context.Context, client, server *Namespace, addr netip.Addr, o TrafficOptions) (Measurement, error) {
	srv, err := listenUDP(server, netip.AddrPortFrom(addr, 0))
	if err != nil {
		return Measurement{}, err
	}
	defer srv.Close()
	var conn *net.UDPConn
	raddr := srv.LocalAddr().(*net.UDPAddr)
	err = doIn(client, func() (err error) {
		conn, err = net.DialUDP("udp4", nil, raddr)
		return err
	})
	if err != nil {
		return Measurement{}, fmt.Errorf("dial udp %s from %s: %w", raddr, client, err)
	}
	defer conn.Close()
	// A deep receive queue rides out scheduling hiccups of the reader, so that loss is the
	// path's and not the generator's. (The kernel caps it at net.core.rmem_max.)
	_ = srv.SetReadBuffer(8 << 20)

	const batch = 64
	tag := randomBytes(2, 8)
	var (
		sent, received atomic.Int64
		stopped        atomic.Bool
		wg             sync.WaitGroup
	)
	failed := make(chan error, 2)
	defer func() {
		stopped.Store(true)
		srv.Close()
		conn.Close()
		wg.Wait()
	}()
	wg.Go(func() {
		pc := ipv4.NewPacketConn(srv)
		msgs := make([]ipv4.Message, batch)
		for i := range msgs {
			msgs[i].Buffers = [][]byte{make([]byte, 2048)}
		}
		for {
			n, err := pc.ReadBatch(msgs, 0)
			if err != nil {
				if !stopped.Load() {
					failed <- fmt.Errorf("udp rate: receive: %w", err)
				}
				return
			}
			got := 0
			for _, m := range msgs[:n] {
				if m.N == o.UDPSize && string(m.Buffers[0][:8]) == string(tag) {
					got++
				}
			}
			received.Add(int64(got))
		}
	})
	var sender sync.WaitGroup
	sender.Go(func() {
		pc := ipv4.NewPacketConn(conn)
		msgs := make([]ipv4.Message, batch)
		for i := range msgs {
			b := make([]byte, o.UDPSize)
			copy(b, tag)
			msgs[i].Buffers = [][]byte{b}
		}
		for !stopped.Load() {
			n, err := pc.WriteBatch(msgs, 0)
			sent.Add(int64(max(n, 0)))
			// A full queue on the way (ENOBUFS) is the path saying no: count it as not
			// sent and go on.
			if err != nil && !errors.Is(err, unix.ENOBUFS) && !errors.Is(err, unix.EAGAIN) {
				if !stopped.Load() {
					failed <- fmt.Errorf("udp rate: send: %w", err)
				}
				return
			}
		}
	})
	defer sender.Wait()
	var sent0, received0 int64
	got, samples, secs, err := window(ctx, received.Load, o, failed, func() {
		sent0, received0 = sent.Load(), received.Load()
	})
	if err != nil {
		return Measurement{}, err
	}
	stopped.Store(true)
	sender.Wait()
	sentN := sent.Load() - sent0
	// Datagrams in flight when the sender stopped are not lost.
	time.Sleep(50 * time.Millisecond)
	arrived := received.Load() - received0
	m := Measurement{Value: float64(got) / secs, Unit: "pps", Seconds: secs, Samples: samples}
	if sentN > 0 {
		m.Loss = max(0, 1-float64(arrived)/float64(sentN))
	}
	return m, nil
}

// TCPLatency runs o.RRSize-byte requests and responses one after the other on one TCP
// connection from client to a server on addr in server, for o.Warmup then o.Duration, and fills
// f with the round trips' p50 (us) and their distribution.
func TCPLatency(ctx context.Context, client, server *Namespace, addr netip.Addr, o TrafficOptions) (Measurement, error) {
	ln, err := listenTCP(server, addr, 0)
	if err != nil {
		return Measurement{}, err
	}
	defer ln.Close()
	start := time.Now()
	deadline := start.Add(o.Warmup + o.Duration + ioSlack)
	if err := ln.SetDeadline(deadline); err != nil {
		return Measurement{}, err
	}
	srvErr := make(chan error, 1)
	go func() {
		c, err := ln.AcceptTCP()
		if err != nil {
			srvErr <- fmt.Errorf("accept: %w", err)
			return
		}
		defer c.Close()
		if err := c.SetDeadline(deadline); err != nil {
			srvErr <- err
			return
		}
		buf := make([]byte, o.RRSize)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				if err == io.EOF {
					err = nil
				}
				srvErr <- err
				return
			}
			if _, err := c.Write(buf); err != nil {
				srvErr <- fmt.Errorf("respond: %w", err)
				return
			}
		}
	}()
	c, err := dialTCP(client, ln.Addr().(*net.TCPAddr).AddrPort(), deadline)
	if err != nil {
		ln.Close()
		return Measurement{}, errors.Join(err, <-srvErr)
	}
	if err := c.SetDeadline(deadline); err != nil {
		c.Close()
		return Measurement{}, err
	}
	req, resp := randomBytes(3, o.RRSize), make([]byte, o.RRSize)
	var rtts []float64
	from := time.Now().Add(o.Warmup)
	end := from.Add(o.Duration)
	var cerr error
	for n := 0; ; n++ {
		t0 := time.Now()
		if t0.After(end) {
			break
		}
		if n%1024 == 0 && ctx.Err() != nil {
			cerr = ctx.Err()
			break
		}
		if _, err := c.Write(req); err != nil {
			cerr = fmt.Errorf("request: %w", err)
			break
		}
		if _, err := io.ReadFull(c, resp); err != nil {
			cerr = fmt.Errorf("response: %w", err)
			break
		}
		if t0.After(from) {
			rtts = append(rtts, float64(time.Since(t0))/float64(time.Microsecond))
		}
	}
	c.Close()
	serr := <-srvErr
	if err := errors.Join(wrapIf("tcp rr", cerr), wrapIf("tcp rr: server", serr)); err != nil {
		return Measurement{}, err
	}
	if len(rtts) == 0 {
		return Measurement{}, fmt.Errorf("tcp rr: no transaction in %v: %w", o.Duration, ErrStalled)
	}
	return Measurement{Value: reports.Summarize("us", rtts).P50, Unit: "us", Seconds: o.Duration.Seconds(), Samples: rtts}, nil
}

// window lets load that is already running warm up for o.Warmup, then reads count every
// o.Interval for o.Duration. It returns the count's growth over the window, each interval's
// growth per second, and the window's length in seconds; atStart (if set) runs as the window
// opens. It fails when failed delivers an error, when ctx ends, or when the count stands still
// for a second.
func window(ctx context.Context, count func() int64, o TrafficOptions, failed <-chan error, atStart func()) (int64, []float64, float64, error) {
	select {
	case <-time.After(o.Warmup):
	case err := <-failed:
		return 0, nil, 0, err
	case <-ctx.Done():
		return 0, nil, 0, ctx.Err()
	}
	tick := time.NewTicker(o.Interval)
	defer tick.Stop()
	if atStart != nil {
		atStart()
	}
	start, first := time.Now(), count()
	last, lastT, progress := first, start, start
	var samples []float64
	for {
		select {
		case err := <-failed:
			return 0, nil, 0, err
		case <-ctx.Done():
			return 0, nil, 0, ctx.Err()
		case now := <-tick.C:
			v := count()
			if v != last {
				progress = now
			} else if now.Sub(progress) >= time.Second {
				return 0, nil, 0, fmt.Errorf("no progress for %v: %w", now.Sub(progress).Round(time.Millisecond), ErrStalled)
			}
			samples = append(samples, float64(v-last)/now.Sub(lastT).Seconds())
			last, lastT = v, now
			if now.Sub(start) >= o.Duration {
				return v - first, samples, now.Sub(start).Seconds(), nil
			}
		}
	}
}

// median is the middle value, or the mean of the two middle ones.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

func scale(v []float64, k float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = x * k
	}
	return out
}

// secondsCeil rounds d up to whole seconds, at least one: iperf3 takes durations in seconds.
func secondsCeil(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// iperf3Result is the part of iperf3's -J output the cross-check reads.
type iperf3Result struct {
	Intervals []struct {
		Sum struct {
			BitsPerSecond float64 `json:"bits_per_second"`
			Omitted       bool    `json:"omitted"`
		} `json:"sum"`
	} `json:"intervals"`
	End struct {
		SumReceived struct {
			Seconds       float64 `json:"seconds"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

// Iperf3Throughput runs iperf3 (binary bin) as a one-off server on addr in server and a client
// in client with streams connections, and returns its receiver-side throughput. iperf3 takes
// whole seconds: the warmup (-O, omitted from the result) and the duration are rounded up.
func Iperf3Throughput(ctx context.Context, bin string, client, server *Namespace, addr netip.Addr, streams int, o TrafficOptions) (Measurement, error) {
	port := strconv.Itoa(20000 + rand.IntN(20000))
	srv := exec.CommandContext(ctx, "ip", "netns", "exec", server.Name, bin, "-s", "-1", "-B", addr.String(), "-p", port)
	var srvOut bytes.Buffer
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := srv.Start(); err != nil {
		return Measurement{}, fmt.Errorf("start iperf3 server in %s: %w", server, err)
	}
	defer func() {
		_ = srv.Process.Kill() // gone already when the test ran: it serves one client
		_ = srv.Wait()
	}()
	omit := 0
	if o.Warmup > 0 {
		omit = secondsCeil(o.Warmup)
	}
	args := []string{"netns", "exec", client.Name, bin, "-c", addr.String(), "-p", port, "-J",
		"-t", strconv.Itoa(secondsCeil(o.Duration)), "-O", strconv.Itoa(omit),
		"-P", strconv.Itoa(streams), "-i", strconv.FormatFloat(o.Interval.Seconds(), 'f', -1, 64)}
	var (
		res iperf3Result
		out []byte
		err error
	)
	// The server may not listen yet: retry while the client cannot connect.
	for try := 0; ; try++ {
		out, err = exec.CommandContext(ctx, "ip", args...).Output()
		res = iperf3Result{}
		if jerr := json.Unmarshal(out, &res); jerr != nil && err == nil {
			err = fmt.Errorf("parse output: %w", jerr)
		}
		if err == nil && res.Error == "" {
			break
		}
		if try == 40 || !strings.Contains(res.Error, "unable to connect") {
			return Measurement{}, fmt.Errorf("iperf3 client in %s: %v %s (server: %s)", client, err, res.Error, strings.TrimSpace(srvOut.String()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	var samples []float64
	for _, iv := range res.Intervals {
		if !iv.Sum.Omitted {
			samples = append(samples, iv.Sum.BitsPerSecond/1e6)
		}
	}
	return Measurement{Value: res.End.SumReceived.BitsPerSecond / 1e6, Unit: "Mbit/s", Seconds: res.End.SumReceived.Seconds, Samples: samples}, nil
}

// TrafficRatio is one overlay figure over the same figure of a baseline, from one run.
type TrafficRatio struct {
	Test     string
	Streams  int
	Path     string // overlay path
	Baseline string
	Ratio    float64 // overlay/baseline: >1 is better for throughput and rate, worse for latency
}

// TrafficRatios divides every overlay figure ours (Tool mizar) measured by the same test on
// each baseline.
func TrafficRatios(figs []reports.Traffic) []TrafficRatio {
	type key struct {
		test, path string
		streams    int
	}
	val := map[key]float64{}
	for _, f := range figs {
		if f.Tool == reports.ToolMizar {
			val[key{f.Test, f.Path, f.Streams}] = f.Value
		}
	}
	var out []TrafficRatio
	for _, f := range figs {
		if f.Tool != reports.ToolMizar || (f.Path != reports.PathBouncer && f.Path != reports.PathDirect) {
			continue
		}
		for _, base := range []string{reports.PathRouted, reports.PathVXLAN, reports.PathRoutedOffload, reports.PathVXLANOffload} {
			if b, ok := val[key{f.Test, base, f.Streams}]; ok && b > 0 {
				out = append(out, TrafficRatio{Test: f.Test, Streams: f.Streams, Path: f.Path, Baseline: base, Ratio: f.Value / b})
			}
		}
	}
	return out
}

// WriteTrafficTable prints figures and their ratios to the baselines as aligned text.
func WriteTrafficTable(w io.Writer, figs []reports.Traffic) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "test\tstreams\tpath\ttool\tvalue\tunit\tp50\tp90\tp99\tsamples\tloss")
	for _, f := range figs {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%.1f\t%s\t%.1f\t%.1f\t%.1f\t%d\t%.4f\n", f.Test, f.Streams, f.Path, f.Tool, f.Value, f.Unit, f.Dist.P50, f.Dist.P90, f.Dist.P99, f.Dist.N, f.Loss)
	}
	fmt.Fprintln(tw, "\ntest\tstreams\tpath\tover\tratio")
	for _, r := range TrafficRatios(figs) {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%.2f\n", r.Test, r.Streams, r.Path, r.Baseline, r.Ratio)
	}
	return tw.Flush()
}
