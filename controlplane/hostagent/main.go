package hostagent

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/mizar-net/mizar/dataplane"
)

// Main is the mizar-agent command line: it parses args (without the program name), serves
// until ctx ends, and logs to stderr. Once it listens it prints the address it serves on to
// stdout, one line, so that a parent that asked for port 0 learns the port.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mizar-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:7070", "gRPC address to serve the control plane on")
	ns := fs.String("netns", "", "named network namespace of the host (default: this one)")
	iface := fs.String("iface", "eth0", "substrate interface")
	gw := fs.String("gateway-mac", "02:00:00:00:00:01", "MAC that endpoints' ARP resolves to")
	nextHop := fs.String("next-hop", "", "router MAC of a routed underlay: peers without a neighbor entry are reached through it")
	generic := fs.Bool("generic", false, "attach XDP in generic (skb) mode")
	agentProg := fs.String("agent", string(dataplane.AgentTC), "agent program on endpoint veths: agent_tc (tc, keeps the endpoints' TSO) or agent (XDP)")
	frags := fs.Bool("xdp-frags", false, "load the XDP programs multi-buffer (needed for MTUs above a page on veths)")
	verbose := fs.Bool("v", false, "log debug messages")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	mac, err := net.ParseMAC(*gw)
	if err != nil {
		return fmt.Errorf("-gateway-mac: %w", err)
	}
	var nh net.HardwareAddr
	if *nextHop != "" {
		if nh, err = net.ParseMAC(*nextHop); err != nil {
			return fmt.Errorf("-next-hop: %w", err)
		}
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	mode := dataplane.Native
	if *generic {
		mode = dataplane.Generic
	}
	return Serve(ctx, ServeOptions{
		Listen: *listen, Netns: *ns, Substrate: *iface, GatewayMAC: mac, DefaultNextHop: nh, Mode: mode,
		AgentProgram: dataplane.Program(*agentProg), Config: dataplane.Config{XDPFrags: *frags},
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
		Ready:  func(a net.Addr) { fmt.Fprintln(stdout, a.String()) },
	})
}
