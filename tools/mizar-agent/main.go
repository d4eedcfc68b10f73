// Command mizar-agent is a host's agent: it loads the data plane on this machine (or in a named
// network namespace), attaches transit to the substrate interface, and applies the control
// plane's ops received over gRPC.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/mizar-net/mizar/controlplane/hostagent"
	"github.com/mizar-net/mizar/dataplane"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mizar-agent:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("mizar-agent", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:7070", "gRPC address to serve the control plane on")
	ns := fs.String("netns", "", "named network namespace of the host (default: this one)")
	iface := fs.String("iface", "eth0", "substrate interface")
	gw := fs.String("gateway-mac", "02:00:00:00:00:01", "MAC that endpoints' ARP resolves to")
	generic := fs.Bool("generic", false, "attach XDP in generic (skb) mode")
	agentProg := fs.String("agent", string(dataplane.AgentTC), "agent program on endpoint veths: agent_tc (tc, keeps the endpoints' TSO) or agent (XDP)")
	frags := fs.Bool("xdp-frags", false, "load the XDP programs multi-buffer (needed for MTUs above a page on veths)")
	verbose := fs.Bool("v", false, "log debug messages")
	if err := fs.Parse(args); err != nil {
		return err
	}
	mac, err := net.ParseMAC(*gw)
	if err != nil {
		return fmt.Errorf("-gateway-mac: %w", err)
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	mode := dataplane.Native
	if *generic {
		mode = dataplane.Generic
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return hostagent.Serve(ctx, hostagent.ServeOptions{
		Listen: *listen, Netns: *ns, Substrate: *iface, GatewayMAC: mac, Mode: mode,
		AgentProgram: dataplane.Program(*agentProg), Config: dataplane.Config{XDPFrags: *frags},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	})
}
