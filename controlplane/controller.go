package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// Options configure a Controller.
type Options struct {
	Store  Store    // desired state; nil keeps it in memory only
	Agents AgentSet // required
	Logger *slog.Logger
	// ProgramEveryHost also writes every endpoint onto every live host (an endpoint -> host
	// entry beside its own host's and its bouncers'): the per-host flow programming Mizar
	// argues against, kept so that its cost can be measured by the same counters. Off in any
	// real deployment.
	ProgramEveryHost bool
}

// Controller owns the desired state and programs hosts with its difference. Methods are safe
// for concurrent use and run one at a time.
//
// Every mutation validates its request against the whole state first; on a validation error
// nothing changes. A valid mutation is saved to the Store, then its ops are sent. If a host
// cannot be programmed the mutation stays done and the error says which hosts failed;
// Reconcile sends them everything again.
type Controller struct {
	mu     sync.Mutex
	store  Store
	agents AgentSet
	log    *slog.Logger
	state  *State
	stats  Stats
	// index is per VPC, built on demand (see indexOf).
	index map[string]*vpcIndex
	// everyHost is Options.ProgramEveryHost.
	everyHost bool
}

// Writes counts ops sent, in all and per host name.
type Writes struct {
	Total   int
	PerHost map[string]int
}

// Stats counts the ops (map writes) the controller has sent.
type Stats struct {
	// Last holds, per method name ("CreateEndpoint", "AddHost", "Reconcile", ...), the writes
	// of its last successful call.
	Last map[string]Writes
	// Total holds the writes of all calls since New.
	Total Writes
}

// New returns a controller holding the state in o.Store. It sends nothing: call Reconcile to
// program hosts after a restart.
func New(o Options) (*Controller, error) {
	if o.Agents == nil {
		return nil, fmt.Errorf("new controller: agents: %w: missing", ErrInvalid)
	}
	if o.Store == nil {
		o.Store = NewMemoryStore()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := o.Store.Load()
	if err != nil {
		return nil, fmt.Errorf("new controller: %w", err)
	}
	s.normalize()
	return &Controller{
		store:  o.Store,
		agents: o.Agents,
		log:    o.Logger,
		state:  s,
		stats:  Stats{Last: map[string]Writes{}, Total: Writes{PerHost: map[string]int{}}},

		everyHost: o.ProgramEveryHost,
	}, nil
}

// scope names the VPCs a mutation may change on hosts; nil means all of them.
type scope []string

// commit saves next, makes it the state, and sends hosts the difference for the VPCs in sc.
// Callers hold c.mu and have validated next.
// what describes the mutation for errors ("create endpoint e1").
// Endpoints go through commitEndpoint instead.
func (c *Controller) commit(ctx context.Context, method, what string, next *State, sc scope) error {
	old := c.state
	if sc == nil {
		names := map[string]bool{}
		for n := range old.VPCs {
			names[n] = true
		}
		for n := range next.VPCs {
			names[n] = true
		}
		sc = slices.Sorted(maps.Keys(names))
	}
	oldLive, newLive := liveHosts(old), liveHosts(next)
	before, after := desired{}, desired{}
	for _, v := range sc {
		desiredVPC(before, old, v, oldLive, c.everyHost, nil)
		desiredVPC(after, next, v, newLive, c.everyHost, nil)
	}
	if err := c.store.Save(next); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	c.state = next
	c.index = nil
	ops := diff(before, after)
	for h := range ops {
		if hs, ok := next.Hosts[h]; !ok || hs.Failed {
			delete(ops, h) // gone or down: nothing to send it
		}
	}
	if err := c.send(ctx, method, ops); err != nil {
		return fmt.Errorf("%s: saved, but %w", what, err)
	}
	return nil
}

// commitEndpoint sets endpoint name of VPC vpc to e (nil: deletes it), saves that one change
// and sends hosts the difference. Unlike commit it changes the state in place (undone when the
// save fails) and computes only what one endpoint can change: an endpoint costs the same
// whatever the number of endpoints and hosts. Callers hold c.mu and have validated e.
func (c *Controller) commitEndpoint(ctx context.Context, method, what, vpc, name string, e *Endpoint) error {
	eps := c.state.VPCs[vpc].Endpoints
	idx := c.indexOf(vpc)
	old, had := eps[name]
	// Creating names a new endpoint at a free address; deleting, an existing one: the
	// address is someone's on one side only.
	f := &focus{host: old.Host, ep: &old, hostEndpoints: idx.perHost[old.Host]}
	if e != nil {
		f = &focus{host: e.Host, hostEndpoints: idx.perHost[e.Host]}
	}
	live := liveHosts(c.state)
	before, after := desired{}, desired{}
	desiredVPC(before, c.state, vpc, live, c.everyHost, f)
	apply := func(add bool, x Endpoint) {
		if add {
			eps[x.Name] = x
			idx.byIP[x.IP] = x.Name
			idx.perHost[x.Host]++
		} else {
			delete(eps, x.Name)
			delete(idx.byIP, x.IP)
			idx.perHost[x.Host]--
		}
	}
	if e != nil {
		apply(true, *e)
		f.ep, f.hostEndpoints = e, f.hostEndpoints+1
	} else {
		apply(false, old)
		f.ep, f.hostEndpoints = nil, f.hostEndpoints-1
	}
	desiredVPC(after, c.state, vpc, live, c.everyHost, f)
	if err := c.store.SaveEndpoint(vpc, name, e); err != nil {
		if e != nil {
			apply(false, *e)
		}
		if had {
			apply(true, old)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	// diff covers live hosts only: liveHosts left the failed ones out of both sides.
	if err := c.send(ctx, method, diff(before, after)); err != nil {
		return fmt.Errorf("%s: saved, but %w", what, err)
	}
	return nil
}

// vpcIndex is what an endpoint mutation needs to know of its VPC's endpoints without a pass
// over them: who has an address, and how many endpoints each host has.
type vpcIndex struct {
	byIP    map[netip.Addr]string
	perHost map[string]int
}

// indexOf returns VPC vpc's index, building it from the state when there is none: commit
// drops every index (any other mutation may change endpoints wholesale), commitEndpoint keeps
// them current.
func (c *Controller) indexOf(vpc string) *vpcIndex {
	if idx, ok := c.index[vpc]; ok {
		return idx
	}
	if c.index == nil {
		c.index = map[string]*vpcIndex{}
	}
	idx := &vpcIndex{byIP: map[netip.Addr]string{}, perHost: map[string]int{}}
	for name, e := range c.state.VPCs[vpc].Endpoints {
		idx.byIP[e.IP] = name
		idx.perHost[e.Host]++
	}
	c.index[vpc] = idx
	return idx
}

// send applies ops to their hosts in parallel and counts them.
func (c *Controller) send(ctx context.Context, method string, ops map[string][]Op) error {
	w := Writes{PerHost: map[string]int{}}
	for h, o := range ops {
		w.PerHost[h] = len(o)
		w.Total += len(o)
		c.stats.Total.PerHost[h] += len(o)
		c.stats.Total.Total += len(o)
	}
	c.stats.Last[method] = w

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, h := range slices.Sorted(maps.Keys(ops)) {
		wg.Go(func() {
			err := c.apply(ctx, h, ops[h])
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

func (c *Controller) apply(ctx context.Context, host string, ops []Op) error {
	a, err := c.agents.Agent(host)
	if err != nil {
		c.log.Warn("no agent", "host", host, "err", err)
		return fmt.Errorf("find agent of host %s: %w", host, err)
	}
	if err := a.Apply(ctx, ops); err != nil {
		c.log.Warn("program host failed", "host", host, "ops", len(ops), "err", err)
		return fmt.Errorf("program host %s: %w", host, err)
	}
	c.log.Debug("programmed host", "host", host, "ops", len(ops))
	return nil
}

// Stats returns a copy of the write counters.
func (c *Controller) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := Stats{Last: map[string]Writes{}, Total: Writes{Total: c.stats.Total.Total, PerHost: maps.Clone(c.stats.Total.PerHost)}}
	for m, w := range c.stats.Last {
		out.Last[m] = Writes{Total: w.Total, PerHost: maps.Clone(w.PerHost)}
	}
	return out
}

// State returns a copy of the desired state.
func (c *Controller) State() *State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state.Clone()
}

// Reconcile sends every live host its whole desired state, as upserts. It is meant for a
// controller that restarted or hosts whose agents restarted empty; it does not delete entries a
// host holds beyond its desired state.
func (c *Controller) Reconcile(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := desired{}
	live := liveHosts(c.state)
	for _, v := range slices.Sorted(maps.Keys(c.state.VPCs)) {
		desiredVPC(d, c.state, v, live, c.everyHost, nil)
	}
	c.log.Info("reconcile", "hosts", len(d))
	if err := c.send(ctx, "Reconcile", full(d)); err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	return nil
}

// --- hosts ---

// AddHost adds a live host. Roles move to it as placement says (Place), and it is sent the
// state of those roles.
func (c *Controller) AddHost(ctx context.Context, h Host) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := checkName("host name", h.Name); err != nil {
		return fmt.Errorf("add host: %w", err)
	}
	if !h.IP.Is4() || h.IP.IsUnspecified() {
		return fmt.Errorf("add host %s: %w", h.Name, invalidf("ip %v: not a substrate IPv4 address", h.IP))
	}
	if err := checkIfName("interface", h.Interface); err != nil {
		return fmt.Errorf("add host %s: %w", h.Name, err)
	}
	if _, ok := c.state.Hosts[h.Name]; ok {
		return fmt.Errorf("add host %s: %w", h.Name, ErrExists)
	}
	for _, o := range c.state.Hosts {
		if o.IP == h.IP {
			return fmt.Errorf("add host %s: ip %v: %w: used by host %s", h.Name, h.IP, ErrConflict, o.Name)
		}
	}
	next := c.state.Clone()
	next.Hosts[h.Name] = HostState{Host: h}
	c.log.Info("add host", "host", h.Name, "ip", h.IP)
	return c.commit(ctx, "AddHost", "add host "+h.Name, next, nil)
}

// RemoveHost removes a host that has no endpoints. Its roles move to other hosts. It is sent
// nothing: it is leaving.
func (c *Controller) RemoveHost(ctx context.Context, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.state.Hosts[name]; !ok {
		return fmt.Errorf("remove host %s: %w", name, ErrNotFound)
	}
	if eps := c.endpointsOn(name); len(eps) > 0 {
		return fmt.Errorf("remove host %s: %w: %d endpoints remain (first %s)", name, ErrConflict, len(eps), eps[0])
	}
	next := c.state.Clone()
	delete(next.Hosts, name)
	c.log.Info("remove host", "host", name)
	return c.commit(ctx, "RemoveHost", "remove host "+name, next, nil)
}

// FailHost marks a host failed: its roles move to live hosts, and it is sent nothing until
// RecoverHost. Its endpoints stay, and bouncers keep pointing at it.
func (c *Controller) FailHost(ctx context.Context, name string) error {
	return c.setFailed(ctx, "FailHost", "fail host", name, true)
}

// RecoverHost marks a failed host live again. Roles move back as placement says, and the host
// is sent its whole desired state (its agent is expected to have restarted empty).
func (c *Controller) RecoverHost(ctx context.Context, name string) error {
	return c.setFailed(ctx, "RecoverHost", "recover host", name, false)
}

func (c *Controller) setFailed(ctx context.Context, method, what, name string, failed bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.state.Hosts[name]
	if !ok {
		return fmt.Errorf("%s %s: %w", what, name, ErrNotFound)
	}
	if h.Failed == failed {
		return nil
	}
	next := c.state.Clone()
	h.Failed = failed
	next.Hosts[name] = h
	c.log.Info("host state", "host", name, "failed", failed)
	return c.commit(ctx, method, what+" "+name, next, nil)
}

// endpointsOn returns "vpc/endpoint" of the endpoints on host, sorted.
func (c *Controller) endpointsOn(host string) []string {
	var out []string
	for vn, v := range c.state.VPCs {
		for en, e := range v.Endpoints {
			if e.Host == host {
				out = append(out, vn+"/"+en)
			}
		}
	}
	slices.Sort(out)
	return out
}

// --- VPCs ---

// CreateVPC creates a VPC with no networks. A zero VNI is allocated (the lowest free one);
// a given one must be free. It returns the VPC as created.
func (c *Controller) CreateVPC(ctx context.Context, v VPC) (VPC, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fail := func(err error) (VPC, error) { return VPC{}, fmt.Errorf("create vpc %s: %w", v.Name, err) }
	if err := checkName("vpc name", v.Name); err != nil {
		return VPC{}, fmt.Errorf("create vpc: %w", err)
	}
	if _, ok := c.state.VPCs[v.Name]; ok {
		return fail(ErrExists)
	}
	if err := checkPrefix("cidr", v.CIDR); err != nil {
		return fail(err)
	}
	if v.Dividers < 1 || v.Dividers > MaxDividers {
		return fail(invalidf("dividers %d: out of range 1..%d", v.Dividers, MaxDividers))
	}
	used := map[uint32]string{}
	for _, o := range c.state.VPCs {
		used[o.VNI] = o.Name
	}
	switch {
	case v.VNI > MaxVNI:
		return fail(invalidf("vni %d: out of range 1..%d", v.VNI, MaxVNI))
	case v.VNI != 0 && used[v.VNI] != "":
		return fail(fmt.Errorf("vni %d: %w: used by vpc %s", v.VNI, ErrConflict, used[v.VNI]))
	case v.VNI == 0:
		for v.VNI = 1; used[v.VNI] != ""; v.VNI++ {
			if v.VNI == MaxVNI {
				return fail(fmt.Errorf("vni: %w: all %d in use", ErrConflict, MaxVNI))
			}
		}
	}
	next := c.state.Clone()
	next.VPCs[v.Name] = VPCState{VPC: v, Networks: map[string]Network{}, Endpoints: map[string]Endpoint{}}
	c.log.Info("create vpc", "vpc", v.Name, "vni", v.VNI, "cidr", v.CIDR)
	return v, c.commit(ctx, "CreateVPC", "create vpc "+v.Name, next, scope{v.Name})
}

// DeleteVPC deletes a VPC. With networks left it fails unless cascade, which deletes its
// networks and endpoints with it.
func (c *Controller) DeleteVPC(ctx context.Context, name string, cascade bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.state.VPCs[name]
	if !ok {
		return fmt.Errorf("delete vpc %s: %w", name, ErrNotFound)
	}
	if len(v.Networks) > 0 && !cascade {
		return fmt.Errorf("delete vpc %s: %w: %d networks remain (first %s); delete them or cascade",
			name, ErrConflict, len(v.Networks), slices.Sorted(maps.Keys(v.Networks))[0])
	}
	next := c.state.Clone()
	delete(next.VPCs, name)
	c.log.Info("delete vpc", "vpc", name, "cascade", cascade)
	return c.commit(ctx, "DeleteVPC", "delete vpc "+name, next, scope{name})
}

// ScaleDividers sets the number of dividers of a VPC, 1..MaxDividers. Hosts that become
// dividers get the VPC's state if they lack it; all members get the new divider list.
func (c *Controller) ScaleDividers(ctx context.Context, vpc string, n int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.state.VPCs[vpc]
	if !ok {
		return fmt.Errorf("scale dividers of vpc %s: %w", vpc, ErrNotFound)
	}
	if n < 1 || n > MaxDividers {
		return fmt.Errorf("scale dividers of vpc %s: %w", vpc, invalidf("dividers %d: out of range 1..%d", n, MaxDividers))
	}
	next := c.state.Clone()
	v = next.VPCs[vpc]
	v.Dividers = n
	next.VPCs[vpc] = v
	c.log.Info("scale dividers", "vpc", vpc, "dividers", n)
	return c.commit(ctx, "ScaleDividers", "scale dividers of vpc "+vpc, next, scope{vpc})
}

// --- networks ---

// CreateNetwork creates a network in a VPC. Its CIDR lies inside the VPC's and overlaps no
// other network of the VPC. A zero ID is allocated (the lowest free one in the VPC); a given
// one must be free. It returns the network as created.
func (c *Controller) CreateNetwork(ctx context.Context, n Network) (Network, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fail := func(err error) (Network, error) {
		return Network{}, fmt.Errorf("create network %s in vpc %s: %w", n.Name, n.VPC, err)
	}
	if err := checkName("network name", n.Name); err != nil {
		return fail(err)
	}
	v, ok := c.state.VPCs[n.VPC]
	if !ok {
		return fail(fmt.Errorf("vpc %q: %w", n.VPC, ErrNotFound))
	}
	if _, ok := v.Networks[n.Name]; ok {
		return fail(ErrExists)
	}
	if err := checkPrefix("cidr", n.CIDR); err != nil {
		return fail(err)
	}
	if n.CIDR.Bits() < v.CIDR.Bits() || !v.CIDR.Contains(n.CIDR.Addr()) {
		return fail(invalidf("cidr %v: outside vpc cidr %v", n.CIDR, v.CIDR))
	}
	if n.Bouncers < 1 || n.Bouncers > MaxBouncers {
		return fail(invalidf("bouncers %d: out of range 1..%d", n.Bouncers, MaxBouncers))
	}
	ids := map[uint32]string{}
	for _, name := range slices.Sorted(maps.Keys(v.Networks)) {
		o := v.Networks[name]
		if o.CIDR.Overlaps(n.CIDR) {
			return fail(fmt.Errorf("cidr %v: %w: overlaps network %s %v", n.CIDR, ErrConflict, o.Name, o.CIDR))
		}
		ids[o.ID] = o.Name
	}
	if n.ID != 0 && ids[n.ID] != "" {
		return fail(fmt.Errorf("id %d: %w: used by network %s", n.ID, ErrConflict, ids[n.ID]))
	}
	if n.ID == 0 {
		for n.ID = 1; ids[n.ID] != ""; n.ID++ {
		}
	}
	next := c.state.Clone()
	next.VPCs[n.VPC].Networks[n.Name] = n
	c.log.Info("create network", "vpc", n.VPC, "net", n.Name, "cidr", n.CIDR, "id", n.ID)
	return n, c.commit(ctx, "CreateNetwork", "create network "+n.Name+" in vpc "+n.VPC, next, scope{n.VPC})
}

// DeleteNetwork deletes a network that has no endpoints.
func (c *Controller) DeleteNetwork(ctx context.Context, vpc, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.state.VPCs[vpc]
	if !ok {
		return fmt.Errorf("delete network %s: vpc %q: %w", name, vpc, ErrNotFound)
	}
	if _, ok := v.Networks[name]; !ok {
		return fmt.Errorf("delete network %s in vpc %s: %w", name, vpc, ErrNotFound)
	}
	var eps []string
	for en, e := range v.Endpoints {
		if e.Network == name {
			eps = append(eps, en)
		}
	}
	if len(eps) > 0 {
		slices.Sort(eps)
		return fmt.Errorf("delete network %s in vpc %s: %w: %d endpoints remain (first %s)",
			name, vpc, ErrConflict, len(eps), eps[0])
	}
	next := c.state.Clone()
	delete(next.VPCs[vpc].Networks, name)
	c.log.Info("delete network", "vpc", vpc, "net", name)
	return c.commit(ctx, "DeleteNetwork", "delete network "+name+" in vpc "+vpc, next, scope{vpc})
}

// ScaleBouncers sets the number of bouncers of a network, 1..MaxBouncers. A host that becomes
// a bouncer gets the network's whole endpoint table; members of the VPC get the new bouncer set;
// a host that stops being one has its entries deleted.
func (c *Controller) ScaleBouncers(ctx context.Context, vpc, network string, n int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.state.VPCs[vpc]
	if !ok {
		return fmt.Errorf("scale bouncers of network %s: vpc %q: %w", network, vpc, ErrNotFound)
	}
	nw, ok := v.Networks[network]
	if !ok {
		return fmt.Errorf("scale bouncers of network %s in vpc %s: %w", network, vpc, ErrNotFound)
	}
	if n < 1 || n > MaxBouncers {
		return fmt.Errorf("scale bouncers of network %s in vpc %s: %w", network, vpc,
			invalidf("bouncers %d: out of range 1..%d", n, MaxBouncers))
	}
	next := c.state.Clone()
	nw.Bouncers = n
	next.VPCs[vpc].Networks[network] = nw
	c.log.Info("scale bouncers", "vpc", vpc, "net", network, "bouncers", n)
	return c.commit(ctx, "ScaleBouncers", "scale bouncers of network "+network+" in vpc "+vpc, next, scope{vpc})
}

// --- endpoints ---

// CreateEndpoint creates an endpoint on a live host. An invalid IP is allocated: the lowest
// free address of the network, past the network address and the gateway (Gateway), before
// the broadcast address. A given IP must be such an address and free. The MAC is derived
// (EndpointMAC); a given one must equal it. It returns the endpoint as created.
func (c *Controller) CreateEndpoint(ctx context.Context, e Endpoint) (Endpoint, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fail := func(err error) (Endpoint, error) {
		return Endpoint{}, fmt.Errorf("create endpoint %s in vpc %s: %w", e.Name, e.VPC, err)
	}
	if err := checkName("endpoint name", e.Name); err != nil {
		return fail(err)
	}
	v, ok := c.state.VPCs[e.VPC]
	if !ok {
		return fail(fmt.Errorf("vpc %q: %w", e.VPC, ErrNotFound))
	}
	if _, ok := v.Endpoints[e.Name]; ok {
		return fail(ErrExists)
	}
	n, ok := v.Networks[e.Network]
	if !ok {
		return fail(fmt.Errorf("network %q: %w", e.Network, ErrNotFound))
	}
	h, ok := c.state.Hosts[e.Host]
	if !ok {
		return fail(fmt.Errorf("host %q: %w", e.Host, ErrNotFound))
	}
	if h.Failed {
		return fail(fmt.Errorf("host %s: %w: failed", e.Host, ErrConflict))
	}
	taken := c.indexOf(e.VPC).byIP
	if !e.IP.IsValid() {
		ip, err := allocate(n.CIDR, taken)
		if err != nil {
			return fail(fmt.Errorf("network %s: %w", n.Name, err))
		}
		e.IP = ip
	} else {
		switch {
		case !e.IP.Is4():
			return fail(invalidf("ip %v: not IPv4", e.IP))
		case !n.CIDR.Contains(e.IP):
			return fail(invalidf("ip %v: outside network %s %v", e.IP, n.Name, n.CIDR))
		case reserved(n.CIDR, e.IP):
			return fail(invalidf("ip %v: reserved in network %s %v (network, gateway %v or broadcast)",
				e.IP, n.Name, n.CIDR, Gateway(n.CIDR)))
		case taken[e.IP] != "":
			return fail(fmt.Errorf("ip %v: %w: taken by endpoint %s", e.IP, ErrConflict, taken[e.IP]))
		}
	}
	mac := EndpointMAC(v.VNI, e.IP)
	if e.MAC != nil && e.MAC.String() != mac.String() {
		return fail(invalidf("mac %v: derived by the controller, leave it empty (would be %v)", e.MAC, mac))
	}
	e.MAC = mac
	c.log.Info("create endpoint", "vpc", e.VPC, "net", e.Network, "ep", e.Name, "host", e.Host, "ip", e.IP)
	return e, c.commitEndpoint(ctx, "CreateEndpoint", "create endpoint "+e.Name+" in vpc "+e.VPC, e.VPC, e.Name, &e)
}

// allocate returns the lowest address of p that is neither reserved nor taken.
func allocate(p netip.Prefix, taken map[netip.Addr]string) (netip.Addr, error) {
	last := broadcast(p)
	for ip := Gateway(p).Next(); ip.Less(last); ip = ip.Next() {
		if taken[ip] == "" {
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("cidr %v: %w: no free address", p, ErrConflict)
}

// DeleteEndpoint deletes an endpoint from its host and its network's bouncers. Its address
// becomes free.
func (c *Controller) DeleteEndpoint(ctx context.Context, vpc, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.state.VPCs[vpc]
	if !ok {
		return fmt.Errorf("delete endpoint %s: vpc %q: %w", name, vpc, ErrNotFound)
	}
	e, ok := v.Endpoints[name]
	if !ok {
		return fmt.Errorf("delete endpoint %s in vpc %s: %w", name, vpc, ErrNotFound)
	}
	c.log.Info("delete endpoint", "vpc", vpc, "ep", name, "ip", e.IP)
	return c.commitEndpoint(ctx, "DeleteEndpoint", "delete endpoint "+name+" in vpc "+vpc, vpc, name, nil)
}

// --- reads ---

// Endpoint returns an endpoint.
func (c *Controller) Endpoint(vpc, name string) (Endpoint, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.state.VPCs[vpc].Endpoints[name]
	if !ok {
		return Endpoint{}, fmt.Errorf("endpoint %s in vpc %s: %w", name, vpc, ErrNotFound)
	}
	e.MAC = slices.Clone(e.MAC)
	return e, nil
}

// Bouncers returns the hosts placed as bouncers of a network, best-ranked first.
func (c *Controller) Bouncers(vpc, network string) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.state.VPCs[vpc].Networks[network]
	if !ok {
		return nil, fmt.Errorf("network %s in vpc %s: %w", network, vpc, ErrNotFound)
	}
	return Place(BouncerKey(vpc, network), liveHosts(c.state), n.Bouncers), nil
}

// Dividers returns the hosts placed as dividers of a VPC, best-ranked first.
func (c *Controller) Dividers(vpc string) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.state.VPCs[vpc]
	if !ok {
		return nil, fmt.Errorf("vpc %s: %w", vpc, ErrNotFound)
	}
	return Place(DividerKey(vpc), liveHosts(c.state), v.Dividers), nil
}
