package testbed

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/mizar-net/mizar/dataplane"
)

// OverlaySpec describes a small single-network overlay: hosts on a bridged underlay, each
// running transit, endpoints on some of them, and the network's bouncers on others.
type OverlaySpec struct {
	Hosts     int          // number of hosts
	Bouncers  []int        // indexes of the hosts that bounce for the network
	Endpoints []int        // for each endpoint, the index of its host
	Underlay  netip.Prefix // substrate addresses, one per host from .1 (default 192.168.77.0/24)
	Network   netip.Prefix // the network's CIDR, endpoints from .10 (default 10.77.1.0/24)
	VPC       netip.Prefix // the VPC's CIDR (default 10.77.0.0/16)
	VNI       uint32       // default 4242
	MTU       int          // underlay MTU (default 1500)
	Mode      dataplane.Mode
	// Agent is the agent program on the host side of endpoint veths: dataplane.Agent (XDP,
	// the default) or dataplane.AgentTC.
	Agent dataplane.Program
	// EndpointGRO has endpoints take what transit redirects to them through GRO (which gives
	// a veth the NAPI that XDP redirects need) instead of a Pass XDP program on their eth0.
	EndpointGRO bool
	// XDPFrags loads the XDP programs multi-buffer (dataplane.Config.XDPFrags): needed when
	// the MTU is larger than a page.
	XDPFrags bool
}

// OverlayHost is one host of a built overlay.
type OverlayHost struct {
	NS *Namespace
	IP netip.Addr
	DP *dataplane.Dataplane
}

// OverlayEndpoint is one endpoint of a built overlay.
type OverlayEndpoint struct {
	NS       *Namespace
	IP       netip.Addr
	Host     *OverlayHost
	HostVeth string // host side of its veth, in Host.NS
}

// Overlay is a running overlay. Close detaches and unloads every program; the Lab removes the
// namespaces.
type Overlay struct {
	Spec      OverlaySpec
	Fabric    *Namespace // the underlay's bridge
	Hosts     []*OverlayHost
	Endpoints []*OverlayEndpoint
}

const netID = 1

func (s *OverlaySpec) defaults() {
	if !s.Underlay.IsValid() {
		s.Underlay = netip.MustParsePrefix("192.168.77.0/24")
	}
	if !s.Network.IsValid() {
		s.Network = netip.MustParsePrefix("10.77.1.0/24")
	}
	if !s.VPC.IsValid() {
		s.VPC = netip.MustParsePrefix("10.77.0.0/16")
	}
	if s.VNI == 0 {
		s.VNI = 4242
	}
	if s.MTU == 0 {
		s.MTU = 1500
	}
	if s.Agent == "" {
		s.Agent = dataplane.Agent
	}
}

func (s OverlaySpec) validate() error {
	if s.Hosts < 1 || s.Hosts > 200 {
		return fmt.Errorf("hosts: %d, want 1..200", s.Hosts)
	}
	if len(s.Bouncers) == 0 {
		return errors.New("bouncers: the network needs at least one")
	}
	for _, i := range append(append([]int(nil), s.Bouncers...), s.Endpoints...) {
		if i < 0 || i >= s.Hosts {
			return fmt.Errorf("host index %d: out of range 0..%d", i, s.Hosts-1)
		}
	}
	if s.Agent != dataplane.Agent && s.Agent != dataplane.AgentTC {
		return fmt.Errorf("agent %q: want %q or %q", s.Agent, dataplane.Agent, dataplane.AgentTC)
	}
	if !s.VPC.Contains(s.Network.Addr()) || s.Network.Bits() < s.VPC.Bits() {
		return fmt.Errorf("network %v: not inside vpc %v", s.Network, s.VPC)
	}
	return nil
}

// gatewayMAC is what every endpoint's ARP resolves to.
var gatewayMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}

// BuildOverlay creates the namespaces and veths of spec in lab, loads a data plane per host,
// attaches transit and agent, and programs every endpoint on its host and the network's
// bouncers. On error, what was built is closed.
func BuildOverlay(lab *Lab, spec OverlaySpec, log *slog.Logger) (_ *Overlay, err error) {
	spec.defaults()
	if err := spec.validate(); err != nil {
		return nil, fmt.Errorf("overlay spec: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o := &Overlay{Spec: spec}
	defer func() {
		if err != nil {
			o.Close()
		}
	}()
	fabric, err := lab.AddNamespace("fab")
	if err != nil {
		return nil, err
	}
	if err := lab.AddBridge(fabric, "br0"); err != nil {
		return nil, err
	}
	o.Fabric = fabric
	macs := make([]net.HardwareAddr, spec.Hosts)
	for i := range spec.Hosts {
		ns, err := lab.AddNamespace(fmt.Sprintf("h%d", i))
		if err != nil {
			return nil, err
		}
		pair, err := lab.AddVeth(ns, "eth0", fabric, fmt.Sprintf("p%d", i), spec.MTU)
		if err != nil {
			return nil, err
		}
		if err := SetMaster(fabric, pair.B.Name, "br0"); err != nil {
			return nil, err
		}
		ip, err := nthAddr(spec.Underlay, 1+i)
		if err != nil {
			return nil, err
		}
		if err := AddAddr(ns, "eth0", netip.PrefixFrom(ip, spec.Underlay.Bits())); err != nil {
			return nil, err
		}
		if spec.Agent == dataplane.AgentTC {
			if err := SubstrateForTC(ns, "eth0"); err != nil {
				return nil, err
			}
		}
		dp, err := dataplane.New(dataplane.Config{Logger: log.With("host", ns.Name), XDPFrags: spec.XDPFrags})
		if err != nil {
			return nil, fmt.Errorf("host %s: %w", ns.Name, err)
		}
		h := &OverlayHost{NS: ns, IP: ip, DP: dp}
		o.Hosts = append(o.Hosts, h)
		macs[i] = pair.A.MAC
		if err := dp.SetHost(dataplane.HostConfig{IP: ip, MAC: pair.A.MAC, Ifindex: pair.A.Index, MTU: spec.MTU, GatewayMAC: gatewayMAC}); err != nil {
			return nil, fmt.Errorf("host %s: %w", ns.Name, err)
		}
		if err := dp.Attach(ns.Handle, "eth0", dataplane.Transit, spec.Mode); err != nil {
			return nil, fmt.Errorf("host %s: %w", ns.Name, err)
		}
		// A veth drops what XDP redirects or transmits into it unless its peer runs XDP.
		if err := dp.Attach(fabric.Handle, pair.B.Name, dataplane.Pass, spec.Mode); err != nil {
			return nil, fmt.Errorf("host %s: %w", ns.Name, err)
		}
	}
	var bouncers []netip.Addr
	for _, i := range spec.Bouncers {
		bouncers = append(bouncers, o.Hosts[i].IP)
	}
	for i, h := range o.Hosts {
		for j, peer := range o.Hosts {
			if i != j {
				if err := h.DP.UpsertNeighbor(peer.IP, macs[j]); err != nil {
					return nil, err
				}
			}
		}
		if err := h.DP.SetBouncers(spec.VNI, netID, bouncers); err != nil {
			return nil, err
		}
	}
	for _, i := range spec.Bouncers {
		b := o.Hosts[i]
		if err := b.DP.UpsertNetwork(dataplane.Network{VNI: spec.VNI, NetID: netID, CIDR: spec.Network, Bouncer: true}); err != nil {
			return nil, err
		}
		if err := b.DP.UpsertVPC(dataplane.VPC{VNI: spec.VNI, Bouncer: true}); err != nil {
			return nil, err
		}
	}
	// Every host with endpoints knows the network, so that a packet for an endpoint it no
	// longer hosts (a stale direct path elsewhere) goes on to the bouncers.
	bouncerOf := map[int]bool{}
	for _, i := range spec.Bouncers {
		bouncerOf[i] = true
	}
	for _, i := range spec.Endpoints {
		if _, done := bouncerOf[i]; !done {
			bouncerOf[i] = false
			if err := o.Hosts[i].DP.UpsertNetwork(dataplane.Network{VNI: spec.VNI, NetID: netID, CIDR: spec.Network}); err != nil {
				return nil, err
			}
		}
	}
	gw, err := nthAddr(spec.Network, 1)
	if err != nil {
		return nil, err
	}
	for n, hi := range spec.Endpoints {
		if _, err := o.AddEndpoint(lab, hi, n, gw); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// AddEndpoint creates endpoint number n (address .10+n of the network) on host hi: its
// namespace and veth, the agent on the host side, and its entries on its host and the bouncers.
func (o *Overlay) AddEndpoint(lab *Lab, hi, n int, gw netip.Addr) (*OverlayEndpoint, error) {
	ip, err := nthAddr(o.Spec.Network, 10+n)
	if err != nil {
		return nil, err
	}
	return o.AddEndpointAt(lab, hi, fmt.Sprintf("e%d", n), ip, gw)
}

// AddEndpointAt creates an endpoint named name with address ip on host hi.
func (o *Overlay) AddEndpointAt(lab *Lab, hi int, name string, ip, gw netip.Addr) (*OverlayEndpoint, error) {
	spec := o.Spec
	h := o.Hosts[hi]
	ns, err := lab.AddNamespace(name)
	if err != nil {
		return nil, err
	}
	pair, err := lab.AddVeth(ns, "eth0", h.NS, "v"+name, spec.MTU-dataplane.Overhead)
	if err != nil {
		return nil, err
	}
	if err := AddAddr(ns, "eth0", netip.PrefixFrom(ip, spec.Network.Bits())); err != nil {
		return nil, err
	}
	if err := AddDefaultRoute(ns, gw, "eth0"); err != nil {
		return nil, err
	}
	if err := PlumbEndpoint(h.DP, ns, spec.Agent, spec.EndpointGRO, spec.Mode); err != nil {
		return nil, err
	}
	if err := h.DP.Attach(h.NS.Handle, pair.B.Name, spec.Agent, spec.Mode); err != nil {
		return nil, err
	}
	if err := h.DP.UpsertEndpoint(dataplane.Endpoint{VNI: spec.VNI, IP: ip, MAC: pair.A.MAC, Ifindex: pair.B.Index, NetID: netID, VPC: spec.VPC}); err != nil {
		return nil, err
	}
	for _, bi := range spec.Bouncers {
		if err := o.Hosts[bi].DP.UpsertBouncerEntries(dataplane.BouncerEntry{VNI: spec.VNI, IP: ip, Host: h.IP}); err != nil {
			return nil, err
		}
	}
	ep := &OverlayEndpoint{NS: ns, IP: ip, Host: h, HostVeth: pair.B.Name}
	o.Endpoints = append(o.Endpoints, ep)
	return ep, nil
}

// PlumbEndpoint sets up an endpoint's eth0 (in ns) for the agent program on its host side. The
// XDP agent sees what the endpoint sends before any checksum offload would fill it in, so TX
// checksum offload goes off (and TSO with it); the tc agent takes offloaded super-packets, so
// both stay on. What transit redirects to the endpoint needs NAPI on its eth0: a Pass XDP
// program, or GRO when gro is set.
func PlumbEndpoint(dp *dataplane.Dataplane, ns *Namespace, agent dataplane.Program, gro bool, mode dataplane.Mode) error {
	if agent != dataplane.AgentTC {
		if err := DisableTxChecksum(ns, "eth0"); err != nil {
			return err
		}
	}
	if gro {
		return SetGRO(ns, "eth0", true)
	}
	return dp.Attach(ns.Handle, "eth0", dataplane.Pass, mode)
}

// SubstrateForTC readies a host's substrate interface for the tc agent. What the tc agent
// encapsulates may still carry a partial inner checksum (CHECKSUM_PARTIAL, left for offload),
// and the receiving host's transit redirects it as an XDP frame, which carries no checksum
// state: the checksum must be complete before it leaves. With TX checksum offload off on the
// substrate the kernel completes it here, once per segment, as it segments the super-packet.
// (A NIC with Geneve offload would do it in hardware.)
func SubstrateForTC(ns *Namespace, ifname string) error {
	return DisableTxChecksum(ns, ifname)
}

// Gateway is the address endpoints route through (the network's first).
func (o *Overlay) Gateway() netip.Addr {
	gw, _ := nthAddr(o.Spec.Network, 1)
	return gw
}

// Detach removes every program the overlay attached; the maps keep their contents, so Attach
// brings the overlay back as it was (used to measure kernel baselines on the same namespaces).
func (o *Overlay) Detach() error {
	var errs []error
	for _, h := range o.Hosts {
		errs = append(errs, h.DP.DetachAll())
	}
	return errors.Join(errs...)
}

// Attach attaches again what BuildOverlay and AddEndpointAt attached, after Detach.
func (o *Overlay) Attach() error {
	mode := o.Spec.Mode
	for i, h := range o.Hosts {
		if err := h.DP.Attach(h.NS.Handle, "eth0", dataplane.Transit, mode); err != nil {
			return err
		}
		if err := h.DP.Attach(o.Fabric.Handle, fmt.Sprintf("p%d", i), dataplane.Pass, mode); err != nil {
			return err
		}
	}
	for _, ep := range o.Endpoints {
		h := ep.Host
		if !o.Spec.EndpointGRO {
			if err := h.DP.Attach(ep.NS.Handle, "eth0", dataplane.Pass, mode); err != nil {
				return err
			}
		}
		if err := h.DP.Attach(h.NS.Handle, ep.HostVeth, o.Spec.Agent, mode); err != nil {
			return err
		}
	}
	return nil
}

// Close detaches and unloads every host's data plane.
func (o *Overlay) Close() error {
	var errs []error
	for _, h := range o.Hosts {
		errs = append(errs, h.DP.Close())
	}
	return errors.Join(errs...)
}

// nthAddr is the n-th address of a prefix.
func nthAddr(p netip.Prefix, n int) (netip.Addr, error) {
	b := p.Masked().Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	if n < 0 || uint64(n) >= uint64(1)<<(32-p.Bits()) {
		return netip.Addr{}, fmt.Errorf("address %d of %v: out of range", n, p)
	}
	v += uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), nil
}
