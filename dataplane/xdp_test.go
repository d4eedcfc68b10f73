package dataplane

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket/layers"
)

// XDP verdicts.
const (
	xdpAborted  = 0
	xdpDrop     = 1
	xdpPass     = 2
	xdpTX       = 3
	xdpRedirect = 4
)

var verdictNames = map[uint32]string{0: "XDP_ABORTED", 1: "XDP_DROP", 2: "XDP_PASS", 3: "XDP_TX", 4: "XDP_REDIRECT"}

// tc verdicts (linux/pkt_cls.h).
const (
	tcOK       = 0
	tcShot     = 2
	tcRedirect = 7
)

var tcVerdictNames = map[uint32]string{0: "TC_ACT_OK", 2: "TC_ACT_SHOT", 7: "TC_ACT_REDIRECT"}

// verdictFor is the verdict prog returns where an XDP program returns xdp.
func verdictFor(prog Program, xdp uint32) uint32 {
	if prog != AgentTC {
		return xdp
	}
	switch xdp {
	case xdpDrop:
		return tcShot
	case xdpTX, xdpRedirect:
		return tcRedirect
	case xdpPass:
		return tcOK
	}
	return 0xffff
}

func verdictName(prog Program, v uint32) string {
	if prog == AgentTC {
		return tcVerdictNames[v]
	}
	return verdictNames[v]
}

// loIfindex is the test's ingress interface for the agent: BPF_PROG_TEST_RUN insists the
// ingress device exists in the caller's namespace, and lo always does.
const loIfindex = 1

func newDP(t testing.TB) *Dataplane {
	t.Helper()
	return newDPWith(t, Config{})
}

func newDPWith(t testing.TB, cfg Config) *Dataplane {
	t.Helper()
	requireRoot(t)
	d, err := New(cfg)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	must(t, d.SetHost(HostConfig{IP: selfIP, MAC: selfMAC, Ifindex: 3, MTU: mtu, GatewayMAC: gwMAC}))
	return d
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// withEndpoint hosts ep1 here, behind lo for the agent.
func withEndpoint(t testing.TB, d *Dataplane) {
	must(t, d.UpsertEndpoint(Endpoint{VNI: vni, IP: ep1IP, MAC: ep1MAC, Ifindex: ep1If, NetID: netAID, VPC: vpcCIDR}))
}

// withPort makes lo the agent's port for ep1.
func withPort(t testing.TB, d *Dataplane) {
	must(t, d.UpsertEndpoint(Endpoint{VNI: vni, IP: ep1IP, MAC: ep1MAC, Ifindex: loIfindex, NetID: netAID, VPC: vpcCIDR}))
}

func endpointAndNeighbors(t testing.TB, d *Dataplane) {
	withEndpoint(t, d)
	withNeighbors(t, d)
}

func withNeighbors(t testing.TB, d *Dataplane) {
	for _, n := range []struct {
		ip  netip.Addr
		mac net.HardwareAddr
	}{{h2IP, h2MAC}, {h3IP, h3MAC}, {b1IP, b1MAC}, {b2IP, b2MAC}, {d1IP, d1MAC}} {
		must(t, d.UpsertNeighbor(n.ip, n.mac))
	}
}

type fixture struct {
	name     string
	prog     Program
	setup    func(t testing.TB, d *Dataplane)
	in       func(t testing.TB) []byte
	want     uint32
	check    func(t *testing.T, d *Dataplane, in, out []byte)
	counters map[Reason]uint64
}

func runFixtures(t *testing.T, fixtures []fixture) {
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			d := newDP(t)
			if f.setup != nil {
				f.setup(t, d)
			}
			in := f.in(t)
			prog, err := d.program(f.prog)
			must(t, err)
			var ingress uint32
			if f.prog == Agent {
				ingress = loIfindex
			}
			got, out, _, err := testRun(prog, in, ingress)
			must(t, err)
			if got != f.want {
				t.Fatalf("verdict %s, want %s\ninput:\n%s\noutput:\n%s", verdictName(f.prog, got), verdictName(f.prog, f.want), dump(in), dump(out))
			}
			c, err := d.Counters()
			must(t, err)
			for i := range c {
				r := Reason(i)
				if c[i] != f.counters[r] {
					t.Errorf("counter %s = %d, want %d (all: %v)", ReasonName(r), c[i], f.counters[r], c)
				}
			}
			if f.check != nil {
				f.check(t, d, in, out)
				if t.Failed() {
					t.Logf("input:\n%s\noutput:\n%s", dump(in), dump(out))
				}
			}
		})
	}
}

func eqMAC(t *testing.T, what string, got, want net.HardwareAddr) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func eqIP(t *testing.T, what string, got net.IP, want netip.Addr) {
	t.Helper()
	if !got.Equal(want.AsSlice()) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// wantForwarded checks a packet transit sent back out: outer header rewritten toward target,
// TTL down by one, checksums valid, VNI, options and inner frame untouched but for flags.
func wantForwarded(target netip.Addr, mac net.HardwareAddr, flags byte) func(t *testing.T, d *Dataplane, in, out []byte) {
	return func(t *testing.T, _ *Dataplane, in, out []byte) {
		o, i := decode(t, out), decode(t, in)
		if o.geneve == nil || o.innerIP == nil {
			t.Fatalf("output is not Geneve with an inner IPv4 packet")
		}
		eqMAC(t, "outer dst mac", o.eth.DstMAC, mac)
		eqMAC(t, "outer src mac", o.eth.SrcMAC, selfMAC)
		eqIP(t, "outer dst ip", o.ip.DstIP, target)
		eqIP(t, "outer src ip", o.ip.SrcIP, selfIP)
		if o.ip.TTL != i.ip.TTL-1 {
			t.Errorf("outer ttl %d, want %d", o.ip.TTL, i.ip.TTL-1)
		}
		if !ipv4ChecksumOK(out[14:34]) {
			t.Errorf("outer ipv4 checksum %#04x invalid", o.ip.Checksum)
		}
		if !udpChecksumOK(o.ip, out[34:]) {
			t.Errorf("outer udp checksum %#04x invalid", o.udp.Checksum)
		}
		if o.udp.SrcPort != i.udp.SrcPort || o.udp.DstPort != 6081 {
			t.Errorf("udp ports %d->%d, want %d->6081", o.udp.SrcPort, o.udp.DstPort, i.udp.SrcPort)
		}
		if o.geneve.VNI != i.geneve.VNI {
			t.Errorf("vni %d, want %d", o.geneve.VNI, i.geneve.VNI)
		}
		wantOpts := append([]byte(nil), in[50:50+int(i.geneve.OptionsLength)]...)
		if len(wantOpts) >= 12 {
			wantOpts[8] |= flags
		}
		if got := out[50 : 50+int(o.geneve.OptionsLength)]; !bytes.Equal(got, wantOpts) {
			t.Errorf("options %x, want %x", got, wantOpts)
		}
		innerOff := 50 + int(i.geneve.OptionsLength)
		if !bytes.Equal(out[innerOff:], in[innerOff:]) {
			t.Errorf("inner frame changed")
		}
	}
}

func geneveIn(mod func(*outer), fl func(*flow)) func(t testing.TB) []byte {
	return func(t testing.TB) []byte {
		o, f := defaultOuter(), defaultFlow()
		if mod != nil {
			mod(&o)
		}
		if fl != nil {
			fl(&f)
		}
		return o.wrap(t, f.frame(t))
	}
}

func TestTransit(t *testing.T) {
	divider := func(t testing.TB, d *Dataplane) {
		withNeighbors(t, d)
		must(t, d.UpsertNetwork(Network{VNI: vni, NetID: netAID, CIDR: netA}))
		must(t, d.UpsertNetwork(Network{VNI: vni, NetID: netBID, CIDR: netB}))
		must(t, d.SetBouncers(vni, netAID, []netip.Addr{b1IP, b2IP}))
		must(t, d.SetBouncers(vni, netBID, []netip.Addr{h3IP}))
		must(t, d.UpsertVPC(VPC{VNI: vni, Divider: true, Dividers: []netip.Addr{selfIP}}))
	}
	bouncerOfA := func(t testing.TB, d *Dataplane) {
		withNeighbors(t, d)
		must(t, d.UpsertNetwork(Network{VNI: vni, NetID: netAID, CIDR: netA, Bouncer: true}))
		must(t, d.SetBouncers(vni, netAID, []netip.Addr{selfIP}))
		must(t, d.UpsertVPC(VPC{VNI: vni, Bouncer: true, Dividers: []netip.Addr{d1IP}}))
		must(t, d.UpsertBouncerEntries(BouncerEntry{VNI: vni, IP: ep2IP, Host: h3IP}))
	}
	toEp2 := func(f *flow) { f.src, f.srcMAC, f.dst = ep1IP, ep1MAC, ep2IP }
	toEp3 := func(f *flow) { f.src, f.srcMAC, f.dst = ep1IP, ep1MAC, ep3IP }

	runFixtures(t, []fixture{
		{
			name: "local delivery decapsulates, sets MACs, learns the sender from a bounced packet",
			prog: Transit, setup: endpointAndNeighbors, in: geneveIn(viaBouncer, nil), want: xdpRedirect,
			counters: map[Reason]uint64{ReasonDelivered: 1, ReasonLearned: 1},
			check: func(t *testing.T, d *Dataplane, in, out []byte) {
				f := defaultFlow()
				want := f.frame(t)
				copy(want[0:6], ep1MAC)
				copy(want[6:12], gwMAC)
				if !bytes.Equal(out, want) {
					t.Errorf("delivered frame differs from the inner frame with MACs set")
				}
				o := decode(t, out)
				if o.ip == nil || !ipv4ChecksumOK(out[14:34]) {
					t.Errorf("inner ipv4 missing or checksum invalid")
				}
				if h, ok := d.Learned(vni, ep2IP); !ok || h != h2IP {
					t.Errorf("learned %v %v, want %v", h, ok, h2IP)
				}
			},
		},
		{
			name: "local delivery accepts unknown non-critical options before ours",
			prog: Transit, setup: endpointAndNeighbors, want: xdpRedirect,
			in: geneveIn(func(o *outer) {
				viaBouncer(o)
				unknown := []byte{0x01, 0x02, 0x33, 0x01, 0xde, 0xad, 0xbe, 0xef}
				o.options = append(unknown, o.options...)
			}, nil),
			counters: map[Reason]uint64{ReasonDelivered: 1, ReasonLearned: 1},
		},
		{
			name: "a packet straight from its sender that asks to be learned is learned",
			prog: Transit, setup: endpointAndNeighbors, want: xdpRedirect,
			in:       geneveIn(func(o *outer) { o.options = mizarOption(h2IP, 0x02) }, nil),
			counters: map[Reason]uint64{ReasonDelivered: 1, ReasonLearned: 1},
		},
		{
			name: "a sender this host cannot reach directly is not learned",
			prog: Transit, setup: withEndpoint, want: xdpRedirect,
			in:       geneveIn(viaBouncer, nil),
			counters: map[Reason]uint64{ReasonDelivered: 1},
		},
		{
			name: "a packet straight from its sender that does not ask costs no learning",
			prog: Transit, setup: withEndpoint, want: xdpRedirect,
			in:       geneveIn(nil, nil),
			counters: map[Reason]uint64{ReasonDelivered: 1},
			check: func(t *testing.T, d *Dataplane, in, out []byte) {
				if _, ok := d.Learned(vni, ep2IP); ok {
					t.Errorf("learned from a packet that did not ask")
				}
			},
		},
		{
			name: "local delivery without our option learns nothing",
			prog: Transit, setup: withEndpoint, want: xdpRedirect,
			in:       geneveIn(func(o *outer) { o.options = nil }, nil),
			counters: map[Reason]uint64{ReasonDelivered: 1},
		},
		{
			name: "the same address in another VNI is not delivered",
			prog: Transit, setup: withEndpoint, want: xdpDrop,
			in:       geneveIn(func(o *outer) { o.vni = otherVNI }, nil),
			counters: map[Reason]uint64{ReasonUnknownDest: 1},
		},
		{
			name: "bouncer rewrites the outer header toward the endpoint's host",
			prog: Transit, setup: bouncerOfA, want: xdpTX,
			in:       geneveIn(nil, toEp2),
			counters: map[Reason]uint64{ReasonBounced: 1},
			check:    wantForwarded(h3IP, h3MAC, 0),
		},
		{
			name: "bouncer keeps a UDP checksum valid",
			prog: Transit, setup: bouncerOfA, want: xdpTX,
			in:       geneveIn(func(o *outer) { o.udpChecksum = true }, toEp2),
			counters: map[Reason]uint64{ReasonBounced: 1},
			check:    wantForwarded(h3IP, h3MAC, 0),
		},
		{
			name: "bouncer drops at TTL 1",
			prog: Transit, setup: bouncerOfA, want: xdpDrop,
			in:       geneveIn(func(o *outer) { o.ttl = 1 }, toEp2),
			counters: map[Reason]uint64{ReasonTTLExpired: 1},
		},
		{
			name: "bouncer without a next hop drops",
			prog: Transit, want: xdpDrop,
			setup: func(t testing.TB, d *Dataplane) {
				bouncerOfA(t, d)
				must(t, d.DeleteNeighbor(h3IP))
			},
			in:       geneveIn(nil, toEp2),
			counters: map[Reason]uint64{ReasonNoNeighbor: 1},
		},
		{
			name: "routed underlay: bouncer uses the default next hop",
			prog: Transit, want: xdpTX,
			setup: func(t testing.TB, d *Dataplane) {
				bouncerOfA(t, d)
				must(t, d.DeleteNeighbor(h3IP))
				must(t, d.SetHost(HostConfig{IP: selfIP, MAC: selfMAC, Ifindex: 3, MTU: mtu, GatewayMAC: gwMAC, DefaultNextHop: routerMAC}))
			},
			in:       geneveIn(nil, toEp2),
			counters: map[Reason]uint64{ReasonBounced: 1},
			check:    wantForwarded(h3IP, routerMAC, 0),
		},
		{
			name: "bouncer sends a destination of another network to a divider",
			prog: Transit, setup: bouncerOfA, want: xdpTX,
			in:       geneveIn(nil, toEp3),
			counters: map[Reason]uint64{ReasonToDivider: 1},
			check:    wantForwarded(d1IP, d1MAC, 0),
		},
		{
			name: "bouncer drops an unknown address of its own network",
			prog: Transit, setup: bouncerOfA, want: xdpDrop,
			in:       geneveIn(nil, func(f *flow) { toEp2(f); f.dst = netip.MustParseAddr("10.0.1.77") }),
			counters: map[Reason]uint64{ReasonUnknownDest: 1},
		},
		{
			name: "bouncer never returns a divided packet to the dividers",
			prog: Transit, setup: bouncerOfA, want: xdpDrop,
			in:       geneveIn(func(o *outer) { o.options = mizarOption(h2IP, 0x01) }, toEp3),
			counters: map[Reason]uint64{ReasonUnknownDest: 1},
		},
		{
			name: "divider sends to a bouncer of the destination's network and marks it",
			prog: Transit, setup: divider, want: xdpTX,
			in:       geneveIn(nil, toEp3),
			counters: map[Reason]uint64{ReasonDivided: 1},
			check:    wantForwarded(h3IP, h3MAC, 0x01),
		},
		{
			name: "divider picks one of the network's bouncers",
			prog: Transit, setup: divider, want: xdpTX,
			in:       geneveIn(func(o *outer) { o.udpChecksum = true }, toEp2),
			counters: map[Reason]uint64{ReasonDivided: 1},
			check: func(t *testing.T, d *Dataplane, in, out []byte) {
				o := decode(t, out)
				dst, _ := netip.AddrFromSlice(o.ip.DstIP.To4())
				mac := map[netip.Addr]net.HardwareAddr{b1IP: b1MAC, b2IP: b2MAC}[dst]
				if mac == nil {
					t.Fatalf("divided to %v, not a bouncer of network A", dst)
				}
				wantForwarded(dst, mac, 0x01)(t, d, in, out)
			},
		},
		{
			name: "divider drops a destination in no network",
			prog: Transit, setup: divider, want: xdpDrop,
			in:       geneveIn(nil, func(f *flow) { toEp2(f); f.dst = netip.MustParseAddr("10.0.9.9") }),
			counters: map[Reason]uint64{ReasonUnknownDest: 1},
		},
		{
			name: "stale direct path: a host that no longer has the endpoint sends it to the bouncer",
			prog: Transit, want: xdpTX,
			setup: func(t testing.TB, d *Dataplane) {
				withNeighbors(t, d)
				must(t, d.UpsertNetwork(Network{VNI: vni, NetID: netAID, CIDR: netA}))
				must(t, d.SetBouncers(vni, netAID, []netip.Addr{b1IP}))
			},
			in:       geneveIn(nil, nil),
			counters: map[Reason]uint64{ReasonRerouted: 1},
			check:    wantForwarded(b1IP, b1MAC, 0),
		},
		{
			name: "a VNI no host has is dropped",
			prog: Transit, setup: withEndpoint, want: xdpDrop,
			in:       geneveIn(func(o *outer) { o.vni = 0xabcdef }, nil),
			counters: map[Reason]uint64{ReasonUnknownDest: 1},
		},
		{
			name: "Geneve version 1 is dropped",
			prog: Transit, setup: withEndpoint, want: xdpDrop,
			in:       geneveIn(func(o *outer) { o.version = 1 }, nil),
			counters: map[Reason]uint64{ReasonBadVersion: 1},
		},
		{
			name: "an unknown critical option is dropped",
			prog: Transit, setup: withEndpoint, want: xdpDrop,
			in: geneveIn(func(o *outer) {
				o.options = append([]byte{0x01, 0x02, 0x85, 0x00}, o.options...)
			}, nil),
			counters: map[Reason]uint64{ReasonCriticalOption: 1},
		},
		{
			name: "an option running past the options is dropped",
			prog: Transit, setup: withEndpoint, want: xdpDrop,
			in: geneveIn(func(o *outer) {
				o.options = []byte{0x01, 0x02, 0x03, 0x05, 0, 0, 0, 0}
			}, nil),
			counters: map[Reason]uint64{ReasonMalformed: 1},
		},
		{
			name: "options longer than the packet are dropped",
			prog: Transit, setup: withEndpoint, want: xdpDrop,
			in: func(t testing.TB) []byte {
				o := defaultOuter()
				o.options = []byte{0x01, 0x02, 0x03, 0x1f}
				b := o.wrap(t, nil)
				b[42] = 0x3f // options length 252 bytes, far past the frame
				return b
			},
			counters: map[Reason]uint64{ReasonMalformed: 1},
		},
		{
			name: "an inner ARP frame is dropped: ARP never crosses the overlay",
			prog: Transit, setup: withEndpoint, want: xdpDrop,
			in: func(t testing.TB) []byte {
				return defaultOuter().wrap(t, arpRequest(t, ep2MAC, ep2IP, ep1IP))
			},
			counters: map[Reason]uint64{ReasonNotIPv4: 1},
		},
		{
			name: "a payload other than Ethernet is dropped",
			prog: Transit, setup: withEndpoint, want: xdpDrop,
			in:       geneveIn(func(o *outer) { o.proto = 0x0800 }, nil),
			counters: map[Reason]uint64{ReasonNotIPv4: 1},
		},
		{
			name: "Geneve for another host's address passes to the kernel",
			prog: Transit, setup: withEndpoint, want: xdpPass,
			in:       geneveIn(func(o *outer) { o.dst = h3IP }, nil),
			counters: map[Reason]uint64{ReasonPass: 1},
		},
		{
			name: "the host's own UDP passes to the kernel",
			prog: Transit, setup: withEndpoint, want: xdpPass,
			in: func(t testing.TB) []byte {
				f := flow{srcMAC: h2MAC, dstMAC: selfMAC, src: h2IP, dst: selfIP, proto: layers.IPProtocolUDP, sport: 5000, dport: 53, ttl: 64, payload: 10}
				return f.frame(t)
			},
			counters: map[Reason]uint64{ReasonPass: 1},
		},
		{
			name: "IPv6 on the substrate passes to the kernel",
			prog: Transit, setup: withEndpoint, want: xdpPass,
			in: func(t testing.TB) []byte {
				eth := &layers.Ethernet{SrcMAC: h2MAC, DstMAC: selfMAC, EthernetType: layers.EthernetTypeIPv6}
				ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolNoNextHeader, SrcIP: net.ParseIP("2001:db8::2"), DstIP: net.ParseIP("2001:db8::1")}
				return serialize(t, eth, ip)
			},
			counters: map[Reason]uint64{ReasonPass: 1},
		},
		{
			name: "ARP on the substrate passes to the kernel",
			prog: Transit, setup: withEndpoint, want: xdpPass,
			in: func(t testing.TB) []byte {
				return arpRequest(t, h2MAC, h2IP, selfIP)
			},
			counters: map[Reason]uint64{ReasonPass: 1},
		},
	})
}

func arpRequest(t testing.TB, mac net.HardwareAddr, src, target netip.Addr) []byte {
	eth := &layers.Ethernet{SrcMAC: mac, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP}
	arp := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: layers.ARPRequest, SourceHwAddress: mac, SourceProtAddress: src.AsSlice(),
		DstHwAddress: make([]byte, 6), DstProtAddress: target.AsSlice()}
	return serialize(t, eth, arp)
}

// fromEp1 is what ep1 sends, through lo as its port.
func fromEp1(fl func(*flow)) func(t testing.TB) []byte {
	return func(t testing.TB) []byte {
		f := defaultFlow()
		f.src, f.srcMAC, f.dst = ep1IP, ep1MAC, ep2IP
		if fl != nil {
			fl(&f)
		}
		return f.frame(t)
	}
}

// wantEncap checks what the agent sends toward target: fresh outer headers with our option, and
// the endpoint's frame untouched inside.
func wantEncap(target netip.Addr, mac net.HardwareAddr) func(t *testing.T, d *Dataplane, in, out []byte) {
	return func(t *testing.T, _ *Dataplane, in, out []byte) {
		o := decode(t, out)
		if o.geneve == nil || o.innerIP == nil {
			t.Fatalf("output is not Geneve with an inner IPv4 packet")
		}
		eqMAC(t, "outer dst mac", o.eth.DstMAC, mac)
		eqMAC(t, "outer src mac", o.eth.SrcMAC, selfMAC)
		eqIP(t, "outer src ip", o.ip.SrcIP, selfIP)
		eqIP(t, "outer dst ip", o.ip.DstIP, target)
		if o.ip.TTL != 64 || o.ip.Flags&layers.IPv4DontFragment == 0 {
			t.Errorf("outer ttl %d flags %v, want 64 with DF", o.ip.TTL, o.ip.Flags)
		}
		if int(o.ip.Length) != len(out)-14 {
			t.Errorf("outer ip length %d, frame carries %d", o.ip.Length, len(out)-14)
		}
		if !ipv4ChecksumOK(out[14:34]) {
			t.Errorf("outer ipv4 checksum %#04x invalid", o.ip.Checksum)
		}
		if o.udp.DstPort != 6081 || o.udp.SrcPort < 49152 {
			t.Errorf("udp ports %d->%d, want ephemeral->6081", o.udp.SrcPort, o.udp.DstPort)
		}
		if int(o.udp.Length) != len(out)-34 || o.udp.Checksum != 0 {
			t.Errorf("udp length %d checksum %#x, want %d and 0", o.udp.Length, o.udp.Checksum, len(out)-34)
		}
		g := o.geneve
		if g.Version != 0 || g.VNI != vni || g.Protocol != layers.EthernetType(0x6558) || g.CriticalOption || g.OAMPacket {
			t.Errorf("geneve %+v, want version 0, vni %d, ethernet payload, no flags", g, vni)
		}
		if len(g.Options) != 1 || g.Options[0].Class != 0xFF6D || g.Options[0].Type != 1 ||
			!bytes.Equal(g.Options[0].Data[:4], selfIP.AsSlice()) {
			t.Errorf("geneve options %+v, want our host option carrying %v", g.Options, selfIP)
		}
		if !bytes.Equal(out[62:], in) {
			t.Errorf("inner frame differs from what the endpoint sent")
		}
	}
}

func TestAgent(t *testing.T) { runFixtures(t, agentFixtures(Agent)) }

// agentFixtures is the agent's behaviour, whichever hook runs it: prog is Agent or AgentTC,
// whose verdicts differ only in name (an XDP_TX answer is a tc redirect back out of the veth).
func agentFixtures(prog Program) []fixture {
	v := func(xdp uint32) uint32 { return verdictFor(prog, xdp) }
	port := func(t testing.TB, d *Dataplane) {
		withPort(t, d)
		withNeighbors(t, d)
		must(t, d.SetBouncers(vni, netAID, []netip.Addr{b1IP}))
	}
	return []fixture{
		{
			name: "answers ARP for a VPC address with the gateway MAC",
			prog: prog, setup: port, want: v(xdpTX),
			in:       func(t testing.TB) []byte { return arpRequest(t, ep1MAC, ep1IP, ep2IP) },
			counters: map[Reason]uint64{ReasonARPReplied: 1},
			check: func(t *testing.T, _ *Dataplane, in, out []byte) {
				o := decode(t, out)
				a, _ := o.pkt.Layer(layers.LayerTypeARP).(*layers.ARP)
				if a == nil {
					t.Fatal("no ARP in the reply")
				}
				eqMAC(t, "eth dst", o.eth.DstMAC, ep1MAC)
				eqMAC(t, "eth src", o.eth.SrcMAC, gwMAC)
				if a.Operation != layers.ARPReply {
					t.Errorf("arp op %d, want reply", a.Operation)
				}
				eqMAC(t, "sender hw", a.SourceHwAddress, gwMAC)
				eqIP(t, "sender ip", a.SourceProtAddress, ep2IP)
				eqMAC(t, "target hw", a.DstHwAddress, ep1MAC)
				eqIP(t, "target ip", a.DstProtAddress, ep1IP)
			},
		},
		{
			name: "ignores ARP for an address outside the VPC",
			prog: prog, setup: port, want: v(xdpDrop),
			in:       func(t testing.TB) []byte { return arpRequest(t, ep1MAC, ep1IP, netip.MustParseAddr("192.0.2.1")) },
			counters: map[Reason]uint64{ReasonARPIgnored: 1},
		},
		{
			name: "drops ARP claiming another endpoint's address",
			prog: prog, setup: port, want: v(xdpDrop),
			in:       func(t testing.TB) []byte { return arpRequest(t, ep1MAC, ep2IP, ep4IP) },
			counters: map[Reason]uint64{ReasonSpoofed: 1},
		},
		{
			name: "drops a spoofed source IP",
			prog: prog, setup: port, want: v(xdpDrop),
			in:       fromEp1(func(f *flow) { f.src = ep4IP }),
			counters: map[Reason]uint64{ReasonSpoofed: 1},
		},
		{
			name: "drops a spoofed source MAC",
			prog: prog, setup: port, want: v(xdpDrop),
			in:       fromEp1(func(f *flow) { f.srcMAC = ep4MAC }),
			counters: map[Reason]uint64{ReasonSpoofed: 1},
		},
		{
			name: "delivers to an endpoint on the same host directly",
			prog: prog, want: v(xdpRedirect),
			setup: func(t testing.TB, d *Dataplane) {
				port(t, d)
				must(t, d.UpsertEndpoint(Endpoint{VNI: vni, IP: ep4IP, MAC: ep4MAC, Ifindex: ep4If, NetID: netAID, VPC: vpcCIDR}))
			},
			in:       fromEp1(func(f *flow) { f.dst = ep4IP }),
			counters: map[Reason]uint64{ReasonSameHost: 1},
			check: func(t *testing.T, _ *Dataplane, in, out []byte) {
				want := append([]byte(nil), in...)
				copy(want[0:6], ep4MAC)
				copy(want[6:12], gwMAC)
				if !bytes.Equal(out, want) {
					t.Errorf("same-host frame is not the input with MACs set")
				}
			},
		},
		{
			name: "encapsulates toward the network's bouncer",
			prog: prog, setup: port, want: v(xdpRedirect),
			in:       fromEp1(nil),
			counters: map[Reason]uint64{ReasonEncapBouncer: 1},
			check:    wantEncap(b1IP, b1MAC),
		},
		{
			name: "encapsulates ICMP too",
			prog: prog, setup: port, want: v(xdpRedirect),
			in:       fromEp1(func(f *flow) { f.proto = layers.IPProtocolICMPv4 }),
			counters: map[Reason]uint64{ReasonEncapBouncer: 1},
			check:    wantEncap(b1IP, b1MAC),
		},
		{
			name: "direct path: straight to the learned host",
			prog: prog, want: v(xdpRedirect),
			setup: func(t testing.TB, d *Dataplane) {
				port(t, d)
				learn(t, d, ep2IP, h3IP)
			},
			in:       fromEp1(nil),
			counters: map[Reason]uint64{ReasonDirectHit: 1, ReasonDelivered: 1, ReasonLearned: 1},
			check: func(t *testing.T, d *Dataplane, in, out []byte) {
				wantEncap(h3IP, h3MAC)(t, d, in, out)
				if out[62-4]&0x02 == 0 {
					t.Errorf("first direct packet does not ask the receiver to learn: flags %#x", out[62-4])
				}
			},
		},
		{
			name: "direct path off: a learned host is ignored, the bouncer carries it",
			prog: Agent, want: xdpRedirect,
			setup: func(t testing.TB, d *Dataplane) {
				port(t, d)
				learn(t, d, ep2IP, h3IP)
				must(t, d.SetDirectPath(false))
			},
			in:       fromEp1(nil),
			counters: map[Reason]uint64{ReasonEncapBouncer: 1, ReasonDelivered: 1, ReasonLearned: 1},
			check:    wantEncap(b1IP, b1MAC),
		},
		{
			name: "on the bouncer's own host: answers from its own table",
			prog: prog, want: v(xdpRedirect),
			setup: func(t testing.TB, d *Dataplane) {
				port(t, d)
				must(t, d.SetBouncers(vni, netAID, []netip.Addr{selfIP}))
				must(t, d.UpsertBouncerEntries(BouncerEntry{VNI: vni, IP: ep2IP, Host: h3IP}))
			},
			in:       fromEp1(nil),
			counters: map[Reason]uint64{ReasonEncapBouncer: 1},
			check:    wantEncap(h3IP, h3MAC),
		},
		{
			name: "a packet too big for the underlay after encapsulation is dropped",
			prog: prog, setup: port, want: v(xdpDrop),
			in:       fromEp1(func(f *flow) { f.payload = mtu - Overhead - 40 + 1 }),
			counters: map[Reason]uint64{ReasonTooBig: 1},
		},
		{
			name: "the largest packet that fits is encapsulated",
			prog: prog, setup: port, want: v(xdpRedirect),
			in:       fromEp1(func(f *flow) { f.payload = mtu - Overhead - 40 }),
			counters: map[Reason]uint64{ReasonEncapBouncer: 1},
			check: func(t *testing.T, d *Dataplane, in, out []byte) {
				if len(out)-14 != mtu {
					t.Errorf("outer packet %d bytes, want exactly the MTU %d", len(out)-14, mtu)
				}
				wantEncap(b1IP, b1MAC)(t, d, in, out)
			},
		},
		{
			name: "IPv6 from an endpoint is dropped",
			prog: prog, setup: port, want: v(xdpDrop),
			in: func(t testing.TB) []byte {
				eth := &layers.Ethernet{SrcMAC: ep1MAC, DstMAC: gwMAC, EthernetType: layers.EthernetTypeIPv6}
				ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolNoNextHeader, SrcIP: net.ParseIP("2001:db8::2"), DstIP: net.ParseIP("2001:db8::1")}
				return serialize(t, eth, ip)
			},
			counters: map[Reason]uint64{ReasonNotIPv4: 1},
		},
		{
			name: "a veth with no endpoint programmed drops",
			prog: prog, want: v(xdpDrop),
			in:       fromEp1(nil),
			counters: map[Reason]uint64{ReasonUnknownPort: 1},
		},
		{
			name: "a network without bouncers drops",
			prog: prog, setup: withPort, want: v(xdpDrop),
			in:       fromEp1(nil),
			counters: map[Reason]uint64{ReasonNoBouncer: 1},
		},
		{
			name: "a bouncer without a next hop drops",
			prog: prog, want: v(xdpDrop),
			setup: func(t testing.TB, d *Dataplane) {
				withPort(t, d)
				must(t, d.SetBouncers(vni, netAID, []netip.Addr{b1IP}))
			},
			in:       fromEp1(nil),
			counters: map[Reason]uint64{ReasonNoNeighbor: 1},
		},
	}
}

// learn teaches the direct path the way the data plane does it: transit receives a packet from
// ip on host and delivers it. Leaves one delivered and one learned count behind.
func learn(t testing.TB, d *Dataplane, ip, host netip.Addr) {
	t.Helper()
	must(t, d.UpsertEndpoint(Endpoint{VNI: vni, IP: ep4IP, MAC: ep4MAC, Ifindex: ep4If, NetID: netAID, VPC: vpcCIDR}))
	o := defaultOuter()
	viaBouncer(&o)
	o.options = mizarOption(host, 0)
	f := defaultFlow()
	f.src, f.dst = ip, ep4IP
	got, _, _, err := testRun(d.transit.Transit, o.wrap(t, f.frame(t)), 0)
	must(t, err)
	if got != xdpRedirect {
		t.Fatalf("learning packet: verdict %s", verdictNames[got])
	}
	must(t, d.DeleteEndpoint(vni, ep4IP))
}

// viaBouncer makes the outer header one a bouncer sent on: the option still names h2.
func viaBouncer(o *outer) { o.src, o.srcMAC = b1IP, b1MAC }

func TestFlowEntropy(t *testing.T) {
	d := newDP(t)
	withPort(t, d)
	withNeighbors(t, d)
	must(t, d.SetBouncers(vni, netAID, []netip.Addr{b1IP, b2IP}))
	ports := map[uint16]bool{}
	bouncers := map[string]bool{}
	for sport := uint16(1000); sport < 1032; sport++ {
		var first []byte
		for range 2 {
			_, out, _, err := testRun(d.agent.Agent, fromEp1(func(f *flow) { f.sport = sport })(t), loIfindex)
			must(t, err)
			if first == nil {
				first = out
			} else if !bytes.Equal(first[:62], out[:62]) {
				t.Fatalf("flow %d: two packets got different outer headers", sport)
			}
		}
		ports[binary.BigEndian.Uint16(first[34:])] = true
		bouncers[net.IP(first[30:34]).String()] = true
	}
	if len(ports) < 16 || len(bouncers) != 2 {
		t.Errorf("32 flows used %d UDP source ports and %d bouncers, want >= 16 and 2", len(ports), len(bouncers))
	}
}
