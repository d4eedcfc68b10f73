package controlplane

import (
	"context"
	"fmt"
	"net"
	"net/netip"
)

// OpKind says what an Op writes on a host.
type OpKind uint8

// Op kinds. Each Op is one map write on the receiving host. Upserts are idempotent: sending the
// same Op twice leaves the host as sending it once.
const (
	opNone OpKind = iota
	// OpUpsertEndpoint programs an endpoint on its own host: VNI, IP, MAC, Interface (host
	// side of its veth, see HostVeth), NetID, VPCCIDR.
	OpUpsertEndpoint
	// OpDeleteEndpoint removes an endpoint from its host: VNI, IP, Interface.
	OpDeleteEndpoint
	// OpUpsertBouncerEntry writes one endpoint into a bouncer's table: VNI, IP -> Host
	// (substrate address of the endpoint's host).
	OpUpsertBouncerEntry
	// OpDeleteBouncerEntry removes one endpoint from a bouncer's table: VNI, IP.
	OpDeleteBouncerEntry
	// OpUpsertNetwork tells a host that a network exists: VNI, NetID, Prefix; Flag is true when
	// the receiving host is one of the network's bouncers.
	OpUpsertNetwork
	// OpDeleteNetwork forgets a network: VNI, NetID, Prefix.
	OpDeleteNetwork
	// OpSetBouncers sets a network's bouncers: VNI, NetID, Addrs (their substrate addresses,
	// best-ranked first).
	OpSetBouncers
	// OpDeleteBouncers removes a network's bouncer set: VNI, NetID.
	OpDeleteBouncers
	// OpUpsertVPC writes a host's roles in a VPC: VNI, Prefix (the VPC's CIDR), Addrs (the
	// substrate addresses of the VPC's dividers), Flag (the receiving host is a divider),
	// Bouncer (it is a bouncer of some network of the VPC).
	OpUpsertVPC
	// OpDeleteVPC forgets a VPC: VNI.
	OpDeleteVPC
	// OpUpsertNeighbor sets the underlay next-hop MAC of a peer: IP (its substrate address),
	// MAC. The controller does not know substrate MACs and never sends it; it exists so that
	// whoever does (a testbed, an operator tool) can use the same transport.
	OpUpsertNeighbor
	// OpDeleteNeighbor forgets a peer's next-hop MAC: IP. Like OpUpsertNeighbor, never sent by
	// the controller.
	OpDeleteNeighbor
	opMax
)

var opKindNames = [...]string{
	opNone:               "none",
	OpUpsertEndpoint:     "upsert-endpoint",
	OpDeleteEndpoint:     "delete-endpoint",
	OpUpsertBouncerEntry: "upsert-bouncer-entry",
	OpDeleteBouncerEntry: "delete-bouncer-entry",
	OpUpsertNetwork:      "upsert-network",
	OpDeleteNetwork:      "delete-network",
	OpSetBouncers:        "set-bouncers",
	OpDeleteBouncers:     "delete-bouncers",
	OpUpsertVPC:          "upsert-vpc",
	OpDeleteVPC:          "delete-vpc",
	OpUpsertNeighbor:     "upsert-neighbor",
	OpDeleteNeighbor:     "delete-neighbor",
}

func (k OpKind) String() string {
	if k < opMax {
		return opKindNames[k]
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// MarshalText writes the kind's name, so ops read well as JSON.
func (k OpKind) MarshalText() ([]byte, error) {
	if k == opNone || k >= opMax {
		return nil, fmt.Errorf("marshal op kind %d: unknown", uint8(k))
	}
	return []byte(k.String()), nil
}

// UnmarshalText reads a kind's name.
func (k *OpKind) UnmarshalText(b []byte) error {
	for i := OpKind(1); i < opMax; i++ {
		if opKindNames[i] == string(b) {
			*k = i
			return nil
		}
	}
	return fmt.Errorf("op kind %q: %w", b, ErrInvalid)
}

// Op is one write on a host. Which fields are set depends on Kind (see the kinds).
type Op struct {
	Kind      OpKind           `json:"kind"`
	VNI       uint32           `json:"vni,omitzero"`
	NetID     uint32           `json:"net_id,omitzero"`
	IP        netip.Addr       `json:"ip,omitzero"`
	MAC       net.HardwareAddr `json:"mac,omitzero"`
	Host      netip.Addr       `json:"host,omitzero"`
	Prefix    netip.Prefix     `json:"prefix,omitzero"`
	Addrs     []netip.Addr     `json:"addrs,omitzero"`
	Flag      bool             `json:"flag,omitzero"`
	Bouncer   bool             `json:"bouncer,omitzero"`
	Interface string           `json:"interface,omitzero"`
	VPCCIDR   netip.Prefix     `json:"vpc_cidr,omitzero"`
}

func (o Op) String() string {
	switch o.Kind {
	case OpUpsertEndpoint, OpDeleteEndpoint:
		return fmt.Sprintf("%v vni=%d ip=%v net=%d iface=%s", o.Kind, o.VNI, o.IP, o.NetID, o.Interface)
	case OpUpsertBouncerEntry, OpDeleteBouncerEntry:
		return fmt.Sprintf("%v vni=%d ip=%v host=%v", o.Kind, o.VNI, o.IP, o.Host)
	case OpUpsertNetwork, OpDeleteNetwork:
		return fmt.Sprintf("%v vni=%d net=%d prefix=%v bouncer=%t", o.Kind, o.VNI, o.NetID, o.Prefix, o.Flag)
	case OpSetBouncers, OpDeleteBouncers:
		return fmt.Sprintf("%v vni=%d net=%d bouncers=%v", o.Kind, o.VNI, o.NetID, o.Addrs)
	case OpUpsertVPC, OpDeleteVPC:
		return fmt.Sprintf("%v vni=%d dividers=%v divider=%t bouncer=%t", o.Kind, o.VNI, o.Addrs, o.Flag, o.Bouncer)
	}
	return fmt.Sprintf("%v ip=%v mac=%v", o.Kind, o.IP, o.MAC)
}

// HostAgent programs one host. Apply writes ops in order; an error means some of them may not
// have been written (Controller.Reconcile sends them again).
type HostAgent interface {
	Apply(ctx context.Context, ops []Op) error
}

// AgentSet finds the agent of a host by the host's name.
type AgentSet interface {
	Agent(host string) (HostAgent, error)
}
