package dataplane

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
)

// HostConfig is this host's place on the underlay.
type HostConfig struct {
	IP         netip.Addr       // substrate IPv4
	MAC        net.HardwareAddr // substrate interface MAC
	Ifindex    int              // substrate interface, in the host's namespace
	MTU        int              // substrate MTU
	GatewayMAC net.HardwareAddr // the MAC endpoints' ARP resolves to
	// DefaultNextHop, when set, is the router MAC of a routed underlay: hosts with no neighbor
	// entry are reached through it.
	DefaultNextHop net.HardwareAddr
}

// Endpoint is an endpoint hosted on this host.
type Endpoint struct {
	VNI     uint32
	IP      netip.Addr
	MAC     net.HardwareAddr
	Ifindex int          // host side of its veth
	NetID   uint32       // its network, for choosing bouncers
	VPC     netip.Prefix // its VPC's CIDR, for answering ARP
}

// BouncerEntry is one endpoint in a bouncer's table.
type BouncerEntry struct {
	VNI  uint32
	IP   netip.Addr
	Host netip.Addr // substrate IPv4 of the endpoint's host
}

// Network tells the host a network of a VPC exists. NetID names it within its VPC.
type Network struct {
	VNI   uint32
	NetID uint32
	CIDR  netip.Prefix
	// Bouncer is true when this host is one of the network's bouncers.
	Bouncer bool
}

// VPC tells the host its roles in a VPC and where the VPC's dividers are.
type VPC struct {
	VNI      uint32
	Divider  bool // this host is a divider of the VPC
	Bouncer  bool // this host is a bouncer of some network of the VPC
	Dividers []netip.Addr
}

const maxHosts = 16 // MAX_BOUNCERS and MAX_DIVIDERS in bpf/types.h

// MaxVNI is the largest 24-bit Geneve VNI.
const MaxVNI = 1<<24 - 1

// be32 turns an IPv4 address into the uint32 whose memory holds it in network order, as the
// BPF side stores addresses.
func be32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.NativeEndian.Uint32(b[:])
}

func addrFromBE32(v uint32) netip.Addr {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

func checkV4(field string, a netip.Addr) error {
	if !a.Is4() {
		return fmt.Errorf("%s %v: not an IPv4 address", field, a)
	}
	return nil
}

func checkVNI(vni uint32) error {
	if vni == 0 || vni > MaxVNI {
		return fmt.Errorf("vni %d: out of range 1..%d", vni, MaxVNI)
	}
	return nil
}

func mac6(field string, m net.HardwareAddr) ([6]uint8, error) {
	var out [6]uint8
	if len(m) != 6 {
		return out, fmt.Errorf("%s %q: not a 6-byte MAC", field, m.String())
	}
	copy(out[:], m)
	return out, nil
}

// Overhead is what encapsulation adds to an endpoint's IPv4 packet: outer Ethernet, IPv4, UDP,
// Geneve and our option. An endpoint's MTU is the underlay's minus this (ENCAP_LEN in C).
const Overhead = 14 + 20 + 8 + 8 + 12
