package dataplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"
)

// SetHost writes this host's underlay settings.
func (d *Dataplane) SetHost(c HostConfig) error {
	if err := checkV4("host ip", c.IP); err != nil {
		return err
	}
	if c.MTU < 576 || c.MTU > 65535 {
		return fmt.Errorf("host mtu %d: out of range 576..65535", c.MTU)
	}
	if c.Ifindex <= 0 {
		return fmt.Errorf("host ifindex %d: must be positive", c.Ifindex)
	}
	v := transitHostCfg{Ip: be32(c.IP), Ifindex: uint32(c.Ifindex), Mtu: uint16(c.MTU)}
	var err error
	if v.Mac, err = mac6("host mac", c.MAC); err != nil {
		return err
	}
	if v.GwMac, err = mac6("gateway mac", c.GatewayMAC); err != nil {
		return err
	}
	if c.DefaultNextHop != nil {
		if v.NhMac, err = mac6("default next hop", c.DefaultNextHop); err != nil {
			return err
		}
		v.Flags |= cfgFlagDefaultNH
	}
	if err := d.transit.HostConfig.Put(uint32(0), &v); err != nil {
		return fmt.Errorf("set host config: %w", err)
	}
	return nil
}

// SetDirectPath lets the agent use learned paths (on, the default) or not (off: every packet
// goes through a bouncer, so that the bouncer path can be measured on hosts that have learned).
// Transit keeps learning either way, so turning it back on takes effect at once. SetHost must
// have run; running it again turns the direct path back on.
func (d *Dataplane) SetDirectPath(on bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var v transitHostCfg
	if err := d.transit.HostConfig.Lookup(uint32(0), &v); err != nil {
		return fmt.Errorf("set direct path: read host config: %w", err)
	}
	if v.Ifindex == 0 {
		return errors.New("set direct path: host not configured (SetHost first)")
	}
	if on {
		v.Flags &^= cfgFlagNoDirect
	} else {
		v.Flags |= cfgFlagNoDirect
	}
	if err := d.transit.HostConfig.Put(uint32(0), &v); err != nil {
		return fmt.Errorf("set direct path: %w", err)
	}
	return nil
}

const (
	cfgFlagDefaultNH = 0x01 // CFG_F_DEFAULT_NH
	cfgFlagNoDirect  = 0x02 // CFG_F_NO_DIRECT
	hopFlagMAC       = 0x01 // HOP_F_MAC
	netFlagBouncer   = 0x01 // NET_F_BOUNCER
	netFlagDivider   = 0x02 // NET_F_DIVIDER
	roleDivider      = 0x01 // ROLE_DIVIDER
	roleBouncer      = 0x02 // ROLE_BOUNCER
)

func (d *Dataplane) endpointValuesLocked(e Endpoint) (transitEpKey, transitEndpoint, transitPort, error) {
	var (
		k transitEpKey
		v transitEndpoint
		p transitPort
	)
	if err := checkVNI(e.VNI); err != nil {
		return k, v, p, fmt.Errorf("endpoint %v: %w", e.IP, err)
	}
	if err := checkV4("endpoint ip", e.IP); err != nil {
		return k, v, p, err
	}
	if !e.VPC.IsValid() || !e.VPC.Addr().Is4() || !e.VPC.Contains(e.IP) {
		return k, v, p, fmt.Errorf("endpoint %v: vpc cidr %v does not contain it", e.IP, e.VPC)
	}
	if e.Ifindex <= 0 || uint32(e.Ifindex) >= d.cfg.MaxIfindex {
		return k, v, p, fmt.Errorf("endpoint %v: ifindex %d out of range 1..%d (Config.MaxIfindex)", e.IP, e.Ifindex, d.cfg.MaxIfindex-1)
	}
	mac, err := mac6("endpoint mac", e.MAC)
	if err != nil {
		return k, v, p, err
	}
	slot, err := d.netSlotLocked(e.VNI, e.NetID)
	if err != nil {
		return k, v, p, fmt.Errorf("endpoint %v: %w", e.IP, err)
	}
	k = transitEpKey{Vni: e.VNI, Ip: be32(e.IP)}
	v = transitEndpoint{Ifindex: uint32(e.Ifindex), Mac: mac}
	p = transitPort{
		Vni:       e.VNI,
		Ip:        be32(e.IP),
		NetSlot:   slot,
		VpcPrefix: be32(e.VPC.Masked().Addr()),
		VpcMask:   be32(prefixMask(e.VPC.Bits())),
		Mac:       mac,
	}
	return k, v, p, nil
}

func prefixMask(bits int) netip.Addr {
	return netip.AddrFrom4([4]byte(net.CIDRMask(bits, 32)))
}

// UpsertEndpoint programs an endpoint hosted here: transit delivers to it, the agent on its
// veth knows its addresses.
func (d *Dataplane) UpsertEndpoint(e Endpoint) error {
	return d.UpsertEndpoints(e)
}

// UpsertEndpoints programs endpoints hosted here, in one batch per map.
func (d *Dataplane) UpsertEndpoints(eps ...Endpoint) error {
	d.state.mu.Lock()
	defer d.state.mu.Unlock()
	keys := make([]transitEpKey, len(eps))
	vals := make([]transitEndpoint, len(eps))
	ifs := make([]uint32, len(eps))
	ports := make([]transitPort, len(eps))
	for i, e := range eps {
		var err error
		if keys[i], vals[i], ports[i], err = d.endpointValuesLocked(e); err != nil {
			return err
		}
		ifs[i] = uint32(e.Ifindex)
	}
	if err := batchPut(d.transit.Ports, ifs, ports); err != nil {
		return fmt.Errorf("upsert %d endpoint ports: %w", len(eps), err)
	}
	if err := batchPut(d.transit.Endpoints, keys, vals); err != nil {
		return fmt.Errorf("upsert %d endpoints: %w", len(eps), err)
	}
	for _, e := range eps {
		d.state.locals[epRef{e.VNI, e.IP}] = e
	}
	return nil
}

// batchPut writes one entry with Put and more with one BatchUpdate syscall.
func batchPut[K, V any](m *ebpf.Map, keys []K, vals []V) error {
	switch len(keys) {
	case 0:
		return nil
	case 1:
		return m.Put(&keys[0], &vals[0])
	}
	_, err := m.BatchUpdate(keys, vals, nil)
	return err
}

// DeleteEndpoint removes an endpoint hosted here and forgets its veth. If this host is also a
// bouncer of the endpoint's network and still has an entry for it, that entry takes its place.
func (d *Dataplane) DeleteEndpoint(vni uint32, ip netip.Addr) error {
	d.state.mu.Lock()
	defer d.state.mu.Unlock()
	ref := epRef{vni, ip}
	e, ok := d.state.locals[ref]
	if !ok {
		return fmt.Errorf("delete endpoint %v in vni %d: %w", ip, vni, ebpf.ErrKeyNotExist)
	}
	k := transitEpKey{Vni: vni, Ip: be32(ip)}
	if host, ok := d.state.bounced[ref]; ok {
		if err := d.transit.Endpoints.Put(&k, &transitEndpoint{Host: d.hopLocked(host)}); err != nil {
			return fmt.Errorf("delete endpoint %v in vni %d: %w", ip, vni, err)
		}
	} else if err := d.transit.Endpoints.Delete(&k); err != nil {
		return fmt.Errorf("delete endpoint %v in vni %d: %w", ip, vni, err)
	}
	if err := d.transit.Ports.Put(uint32(e.Ifindex), &transitPort{}); err != nil {
		return fmt.Errorf("delete endpoint %v port: %w", ip, err)
	}
	delete(d.state.locals, ref)
	d.releaseNetLocked(netRef{e.VNI, e.NetID})
	return nil
}

// UpsertBouncerEntries writes endpoint -> host entries of a bouncer, in one batch.
func (d *Dataplane) UpsertBouncerEntries(entries ...BouncerEntry) error {
	d.state.mu.Lock()
	defer d.state.mu.Unlock()
	keys := make([]transitEpKey, 0, len(entries))
	vals := make([]transitEndpoint, 0, len(entries))
	for _, e := range entries {
		if err := checkVNI(e.VNI); err != nil {
			return fmt.Errorf("bouncer entry %v: %w", e.IP, err)
		}
		if err := checkV4("bouncer entry ip", e.IP); err != nil {
			return err
		}
		if err := checkV4("bouncer entry host", e.Host); err != nil {
			return err
		}
		if _, local := d.state.locals[epRef{e.VNI, e.IP}]; local {
			continue // hosted here: the local entry already answers for it
		}
		keys = append(keys, transitEpKey{Vni: e.VNI, Ip: be32(e.IP)})
		vals = append(vals, transitEndpoint{Host: d.hopLocked(e.Host)})
	}
	if err := batchPut(d.transit.Endpoints, keys, vals); err != nil {
		return fmt.Errorf("upsert %d bouncer entries: %w", len(entries), err)
	}
	for _, e := range entries {
		d.state.bounced[epRef{e.VNI, e.IP}] = e.Host
	}
	return nil
}

// DeleteBouncerEntries removes endpoints from a bouncer's table.
func (d *Dataplane) DeleteBouncerEntries(vni uint32, ips ...netip.Addr) error {
	d.state.mu.Lock()
	defer d.state.mu.Unlock()
	keys := make([]transitEpKey, 0, len(ips))
	for _, ip := range ips {
		if err := checkV4("bouncer entry ip", ip); err != nil {
			return err
		}
		if _, ok := d.state.bounced[epRef{vni, ip}]; !ok {
			return fmt.Errorf("delete bouncer entry %v in vni %d: %w", ip, vni, ebpf.ErrKeyNotExist)
		}
		if _, local := d.state.locals[epRef{vni, ip}]; !local {
			keys = append(keys, transitEpKey{Vni: vni, Ip: be32(ip)})
		}
	}
	var err error
	switch len(keys) {
	case 0:
	case 1:
		err = d.transit.Endpoints.Delete(&keys[0])
	default:
		_, err = d.transit.Endpoints.BatchDelete(keys, nil)
	}
	if err != nil {
		return fmt.Errorf("delete %d bouncer entries: %w", len(keys), err)
	}
	for _, ip := range ips {
		delete(d.state.bounced, epRef{vni, ip})
	}
	return nil
}

func netKey(vni uint32, p netip.Prefix) (transitNetKey, error) {
	if err := checkVNI(vni); err != nil {
		return transitNetKey{}, err
	}
	if !p.IsValid() || !p.Addr().Is4() {
		return transitNetKey{}, fmt.Errorf("network cidr %v: not an IPv4 prefix", p)
	}
	v := [4]byte{byte(vni >> 24), byte(vni >> 16), byte(vni >> 8), byte(vni)}
	return transitNetKey{
		Prefixlen: uint32(32 + p.Bits()),
		Vni:       be32(netip.AddrFrom4(v)),
		Ip:        be32(p.Masked().Addr()),
	}, nil
}

func (d *Dataplane) putNetworkLocked(n Network) error {
	k, err := netKey(n.VNI, n.CIDR)
	if err != nil {
		return fmt.Errorf("network %v: %w", n.CIDR, err)
	}
	set, err := d.hostSetLocked("bouncers", d.state.bouncers[netRef{n.VNI, n.NetID}])
	if err != nil {
		return err
	}
	v := transitNetInfo{Bouncers: set}
	if n.Bouncer {
		v.Flags |= netFlagBouncer
	}
	if d.state.vpcs[n.VNI].Divider {
		v.Flags |= netFlagDivider
	}
	if err := d.transit.Networks.Put(&k, &v); err != nil {
		return fmt.Errorf("upsert network %v in vni %d: %w", n.CIDR, n.VNI, err)
	}
	return nil
}

// UpsertNetwork tells transit that a network exists and whether this host bounces for it.
func (d *Dataplane) UpsertNetwork(n Network) error {
	d.state.mu.Lock()
	defer d.state.mu.Unlock()
	ref := netRef{n.VNI, n.NetID}
	if old, ok := d.state.networks[ref]; ok && old.CIDR != n.CIDR {
		return fmt.Errorf("upsert network %d of vni %d: cidr %v differs from %v; delete it first", n.NetID, n.VNI, n.CIDR, old.CIDR)
	}
	if err := d.putNetworkLocked(n); err != nil {
		return err
	}
	d.state.networks[ref] = n
	return nil
}

// DeleteNetwork forgets a network.
func (d *Dataplane) DeleteNetwork(vni, netID uint32) error {
	d.state.mu.Lock()
	defer d.state.mu.Unlock()
	ref := netRef{vni, netID}
	n, ok := d.state.networks[ref]
	if !ok {
		return fmt.Errorf("delete network %d of vni %d: %w", netID, vni, ebpf.ErrKeyNotExist)
	}
	k, err := netKey(vni, n.CIDR)
	if err != nil {
		return err
	}
	if err := d.transit.Networks.Delete(&k); err != nil {
		return fmt.Errorf("delete network %v in vni %d: %w", n.CIDR, vni, err)
	}
	delete(d.state.networks, ref)
	d.releaseNetLocked(ref)
	return nil
}

// SetBouncers sets the bouncers of a network. Agents and dividers choose among them by flow
// hash, so replacing the set re-spreads flows; established flows keep working as long as every
// bouncer holds the network's whole table.
func (d *Dataplane) SetBouncers(vni, netID uint32, hosts []netip.Addr) error {
	if err := checkVNI(vni); err != nil {
		return fmt.Errorf("set bouncers of network %d: %w", netID, err)
	}
	if len(hosts) > maxHosts {
		return fmt.Errorf("set bouncers of network %d: %d hosts, at most %d", netID, len(hosts), maxHosts)
	}
	d.state.mu.Lock()
	defer d.state.mu.Unlock()
	ref := netRef{vni, netID}
	old, had := d.state.bouncers[ref]
	d.state.bouncers[ref] = slices.Clone(hosts)
	if err := d.putBouncersLocked(ref); err != nil {
		if had {
			d.state.bouncers[ref] = old
		} else {
			delete(d.state.bouncers, ref)
		}
		return err
	}
	return nil
}

// putBouncersLocked writes a network's bouncer set where the agent reads it, and into the
// network's entry where transit reads it.
func (d *Dataplane) putBouncersLocked(ref netRef) error {
	s, err := d.hostSetLocked("bouncers", d.state.bouncers[ref])
	if err != nil {
		return err
	}
	slot, err := d.netSlotLocked(ref.vni, ref.netID)
	if err != nil {
		return err
	}
	if err := d.transit.BouncerSets.Put(slot, &s); err != nil {
		return fmt.Errorf("set bouncers of network %d in vni %d: %w", ref.netID, ref.vni, err)
	}
	if n, ok := d.state.networks[ref]; ok {
		return d.putNetworkLocked(n)
	}
	return nil
}

// DeleteBouncers removes a network's bouncer set.
func (d *Dataplane) DeleteBouncers(vni, netID uint32) error {
	d.state.mu.Lock()
	defer d.state.mu.Unlock()
	ref := netRef{vni, netID}
	slot, ok := d.state.netSlot[ref]
	if _, set := d.state.bouncers[ref]; !ok || !set {
		return fmt.Errorf("delete bouncers of network %d in vni %d: %w", netID, vni, ebpf.ErrKeyNotExist)
	}
	if err := d.transit.BouncerSets.Put(slot, &transitHostSet{}); err != nil {
		return fmt.Errorf("delete bouncers of network %d in vni %d: %w", netID, vni, err)
	}
	delete(d.state.bouncers, ref)
	if n, ok := d.state.networks[ref]; ok {
		if err := d.putNetworkLocked(n); err != nil {
			return err
		}
	}
	d.releaseNetLocked(ref)
	return nil
}

// UpsertVPC writes this host's roles in a VPC and the VPC's dividers.
func (d *Dataplane) UpsertVPC(v VPC) error {
	if err := checkVNI(v.VNI); err != nil {
		return fmt.Errorf("upsert vpc: %w", err)
	}
	if len(v.Dividers) > maxHosts {
		return fmt.Errorf("upsert vpc %d: %d dividers, at most %d", v.VNI, len(v.Dividers), maxHosts)
	}
	d.state.mu.Lock()
	defer d.state.mu.Unlock()
	old, had := d.state.vpcs[v.VNI]
	v.Dividers = slices.Clone(v.Dividers)
	if err := d.putVPCLocked(v); err != nil {
		return err
	}
	d.state.vpcs[v.VNI] = v
	if had && old.Divider == v.Divider {
		return nil
	}
	// Transit reads the divider role from the network it matched, saving a lookup per packet.
	return d.rewriteNetworksLocked(v.VNI)
}

func (d *Dataplane) putVPCLocked(v VPC) error {
	s, err := d.hostSetLocked("dividers", v.Dividers)
	if err != nil {
		return err
	}
	info := transitVpcInfo{Dividers: s}
	if v.Divider {
		info.Roles |= roleDivider
	}
	if v.Bouncer {
		info.Roles |= roleBouncer
	}
	if err := d.transit.Vpcs.Put(v.VNI, &info); err != nil {
		return fmt.Errorf("upsert vpc %d: %w", v.VNI, err)
	}
	return nil
}

func (d *Dataplane) rewriteNetworksLocked(vni uint32) error {
	for ref, n := range d.state.networks {
		if ref.vni == vni {
			if err := d.putNetworkLocked(n); err != nil {
				return err
			}
		}
	}
	return nil
}

// DeleteVPC forgets a VPC.
func (d *Dataplane) DeleteVPC(vni uint32) error {
	d.state.mu.Lock()
	defer d.state.mu.Unlock()
	if err := d.transit.Vpcs.Delete(vni); err != nil {
		return fmt.Errorf("delete vpc %d: %w", vni, err)
	}
	delete(d.state.vpcs, vni)
	return d.rewriteNetworksLocked(vni)
}

// UpsertNeighbor sets the underlay next-hop MAC for a substrate address, and rewrites every
// table entry that names that host.
func (d *Dataplane) UpsertNeighbor(host netip.Addr, mac net.HardwareAddr) error {
	if err := checkV4("neighbor", host); err != nil {
		return err
	}
	if _, err := mac6("neighbor mac", mac); err != nil {
		return err
	}
	d.state.mu.Lock()
	defer d.state.mu.Unlock()
	old, had := d.state.neighbors[host]
	d.state.neighbors[host] = slices.Clone(mac)
	hop := d.hopLocked(host)
	if err := d.transit.Neighbors.Put(be32(host), &hop); err != nil {
		if had {
			d.state.neighbors[host] = old
		} else {
			delete(d.state.neighbors, host)
		}
		return fmt.Errorf("upsert neighbor %v: %w", host, err)
	}
	if had && slices.Equal(old, mac) {
		return nil
	}
	return d.refreshHopLocked(host)
}

// DeleteNeighbor forgets a next hop: the host is then reached through the default next hop of
// a routed underlay, if there is one.
func (d *Dataplane) DeleteNeighbor(host netip.Addr) error {
	d.state.mu.Lock()
	defer d.state.mu.Unlock()
	if _, ok := d.state.neighbors[host]; !ok {
		return fmt.Errorf("delete neighbor %v: %w", host, ebpf.ErrKeyNotExist)
	}
	if err := d.transit.Neighbors.Delete(be32(host)); err != nil {
		return fmt.Errorf("delete neighbor %v: %w", host, err)
	}
	delete(d.state.neighbors, host)
	return d.refreshHopLocked(host)
}

func isNotExist(err error) bool { return errors.Is(err, ebpf.ErrKeyNotExist) }

// Learned returns the host the direct path learned for (vni, ip), if any.
func (d *Dataplane) Learned(vni uint32, ip netip.Addr) (netip.Addr, bool) {
	var v transitLearnedHost
	if err := d.transit.Learned.Lookup(&transitEpKey{Vni: vni, Ip: be32(ip)}, &v); err != nil {
		return netip.Addr{}, false
	}
	return addrFromBE32(v.Host.Ip), true
}

// ForgetLearned drops a direct-path entry.
func (d *Dataplane) ForgetLearned(vni uint32, ip netip.Addr) error {
	err := d.transit.Learned.Delete(&transitEpKey{Vni: vni, Ip: be32(ip)})
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("forget learned %v: %w", ip, err)
	}
	return nil
}
