package controlplane

import (
	"bytes"
	"cmp"
	"maps"
	"net/netip"
	"slices"
)

// What each host is sent, for each VPC (the desired state; mutations send its difference):
//
//   - Members of a VPC are its dividers, the bouncers of its networks, and the live hosts with an
//     endpoint in it. Each member gets one OpUpsertVPC, and for every network of the VPC one
//     OpUpsertNetwork and one OpSetBouncers: dividers need them to pick a destination's bouncers,
//     bouncers to hand packets on, endpoint hosts to reach their network's bouncers.
//   - Each bouncer of a network gets one OpUpsertBouncerEntry per endpoint of that network,
//     including endpoints on failed hosts.
//   - The host of an endpoint, when live, gets its OpUpsertEndpoint.
//
// Hence creating an endpoint sends one op to its host and one to each bouncer of its network,
// plus, when its host was not yet a member of the VPC, the VPC's state (1 + 2 x networks ops)
// to that host once. Failed hosts are members of nothing and are sent nothing.
//
// With Options.ProgramEveryHost, every live host other than an endpoint's own also gets its
// OpUpsertBouncerEntry (agents encapsulate straight to a host they hold an entry for), so an
// endpoint costs one write per live host: the comparison Mizar is measured against. Hosts get
// no VPC membership from it.

// opKey names what an upsert writes on a host: two ops with the same key write the same entry.
type opKey struct {
	kind  OpKind // the upsert kind
	vni   uint32
	netID uint32
	ip    netip.Addr
}

// hostTable is what one host holds, by entry.
type hostTable map[opKey]Op

// desired is what each host holds, by host name.
type desired map[string]hostTable

func (d desired) put(host string, op Op) {
	t := d[host]
	if t == nil {
		t = hostTable{}
		d[host] = t
	}
	t[keyOf(op)] = op
}

func keyOf(op Op) opKey {
	k := opKey{kind: op.Kind, vni: op.VNI}
	switch op.Kind {
	case OpUpsertEndpoint, OpUpsertBouncerEntry, OpUpsertNeighbor:
		k.ip = op.IP
	case OpUpsertNetwork, OpSetBouncers:
		k.netID = op.NetID
	}
	return k
}

// layout is the placement of one VPC's roles.
type layout struct {
	dividers []string
	bouncers map[string][]string // by network name
}

func placeVPC(v VPCState, live []string) layout {
	l := layout{dividers: Place(DividerKey(v.Name), live, v.Dividers), bouncers: map[string][]string{}}
	for name, n := range v.Networks {
		l.bouncers[name] = Place(BouncerKey(v.Name, name), live, n.Bouncers)
	}
	return l
}

// liveHosts returns the names of the hosts that have not failed, sorted.
func liveHosts(s *State) []string {
	var out []string
	for name, h := range s.Hosts {
		if !h.Failed {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// focus narrows desiredVPC to what creating or deleting one endpoint can change: the entries
// for its address on every host, and the VPC state of its host (which joins or leaves the VPC
// with its first or last endpoint). Placement does not depend on endpoints, so nothing else
// moves. Without it, each endpoint would cost a pass that builds every host's whole table,
// which grows with the endpoints of the VPC (and their hosts, in every-host mode).
type focus struct {
	host string
	// What the state desiredVPC is given holds, known without a pass over its endpoints: the
	// endpoint at the mutated address (nil: none there) and how many endpoints of the VPC
	// host has.
	ep            *Endpoint
	hostEndpoints int
}

// desiredVPC adds to d what every host should hold for VPC vpcName of s, or with a non-nil f
// only the part of it that f names. Nothing is added for a VPC that does not exist. everyHost
// is Options.ProgramEveryHost.
func desiredVPC(d desired, s *State, vpcName string, live []string, everyHost bool, f *focus) {
	v, ok := s.VPCs[vpcName]
	if !ok {
		return
	}
	l := placeVPC(v, live)
	isLive := map[string]bool{}
	for _, h := range live {
		isLive[h] = true
	}
	addrs := func(hosts []string) []netip.Addr {
		out := make([]netip.Addr, 0, len(hosts))
		for _, h := range hosts {
			out = append(out, s.Hosts[h].IP)
		}
		return out
	}

	divider := map[string]bool{}
	for _, h := range l.dividers {
		divider[h] = true
	}
	bouncerOf := map[string]map[string]bool{} // host -> network names
	for netName, hosts := range l.bouncers {
		for _, h := range hosts {
			if bouncerOf[h] == nil {
				bouncerOf[h] = map[string]bool{}
			}
			bouncerOf[h][netName] = true
		}
	}
	members := map[string]bool{}
	for h := range divider {
		members[h] = true
	}
	for h := range bouncerOf {
		members[h] = true
	}
	if f != nil {
		if f.hostEndpoints > 0 && isLive[f.host] {
			members[f.host] = true
		}
	} else {
		for _, e := range v.Endpoints {
			if isLive[e.Host] {
				members[e.Host] = true
			}
		}
	}

	dividerAddrs := addrs(l.dividers)
	for h := range members {
		if f != nil && h != f.host {
			continue
		}
		d.put(h, Op{Kind: OpUpsertVPC, VNI: v.VNI, Prefix: v.CIDR, Addrs: dividerAddrs,
			Flag: divider[h], Bouncer: len(bouncerOf[h]) > 0})
		for netName, n := range v.Networks {
			d.put(h, Op{Kind: OpUpsertNetwork, VNI: v.VNI, NetID: n.ID, Prefix: n.CIDR, Flag: bouncerOf[h][netName]})
			d.put(h, Op{Kind: OpSetBouncers, VNI: v.VNI, NetID: n.ID, Addrs: addrs(l.bouncers[netName])})
		}
	}
	eps := maps.Values(v.Endpoints)
	if f != nil {
		eps = func(yield func(Endpoint) bool) {
			if f.ep != nil {
				yield(*f.ep)
			}
		}
	}
	for e := range eps {
		n := v.Networks[e.Network]
		hostIP := s.Hosts[e.Host].IP
		entry := Op{Kind: OpUpsertBouncerEntry, VNI: v.VNI, IP: e.IP, Host: hostIP}
		for _, b := range l.bouncers[e.Network] {
			d.put(b, entry)
		}
		if everyHost {
			for _, h := range live {
				if h != e.Host {
					d.put(h, entry)
				}
			}
		}
		if isLive[e.Host] {
			d.put(e.Host, Op{Kind: OpUpsertEndpoint, VNI: v.VNI, IP: e.IP, MAC: e.MAC,
				Interface: HostVeth(v.VNI, e.IP), NetID: n.ID, VPCCIDR: v.CIDR})
		}
	}
}

// deleteOf is the op that removes what upsert wrote.
func deleteOf(up Op) Op {
	switch up.Kind {
	case OpUpsertEndpoint:
		return Op{Kind: OpDeleteEndpoint, VNI: up.VNI, IP: up.IP, Interface: up.Interface}
	case OpUpsertBouncerEntry:
		return Op{Kind: OpDeleteBouncerEntry, VNI: up.VNI, IP: up.IP}
	case OpUpsertNetwork:
		return Op{Kind: OpDeleteNetwork, VNI: up.VNI, NetID: up.NetID, Prefix: up.Prefix}
	case OpSetBouncers:
		return Op{Kind: OpDeleteBouncers, VNI: up.VNI, NetID: up.NetID}
	case OpUpsertVPC:
		return Op{Kind: OpDeleteVPC, VNI: up.VNI}
	}
	panic("controlplane: no delete for " + up.Kind.String())
}

func opEqual(a, b Op) bool {
	return a.Kind == b.Kind && a.VNI == b.VNI && a.NetID == b.NetID && a.IP == b.IP &&
		bytes.Equal(a.MAC, b.MAC) && a.Host == b.Host && a.Prefix == b.Prefix &&
		slices.Equal(a.Addrs, b.Addrs) && a.Flag == b.Flag && a.Bouncer == b.Bouncer &&
		a.Interface == b.Interface && a.VPCCIDR == b.VPCCIDR
}

// diff returns, per host, the ops that turn old into new: deletes of what went away, then
// upserts of what is new or changed, each in dependency order (sortOps).
func diff(old, new desired) map[string][]Op {
	out := map[string][]Op{}
	hosts := map[string]bool{}
	for h := range old {
		hosts[h] = true
	}
	for h := range new {
		hosts[h] = true
	}
	for h := range hosts {
		var ops []Op
		o, n := old[h], new[h]
		for k, op := range o {
			if _, ok := n[k]; !ok {
				ops = append(ops, deleteOf(op))
			}
		}
		for k, op := range n {
			if was, ok := o[k]; !ok || !opEqual(was, op) {
				ops = append(ops, op)
			}
		}
		if len(ops) > 0 {
			sortOps(ops)
			out[h] = ops
		}
	}
	return out
}

// full returns every host's table as upserts, in dependency order.
func full(d desired) map[string][]Op {
	out := map[string][]Op{}
	for h, t := range d {
		ops := slices.Collect(maps.Values(t))
		sortOps(ops)
		out[h] = ops
	}
	return out
}

// phase orders ops so that nothing refers to what is not there yet: deletes from the leaves
// (endpoints) up to the VPC, then upserts from the VPC down to the endpoints.
var phase = [opMax]int{
	OpDeleteEndpoint:     0,
	OpDeleteBouncerEntry: 1,
	OpDeleteBouncers:     2,
	OpDeleteNetwork:      3,
	OpDeleteVPC:          4,
	OpUpsertVPC:          5,
	OpUpsertNetwork:      6,
	OpSetBouncers:        7,
	OpUpsertBouncerEntry: 8,
	OpUpsertEndpoint:     9,
	OpUpsertNeighbor:     10,
	OpDeleteNeighbor:     10,
}

func sortOps(ops []Op) {
	slices.SortFunc(ops, func(a, b Op) int {
		return cmp.Or(
			cmp.Compare(phase[a.Kind], phase[b.Kind]),
			cmp.Compare(a.VNI, b.VNI),
			cmp.Compare(a.NetID, b.NetID),
			a.IP.Compare(b.IP),
		)
	})
}
