package hostagent_test

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mizar-net/mizar/controlplane"
	"github.com/mizar-net/mizar/controlplane/hostagent"
	"github.com/mizar-net/mizar/testbed"
)

// TestServe runs a host agent on a namespace's substrate interface and programs it over gRPC on
// loopback: ops apply, a bad op fails with its reason, and stopping detaches transit.
func TestServe(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test loads BPF programs and needs root (CI runs as root)")
	}
	lab := testbed.NewLab(testbed.NewPrefix(), nil)
	t.Cleanup(func() { lab.Close() })
	h, err := lab.AddNamespace("h")
	if err != nil {
		t.Fatal(err)
	}
	peer, err := lab.AddNamespace("p")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lab.AddVeth(h, "eth0", peer, "eth0", 1500); err != nil {
		t.Fatal(err)
	}
	if err := testbed.AddAddr(h, "eth0", netip.MustParsePrefix("192.168.5.1/24")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- hostagent.Serve(ctx, hostagent.ServeOptions{Listen: "127.0.0.1:0", Netns: h.Name, Substrate: "eth0",
			GatewayMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, Ready: func(a net.Addr) { ready <- a }})
	}()
	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("agent did not start")
	}
	agent, closer, err := controlplane.DialAgent(addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	peerIP := netip.MustParseAddr("192.168.5.2")
	ops := []controlplane.Op{
		{Kind: controlplane.OpUpsertNeighbor, IP: peerIP, MAC: net.HardwareAddr{2, 0, 0, 0, 5, 2}},
		{Kind: controlplane.OpUpsertVPC, VNI: 7, Prefix: netip.MustParsePrefix("10.7.0.0/16"), Addrs: []netip.Addr{peerIP}, Flag: true},
		{Kind: controlplane.OpUpsertNetwork, VNI: 7, NetID: 1, Prefix: netip.MustParsePrefix("10.7.1.0/24"), Flag: true},
		{Kind: controlplane.OpSetBouncers, VNI: 7, NetID: 1, Addrs: []netip.Addr{peerIP}},
		{Kind: controlplane.OpUpsertBouncerEntry, VNI: 7, IP: netip.MustParseAddr("10.7.1.9"), Host: peerIP},
	}
	if err := agent.Apply(ctx, ops); err != nil {
		t.Fatalf("apply over grpc: %v", err)
	}
	if err := agent.Apply(ctx, []controlplane.Op{{Kind: controlplane.OpDeleteNeighbor, IP: peerIP}}); err != nil {
		t.Fatalf("delete neighbor over grpc: %v", err)
	}
	if st, err := agent.(controlplane.StatsReporter).Stats(ctx); err != nil || st.Writes != uint64(len(ops)+1) {
		t.Errorf("stats over grpc: %+v, %v; want %d writes", st, err, len(ops)+1)
	}
	err = agent.Apply(ctx, []controlplane.Op{{Kind: controlplane.OpUpsertEndpoint, VNI: 7, IP: netip.MustParseAddr("10.7.1.3"), Interface: "nosuch0"}})
	if err == nil || !strings.Contains(err.Error(), "nosuch0") {
		t.Errorf("endpoint on a missing veth: %v, want an error naming it", err)
	}
	if l, err := testbed.LinkByName(h, "eth0"); err != nil || l.Attrs().Xdp == nil || !l.Attrs().Xdp.Attached {
		t.Errorf("transit not attached to eth0 while serving: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
	if l, err := testbed.LinkByName(h, "eth0"); err != nil || (l.Attrs().Xdp != nil && l.Attrs().Xdp.Attached) {
		t.Errorf("transit still attached after the agent stopped: %v", err)
	}
}
