// Package controlplane keeps the desired state of a Mizar overlay (hosts, VPCs, networks,
// endpoints), places bouncers and dividers on hosts, and programs hosts by sending them typed
// operations through the HostAgent interface. It never touches a data plane itself.
//
// A VPC is one VNI. Each network of a VPC has bouncers: hosts that hold the network's
// endpoint -> host table. Each VPC has dividers: hosts that know which bouncers serve which
// network. Creating an endpoint programs only its host and its network's bouncers.
package controlplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// Sentinel errors. Every error the controller returns for a bad request wraps one of them.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrInvalid  = errors.New("invalid")
	ErrConflict = errors.New("conflict")
)

const (
	// MaxVNI is the largest 24-bit Geneve VNI.
	MaxVNI = 1<<24 - 1
	// MaxBouncers and MaxDividers are the largest role counts the data plane holds
	// (MAX_BOUNCERS and MAX_DIVIDERS in bpf/types.h).
	MaxBouncers = 16
	MaxDividers = 16
	// MaxPrefixBits is the longest VPC or network prefix: a /30 leaves one endpoint address
	// beside the network address, the gateway and the broadcast address.
	MaxPrefixBits = 30
)

// Host is a machine on the substrate that runs a host agent.
type Host struct {
	Name      string     `json:"name"`
	IP        netip.Addr `json:"ip"`                  // substrate IPv4
	Interface string     `json:"interface,omitempty"` // substrate interface, informational
}

// VPC is a tenant's address space. VNI 0 in CreateVPC asks the controller to allocate one.
type VPC struct {
	Name     string       `json:"name"`
	CIDR     netip.Prefix `json:"cidr"`
	VNI      uint32       `json:"vni"`
	Dividers int          `json:"dividers"`
}

// Network is a subnet of a VPC. ID names it within its VPC on the hosts; 0 in CreateNetwork
// asks the controller to allocate one.
type Network struct {
	Name     string       `json:"name"`
	VPC      string       `json:"vpc"`
	CIDR     netip.Prefix `json:"cidr"`
	Bouncers int          `json:"bouncers"`
	ID       uint32       `json:"id"`
}

// Endpoint is an interface of a workload in a network, on a host. An invalid IP in
// CreateEndpoint asks the controller to allocate one; MAC is always derived (EndpointMAC).
type Endpoint struct {
	Name    string           `json:"name"`
	VPC     string           `json:"vpc"`
	Network string           `json:"network"`
	Host    string           `json:"host"`
	IP      netip.Addr       `json:"ip"`
	MAC     net.HardwareAddr `json:"mac"`
}

// EndpointMAC is the MAC of the endpoint with address ip in the VPC with the given VNI:
// 02:vv:a.b.c.d, locally administered and unicast, with vv the low byte of the VNI. It is unique
// within a VPC because addresses are.
func EndpointMAC(vni uint32, ip netip.Addr) net.HardwareAddr {
	a := ip.As4()
	return net.HardwareAddr{0x02, byte(vni), a[0], a[1], a[2], a[3]}
}

// HostVeth is the name of the host side of the veth of the endpoint with address ip in the VPC
// with the given VNI: "v" then the VNI and the address in hex, 15 characters (IFNAMSIZ-1).
func HostVeth(vni uint32, ip netip.Addr) string {
	a := ip.As4()
	return fmt.Sprintf("v%06x%02x%02x%02x%02x", vni&MaxVNI, a[0], a[1], a[2], a[3])
}

// Gateway is the address reserved in every network for its gateway: the first usable one.
func Gateway(p netip.Prefix) netip.Addr { return p.Masked().Addr().Next() }

// broadcast is the last address of p.
func broadcast(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	hostBits := 32 - p.Bits()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= uint32(uint64(1)<<hostBits - 1)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// reserved tells whether ip is the network address, the gateway or the broadcast address of p.
func reserved(p netip.Prefix, ip netip.Addr) bool {
	return ip == p.Masked().Addr() || ip == Gateway(p) || ip == broadcast(p)
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// checkName accepts 1-63 characters of letters, digits, '-', '_' and '.'.
func checkName(field, name string) error {
	if name == "" {
		return invalidf("%s: empty", field)
	}
	if len(name) > 63 {
		return invalidf("%s %q: longer than 63 characters", field, name)
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			r == '-' || r == '_' || r == '.'
		if !ok {
			return invalidf("%s %q: only letters, digits, '-', '_' and '.' allowed", field, name)
		}
	}
	return nil
}

// checkPrefix accepts a masked IPv4 prefix no longer than MaxPrefixBits.
func checkPrefix(field string, p netip.Prefix) error {
	switch {
	case !p.IsValid():
		return invalidf("%s: missing or not a prefix", field)
	case !p.Addr().Is4():
		return invalidf("%s %v: not IPv4", field, p)
	case p.Masked() != p:
		return invalidf("%s %v: host bits set (want %v)", field, p, p.Masked())
	case p.Bits() > MaxPrefixBits:
		return invalidf("%s %v: longer than /%d leaves no endpoint address", field, p, MaxPrefixBits)
	}
	return nil
}

func checkIfName(field, name string) error {
	if len(name) > 15 {
		return invalidf("%s %q: longer than 15 characters", field, name)
	}
	for _, r := range name {
		if r <= ' ' || r == '/' || r == ':' || r > '~' {
			return invalidf("%s %q: bad character %q", field, name, r)
		}
	}
	return nil
}
