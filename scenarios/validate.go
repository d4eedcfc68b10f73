package scenario

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
)

// validate checks a decoded scenario as a whole and resolves it in place. It simulates the
// timeline: the initial VPCs are created in order, then every step changes or checks that
// state, so a step naming an object that does not exist at that point is an error. Errors go
// to d; fields that already failed to decode are not reported again.
func validate(d *decoder, s *Scenario) {
	c := &checker{
		decoder:     d,
		hosts:       map[string]hostState{},
		hostWhere:   map[string]string{},
		eps:         map[string]*epState{},
		gone:        map[string]string{},
		named:       map[string]bool{},
		transfers:   map[string]*transfer{},
		explicitVNI: map[uint32]bool{},
		explicitIP:  map[string]map[netip.Addr]bool{},
	}
	c.prescan(s)

	if d.has("name") {
		c.name("name", s.Name)
	} else {
		s.Name = strings.TrimSuffix(filepath.Base(d.file), filepath.Ext(d.file))
	}
	switch {
	case !d.has("fabric"):
		s.Fabric = Bridge
	case s.Fabric != Bridge && s.Fabric != Routed:
		c.errorf("fabric", "%q is not a fabric (want bridge or routed)", s.Fabric)
	}
	switch {
	case !d.has("mtu"):
		s.MTU = DefaultMTU
	case s.MTU < MinMTU || s.MTU > MaxMTU:
		c.errorf("mtu", "%d is out of range %d..%d", s.MTU, MinMTU, MaxMTU)
	}
	if !d.has("hosts") {
		c.errorf("hosts", "missing (a list of host names or a count)")
	}
	for i, h := range s.HostList {
		p := index("hosts", i)
		if !c.name(p, h) {
			continue
		}
		if _, dup := c.hosts[h]; dup {
			c.errorf(p, "host %s is listed twice", h)
			continue
		}
		c.hosts[h] = hostLive
	}
	for i := range s.VPCs {
		c.addVPC(index("vpcs", i), &s.VPCs[i])
	}
	for i := range s.Steps {
		c.step(index("steps", i), &s.Steps[i])
	}
}

type hostState int

const (
	hostLive hostState = iota + 1
	hostFailed
	hostRemoved
)

type vpcState struct {
	name     string
	cidr     netip.Prefix // zero when invalid
	vni      uint32
	dividers int
	nets     []*netState
	used     map[netip.Addr]string // address -> endpoint
	where    string
}

type netState struct {
	name     string
	cidr     netip.Prefix // zero when invalid
	bouncers int
	where    string
}

type epState struct {
	name    string
	vpc     *vpcState
	network *netState
	host    string
	ip      netip.Addr
	where   string
}

type transfer struct {
	from, to string
	where    string
}

// checker is the simulated state of the overlay at the step being validated.
type checker struct {
	*decoder
	hosts       map[string]hostState
	hostWhere   map[string]string // failed or removed host -> the step that did it
	vpcs        []*vpcState
	eps         map[string]*epState
	gone        map[string]string // deleted endpoint -> the step that deleted it
	named       map[string]bool   // every endpoint name the file defines anywhere
	transfers   map[string]*transfer
	lastFail    string // path of the most recent fail step
	explicitVNI map[uint32]bool
	explicitIP  map[string]map[netip.Addr]bool // vpc name -> addresses given explicitly
}

// prescan collects what allocation must avoid (VNIs and addresses the file gives
// explicitly, anywhere) and every endpoint name, for "not yet created" errors.
func (c *checker) prescan(s *Scenario) {
	var vpc func(v *VPC)
	network := func(vpcName string, n *Network) {
		if n.VPC != "" {
			vpcName = n.VPC
		}
		for _, e := range n.Endpoints {
			c.endpointSeen(vpcName, &e)
		}
	}
	vpc = func(v *VPC) {
		if v.VNI != 0 {
			c.explicitVNI[v.VNI] = true
		}
		for i := range v.Networks {
			network(v.Name, &v.Networks[i])
		}
	}
	for i := range s.VPCs {
		vpc(&s.VPCs[i])
	}
	for _, st := range s.Steps {
		if st.Create == nil {
			continue
		}
		if st.Create.VPC != nil {
			vpc(st.Create.VPC)
		}
		if st.Create.Network != nil {
			network(st.Create.Network.VPC, st.Create.Network)
		}
		if st.Create.Endpoint != nil {
			c.endpointSeen(st.Create.Endpoint.VPC, st.Create.Endpoint)
		}
	}
}

func (c *checker) endpointSeen(vpcName string, e *Endpoint) {
	c.named[e.Name] = true
	if e.VPC != "" {
		vpcName = e.VPC
	}
	if e.IP.IsValid() {
		if c.explicitIP[vpcName] == nil {
			c.explicitIP[vpcName] = map[netip.Addr]bool{}
		}
		c.explicitIP[vpcName][e.IP] = true
	}
}

// name checks an object's name: 1-63 letters, digits, '-', '_' and '.'.
func (c *checker) name(path, name string) bool {
	switch {
	case c.bad[path]:
		return false
	case !c.has(path) || name == "":
		c.errorf(path, "missing")
		return false
	case len(name) > 63:
		c.errorf(path, "%q is longer than 63 characters", name)
		return false
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			r == '-' || r == '_' || r == '.'
		if !ok {
			c.errorf(path, "%q: only letters, digits, '-', '_' and '.' allowed", name)
			return false
		}
	}
	return true
}

// prefix checks a VPC's or network's CIDR.
func (c *checker) prefix(path string, p netip.Prefix) bool {
	switch {
	case c.bad[path]:
		return false
	case !c.has(path):
		c.errorf(path, "missing")
	case !p.Addr().Is4():
		c.errorf(path, "%v is not IPv4", p)
	case p.Masked() != p:
		c.errorf(path, "%v has host bits set (did you mean %v?)", p, p.Masked())
	case p.Bits() > MaxPrefixBits:
		c.errorf(path, "%v is longer than /%d and leaves no endpoint address", p, MaxPrefixBits)
	default:
		return true
	}
	return false
}

// count checks a bouncer or divider count; an absent optional one becomes 1.
func (c *checker) count(path string, v *int, max int, required bool) {
	switch {
	case c.bad[path]:
	case !c.has(path):
		if required {
			c.errorf(path, "missing")
		}
		*v = 1
	case *v < 1 || *v > max:
		c.errorf(path, "%d is out of range 1..%d", *v, max)
	}
}

// oneOf returns the one key of keys present under path; none or several is an error.
func (c *checker) oneOf(path string, keys ...string) (string, bool) {
	var got []string
	for _, k := range keys {
		if c.has(join(path, k)) {
			got = append(got, k)
		}
	}
	switch len(got) {
	case 1:
		return got[0], true
	case 0:
		if !c.hasErrorUnder(path) {
			c.errorf(path, "want one of %s", strings.Join(keys, ", "))
		}
	default:
		c.errorf(path, "want exactly one of %s, got %s", strings.Join(keys, ", "), strings.Join(got, " and "))
	}
	return "", false
}

// hasErrorUnder tells whether a field under path already has an error (an unknown key, say).
func (c *checker) hasErrorUnder(path string) bool {
	for _, e := range c.errs {
		if strings.HasPrefix(e.Field, path+".") {
			return true
		}
	}
	return false
}

// where names the place of path for messages: "line 12", or "steps[3] (line 40)".
func (c *checker) where(path string) string {
	if strings.HasPrefix(path, "steps[") {
		step, _, _ := strings.Cut(path, "]")
		return fmt.Sprintf("%s] (line %d)", step, c.line(path))
	}
	return fmt.Sprintf("line %d", c.line(path))
}

func (c *checker) vpc(name string) *vpcState {
	for _, v := range c.vpcs {
		if v.name == name {
			return v
		}
	}
	return nil
}

func (v *vpcState) network(name string) *netState {
	for _, n := range v.nets {
		if n.name == name {
			return n
		}
	}
	return nil
}

// --- objects ---

func (c *checker) addVPC(path string, v *VPC) {
	np := join(path, "name")
	ok := c.name(np, v.Name)
	if old := c.vpc(v.Name); ok && old != nil {
		c.errorf(np, "vpc %s already exists (%s)", v.Name, c.where(old.where))
		ok = false
	}
	vs := &vpcState{name: v.Name, used: map[netip.Addr]string{}, where: path}
	if c.prefix(join(path, "cidr"), v.CIDR) {
		vs.cidr = v.CIDR
	}
	vp := join(path, "vni")
	switch {
	case c.bad[vp]:
	case !c.has(vp):
		v.VNI = c.allocVNI()
	case v.VNI < 1 || v.VNI > MaxVNI:
		c.errorf(vp, "%d is out of range 1..%d", v.VNI, MaxVNI)
	default:
		for _, o := range c.vpcs {
			if o.vni == v.VNI {
				c.errorf(vp, "%d is already the vni of vpc %s", v.VNI, o.name)
			}
		}
	}
	vs.vni = v.VNI
	c.count(join(path, "dividers"), &v.Dividers, MaxDividers, false)
	vs.dividers = v.Dividers
	if ok {
		c.vpcs = append(c.vpcs, vs)
	}
	for i := range v.Networks {
		c.addNetwork(index(join(path, "networks"), i), vs, &v.Networks[i], true)
	}
}

// allocVNI returns the lowest VNI from FirstVNI up that no existing VPC has and the file
// never gives explicitly.
func (c *checker) allocVNI() uint32 {
	for vni := uint32(FirstVNI); vni <= MaxVNI; vni++ {
		if c.explicitVNI[vni] || slices.ContainsFunc(c.vpcs, func(v *vpcState) bool { return v.vni == vni }) {
			continue
		}
		return vni
	}
	return 0
}

// addNetwork adds the network n to vs. implied says n sits under its VPC in the file, so its
// vpc field may be left out.
func (c *checker) addNetwork(path string, vs *vpcState, n *Network, implied bool) {
	if vp := join(path, "vpc"); implied {
		if c.has(vp) && n.VPC != vs.name {
			c.errorf(vp, "is %s, but the network is under vpc %s; leave it out", n.VPC, vs.name)
		}
		n.VPC = vs.name
	}
	np := join(path, "name")
	ok := c.name(np, n.Name)
	if old := vs.network(n.Name); ok && old != nil {
		c.errorf(np, "network %s already exists in vpc %s (%s)", n.Name, vs.name, c.where(old.where))
		ok = false
	}
	ns := &netState{name: n.Name, where: path}
	cp := join(path, "cidr")
	if c.prefix(cp, n.CIDR) {
		ns.cidr = n.CIDR
		switch {
		case vs.cidr.IsValid() && (n.CIDR.Bits() < vs.cidr.Bits() || !vs.cidr.Contains(n.CIDR.Addr())):
			c.errorf(cp, "%v is outside vpc %s (%v)", n.CIDR, vs.name, vs.cidr)
		default:
			for _, o := range vs.nets {
				if o.cidr.IsValid() && o.cidr.Overlaps(n.CIDR) {
					c.errorf(cp, "%v overlaps network %s (%v) in vpc %s", n.CIDR, o.name, o.cidr, vs.name)
					break
				}
			}
		}
	}
	c.count(join(path, "bouncers"), &n.Bouncers, MaxBouncers, false)
	ns.bouncers = n.Bouncers
	if ok {
		vs.nets = append(vs.nets, ns)
	}
	for i := range n.Endpoints {
		c.addEndpoint(index(join(path, "endpoints"), i), vs, ns, &n.Endpoints[i], true)
	}
}

// addEndpoint adds the endpoint e to the network ns of vs. implied says e sits under its
// network in the file, so its vpc and network fields may be left out.
func (c *checker) addEndpoint(path string, vs *vpcState, ns *netState, e *Endpoint, implied bool) {
	if implied {
		if p := join(path, "vpc"); c.has(p) && e.VPC != vs.name {
			c.errorf(p, "is %s, but the endpoint is under vpc %s; leave it out", e.VPC, vs.name)
		}
		if p := join(path, "network"); c.has(p) && e.Network != ns.name {
			c.errorf(p, "is %s, but the endpoint is under network %s; leave it out", e.Network, ns.name)
		}
		e.VPC, e.Network = vs.name, ns.name
	}
	np := join(path, "name")
	ok := c.name(np, e.Name)
	if _, err := netip.ParseAddr(e.Name); ok && err == nil {
		c.errorf(np, "%s: an endpoint name cannot be an IP address", e.Name)
		ok = false
	}
	if old := c.eps[e.Name]; ok && old != nil {
		c.errorf(np, "endpoint %s already exists (%s)", e.Name, c.where(old.where))
		ok = false
	}
	hp := join(path, "host")
	if !c.has(hp) {
		c.errorf(hp, "missing")
	} else {
		c.liveHost(hp, e.Host)
	}
	ip := join(path, "ip")
	switch {
	case c.bad[ip]:
	case !c.has(ip):
		if ns.cidr.IsValid() {
			e.IP = c.allocIP(vs, ns)
			if !e.IP.IsValid() {
				c.errorf(ip, "no free address left in network %s (%v)", ns.name, ns.cidr)
			}
		}
	case !e.IP.Is4():
		c.errorf(ip, "%v is not IPv4", e.IP)
	case ns.cidr.IsValid() && !ns.cidr.Contains(e.IP):
		c.errorf(ip, "%v is outside network %s (%v)", e.IP, ns.name, ns.cidr)
	case ns.cidr.IsValid() && e.IP == ns.cidr.Addr():
		c.errorf(ip, "%v is the network address of network %s", e.IP, ns.name)
	case ns.cidr.IsValid() && e.IP == gateway(ns.cidr):
		c.errorf(ip, "%v is the gateway of network %s (its first address)", e.IP, ns.name)
	case ns.cidr.IsValid() && e.IP == broadcast(ns.cidr):
		c.errorf(ip, "%v is the broadcast address of network %s", e.IP, ns.name)
	case vs.used[e.IP] != "":
		c.errorf(ip, "%v is already the address of endpoint %s in vpc %s", e.IP, vs.used[e.IP], vs.name)
	}
	if !ok {
		return
	}
	c.eps[e.Name] = &epState{name: e.Name, vpc: vs, network: ns, host: e.Host, ip: e.IP, where: path}
	delete(c.gone, e.Name)
	if e.IP.IsValid() && vs.used[e.IP] == "" {
		vs.used[e.IP] = e.Name
	}
}

// allocIP returns the lowest address of ns from its .2 up that no endpoint of vs has and the
// file never gives explicitly in vs; the zero Addr when there is none.
func (c *checker) allocIP(vs *vpcState, ns *netState) netip.Addr {
	last := broadcast(ns.cidr)
	for ip := gateway(ns.cidr).Next(); ip.Less(last); ip = ip.Next() {
		if vs.used[ip] == "" && !c.explicitIP[vs.name][ip] {
			return ip
		}
	}
	return netip.Addr{}
}

// gateway is the first address of p, reserved for the network's gateway.
func gateway(p netip.Prefix) netip.Addr { return p.Masked().Addr().Next() }

// broadcast is the last address of p.
func broadcast(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= uint32(uint64(1)<<(32-p.Bits()) - 1)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// liveHost checks that name is a host that is live now.
func (c *checker) liveHost(path, name string) bool {
	switch c.hosts[name] {
	case hostLive:
		return true
	case hostFailed:
		c.errorf(path, "host %s failed at %s", name, c.where(c.hostWhere[name]))
	case hostRemoved:
		c.errorf(path, "host %s was removed at %s", name, c.where(c.hostWhere[name]))
	default:
		if !c.bad["hosts"] {
			c.errorf(path, "unknown host %s (hosts: %s)", name, strings.Join(c.hostNames(), ", "))
		}
	}
	return false
}

func (c *checker) hostNames() []string {
	var hs []string
	for h, st := range c.hosts {
		if st != hostRemoved {
			hs = append(hs, h)
		}
	}
	slices.Sort(hs)
	return hs
}

func (c *checker) liveHosts() int {
	n := 0
	for _, st := range c.hosts {
		if st == hostLive {
			n++
		}
	}
	return n
}

// endpoint returns the existing endpoint name, which must be on a live host when onLive.
func (c *checker) endpoint(path, name string, onLive bool) *epState {
	if c.bad[path] {
		return nil
	}
	if !c.has(path) || name == "" {
		c.errorf(path, "missing")
		return nil
	}
	e := c.eps[name]
	switch {
	case e != nil:
	case c.gone[name] != "":
		c.errorf(path, "endpoint %s was deleted at %s", name, c.where(c.gone[name]))
		return nil
	case c.named[name]:
		c.errorf(path, "endpoint %s does not exist at this step", name)
		return nil
	default:
		c.errorf(path, "unknown endpoint %s", name)
		return nil
	}
	if onLive && c.hosts[e.host] == hostFailed {
		c.errorf(path, "endpoint %s is on host %s, which failed at %s", name, e.host, c.where(c.hostWhere[e.host]))
		return nil
	}
	return e
}

// pair checks a from -> to of endpoints that must reach each other.
func (c *checker) pair(path string, from, to string) (*epState, *epState) {
	a := c.endpoint(join(path, "from"), from, true)
	b := c.endpoint(join(path, "to"), to, true)
	if a == nil || b == nil {
		return a, b
	}
	if a == b {
		c.errorf(join(path, "to"), "is from again; want another endpoint")
	} else if a.vpc != b.vpc {
		c.errorf(join(path, "to"), "%s is in vpc %s and %s in vpc %s: endpoints of different VPCs never reach each other",
			b.name, b.vpc.name, a.name, a.vpc.name)
	}
	return a, b
}

// --- steps ---

var stepKeys = func() []string { _, names := fieldsOf(reflect.TypeFor[Step]()); return names }()

func (c *checker) step(path string, st *Step) {
	st.Line = c.line(path)
	kind, ok := c.oneOf(path, stepKeys...)
	if !ok {
		return
	}
	p := join(path, kind)
	switch kind {
	case KindCheck:
		c.check(p, st.Check)
	case KindCreate:
		c.create(p, st.Create)
	case KindDelete:
		c.delete(p, st.Delete)
	case KindScale:
		c.scale(p, st.Scale)
	case KindFail:
		c.fail(p, st.Fail)
	case KindRemove:
		c.remove(p, st.Remove)
	case KindWait:
		if !c.bad[p] && *st.Wait <= 0 {
			c.errorf(p, "%v: want a positive duration", *st.Wait)
		}
	case KindTraffic:
		c.traffic(p, st.Traffic)
	case KindMeasure:
		c.measure(p, st.Measure)
	}
}

func (c *checker) check(path string, ch *Check) {
	rp, fp, tp, op, dp := join(path, "reach"), join(path, "from"), join(path, "to"), join(path, "over"), join(path, "direct")
	switch {
	case c.has(dp):
		for _, p := range []string{rp, fp, tp, op} {
			if c.has(p) {
				c.errorf(p, "does not go with direct")
			}
		}
		c.pair(dp, ch.Direct.From, ch.Direct.To)
		return
	case ch.Reach.list:
		for _, p := range []string{fp, tp} {
			if c.has(p) {
				c.errorf(p, "does not go with a reach list; every ordered pair of the list is tried")
			}
		}
		ch.Reach.Want = true
		if len(ch.Reach.Among) < 2 {
			c.errorf(rp, "want at least two endpoints")
		}
		var first *epState
		for i, name := range ch.Reach.Among {
			p := index(rp, i)
			if slices.Index(ch.Reach.Among, name) < i {
				c.errorf(p, "%s is listed twice", name)
				continue
			}
			e := c.endpoint(p, name, true)
			switch {
			case e == nil:
			case first == nil:
				first = e
			case e.vpc != first.vpc:
				c.errorf(p, "%s is in vpc %s and %s in vpc %s: endpoints of different VPCs never reach each other",
					e.name, e.vpc.name, first.name, first.vpc.name)
			}
		}
	case c.has(fp) || c.has(tp):
		if !c.has(rp) {
			ch.Reach.Want = true
		}
		c.reachPair(path, ch)
	default:
		if !c.hasErrorUnder(path) {
			c.errorf(path, "want reach: [endpoints], from and to, or direct")
		}
	}
	if !c.has(op) {
		ch.Over = slices.Clone(AllProtos)
		return
	}
	if len(ch.Over) == 0 && !c.bad[op] {
		c.errorf(op, "want at least one protocol")
	}
	for i, pr := range ch.Over {
		c.proto(index(op, i), pr, AllProtos)
		if slices.Index(ch.Over, pr) < i {
			c.errorf(index(op, i), "%s is listed twice", pr)
		}
	}
}

// reachPair checks the pair form of a check: from -> to reaches, or must not.
func (c *checker) reachPair(path string, ch *Check) {
	if ch.Reach.Want {
		if _, err := netip.ParseAddr(ch.To); err != nil {
			c.pair(path, ch.From, ch.To)
			return
		}
	}
	fp, tp := join(path, "from"), join(path, "to")
	a := c.endpoint(fp, ch.From, true)
	if c.bad[tp] {
		return
	}
	if !c.has(tp) || ch.To == "" {
		c.errorf(tp, "missing")
		return
	}
	if ip, err := netip.ParseAddr(ch.To); err == nil {
		switch {
		case !ip.Is4():
			c.errorf(tp, "%v is not IPv4", ip)
		case a != nil && a.vpc.cidr.IsValid() && !a.vpc.cidr.Contains(ip):
			c.errorf(tp, "%v is outside vpc %s (%v) of %s", ip, a.vpc.name, a.vpc.cidr, a.name)
		}
		return
	}
	if b := c.endpoint(tp, ch.To, false); a != nil && a == b {
		c.errorf(tp, "is from again; want another endpoint")
	}
}

// proto checks a protocol against the allowed ones.
func (c *checker) proto(path string, p Proto, allowed []Proto) {
	if c.bad[path] || slices.Contains(allowed, p) {
		return
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	c.errorf(path, "%q is not a protocol here (want %s)", p, strings.Join(names, ", "))
}

func (c *checker) create(path string, cr *Create) {
	kind, ok := c.oneOf(path, "endpoint", "network", "vpc")
	if !ok {
		return
	}
	p := join(path, kind)
	switch kind {
	case "endpoint":
		e := cr.Endpoint
		vs := c.vpcRef(join(p, "vpc"), e.VPC)
		ns := c.networkRef(join(p, "network"), vs, e.Network)
		c.addEndpoint(p, vs, ns, e, false)
	case "network":
		n := cr.Network
		c.addNetwork(p, c.vpcRef(join(p, "vpc"), n.VPC), n, false)
	case "vpc":
		c.addVPC(p, cr.VPC)
	}
}

// vpcRef returns the existing VPC name, or a detached stand-in after an error (so that the
// object referring to it is still checked).
func (c *checker) vpcRef(path, name string) *vpcState {
	if v := c.vpc(name); v != nil {
		return v
	}
	switch {
	case c.bad[path]:
	case !c.has(path) || name == "":
		c.errorf(path, "missing")
	default:
		c.errorf(path, "vpc %s does not exist at this step", name)
	}
	return &vpcState{name: name, used: map[netip.Addr]string{}}
}

// networkRef returns the existing network name of vs, or a detached stand-in after an error.
func (c *checker) networkRef(path string, vs *vpcState, name string) *netState {
	if n := vs.network(name); n != nil {
		return n
	}
	switch {
	case c.bad[path]:
	case !c.has(path) || name == "":
		c.errorf(path, "missing")
	case c.vpc(vs.name) == vs:
		c.errorf(path, "network %s does not exist in vpc %s at this step", name, vs.name)
	}
	return &netState{name: name}
}

// networkPath resolves a "vpc/network" reference.
func (c *checker) networkPath(path, ref string) (*vpcState, *netState) {
	if c.bad[path] {
		return nil, nil
	}
	vpc, network, ok := SplitNetwork(ref)
	if !ok {
		c.errorf(path, "%q: want vpc/network", ref)
		return nil, nil
	}
	vs := c.vpc(vpc)
	if vs == nil {
		c.errorf(path, "vpc %s does not exist at this step", vpc)
		return nil, nil
	}
	ns := vs.network(network)
	if ns == nil {
		c.errorf(path, "network %s does not exist in vpc %s at this step", network, vpc)
		return nil, nil
	}
	return vs, ns
}

func (c *checker) delete(path string, de *Delete) {
	kind, ok := c.oneOf(path, "endpoint", "network", "vpc")
	if !ok {
		return
	}
	p := join(path, kind)
	switch kind {
	case "endpoint":
		if e := c.endpoint(p, de.Endpoint, false); e != nil {
			c.dropEndpoints(p, path, func(x *epState) bool { return x == e })
		}
	case "network":
		vs, ns := c.networkPath(p, de.Network)
		if ns == nil {
			return
		}
		c.dropEndpoints(p, path, func(x *epState) bool { return x.network == ns })
		vs.nets = slices.DeleteFunc(vs.nets, func(x *netState) bool { return x == ns })
	case "vpc":
		vs := c.vpc(de.VPC)
		if vs == nil {
			if !c.bad[p] {
				c.errorf(p, "vpc %s does not exist at this step", de.VPC)
			}
			return
		}
		c.dropEndpoints(p, path, func(x *epState) bool { return x.vpc == vs })
		c.vpcs = slices.DeleteFunc(c.vpcs, func(x *vpcState) bool { return x == vs })
	}
}

// dropEndpoints deletes the endpoints that match, unless one is in a running transfer.
func (c *checker) dropEndpoints(path, step string, match func(*epState) bool) {
	var drop []*epState
	for _, name := range sortedKeys(c.eps) {
		if e := c.eps[name]; match(e) {
			if t := c.transferOf(name); t != "" {
				c.errorf(path, "endpoint %s is in transfer %s, running since %s; stop it first",
					name, t, c.where(c.transfers[t].where))
				return
			}
			drop = append(drop, e)
		}
	}
	for _, e := range drop {
		delete(c.eps, e.name)
		if e.vpc.used[e.ip] == e.name {
			delete(e.vpc.used, e.ip)
		}
		c.gone[e.name] = step
	}
}

// transferOf returns the first running transfer that endpoint takes part in, "" if none.
func (c *checker) transferOf(endpoint string) string {
	for _, name := range sortedKeys(c.transfers) {
		if t := c.transfers[name]; t.from == endpoint || t.to == endpoint {
			return name
		}
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func (c *checker) scale(path string, sc *Scale) {
	kind, ok := c.oneOf(path, "network", "vpc")
	if !ok {
		return
	}
	np, bp, vp, dp := join(path, "network"), join(path, "bouncers"), join(path, "vpc"), join(path, "dividers")
	if kind == "network" {
		if c.has(dp) {
			c.errorf(dp, "goes with vpc; a network has bouncers")
		}
		c.count(bp, &sc.Bouncers, MaxBouncers, true)
		if _, ns := c.networkPath(np, sc.Network); ns != nil {
			ns.bouncers = sc.Bouncers
		}
		return
	}
	if c.has(bp) {
		c.errorf(bp, "goes with network; a vpc has dividers")
	}
	c.count(dp, &sc.Dividers, MaxDividers, true)
	if vs := c.vpc(sc.VPC); vs != nil {
		vs.dividers = sc.Dividers
	} else if !c.bad[vp] {
		c.errorf(vp, "vpc %s does not exist at this step", sc.VPC)
	}
}

func (c *checker) fail(path string, h *HostRef) {
	hp := join(path, "host")
	if !c.hostRef(hp, h.Host) || !c.liveHost(hp, h.Host) {
		return
	}
	for _, name := range sortedKeys(c.eps) {
		if c.eps[name].host != h.Host {
			continue
		}
		if t := c.transferOf(name); t != "" {
			c.errorf(hp, "host %s runs endpoint %s of transfer %s, running since %s; stop it first",
				h.Host, name, t, c.where(c.transfers[t].where))
			return
		}
	}
	if c.liveHosts() == 1 {
		c.errorf(hp, "host %s is the last live host", h.Host)
		return
	}
	c.hosts[h.Host] = hostFailed
	c.hostWhere[h.Host] = path
	c.lastFail = path
}

func (c *checker) remove(path string, h *HostRef) {
	hp := join(path, "host")
	if !c.hostRef(hp, h.Host) {
		return
	}
	if st := c.hosts[h.Host]; st != hostLive && st != hostFailed {
		c.liveHost(hp, h.Host) // reports why
		return
	}
	var left []string
	for _, name := range sortedKeys(c.eps) {
		if c.eps[name].host == h.Host {
			left = append(left, name)
		}
	}
	if len(left) > 0 {
		c.errorf(hp, "endpoints remain on host %s: %s; delete them first", h.Host, strings.Join(left, ", "))
		return
	}
	if c.hosts[h.Host] == hostLive && c.liveHosts() == 1 {
		c.errorf(hp, "host %s is the last live host", h.Host)
		return
	}
	c.hosts[h.Host] = hostRemoved
	c.hostWhere[h.Host] = path
}

// hostRef checks that a step names a host.
func (c *checker) hostRef(path, name string) bool {
	if c.bad[path] {
		return false
	}
	if !c.has(path) || name == "" {
		c.errorf(path, "missing")
		return false
	}
	return true
}

func (c *checker) traffic(path string, tr *Traffic) {
	kind, ok := c.oneOf(path, "start", "stop")
	if !ok {
		return
	}
	p := join(path, kind)
	if kind == "stop" {
		switch {
		case c.bad[p]:
		case tr.Stop == "":
			c.errorf(p, "missing")
		case c.transfers[tr.Stop] == nil:
			c.errorf(p, "no transfer %s is running at this step", tr.Stop)
		default:
			delete(c.transfers, tr.Stop)
		}
		return
	}
	t := tr.Start
	np := join(p, "name")
	ok = c.name(np, t.Name)
	if old := c.transfers[t.Name]; ok && old != nil {
		c.errorf(np, "transfer %s is already running (since %s)", t.Name, c.where(old.where))
		ok = false
	}
	a, b := c.pair(p, t.From, t.To)
	if !c.has(join(p, "proto")) {
		t.Proto = TCP
	} else {
		c.proto(join(p, "proto"), t.Proto, []Proto{TCP})
	}
	if ok && a != nil && b != nil {
		c.transfers[t.Name] = &transfer{from: a.name, to: b.name, where: path}
	}
}

func (c *checker) measure(path string, m *Measure) {
	if _, ok := c.oneOf(path, "recovery"); !ok {
		return
	}
	p := join(path, "recovery")
	r := m.Recovery
	if c.lastFail == "" {
		c.errorf(p, "no fail step comes before it; recovery is measured from the most recent one")
	}
	c.pair(p, r.From, r.To)
	if pp := join(p, "proto"); c.has(pp) {
		c.proto(pp, r.Proto, AllProtos)
	} else {
		r.Proto = ICMP
	}
	switch tp := join(p, "timeout"); {
	case c.bad[tp]:
	case !c.has(tp):
		r.Timeout = DefaultRecoveryTimeout
	case r.Timeout <= 0:
		c.errorf(tp, "%v: want a positive duration", r.Timeout)
	}
}
