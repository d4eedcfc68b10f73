package testbed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"

	"github.com/mizar-net/mizar/controlplane"
	"github.com/mizar-net/mizar/controlplane/hostagent"
	"github.com/mizar-net/mizar/dataplane"
)

// Fabric is how a Cluster joins its hosts' underlay.
type Fabric string

const (
	// Bridge puts every host on one L2 segment: a Linux bridge in the fabric namespace, hosts
	// in one /16. The default.
	Bridge Fabric = "bridge"
	// Routed makes the fabric namespace a router: each host has its own /24 link to it (host n
	// is 192.168.n.2, the router 192.168.n.1) and a default route through it, and reaches every
	// peer through the router's MAC. The router decrements the TTL and rewrites MACs.
	Routed Fabric = "routed"
)

// ClusterOptions shapes a Cluster.
type ClusterOptions struct {
	MTU    int                // underlay MTU (default 1500)
	Mode   dataplane.Mode     // XDP attach mode
	Store  controlplane.Store // the control plane's store (default in memory)
	Fabric Fabric             // the underlay (default Bridge)
	// DataplaneConfig sizes every host's maps (defaults when zero). Agent processes size
	// their own.
	DataplaneConfig dataplane.Config
	// AgentProcesses runs each host's agent as its own process (mizar-agent) serving gRPC on
	// 127.0.0.1, and the control plane programs it through controlplane.DialAgent, as it
	// would a real machine.
	AgentProcesses bool
	// AgentCommand is the agent program and its leading arguments, to which the cluster adds
	// mizar-agent's flags (default: mizar-agent from $PATH).
	AgentCommand []string
	// ProgramEveryHost is controlplane.Options': every endpoint onto every host, the per-host
	// programming Mizar is measured against.
	ProgramEveryHost bool
	// AgentProgram is what endpoint veths get: dataplane.AgentTC (the default: the faster in
	// dataplane's TestThroughputEncapPoints), its endpoints receiving through GRO; or
	// dataplane.Agent (XDP), its endpoints receiving through a Pass XDP program.
	AgentProgram dataplane.Program
}

// HostDataplane is what the testbed itself reads and writes on a host's data plane, beside
// the control plane's ops: a *dataplane.Dataplane in the test process, or, with agent
// processes, the data plane in the host's agent, reached over gRPC.
type HostDataplane interface {
	Counters() (dataplane.Counters, error)
	UpsertNeighbor(host netip.Addr, mac net.HardwareAddr) error
	DeleteNeighbor(host netip.Addr) error
	Close() error
}

// ClusterHost is a host of a Cluster: a namespace on the fabric with its data plane.
type ClusterHost struct {
	Name string
	NS   *Namespace
	IP   netip.Addr
	MAC  net.HardwareAddr
	DP   HostDataplane
	// Agent is the host's agent as the control plane sees it, before the testbed's plumbing:
	// a *hostagent.Agent, or a gRPC client of the agent process. Both report
	// controlplane.AgentStats (see Stats).
	Agent controlplane.HostAgent
	// pass attaches the pass program to the host's veths that XDP transmits into: the
	// host's own data plane, or a local one when the host's agent is a process.
	pass      *dataplane.Dataplane
	ownPass   bool   // pass is the local one, closed with the host
	port      string // its veth's end in the fabric namespace
	routerMAC net.HardwareAddr
	failed    bool
}

// Stats asks the host's agent what it applied and counted.
func (h *ClusterHost) Stats(ctx context.Context) (controlplane.AgentStats, error) {
	r, ok := h.Agent.(controlplane.StatsReporter)
	if !ok {
		return controlplane.AgentStats{}, fmt.Errorf("host %s: agent %T reports no stats", h.Name, h.Agent)
	}
	return r.Stats(ctx)
}

// nextHop is the underlay MAC h sends to peer through.
func (h *ClusterHost) nextHop(peer *ClusterHost) net.HardwareAddr {
	if h.routerMAC != nil {
		return h.routerMAC
	}
	return peer.MAC
}

func (h *ClusterHost) close() error {
	err := h.DP.Close()
	if h.ownPass {
		err = errors.Join(err, h.pass.Close())
	}
	return err
}

type clusterEndpoint struct {
	ns   *Namespace
	host string
	pass bool // Pass XDP on its eth0, to detach
}

// Cluster is hosts in namespaces on a bridged or routed fabric, programmed by a real control
// plane through host agents in the test process or in their own processes. Endpoint
// namespaces are made by the testbed's wrapper of each host's agent when the control plane
// programs an endpoint (as a CNI plugin would) and removed when it deletes it.
type Cluster struct {
	Lab        *Lab
	Fabric     *Namespace
	Controller *controlplane.Controller

	opts ClusterOptions
	log  *slog.Logger

	mu        sync.Mutex
	hosts     map[string]*ClusterHost
	order     []string
	next      int
	endpoints map[epID]clusterEndpoint
}

type epID struct {
	vni uint32
	ip  netip.Addr
}

// underlay is where hosts get their substrate addresses.
var underlay = netip.MustParsePrefix("192.168.0.0/16")

// NewCluster makes the fabric and the control plane. Close removes everything.
func NewCluster(prefix string, opts ClusterOptions, log *slog.Logger) (_ *Cluster, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.MTU == 0 {
		opts.MTU = 1500
	}
	if opts.Fabric == "" {
		opts.Fabric = Bridge
	}
	if opts.Fabric != Bridge && opts.Fabric != Routed {
		return nil, fmt.Errorf("cluster fabric %q: %w (want %s or %s)", opts.Fabric, controlplane.ErrInvalid, Bridge, Routed)
	}
	if opts.AgentProcesses && len(opts.AgentCommand) == 0 {
		bin, err := exec.LookPath("mizar-agent")
		if err != nil {
			return nil, fmt.Errorf("agent processes: %w (set ClusterOptions.AgentCommand)", err)
		}
		opts.AgentCommand = []string{bin}
	}
	if opts.AgentProgram == "" {
		opts.AgentProgram = dataplane.AgentTC
	}
	c := &Cluster{Lab: NewLab(prefix, log), opts: opts, log: log, hosts: map[string]*ClusterHost{}, endpoints: map[epID]clusterEndpoint{}}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	if c.Fabric, err = c.Lab.AddNamespace("fab"); err != nil {
		return nil, err
	}
	switch opts.Fabric {
	case Bridge:
		if err := c.Lab.AddBridge(c.Fabric, "br0"); err != nil {
			return nil, err
		}
	case Routed:
		if err := SetSysctl(c.Fabric, "net.ipv4.ip_forward", "1"); err != nil {
			return nil, err
		}
	}
	c.Controller, err = controlplane.New(controlplane.Options{Store: opts.Store, Agents: c, Logger: log, ProgramEveryHost: opts.ProgramEveryHost})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Host returns a host by name.
func (c *Cluster) Host(name string) (*ClusterHost, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.hosts[name]
	return h, ok
}

// Hosts returns the hosts in the order they were added.
func (c *Cluster) Hosts() []*ClusterHost {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*ClusterHost, 0, len(c.order))
	for _, n := range c.order {
		out = append(out, c.hosts[n])
	}
	return out
}

// AddHost makes a host: a namespace with a veth into the fabric, its data plane with transit
// attached, next hops to and from every other host, and registers it with the control plane.
func (c *Cluster) AddHost(ctx context.Context, name string) (_ *ClusterHost, err error) {
	c.mu.Lock()
	if _, ok := c.hosts[name]; ok {
		c.mu.Unlock()
		return nil, fmt.Errorf("add host %s: %w", name, controlplane.ErrExists)
	}
	c.next++
	n := c.next
	c.mu.Unlock()
	ns, err := c.Lab.AddNamespace("h-" + name)
	if err != nil {
		return nil, err
	}
	port := fmt.Sprintf("p%d", n)
	pair, err := c.Lab.AddVeth(ns, "eth0", c.Fabric, port, c.opts.MTU)
	if err != nil {
		return nil, err
	}
	h := &ClusterHost{Name: name, NS: ns, MAC: pair.A.MAC, port: port}
	if h.IP, err = c.wire(h, n, pair); err != nil {
		return nil, fmt.Errorf("host %s: %w", name, err)
	}
	if c.opts.AgentProgram == dataplane.AgentTC {
		if err := SubstrateForTC(ns, "eth0"); err != nil {
			return nil, fmt.Errorf("host %s: %w", name, err)
		}
	}
	if c.opts.AgentProcesses {
		err = c.startAgentProcess(ctx, h)
	} else {
		err = c.startAgent(h, pair)
	}
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			h.close()
		}
	}()
	// A veth drops what XDP redirects or transmits into it unless its peer runs XDP.
	if err := h.pass.Attach(c.Fabric.Handle, port, dataplane.Pass, c.opts.Mode); err != nil {
		return nil, fmt.Errorf("host %s: %w", name, err)
	}
	for _, peer := range c.Hosts() {
		if err := h.DP.UpsertNeighbor(peer.IP, h.nextHop(peer)); err != nil {
			return nil, fmt.Errorf("host %s: %w", name, err)
		}
		if err := peer.DP.UpsertNeighbor(h.IP, peer.nextHop(h)); err != nil {
			return nil, fmt.Errorf("host %s: %w", peer.Name, err)
		}
	}
	c.mu.Lock()
	c.hosts[name] = h
	c.order = append(c.order, name)
	c.mu.Unlock()
	if err := c.Controller.AddHost(ctx, controlplane.Host{Name: name, IP: h.IP, Interface: "eth0"}); err != nil {
		c.forget(name)
		return nil, err
	}
	return h, nil
}

// wire puts host number n on the fabric and returns its substrate address: on the bridge
// with an address of the shared /16, or on its own /24 to the router with a default route.
func (c *Cluster) wire(h *ClusterHost, n int, pair VethPair) (netip.Addr, error) {
	if c.opts.Fabric == Bridge {
		if err := SetMaster(c.Fabric, pair.B.Name, "br0"); err != nil {
			return netip.Addr{}, err
		}
		ip, err := nthAddr(underlay, n)
		if err != nil {
			return ip, err
		}
		return ip, AddAddr(h.NS, "eth0", netip.PrefixFrom(ip, underlay.Bits()))
	}
	if n > 255 {
		return netip.Addr{}, fmt.Errorf("routed fabric: host %d: at most 255 hosts (one /24 each in %v)", n, underlay)
	}
	router, err := nthAddr(underlay, n<<8|1)
	if err != nil {
		return router, err
	}
	ip := router.Next()
	if err := AddAddr(c.Fabric, pair.B.Name, netip.PrefixFrom(router, 24)); err != nil {
		return ip, err
	}
	if err := AddAddr(h.NS, "eth0", netip.PrefixFrom(ip, 24)); err != nil {
		return ip, err
	}
	if err := AddDefaultRoute(h.NS, router, "eth0"); err != nil {
		return ip, err
	}
	// A permanent entry: the router forwards a host's first packets at once instead of
	// queueing them behind ARP, which the host answers only after its transit program.
	if err := AddNeighbor(c.Fabric, pair.B.Name, ip, pair.A.MAC); err != nil {
		return ip, err
	}
	h.routerMAC = pair.B.MAC
	return ip, nil
}

// startAgent loads the host's data plane in this process, attaches transit, and makes its
// in-process agent.
func (c *Cluster) startAgent(h *ClusterHost, pair VethPair) (err error) {
	cfg := c.opts.DataplaneConfig
	cfg.Logger = c.log.With("host", h.Name)
	dp, err := dataplane.New(cfg)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			dp.Close()
		}
	}()
	if err := dp.SetHost(dataplane.HostConfig{IP: h.IP, MAC: pair.A.MAC, Ifindex: pair.A.Index, MTU: c.opts.MTU,
		GatewayMAC: gatewayMAC, DefaultNextHop: h.routerMAC}); err != nil {
		return err
	}
	if err := dp.Attach(h.NS.Handle, "eth0", dataplane.Transit, c.opts.Mode); err != nil {
		return err
	}
	h.DP, h.pass = dp, dp
	agent := hostagent.New(dp, h.NS.Handle, c.opts.Mode, c.log.With("host", h.Name))
	if err := agent.UseAgentProgram(c.opts.AgentProgram); err != nil {
		return err
	}
	h.Agent = agent
	return nil
}

func (c *Cluster) forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.hosts, name)
	for i, n := range c.order {
		if n == name {
			c.order = append(c.order[:i], c.order[i+1:]...)
			break
		}
	}
}

// FailHost cuts a host off the fabric, as a crash would, and tells the control plane, which
// re-places the host's bouncer and divider roles.
func (c *Cluster) FailHost(ctx context.Context, name string) error {
	h, ok := c.Host(name)
	if !ok {
		return fmt.Errorf("fail host %s: %w", name, controlplane.ErrNotFound)
	}
	if err := SetLinkUp(c.Fabric, h.port, false); err != nil {
		return err
	}
	c.mu.Lock()
	h.failed = true
	c.mu.Unlock()
	return c.Controller.FailHost(ctx, name)
}

// RemoveHost takes a host out of the control plane and removes it.
func (c *Cluster) RemoveHost(ctx context.Context, name string) error {
	h, ok := c.Host(name)
	if !ok {
		return fmt.Errorf("remove host %s: %w", name, controlplane.ErrNotFound)
	}
	if err := c.Controller.RemoveHost(ctx, name); err != nil {
		return err
	}
	c.forget(name)
	for _, peer := range c.Hosts() {
		if err := peer.DP.DeleteNeighbor(h.IP); err != nil {
			return err
		}
	}
	return errors.Join(h.close(), c.Lab.RemoveNamespace(h.NS))
}

// Agent is the control plane's way to a host (controlplane.AgentSet).
func (c *Cluster) Agent(host string) (controlplane.HostAgent, error) {
	h, ok := c.Host(host)
	if !ok {
		return nil, fmt.Errorf("agent of %s: %w", host, controlplane.ErrNotFound)
	}
	return &plumbingAgent{c: c, h: h}, nil
}

// EndpointNS returns the namespace and address of an endpoint the control plane created.
func (c *Cluster) EndpointNS(vpc, name string) (*Namespace, controlplane.Endpoint, error) {
	e, err := c.Controller.Endpoint(vpc, name)
	if err != nil {
		return nil, e, err
	}
	v, ok := c.Controller.State().VPCs[vpc]
	if !ok {
		return nil, e, fmt.Errorf("vpc %s: %w", vpc, controlplane.ErrNotFound)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ce, ok := c.endpoints[epID{v.VNI, e.IP}]
	if !ok {
		return nil, e, fmt.Errorf("endpoint %s/%s: no namespace (was its host programmed?)", vpc, name)
	}
	return ce.ns, e, nil
}

// Close unloads every data plane and removes every namespace.
func (c *Cluster) Close() error {
	var errs []error
	for _, h := range c.Hosts() {
		errs = append(errs, h.close())
	}
	errs = append(errs, c.Lab.Close())
	return errors.Join(errs...)
}

// plumbingAgent is a host's agent in the testbed: before an endpoint is programmed it makes the
// endpoint's namespace and veth, after one is deleted it removes them; everything else goes to
// the host agent as is.
type plumbingAgent struct {
	c *Cluster
	h *ClusterHost
}

func (p *plumbingAgent) Apply(ctx context.Context, ops []controlplane.Op) error {
	if p.isFailed() {
		return fmt.Errorf("host %s: unreachable (failed)", p.h.Name)
	}
	start := 0
	flush := func(end int) error {
		if end > start {
			if err := p.h.Agent.Apply(ctx, ops[start:end]); err != nil {
				return err
			}
		}
		start = end
		return nil
	}
	for i, op := range ops {
		switch op.Kind {
		case controlplane.OpUpsertEndpoint:
			if err := flush(i); err != nil {
				return err
			}
			if err := p.plumb(op); err != nil {
				return fmt.Errorf("host %s: endpoint %v: %w", p.h.Name, op.IP, err)
			}
		case controlplane.OpDeleteEndpoint:
			if err := flush(i + 1); err != nil {
				return err
			}
			if err := p.unplumb(op); err != nil {
				return fmt.Errorf("host %s: endpoint %v: %w", p.h.Name, op.IP, err)
			}
		}
	}
	return flush(len(ops))
}

func (p *plumbingAgent) isFailed() bool {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	return p.h.failed
}

// plumb makes the endpoint's namespace with its veth named as the op says, its address, a route
// to its whole VPC (the agent answers ARP for any of it), and its eth0 set up for the agent
// program (PlumbEndpoint).
func (p *plumbingAgent) plumb(op controlplane.Op) (err error) {
	id := epID{op.VNI, op.IP}
	p.c.mu.Lock()
	_, exists := p.c.endpoints[id]
	p.c.mu.Unlock()
	if exists {
		return nil
	}
	ns, err := p.c.Lab.AddNamespace(fmt.Sprintf("e%d-%s", op.VNI, strings.ReplaceAll(op.IP.String(), ".", "-")))
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			p.c.Lab.RemoveNamespace(ns)
		}
	}()
	if _, err := p.c.Lab.AddVeth(ns, "eth0", p.h.NS, op.Interface, p.c.opts.MTU-dataplane.Overhead); err != nil {
		return err
	}
	if err := SetMAC(ns, "eth0", op.MAC); err != nil {
		return err
	}
	if err := AddAddr(ns, "eth0", netip.PrefixFrom(op.IP, op.VPCCIDR.Bits())); err != nil {
		return err
	}
	// The XDP agent's endpoints do not work with GRO instead of Pass (TestThroughputEncapPoints
	// found no reply); the tc agent's are faster with it.
	gro := p.c.opts.AgentProgram == dataplane.AgentTC
	if err := PlumbEndpoint(p.h.pass, ns, p.c.opts.AgentProgram, gro, p.c.opts.Mode); err != nil {
		return err
	}
	p.c.mu.Lock()
	p.c.endpoints[id] = clusterEndpoint{ns: ns, host: p.h.Name, pass: !gro}
	p.c.mu.Unlock()
	return nil
}

func (p *plumbingAgent) unplumb(op controlplane.Op) error {
	id := epID{op.VNI, op.IP}
	p.c.mu.Lock()
	ce, ok := p.c.endpoints[id]
	delete(p.c.endpoints, id)
	p.c.mu.Unlock()
	if !ok {
		return nil
	}
	// The kernel tears a removed namespace's links down later, on its own; until then the host
	// side of the veth would keep its name, and an endpoint recreated at the same address on
	// this host could not have it. Deleting it here frees the name now.
	var err error
	if ce.pass {
		err = p.h.pass.Detach(ce.ns.Handle, "eth0")
	}
	return errors.Join(err, deleteLink(p.h.NS, op.Interface), p.c.Lab.RemoveNamespace(ce.ns))
}

// RestartController replaces the control plane with a new one over the same store, as after a
// crash, and has it reconcile every host to the stored state.
func (c *Cluster) RestartController(ctx context.Context) error {
	if c.opts.Store == nil {
		return fmt.Errorf("restart controller: %w: the cluster keeps its state in memory (set ClusterOptions.Store)", controlplane.ErrInvalid)
	}
	ctl, err := controlplane.New(controlplane.Options{Store: c.opts.Store, Agents: c, Logger: c.log, ProgramEveryHost: c.opts.ProgramEveryHost})
	if err != nil {
		return fmt.Errorf("restart controller: %w", err)
	}
	c.Controller = ctl
	return ctl.Reconcile(ctx)
}
