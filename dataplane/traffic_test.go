package dataplane_test

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/mizar-net/mizar/dataplane"
	"github.com/mizar-net/mizar/testbed"
)

// TestRealTraffic runs real packets through transit and agent: three hosts on a bridged
// underlay, an endpoint on each of the first two, the network's bouncer on the third. Ping and
// a verified TCP exchange go from endpoint to endpoint; the bouncer's counters show it carried
// the first packets, and the hosts' counters show the direct path took over.
func TestRealTraffic(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test creates network namespaces and needs root (CI runs as root)")
	}
	const (
		vni      = 4242
		netID    = 1
		underMTU = 1500
	)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	lab := testbed.NewLab(testbed.NewPrefix(), log)
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("clean up: %v", err)
		}
	})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	fabric, err := lab.AddNamespace("fab")
	must(err)
	must(lab.AddBridge(fabric, "br0"))
	vpc := netip.MustParsePrefix("10.77.0.0/16")
	gwIP := netip.MustParseAddr("10.77.1.1")
	gwMAC, _ := net.ParseMAC("02:00:00:00:00:01")

	type host struct {
		ns  *testbed.Namespace
		ip  netip.Addr
		mac net.HardwareAddr
		dp  *dataplane.Dataplane
	}
	hosts := make([]*host, 3)
	for i := range hosts {
		ns, err := lab.AddNamespace(fmt.Sprintf("h%d", i))
		must(err)
		pair, err := lab.AddVeth(ns, "eth0", fabric, fmt.Sprintf("p%d", i), underMTU)
		must(err)
		must(testbed.SetMaster(fabric, pair.B.Name, "br0"))
		ip := netip.AddrFrom4([4]byte{192, 168, 77, byte(i + 1)})
		must(testbed.AddAddr(ns, "eth0", netip.PrefixFrom(ip, 24)))
		dp, err := dataplane.New(dataplane.Config{MaxEndpoints: 1024, Logger: log})
		must(err)
		t.Cleanup(func() { dp.Close() })
		must(dp.SetHost(dataplane.HostConfig{IP: ip, MAC: pair.A.MAC, Ifindex: pair.A.Index, MTU: underMTU, GatewayMAC: gwMAC}))
		must(dp.Attach(ns.Handle, "eth0", dataplane.Transit, dataplane.Native))
		// A veth drops what XDP redirects or transmits into it unless its peer runs XDP.
		must(dp.Attach(fabric.Handle, pair.B.Name, dataplane.Pass, dataplane.Native))
		hosts[i] = &host{ns: ns, ip: ip, mac: pair.A.MAC, dp: dp}
	}
	for _, a := range hosts {
		for _, b := range hosts {
			if a != b {
				must(a.dp.UpsertNeighbor(b.ip, b.mac))
			}
		}
	}
	bouncer := hosts[2]
	for _, h := range hosts {
		must(h.dp.SetBouncers(vni, netID, []netip.Addr{bouncer.ip}))
	}

	type endpoint struct {
		ns *testbed.Namespace
		ip netip.Addr
	}
	var eps []endpoint
	for i, h := range hosts[:2] {
		ns, err := lab.AddNamespace(fmt.Sprintf("e%d", i))
		must(err)
		pair, err := lab.AddVeth(ns, "eth0", h.ns, fmt.Sprintf("ve%d", i), underMTU-62)
		must(err)
		ip := netip.AddrFrom4([4]byte{10, 77, 1, byte(10 + i)})
		must(testbed.AddAddr(ns, "eth0", netip.PrefixFrom(ip, 24)))
		must(testbed.AddDefaultRoute(ns, gwIP, "eth0"))
		// XDP sees what the endpoint sends before any checksum offload would fill it in.
		must(testbed.DisableTxChecksum(ns, "eth0"))
		must(h.dp.Attach(ns.Handle, "eth0", dataplane.Pass, dataplane.Native))
		must(h.dp.Attach(h.ns.Handle, pair.B.Name, dataplane.Agent, dataplane.Native))
		must(h.dp.UpsertEndpoint(dataplane.Endpoint{VNI: vni, IP: ip, MAC: pair.A.MAC, Ifindex: pair.B.Index, NetID: netID, VPC: vpc}))
		must(bouncer.dp.UpsertBouncerEntries(dataplane.BouncerEntry{VNI: vni, IP: ip, Host: h.ip}))
		eps = append(eps, endpoint{ns: ns, ip: ip})
	}

	res, err := testbed.Ping(eps[0].ns, eps[1].ip, 5, 2*time.Second)
	if err != nil {
		for _, h := range hosts {
			c, _ := h.dp.Counters()
			t.Logf("%v: %v", h.ip, c)
		}
		t.Fatalf("ping %v -> %v through the overlay: %v", eps[0].ip, eps[1].ip, err)
	}
	t.Logf("ping: %d/%d, first rtt %v", res.Received, res.Sent, res.RTTs[0])

	bc, err := bouncer.dp.Counters()
	must(err)
	if bc.Get(dataplane.ReasonBounced) == 0 {
		t.Errorf("bouncer bounced nothing: %v", bc)
	}
	// Each host learned where the other endpoint lives from the packets it received.
	for i, h := range hosts[:2] {
		other := eps[1-i].ip
		if got, ok := h.dp.Learned(vni, other); !ok || got != hosts[1-i].ip {
			t.Errorf("host %v learned %v for %v, want %v", h.ip, got, other, hosts[1-i].ip)
		}
	}

	before, err := bouncer.dp.Counters()
	must(err)
	tcp, err := testbed.TCPExchange(eps[1].ns, eps[0].ns, eps[0].ip, 0, 4<<20, 20*time.Second)
	if err != nil {
		t.Fatalf("tcp %v -> %v through the overlay: %v", eps[1].ip, eps[0].ip, err)
	}
	t.Logf("tcp: %d bytes echoed intact in %v (%.0f Mbit/s)", tcp.Bytes, tcp.Duration, tcp.BitsPerSecond/1e6)
	after, err := bouncer.dp.Counters()
	must(err)
	if n := after.Sub(before).Get(dataplane.ReasonBounced); n != 0 {
		t.Errorf("bouncer bounced %d packets after the direct path was learned", n)
	}
	for _, h := range hosts[:2] {
		c, err := h.dp.Counters()
		must(err)
		if c.Get(dataplane.ReasonDirectHit) == 0 || c.Get(dataplane.ReasonDelivered) == 0 {
			t.Errorf("host %v: no direct-path hits or deliveries: %v", h.ip, c)
		}
		if c.Get(dataplane.ReasonMalformed)+c.Get(dataplane.ReasonTooBig) != 0 {
			t.Errorf("host %v dropped packets: %v", h.ip, c)
		}
	}

	udp, err := testbed.UDPExchange(eps[0].ns, eps[1].ns, eps[1].ip, 0, 20, 2*time.Second)
	if err != nil {
		t.Fatalf("udp %v -> %v: %v", eps[0].ip, eps[1].ip, err)
	}
	t.Logf("udp: %d/%d echoed", udp.Received, udp.Sent)
}
