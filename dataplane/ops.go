package dataplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

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
		v.Flags |= hostFlagDefaultNH
	}
	if err := d.transit.HostConfig.Put(uint32(0), &v); err != nil {
		return fmt.Errorf("set host config: %w", err)
	}
	return nil
}

const hostFlagDefaultNH = 0x01 // HOST_F_DEFAULT_NH

func endpointValues(e Endpoint) (transitEpKey, transitLocalEp, transitPort, error) {
	var (
		k transitEpKey
		l transitLocalEp
		p transitPort
	)
	if err := checkVNI(e.VNI); err != nil {
		return k, l, p, fmt.Errorf("endpoint %v: %w", e.IP, err)
	}
	if err := checkV4("endpoint ip", e.IP); err != nil {
		return k, l, p, err
	}
	if !e.VPC.IsValid() || !e.VPC.Addr().Is4() || !e.VPC.Contains(e.IP) {
		return k, l, p, fmt.Errorf("endpoint %v: vpc cidr %v does not contain it", e.IP, e.VPC)
	}
	if e.Ifindex <= 0 {
		return k, l, p, fmt.Errorf("endpoint %v: ifindex %d must be positive", e.IP, e.Ifindex)
	}
	mac, err := mac6("endpoint mac", e.MAC)
	if err != nil {
		return k, l, p, err
	}
	k = transitEpKey{Vni: e.VNI, Ip: be32(e.IP)}
	l = transitLocalEp{Ifindex: uint32(e.Ifindex), Mac: mac}
	p = transitPort{
		Vni:       e.VNI,
		Ip:        be32(e.IP),
		NetId:     e.NetID,
		VpcPrefix: be32(e.VPC.Masked().Addr()),
		VpcMask:   be32(prefixMask(e.VPC.Bits())),
		Mac:       mac,
	}
	return k, l, p, nil
}

func prefixMask(bits int) netip.Addr {
	m := net.CIDRMask(bits, 32)
	return netip.AddrFrom4([4]byte(m))
}

// UpsertEndpoint programs an endpoint hosted here: transit delivers to it, the agent on its
// veth knows its addresses.
func (d *Dataplane) UpsertEndpoint(e Endpoint) error {
	k, l, p, err := endpointValues(e)
	if err != nil {
		return err
	}
	ifindex := uint32(e.Ifindex)
	if err := d.transit.Ports.Put(ifindex, &p); err != nil {
		return fmt.Errorf("upsert endpoint %v port: %w", e.IP, err)
	}
	if err := d.transit.LocalEndpoints.Put(&k, &l); err != nil {
		return fmt.Errorf("upsert endpoint %v: %w", e.IP, err)
	}
	return nil
}

// UpsertEndpoints is the batched UpsertEndpoint for bulk provisioning.
func (d *Dataplane) UpsertEndpoints(eps []Endpoint) error {
	keys := make([]transitEpKey, len(eps))
	locals := make([]transitLocalEp, len(eps))
	ifs := make([]uint32, len(eps))
	ports := make([]transitPort, len(eps))
	for i, e := range eps {
		var err error
		if keys[i], locals[i], ports[i], err = endpointValues(e); err != nil {
			return err
		}
		ifs[i] = uint32(e.Ifindex)
	}
	if _, err := d.transit.Ports.BatchUpdate(ifs, ports, nil); err != nil {
		return fmt.Errorf("upsert %d endpoint ports: %w", len(eps), err)
	}
	if _, err := d.transit.LocalEndpoints.BatchUpdate(keys, locals, nil); err != nil {
		return fmt.Errorf("upsert %d endpoints: %w", len(eps), err)
	}
	return nil
}

// DeleteEndpoint removes an endpoint hosted here and forgets its veth.
func (d *Dataplane) DeleteEndpoint(vni uint32, ip netip.Addr) error {
	if err := checkV4("endpoint ip", ip); err != nil {
		return err
	}
	k := transitEpKey{Vni: vni, Ip: be32(ip)}
	var l transitLocalEp
	if err := d.transit.LocalEndpoints.Lookup(&k, &l); err != nil {
		return fmt.Errorf("delete endpoint %v in vni %d: %w", ip, vni, err)
	}
	if err := d.transit.LocalEndpoints.Delete(&k); err != nil {
		return fmt.Errorf("delete endpoint %v in vni %d: %w", ip, vni, err)
	}
	if err := d.transit.Ports.Delete(l.Ifindex); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete endpoint %v port: %w", ip, err)
	}
	return nil
}

func bouncerValues(e BouncerEntry) (transitEpKey, transitRemoteEp, error) {
	if err := checkVNI(e.VNI); err != nil {
		return transitEpKey{}, transitRemoteEp{}, fmt.Errorf("bouncer entry %v: %w", e.IP, err)
	}
	if err := checkV4("bouncer entry ip", e.IP); err != nil {
		return transitEpKey{}, transitRemoteEp{}, err
	}
	if err := checkV4("bouncer entry host", e.Host); err != nil {
		return transitEpKey{}, transitRemoteEp{}, err
	}
	return transitEpKey{Vni: e.VNI, Ip: be32(e.IP)}, transitRemoteEp{Host: be32(e.Host)}, nil
}

// UpsertBouncerEntries writes endpoint -> host entries of a bouncer, in one batch.
func (d *Dataplane) UpsertBouncerEntries(entries ...BouncerEntry) error {
	keys := make([]transitEpKey, len(entries))
	vals := make([]transitRemoteEp, len(entries))
	for i, e := range entries {
		var err error
		if keys[i], vals[i], err = bouncerValues(e); err != nil {
			return err
		}
	}
	if len(entries) == 1 {
		if err := d.transit.BouncerEndpoints.Put(&keys[0], &vals[0]); err != nil {
			return fmt.Errorf("upsert bouncer entry %v: %w", entries[0].IP, err)
		}
		return nil
	}
	if _, err := d.transit.BouncerEndpoints.BatchUpdate(keys, vals, nil); err != nil {
		return fmt.Errorf("upsert %d bouncer entries: %w", len(entries), err)
	}
	return nil
}

// DeleteBouncerEntries removes endpoints from a bouncer's table.
func (d *Dataplane) DeleteBouncerEntries(vni uint32, ips ...netip.Addr) error {
	keys := make([]transitEpKey, len(ips))
	for i, ip := range ips {
		if err := checkV4("bouncer entry ip", ip); err != nil {
			return err
		}
		keys[i] = transitEpKey{Vni: vni, Ip: be32(ip)}
	}
	if len(keys) == 1 {
		if err := d.transit.BouncerEndpoints.Delete(&keys[0]); err != nil {
			return fmt.Errorf("delete bouncer entry %v: %w", ips[0], err)
		}
		return nil
	}
	if _, err := d.transit.BouncerEndpoints.BatchDelete(keys, nil); err != nil {
		return fmt.Errorf("delete %d bouncer entries: %w", len(keys), err)
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
	var v [4]byte
	v[0], v[1], v[2], v[3] = byte(vni>>24), byte(vni>>16), byte(vni>>8), byte(vni)
	return transitNetKey{
		Prefixlen: uint32(32 + p.Bits()),
		Vni:       be32(netip.AddrFrom4(v)),
		Ip:        be32(p.Masked().Addr()),
	}, nil
}

// UpsertNetwork tells transit that a network exists and whether this host bounces for it.
func (d *Dataplane) UpsertNetwork(n Network) error {
	k, err := netKey(n.VNI, n.CIDR)
	if err != nil {
		return fmt.Errorf("upsert network %v: %w", n.CIDR, err)
	}
	v := transitNetInfo{NetId: n.NetID}
	if n.Bouncer {
		v.Bouncer = 1
	}
	if err := d.transit.Networks.Put(&k, &v); err != nil {
		return fmt.Errorf("upsert network %v in vni %d: %w", n.CIDR, n.VNI, err)
	}
	return nil
}

// DeleteNetwork forgets a network.
func (d *Dataplane) DeleteNetwork(vni uint32, cidr netip.Prefix) error {
	k, err := netKey(vni, cidr)
	if err != nil {
		return fmt.Errorf("delete network %v: %w", cidr, err)
	}
	if err := d.transit.Networks.Delete(&k); err != nil {
		return fmt.Errorf("delete network %v in vni %d: %w", cidr, vni, err)
	}
	return nil
}

// SetBouncers sets the bouncers of a network. Agents and dividers choose among them by flow
// hash, so replacing the set re-spreads flows; established flows keep working as long as every
// bouncer holds the network's whole table.
func (d *Dataplane) SetBouncers(vni, netID uint32, hosts []netip.Addr) error {
	if err := checkVNI(vni); err != nil {
		return fmt.Errorf("set bouncers of network %d: %w", netID, err)
	}
	s, err := hostSet("bouncers", hosts)
	if err != nil {
		return err
	}
	if err := d.transit.Bouncers.Put(&transitBouncerKey{Vni: vni, NetId: netID}, &s); err != nil {
		return fmt.Errorf("set bouncers of network %d in vni %d: %w", netID, vni, err)
	}
	return nil
}

// DeleteBouncers removes a network's bouncer set.
func (d *Dataplane) DeleteBouncers(vni, netID uint32) error {
	if err := d.transit.Bouncers.Delete(&transitBouncerKey{Vni: vni, NetId: netID}); err != nil {
		return fmt.Errorf("delete bouncers of network %d in vni %d: %w", netID, vni, err)
	}
	return nil
}

const (
	roleDivider = 0x01 // ROLE_DIVIDER
	roleBouncer = 0x02 // ROLE_BOUNCER
)

// UpsertVPC writes this host's roles in a VPC and the VPC's dividers.
func (d *Dataplane) UpsertVPC(v VPC) error {
	if err := checkVNI(v.VNI); err != nil {
		return fmt.Errorf("upsert vpc: %w", err)
	}
	s, err := hostSet("dividers", v.Dividers)
	if err != nil {
		return err
	}
	info := transitVpcInfo{Count: s.Count, Dividers: s.Hosts}
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

// DeleteVPC forgets a VPC.
func (d *Dataplane) DeleteVPC(vni uint32) error {
	if err := d.transit.Vpcs.Delete(vni); err != nil {
		return fmt.Errorf("delete vpc %d: %w", vni, err)
	}
	return nil
}

// UpsertNeighbor sets the underlay next-hop MAC for a substrate address.
func (d *Dataplane) UpsertNeighbor(host netip.Addr, mac net.HardwareAddr) error {
	if err := checkV4("neighbor", host); err != nil {
		return err
	}
	m, err := mac6("neighbor mac", mac)
	if err != nil {
		return err
	}
	if err := d.transit.Neighbors.Put(be32(host), &transitNeighbor{Mac: m}); err != nil {
		return fmt.Errorf("upsert neighbor %v: %w", host, err)
	}
	return nil
}

// DeleteNeighbor removes a next hop.
func (d *Dataplane) DeleteNeighbor(host netip.Addr) error {
	if err := checkV4("neighbor", host); err != nil {
		return err
	}
	if err := d.transit.Neighbors.Delete(be32(host)); err != nil {
		return fmt.Errorf("delete neighbor %v: %w", host, err)
	}
	return nil
}

// Learned returns the host the direct path learned for (vni, ip), if any.
func (d *Dataplane) Learned(vni uint32, ip netip.Addr) (netip.Addr, bool) {
	var v transitRemoteEp
	if err := d.transit.Learned.Lookup(&transitEpKey{Vni: vni, Ip: be32(ip)}, &v); err != nil {
		return netip.Addr{}, false
	}
	return addrFromBE32(v.Host), true
}

// ForgetLearned drops a direct-path entry.
func (d *Dataplane) ForgetLearned(vni uint32, ip netip.Addr) error {
	err := d.transit.Learned.Delete(&transitEpKey{Vni: vni, Ip: be32(ip)})
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("forget learned %v: %w", ip, err)
	}
	return nil
}
