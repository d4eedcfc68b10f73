package hostagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/mizar-net/mizar/controlplane"
	"github.com/mizar-net/mizar/dataplane"
)

// ServeOptions says where a host agent runs and listens.
type ServeOptions struct {
	Listen     string           // gRPC address, e.g. 127.0.0.1:7070
	Netns      string           // named network namespace of the host ("" for the caller's)
	Substrate  string           // substrate interface, e.g. eth0
	GatewayMAC net.HardwareAddr // what endpoints' ARP resolves to
	// DefaultNextHop, on a routed underlay, is the router's MAC: peers without a neighbor
	// entry are reached through it.
	DefaultNextHop net.HardwareAddr
	Mode           dataplane.Mode
	// AgentProgram is what endpoint veths get: dataplane.AgentTC (when empty) or
	// dataplane.Agent (XDP). With the tc agent on a veth substrate, TX checksum offload must be
	// off on the substrate (testbed.SubstrateForTC says why).
	AgentProgram dataplane.Program
	Config       dataplane.Config
	Logger       *slog.Logger
	// Ready, when set, is told the address the server listens on.
	Ready func(addr net.Addr)
}

// Serve loads the data plane, attaches transit to the substrate interface, and serves the
// control plane's ops over gRPC until ctx ends; then everything it attached is detached.
func Serve(ctx context.Context, o ServeOptions) (err error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ns := netns.None()
	if o.Netns != "" {
		if ns, err = netns.GetFromName(o.Netns); err != nil {
			return fmt.Errorf("open netns %s: %w", o.Netns, err)
		}
		defer ns.Close()
	}
	cfg, err := substrate(ns, o.Substrate)
	if err != nil {
		return err
	}
	cfg.GatewayMAC = o.GatewayMAC
	cfg.DefaultNextHop = o.DefaultNextHop
	o.Config.Logger = log
	dp, err := dataplane.New(o.Config)
	if err != nil {
		return err
	}
	defer dp.Close()
	if err := dp.SetHost(cfg); err != nil {
		return err
	}
	if err := dp.Attach(ns, o.Substrate, dataplane.Transit, o.Mode); err != nil {
		return err
	}
	lis, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.Listen, err)
	}
	agent := New(dp, ns, o.Mode, log)
	if o.AgentProgram != "" {
		if err := agent.UseAgentProgram(o.AgentProgram); err != nil {
			return err
		}
	}
	srv := controlplane.NewGRPCAgentServer(agent)
	log.Info("host agent serving", "addr", lis.Addr().String(), "host", cfg.IP.String(), "iface", o.Substrate)
	if o.Ready != nil {
		o.Ready(lis.Addr())
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	select {
	case <-ctx.Done():
		srv.GracefulStop()
		return nil
	case err := <-done:
		return err
	}
}

// substrate reads the host's underlay settings off its interface.
func substrate(ns netns.NsHandle, ifname string) (dataplane.HostConfig, error) {
	var cfg dataplane.HostConfig
	h, err := handle(ns)
	if err != nil {
		return cfg, err
	}
	defer h.Close()
	l, err := h.LinkByName(ifname)
	if err != nil {
		return cfg, fmt.Errorf("substrate interface %s: %w", ifname, err)
	}
	addrs, err := h.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return cfg, fmt.Errorf("addresses of %s: %w", ifname, err)
	}
	if len(addrs) == 0 {
		return cfg, errors.New("substrate interface " + ifname + " has no IPv4 address")
	}
	ip, _ := netip.AddrFromSlice(addrs[0].IP.To4())
	return dataplane.HostConfig{IP: ip, MAC: l.Attrs().HardwareAddr, Ifindex: l.Attrs().Index, MTU: l.Attrs().MTU}, nil
}
