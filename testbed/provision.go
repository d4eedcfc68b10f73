package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/mizar-net/mizar/controlplane"
	"github.com/mizar-net/mizar/dataplane"
	"github.com/mizar-net/mizar/reports"
)

// Size is one point of a provisioning sweep: endpoints spread round-robin over hosts.
type Size struct {
	Endpoints int
	Hosts     int
}

func (s Size) String() string { return fmt.Sprintf("%d endpoints/%d hosts", s.Endpoints, s.Hosts) }

// DefaultProvisionSizes is the sweep MeasureProvisioning runs when given none.
var DefaultProvisionSizes = []Size{{10, 10}, {100, 20}, {1000, 50}, {5000, 50}}

// DefaultProvisionModes is every mode, Mizar's first.
var DefaultProvisionModes = []string{reports.ModeMizar, reports.ModeEveryHost}

// ProvisionOptions shapes MeasureProvisioning. Zero fields take the defaults shown.
type ProvisionOptions struct {
	Sizes []Size   // DefaultProvisionSizes
	Modes []string // DefaultProvisionModes (reports.ModeMizar, reports.ModeEveryHost)
	// EveryHostMaxEndpoints skips every-host mode for sizes above it (0: no limit). That mode
	// costs as much plumbing as Mizar's, so a full sweep may want it on the smaller sizes only.
	EveryHostMaxEndpoints int
	Bouncers              int            // per network (2)
	Prefix                string         // run prefix (NewPrefix())
	Mode                  dataplane.Mode // XDP attach mode
	// Progress, when set, gets a line per tenth of each size and one when it is done.
	Progress io.Writer
	// ProbeInterval is how often an endpoint is probed from the API call on (1ms); a probe is
	// also sent as soon as the call returns.
	ProbeInterval time.Duration
	// ReachTimeout is how long after the API call an endpoint may take to answer (3s); one that
	// does not counts as unreachable (Reachable.N < Endpoints).
	ReachTimeout time.Duration
	// Samples keeps every endpoint's times in the results (for CDF plots).
	Samples bool
}

func (o *ProvisionOptions) defaults() {
	if o.Sizes == nil {
		o.Sizes = DefaultProvisionSizes
	}
	if o.Modes == nil {
		o.Modes = DefaultProvisionModes
	}
	if o.Bouncers == 0 {
		o.Bouncers = 2
	}
	if o.Prefix == "" {
		o.Prefix = NewPrefix()
	}
	if o.ProbeInterval == 0 {
		o.ProbeInterval = time.Millisecond
	}
	if o.ReachTimeout == 0 {
		o.ReachTimeout = 3 * time.Second
	}
}

// The sweep's one VPC and network. Probes take the first addresses, measured endpoints the
// rest.
var (
	provisionVPC     = netip.MustParsePrefix("10.0.0.0/16")
	provisionVNI     = uint32(4242)
	provisionMaxEnds = 1<<16 - 3 - 64 // addresses of the /16 past network, gateway, broadcast and probes
)

func (o ProvisionOptions) validate() error {
	if len(o.Sizes) == 0 {
		return fmt.Errorf("provisioning: sizes: %w: none", controlplane.ErrInvalid)
	}
	for i, s := range o.Sizes {
		switch {
		case s.Endpoints < 1 || s.Endpoints > provisionMaxEnds:
			return fmt.Errorf("provisioning: sizes[%d]: endpoints %d: %w: out of range 1..%d", i, s.Endpoints, controlplane.ErrInvalid, provisionMaxEnds)
		case s.Hosts < 2 || s.Hosts > 64:
			// Two at least: the probe of an endpoint sits on another host, so that its first
			// packet crosses the overlay.
			return fmt.Errorf("provisioning: sizes[%d]: hosts %d: %w: out of range 2..64", i, s.Hosts, controlplane.ErrInvalid)
		case o.Bouncers > s.Hosts:
			return fmt.Errorf("provisioning: sizes[%d]: bouncers %d: %w: more than its %d hosts", i, o.Bouncers, controlplane.ErrInvalid, s.Hosts)
		}
	}
	if o.Bouncers < 1 || o.Bouncers > controlplane.MaxBouncers {
		return fmt.Errorf("provisioning: bouncers %d: %w: out of range 1..%d", o.Bouncers, controlplane.ErrInvalid, controlplane.MaxBouncers)
	}
	for i, m := range o.Modes {
		if m != reports.ModeMizar && m != reports.ModeEveryHost {
			return fmt.Errorf("provisioning: modes[%d]: %q: %w: want %q or %q", i, m, controlplane.ErrInvalid, reports.ModeMizar, reports.ModeEveryHost)
		}
	}
	if o.ProbeInterval < 0 || o.ReachTimeout < 0 || o.EveryHostMaxEndpoints < 0 {
		return fmt.Errorf("provisioning: probe interval, reach timeout, every-host limit: %w: negative", controlplane.ErrInvalid)
	}
	return nil
}

// MeasureProvisioning runs a provisioning sweep: for each size and mode, a fresh cluster of
// that many hosts with one VPC and one network of o.Bouncers bouncers, then one endpoint after
// the other, round-robin over the hosts. For each endpoint it times apart: making its
// namespace and veth (Plumb, before the API call), Controller.CreateEndpoint until every map
// write is acknowledged (Programmed), and the API call until the first ICMP echo reply
// through the overlay from a probe endpoint on another host (Reachable). Writes and hosts
// touched per endpoint come from the controller's counters. The probe and the endpoint know
// each other's MAC beforehand (see prober.neighbor), so the first packet waits on no ARP.
//
// Every host gets a probe endpoint before the measured ones, so each host has joined the VPC
// (a one-off 1 + 2 x networks writes per host and VPC) and what is measured is the cost of an
// endpoint alone. Everything is removed at the end of each size. The sweep stops at the first
// error; results of the sizes done are returned with it.
func MeasureProvisioning(ctx context.Context, o ProvisionOptions, log *slog.Logger) ([]reports.Provisioning, error) {
	o.defaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var out []reports.Provisioning
	for _, s := range o.Sizes {
		for _, m := range o.Modes {
			if m == reports.ModeEveryHost && o.EveryHostMaxEndpoints > 0 && s.Endpoints > o.EveryHostMaxEndpoints {
				continue
			}
			r, err := measureSize(ctx, o, s, m, log.With("mode", m, "size", s.String()))
			if err != nil {
				return out, fmt.Errorf("provisioning %s, %s: %w", m, s, err)
			}
			out = append(out, r)
		}
	}
	return out, nil
}

func measureSize(ctx context.Context, o ProvisionOptions, s Size, mode string, log *slog.Logger) (_ reports.Provisioning, err error) {
	start := time.Now()
	c, err := NewCluster(o.Prefix, ClusterOptions{Mode: o.Mode, ProgramEveryHost: mode == reports.ModeEveryHost}, log)
	if err != nil {
		return reports.Provisioning{}, err
	}
	var probes []*prober
	defer func() {
		for _, p := range probes {
			p.close()
		}
		t := time.Now()
		if cerr := errors.Join(c.dropNamespaces(), c.Close()); cerr != nil && err == nil {
			err = fmt.Errorf("clean up: %w", cerr)
		}
		progressf(o.Progress, "provisioning %s %s: cleaned up in %s", mode, s, time.Since(t).Round(time.Millisecond))
	}()
	hosts := make([]string, s.Hosts)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("h%d", i)
		if _, err := c.AddHost(ctx, hosts[i]); err != nil {
			return reports.Provisioning{}, err
		}
	}
	const vpc, network = "prov", "net"
	if _, err := c.Controller.CreateVPC(ctx, controlplane.VPC{Name: vpc, CIDR: provisionVPC, VNI: provisionVNI, Dividers: 1}); err != nil {
		return reports.Provisioning{}, err
	}
	if _, err := c.Controller.CreateNetwork(ctx, controlplane.Network{Name: network, VPC: vpc, CIDR: provisionVPC, Bouncers: o.Bouncers}); err != nil {
		return reports.Provisioning{}, err
	}
	addr := func(i int) netip.Addr { // i-th address past the gateway
		a := controlplane.Gateway(provisionVPC).As4()
		v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) + 1 + uint32(i)
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	for i, h := range hosts {
		ip := addr(i)
		ns, err := c.PlumbEndpoint(h, provisionVNI, provisionVPC, ip)
		if err != nil {
			return reports.Provisioning{}, fmt.Errorf("probe on %s: %w", h, err)
		}
		if _, err := c.Controller.CreateEndpoint(ctx, controlplane.Endpoint{Name: "probe-" + h, VPC: vpc, Network: network, Host: h, IP: ip}); err != nil {
			return reports.Provisioning{}, err
		}
		p, err := newProber(ns, ip)
		if err != nil {
			return reports.Provisioning{}, fmt.Errorf("probe on %s: %w", h, err)
		}
		probes = append(probes, p)
	}
	progressf(o.Progress, "provisioning %s %s: %d hosts and their probes up in %s", mode, s, s.Hosts, time.Since(start).Round(time.Millisecond))

	var plumb, programmed, reachable []time.Duration
	var writes, touched []float64
	unreachable := 0
	t0 := time.Now()
	for i := range s.Endpoints {
		if err := ctx.Err(); err != nil {
			return reports.Provisioning{}, err
		}
		hi := i % s.Hosts
		host, ip := hosts[hi], addr(s.Hosts+i)
		probe := probes[(hi+1)%s.Hosts] // on the next host: its packets cross the overlay

		p0 := time.Now()
		ns, err := c.PlumbEndpoint(host, provisionVNI, provisionVPC, ip)
		if err != nil {
			return reports.Provisioning{}, err
		}
		plumb = append(plumb, time.Since(p0))
		if err := probe.neighbor(ns, ip); err != nil {
			return reports.Provisioning{}, err
		}

		wait := probe.start(ip, o.ProbeInterval)
		a := time.Now()
		_, err = c.Controller.CreateEndpoint(ctx, controlplane.Endpoint{Name: fmt.Sprintf("e%d", i), VPC: vpc, Network: network, Host: host, IP: ip})
		done := time.Now()
		if err != nil {
			wait.stop()
			return reports.Provisioning{}, err
		}
		programmed = append(programmed, done.Sub(a))
		w := c.Controller.Stats().Last["CreateEndpoint"]
		writes = append(writes, float64(w.Total))
		touched = append(touched, float64(len(w.PerHost)))
		wait.kick()
		if at, ok := wait.reply(a.Add(o.ReachTimeout)); ok {
			reachable = append(reachable, at.Sub(a))
		} else {
			unreachable++
			log.Warn("endpoint unreachable", "ep", fmt.Sprintf("e%d", i), "ip", ip, "host", host, "probe", probe.ip)
		}
		if n := i + 1; n == s.Endpoints || n%max(1, s.Endpoints/10) == 0 {
			progressf(o.Progress, "provisioning %s %s: %d/%d endpoints in %s, %d unreachable", mode, s, n, s.Endpoints, time.Since(t0).Round(time.Millisecond), unreachable)
		}
	}
	r := reports.Provisioning{
		Mode:         mode,
		Endpoints:    s.Endpoints,
		Hosts:        s.Hosts,
		Bouncers:     o.Bouncers,
		Plumb:        reports.Summarize("ms", reports.Durations(plumb, time.Millisecond)),
		Programmed:   reports.Summarize("ms", reports.Durations(programmed, time.Millisecond)),
		Reachable:    reports.Summarize("ms", reports.Durations(reachable, time.Millisecond)),
		Writes:       reports.Summarize("writes", writes),
		HostsTouched: reports.Summarize("hosts", touched),
	}
	if o.Samples {
		r.ProgrammedMS = reports.Durations(programmed, time.Millisecond)
		r.ReachableMS = reports.Durations(reachable, time.Millisecond)
	}
	return r, nil
}

func progressf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", args...)
	}
}

// PlumbEndpoint makes the namespace and veth of an endpoint before the control plane is told
// of it, exactly as its host's plumbing would when programming it, and returns the namespace.
// The plumbing then finds it ready, so the time to plumb can be measured apart from the time
// to program. The namespace goes when the endpoint is deleted or the cluster closed.
func (c *Cluster) PlumbEndpoint(host string, vni uint32, vpcCIDR netip.Prefix, ip netip.Addr) (*Namespace, error) {
	h, ok := c.Host(host)
	if !ok {
		return nil, fmt.Errorf("plumb endpoint %v: host %s: %w", ip, host, controlplane.ErrNotFound)
	}
	op := controlplane.Op{Kind: controlplane.OpUpsertEndpoint, VNI: vni, IP: ip, MAC: controlplane.EndpointMAC(vni, ip),
		Interface: controlplane.HostVeth(vni, ip), VPCCIDR: vpcCIDR}
	if err := (&plumbingAgent{c: c, h: h}).plumb(op); err != nil {
		return nil, fmt.Errorf("plumb endpoint %v on %s: %w", ip, host, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endpoints[epID{vni, ip}].ns, nil
}

// neighbor gives the probe and the endpoint at ip in ns permanent neighbour entries for each
// other (the gateway MAC, as the agent would answer). The kernel's ARP table is one for all
// namespaces, and its dynamic entries are capped (net.ipv4.neigh.default.gc_thresh3, 1024 by
// default, which only the root namespace may raise): two per endpoint would overflow it a few
// hundred endpoints in, for this run and everyone else's. Permanent entries do not count.
func (p *prober) neighbor(ns *Namespace, ip netip.Addr) error {
	if err := AddNeighbor(ns, "eth0", p.ip, gatewayMAC); err != nil {
		return err
	}
	return AddNeighbor(p.ns, "eth0", ip, gatewayMAC)
}

// dropNamespaces removes the namespaces of every endpoint, then of every host, without
// deleting their links one by one first as Lab.Close does: the kernel then removes what was
// inside in batches, which for thousands of endpoints is many times faster. Close then has
// the fabric and the data planes left.
func (c *Cluster) dropNamespaces() error {
	c.mu.Lock()
	var nss []*Namespace
	for id, e := range c.endpoints {
		nss = append(nss, e.ns)
		delete(c.endpoints, id)
	}
	for _, h := range c.hosts {
		nss = append(nss, h.NS)
	}
	c.mu.Unlock()
	var errs []error
	for _, ns := range nss {
		errs = append(errs, c.Lab.RemoveNamespace(ns))
	}
	return errors.Join(errs...)
}

// prober sends ICMP echo requests from one endpoint's namespace and notes when the first reply
// from each address it waits for arrives. One raw socket and one reader serve all its targets.
type prober struct {
	ns   *Namespace
	ip   netip.Addr
	conn *icmp.PacketConn
	id   int

	mu      sync.Mutex
	waiting map[netip.Addr]*probeWait
	readErr error
	done    chan struct{}
}

// probeWait is one target being probed.
type probeWait struct {
	p       *prober
	dst     netip.Addr
	replied chan time.Time // gets the arrival time of the first reply
	kickc   chan struct{}
	stopc   chan struct{}
	once    sync.Once
}

func newProber(ns *Namespace, ip netip.Addr) (*prober, error) {
	var conn *icmp.PacketConn
	err := doIn(ns, func() (err error) {
		conn, err = icmp.ListenPacket("ip4:icmp", ip.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("icmp socket in %s: %w", ns, err)
	}
	p := &prober{ns: ns, ip: ip, conn: conn, id: 0x4d5a, waiting: map[netip.Addr]*probeWait{}, done: make(chan struct{})}
	go p.read()
	return p, nil
}

func (p *prober) read() {
	defer close(p.done)
	buf := make([]byte, 1500)
	for {
		n, from, err := p.conn.ReadFrom(buf)
		at := time.Now()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				p.mu.Lock()
				p.readErr = err
				p.mu.Unlock()
			}
			return
		}
		ipa, ok := from.(*net.IPAddr)
		if !ok {
			continue
		}
		src, ok := netip.AddrFromSlice(ipa.IP)
		if !ok {
			continue
		}
		m, err := icmp.ParseMessage(1, buf[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); !ok || e.ID != p.id {
			continue
		}
		p.mu.Lock()
		w := p.waiting[src.Unmap()]
		delete(p.waiting, src.Unmap())
		p.mu.Unlock()
		if w != nil {
			w.replied <- at
		}
	}
}

// start begins probing dst every interval until a reply, stop, or kick-and-reply.
func (p *prober) start(dst netip.Addr, interval time.Duration) *probeWait {
	w := &probeWait{p: p, dst: dst, replied: make(chan time.Time, 1), kickc: make(chan struct{}, 1), stopc: make(chan struct{})}
	p.mu.Lock()
	p.waiting[dst] = w
	p.mu.Unlock()
	go w.send(interval)
	return w
}

func (w *probeWait) send(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	to := &net.IPAddr{IP: net.IP(w.dst.AsSlice())}
	for seq := 1; ; seq++ {
		msg, err := (&icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: w.p.id, Seq: seq & 0xffff, Data: []byte("mizar-provision")}}).Marshal(nil)
		if err == nil {
			// A send error (no route yet, queue full) is one more lost probe: the next goes on.
			w.p.conn.WriteTo(msg, to)
		}
		select {
		case <-w.stopc:
			return
		case <-t.C:
		case <-w.kickc:
		}
	}
}

// kick sends a probe now.
func (w *probeWait) kick() {
	select {
	case w.kickc <- struct{}{}:
	default:
	}
}

// reply waits for the first reply until deadline and stops probing.
func (w *probeWait) reply(deadline time.Time) (time.Time, bool) {
	defer w.stop()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case at := <-w.replied:
		return at, true
	case <-t.C:
		return time.Time{}, false
	}
}

func (w *probeWait) stop() {
	w.once.Do(func() {
		close(w.stopc)
		w.p.mu.Lock()
		if w.p.waiting[w.dst] == w {
			delete(w.p.waiting, w.dst)
		}
		w.p.mu.Unlock()
	})
}

func (p *prober) close() {
	p.conn.Close()
	<-p.done
}

// ProvisioningChecks are the properties a sweep must show, whatever its timings: in Mizar's
// mode an endpoint costs its network's bouncers plus one writes at every number of hosts; in
// every-host mode its writes grow with the hosts (so the comparison is real); every endpoint
// answered through the overlay.
func ProvisioningChecks(results []reports.Provisioning) []reports.Check {
	var checks []reports.Check

	flat := reports.Check{Name: "mizar: writes per endpoint = bouncers + 1 at every number of hosts", Passed: true}
	var details []string
	for _, r := range results {
		if r.Mode != reports.ModeMizar {
			continue
		}
		want := float64(r.Bouncers + 1)
		ok := r.Writes.N == r.Endpoints && r.Writes.Min == want && r.Writes.Max == want
		flat.Passed = flat.Passed && ok
		details = append(details, fmt.Sprintf("%d hosts: %g..%g (want %g)", r.Hosts, r.Writes.Min, r.Writes.Max, want))
	}
	if len(details) > 0 {
		flat.Detail = strings.Join(details, "; ")
		checks = append(checks, flat)
	}

	grow := reports.Check{Name: "every-host: writes per endpoint grow with the number of hosts", Passed: true}
	var eh []reports.Provisioning
	for _, r := range results {
		if r.Mode == reports.ModeEveryHost {
			eh = append(eh, r)
		}
	}
	slices.SortStableFunc(eh, func(a, b reports.Provisioning) int { return a.Hosts - b.Hosts })
	details = nil
	for i, r := range eh {
		// Own host plus every other host (plus one where the own host is also a bouncer).
		ok := r.Writes.N == r.Endpoints && r.Writes.Min >= float64(r.Hosts)
		if i > 0 && r.Hosts > eh[i-1].Hosts {
			ok = ok && r.Writes.P50 > eh[i-1].Writes.P50
		}
		grow.Passed = grow.Passed && ok
		details = append(details, fmt.Sprintf("%d hosts: p50 %g", r.Hosts, r.Writes.P50))
	}
	hostCounts := map[int]bool{}
	for _, r := range eh {
		hostCounts[r.Hosts] = true
	}
	if len(hostCounts) > 1 {
		grow.Detail = strings.Join(details, "; ")
		checks = append(checks, grow)
	}

	reach := reports.Check{Name: "every endpoint reachable through the overlay", Passed: len(results) > 0}
	details = nil
	for _, r := range results {
		ok := r.Reachable.N == r.Endpoints
		reach.Passed = reach.Passed && ok
		details = append(details, fmt.Sprintf("%s %d/%d: %d/%d", r.Mode, r.Endpoints, r.Hosts, r.Reachable.N, r.Endpoints))
	}
	reach.Detail = strings.Join(details, "; ")
	return append(checks, reach)
}
