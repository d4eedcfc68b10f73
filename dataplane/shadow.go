package dataplane

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
)

type epRef struct {
	vni uint32
	ip  netip.Addr
}

type netRef struct {
	vni, netID uint32
}

// shadow is the Go side's record of what it programmed. The kernel tables copy a host's next
// hop wherever they name the host (one table read per forwarding decision); the shadow knows
// where the copies are, to rewrite them when a next hop changes. It also keeps bouncer entries of
// endpoints hosted here, which the endpoint table holds as one entry: hosted here wins, and the
// bouncer entry comes back if the endpoint leaves. And it hands out network slots.
type shadow struct {
	mu        sync.Mutex
	neighbors map[netip.Addr]net.HardwareAddr
	netSlot   map[netRef]uint32
	freeNet   []uint32
	locals    map[epRef]Endpoint
	bounced   map[epRef]netip.Addr
	networks  map[netRef]Network
	bouncers  map[netRef][]netip.Addr
	vpcs      map[uint32]VPC
}

func newShadow() *shadow {
	return &shadow{
		neighbors: map[netip.Addr]net.HardwareAddr{},
		netSlot:   map[netRef]uint32{},
		locals:    map[epRef]Endpoint{},
		bounced:   map[epRef]netip.Addr{},
		networks:  map[netRef]Network{},
		bouncers:  map[netRef][]netip.Addr{},
		vpcs:      map[uint32]VPC{},
	}
}

// hopLocked is a host as the kernel tables store it.
func (d *Dataplane) hopLocked(ip netip.Addr) transitHop {
	h := transitHop{Ip: be32(ip)}
	if mac, ok := d.state.neighbors[ip]; ok {
		copy(h.Mac[:], mac)
		h.Flags = hopFlagMAC
	}
	return h
}

func (d *Dataplane) hostSetLocked(field string, addrs []netip.Addr) (transitHostSet, error) {
	var s transitHostSet
	if len(addrs) > maxHosts {
		return s, fmt.Errorf("%s: %d hosts, at most %d", field, len(addrs), maxHosts)
	}
	for i, a := range addrs {
		if err := checkV4(field, a); err != nil {
			return s, err
		}
		s.Hosts[i] = d.hopLocked(a)
	}
	s.Count = uint32(len(addrs))
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
	if !ok {
		return
	}
	if _, ok := d.state.bouncers[ref]; ok {
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

// refreshHopLocked rewrites every copy of host's next hop: bouncer entries, bouncer sets (and
// the networks that carry them), VPC dividers and learned direct paths.
func (d *Dataplane) refreshHopLocked(host netip.Addr) error {
	hop := d.hopLocked(host)
	var keys []transitEpKey
	var vals []transitEndpoint
	for ref, h := range d.state.bounced {
		if _, local := d.state.locals[ref]; h == host && !local {
			keys = append(keys, transitEpKey{Vni: ref.vni, Ip: be32(ref.ip)})
			vals = append(vals, transitEndpoint{Host: hop})
		}
	}
	if err := batchPut(d.transit.Endpoints, keys, vals); err != nil {
		return fmt.Errorf("refresh bouncer entries of %v: %w", host, err)
	}
	for ref, hosts := range d.state.bouncers {
		if slices.Contains(hosts, host) {
			if err := d.putBouncersLocked(ref); err != nil {
				return err
			}
		}
	}
	for vni, v := range d.state.vpcs {
		if slices.Contains(v.Dividers, host) {
			if err := d.putVPCLocked(d.state.vpcs[vni]); err != nil {
				return err
			}
		}
	}
	var (
		k    transitEpKey
		v    transitLearnedHost
		lk   []transitEpKey
		lv   []transitLearnedHost
		addr = be32(host)
	)
	it := d.transit.Learned.Iterate()
	for it.Next(&k, &v) {
		if v.Host.Ip == addr {
			v.Host = hop
			lk, lv = append(lk, k), append(lv, v)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("refresh learned paths to %v: %w", host, err)
	}
	for i := range lk {
		// An entry the LRU dropped meanwhile stays dropped.
		if err := d.transit.Learned.Update(&lk[i], &lv[i], 2 /* BPF_EXIST */); err != nil && !isNotExist(err) {
			return fmt.Errorf("refresh learned path to %v: %w", host, err)
		}
	}
	return nil
}
