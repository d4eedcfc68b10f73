package testbed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"

	"github.com/mizar-net/mizar/controlplane"
	"github.com/mizar-net/mizar/controlplane/hostagent"
	"github.com/mizar-net/mizar/dataplane"
)

// ClusterOptions shapes a Cluster.
type ClusterOptions struct {
	MTU   int                // underlay MTU (default 1500)
	Mode  dataplane.Mode     // XDP attach mode
	Store controlplane.Store // the control plane's store (default in memory)
	// DataplaneConfig sizes every host's maps (defaults when zero).
	DataplaneConfig dataplane.Config
}

// ClusterHost is a host of a Cluster: a namespace on the fabric with its data plane.
type ClusterHost struct {
	Name   string
	NS     *Namespace
	IP     netip.Addr
	MAC    net.HardwareAddr
	DP     *dataplane.Dataplane
	Agent  *hostagent.Agent
	port   string // its veth's end on the fabric bridge
	failed bool
}

type clusterEndpoint struct {
	ns   *Namespace
	host string
}

// Cluster is hosts in namespaces on a bridged fabric, programmed by a real control plane
// through in-process host agents. Endpoint namespaces are made by the host agent when the
// control plane programs an endpoint (as a CNI plugin would) and removed when it deletes it.
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
	c := &Cluster{Lab: NewLab(prefix, log), opts: opts, log: log, hosts: map[string]*ClusterHost{}, endpoints: map[epID]clusterEndpoint{}}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	if c.Fabric, err = c.Lab.AddNamespace("fab"); err != nil {
		return nil, err
	}
	if err := c.Lab.AddBridge(c.Fabric, "br0"); err != nil {
		return nil, err
	}
	c.Controller, err = controlplane.New(controlplane.Options{Store: opts.Store, Agents: c, Logger: log})
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
	if err := SetMaster(c.Fabric, port, "br0"); err != nil {
		return nil, err
	}
	ip, err := nthAddr(underlay, n)
	if err != nil {
		return nil, err
	}
	if err := AddAddr(ns, "eth0", netip.PrefixFrom(ip, underlay.Bits())); err != nil {
		return nil, err
	}
	cfg := c.opts.DataplaneConfig
	cfg.Logger = c.log.With("host", name)
	dp, err := dataplane.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			dp.Close()
		}
	}()
	if err := dp.SetHost(dataplane.HostConfig{IP: ip, MAC: pair.A.MAC, Ifindex: pair.A.Index, MTU: c.opts.MTU, GatewayMAC: gatewayMAC}); err != nil {
		return nil, err
	}
	if err := dp.Attach(ns.Handle, "eth0", dataplane.Transit, c.opts.Mode); err != nil {
		return nil, err
	}
	// A veth drops what XDP redirects or transmits into it unless its peer runs XDP.
	if err := dp.Attach(c.Fabric.Handle, port, dataplane.Pass, c.opts.Mode); err != nil {
		return nil, err
	}
	h := &ClusterHost{Name: name, NS: ns, IP: ip, MAC: pair.A.MAC, DP: dp, port: port,
		Agent: hostagent.New(dp, ns.Handle, c.opts.Mode, c.log.With("host", name))}
	for _, peer := range c.Hosts() {
		if err := dp.UpsertNeighbor(peer.IP, peer.MAC); err != nil {
			return nil, err
		}
		if err := peer.DP.UpsertNeighbor(ip, h.MAC); err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	c.hosts[name] = h
	c.order = append(c.order, name)
	c.mu.Unlock()
	if err := c.Controller.AddHost(ctx, controlplane.Host{Name: name, IP: ip, Interface: "eth0"}); err != nil {
		c.forget(name)
		return nil, err
	}
	return h, nil
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
	return errors.Join(h.DP.Close(), c.Lab.RemoveNamespace(h.NS))
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
		errs = append(errs, h.DP.Close())
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
// to its whole VPC (the agent answers ARP for any of it), and no TX checksum offload (XDP sees
// what the endpoint sends before any offload would complete it).
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
	if err := DisableTxChecksum(ns, "eth0"); err != nil {
		return err
	}
	if err := p.h.DP.Attach(ns.Handle, "eth0", dataplane.Pass, p.c.opts.Mode); err != nil {
		return err
	}
	p.c.mu.Lock()
	p.c.endpoints[id] = clusterEndpoint{ns: ns, host: p.h.Name}
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
	return errors.Join(p.h.DP.Detach(ce.ns.Handle, "eth0"), deleteLink(p.h.NS, op.Interface), p.c.Lab.RemoveNamespace(ce.ns))
}

// RestartController replaces the control plane with a new one over the same store, as after a
// crash, and has it reconcile every host to the stored state.
func (c *Cluster) RestartController(ctx context.Context) error {
	if c.opts.Store == nil {
		return fmt.Errorf("restart controller: %w: the cluster keeps its state in memory (set ClusterOptions.Store)", controlplane.ErrInvalid)
	}
	ctl, err := controlplane.New(controlplane.Options{Store: c.opts.Store, Agents: c, Logger: c.log})
	if err != nil {
		return fmt.Errorf("restart controller: %w", err)
	}
	c.Controller = ctl
	return ctl.Reconcile(ctx)
}
