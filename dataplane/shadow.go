package dataplane

import (
	"fmt"
	"net/netip"
	"sync"
)

type epRef struct {
	vni uint32
	ip  netip.Addr
}

type netRef struct {
	vni, netID uint32
}

// shadow is the Go side's record of what it programmed. The kernel tables refer to hosts and
// networks by slot (array indexes, cheap on the per-packet path); the shadow hands the slots
// out. It also keeps bouncer entries of endpoints hosted here, which the endpoint table holds
// as one entry: hosted here wins, and the bouncer entry comes back if the endpoint leaves.
type shadow struct {
	mu       sync.Mutex
	hostSlot map[netip.Addr]uint32
	netSlot  map[netRef]uint32
	freeNet  []uint32
	locals   map[epRef]Endpoint
	bounced  map[epRef]netip.Addr
	networks map[netRef]Network
	divides  map[uint32]bool // VNIs this host is a divider of
	bouncers map[netRef]bool // networks with a bouncer set programmed
}

func newShadow() *shadow {
	return &shadow{
		hostSlot: map[netip.Addr]uint32{},
		netSlot:  map[netRef]uint32{},
		locals:   map[epRef]Endpoint{},
		bounced:  map[epRef]netip.Addr{},
		networks: map[netRef]Network{},
		divides:  map[uint32]bool{},
		bouncers: map[netRef]bool{},
	}
}

// hostSlotLocked returns the slot of a substrate address, giving out a new one (and writing its
// hosts[] and host_slots entries) the first time. Slot 0 means none.
func (d *Dataplane) hostSlotLocked(ip netip.Addr) (uint32, error) {
	if err := checkV4("host", ip); err != nil {
		return 0, err
	}
	if s, ok := d.state.hostSlot[ip]; ok {
		return s, nil
	}
	s := uint32(len(d.state.hostSlot) + 1)
	if s >= d.cfg.MaxHosts {
		return 0, fmt.Errorf("host %v: all %d host slots in use", ip, d.cfg.MaxHosts-1)
	}
	if err := d.transit.Hosts.Put(s, &transitHost{Ip: be32(ip)}); err != nil {
		return 0, fmt.Errorf("add host %v: %w", ip, err)
	}
	if err := d.transit.HostSlots.Put(be32(ip), s); err != nil {
		return 0, fmt.Errorf("add host %v: %w", ip, err)
	}
	d.state.hostSlot[ip] = s
	return s, nil
}

func (d *Dataplane) netSlotLocked(vni, netID uint32) (uint32, error) {
	ref := netRef{vni, netID}
	if s, ok := d.state.netSlot[ref]; ok {
		return s, nil
	}
	var s uint32
	if n := len(d.state.freeNet); n > 0 {
		s, d.state.freeNet = d.state.freeNet[n-1], d.state.freeNet[:n-1]
	} else {
		s = uint32(len(d.state.netSlot) + 1)
	}
	if s >= d.cfg.MaxNetworks {
		return 0, fmt.Errorf("network %d of vni %d: all %d network slots in use", netID, vni, d.cfg.MaxNetworks-1)
	}
	d.state.netSlot[ref] = s
	return s, nil
}

// releaseNetLocked gives a network's slot back once nothing refers to it any more.
func (d *Dataplane) releaseNetLocked(ref netRef) {
	s, ok := d.state.netSlot[ref]
	if !ok || d.state.bouncers[ref] {
		return
	}
	if _, ok := d.state.networks[ref]; ok {
		return
	}
	for _, e := range d.state.locals {
		if e.VNI == ref.vni && e.NetID == ref.netID {
			return
		}
	}
	delete(d.state.netSlot, ref)
	d.state.freeNet = append(d.state.freeNet, s)
}

func (d *Dataplane) hostSetLocked(field string, addrs []netip.Addr) (transitHostSet, error) {
	var s transitHostSet
	if len(addrs) > maxHosts {
		return s, fmt.Errorf("%s: %d hosts, at most %d", field, len(addrs), maxHosts)
	}
	for i, a := range addrs {
		slot, err := d.hostSlotLocked(a)
		if err != nil {
			return s, fmt.Errorf("%s: %w", field, err)
		}
		s.Slots[i] = slot
	}
	s.Count = uint32(len(addrs))
	return s, nil
}
