package dataplane_test

import (
	"log/slog"
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
func TestRealTraffic(t *testing.T) { realTraffic(t, dataplane.Agent, false) }

// TestAgentTCTraffic is TestRealTraffic with the tc agent: the endpoints keep TSO, so the TCP
// exchange hands the agent GSO super-packets to encapsulate whole.
func TestAgentTCTraffic(t *testing.T) { realTraffic(t, dataplane.AgentTC, false) }

// TestAgentTCTrafficGRO is the tc agent with endpoints receiving through GRO, no XDP on their
// eth0.
func TestAgentTCTrafficGRO(t *testing.T) { realTraffic(t, dataplane.AgentTC, true) }

func realTraffic(t *testing.T, agent dataplane.Program, gro bool) {
	lab, log, must := newLab(t)
	o, err := testbed.BuildOverlay(lab, testbed.OverlaySpec{Hosts: 3, Bouncers: []int{2}, Endpoints: []int{0, 1}, Agent: agent, EndpointGRO: gro}, log)
	must(err)
	t.Cleanup(func() { o.Close() })
	vni := o.Spec.VNI
	hosts, bouncer, eps := o.Hosts, o.Hosts[2], o.Endpoints

	res, err := testbed.Ping(eps[0].NS, eps[1].IP, 5, 2*time.Second)
	if err != nil {
		for _, h := range hosts {
			c, _ := h.DP.Counters()
			t.Logf("%v: %v", h.IP, c)
		}
		t.Fatalf("ping %v -> %v through the overlay: %v", eps[0].IP, eps[1].IP, err)
	}
	t.Logf("ping: %d/%d, first rtt %v", res.Received, res.Sent, res.RTTs[0])

	bc, err := bouncer.DP.Counters()
	must(err)
	if bc.Get(dataplane.ReasonBounced) == 0 {
		t.Errorf("bouncer bounced nothing: %v", bc)
	}
	// Each host learned where the other endpoint lives from the packets it received.
	for i, h := range hosts[:2] {
		other := eps[1-i].IP
		if got, ok := h.DP.Learned(vni, other); !ok || got != hosts[1-i].IP {
			t.Errorf("host %v learned %v for %v, want %v", h.IP, got, other, hosts[1-i].IP)
		}
	}

	before, err := bouncer.DP.Counters()
	must(err)
	tcp, err := testbed.TCPExchange(eps[1].NS, eps[0].NS, eps[0].IP, 0, 4<<20, 20*time.Second)
	if err != nil {
		t.Fatalf("tcp %v -> %v through the overlay: %v", eps[1].IP, eps[0].IP, err)
	}
	t.Logf("tcp: %d bytes echoed intact in %v (%.0f Mbit/s)", tcp.Bytes, tcp.Duration, tcp.BitsPerSecond/1e6)
	after, err := bouncer.DP.Counters()
	must(err)
	if n := after.Sub(before).Get(dataplane.ReasonBounced); n != 0 {
		t.Errorf("bouncer bounced %d packets after the direct path was learned", n)
	}
	for _, h := range hosts[:2] {
		c, err := h.DP.Counters()
		must(err)
		if c.Get(dataplane.ReasonDirectHit) == 0 || c.Get(dataplane.ReasonDelivered) == 0 {
			t.Errorf("host %v: no direct-path hits or deliveries: %v", h.IP, c)
		}
		if c.Get(dataplane.ReasonMalformed)+c.Get(dataplane.ReasonTooBig) != 0 {
			t.Errorf("host %v dropped packets: %v", h.IP, c)
		}
	}

	udp, err := testbed.UDPExchange(eps[0].NS, eps[1].NS, eps[1].IP, 0, 20, 2*time.Second)
	if err != nil {
		t.Fatalf("udp %v -> %v: %v", eps[0].IP, eps[1].IP, err)
	}
	t.Logf("udp: %d/%d echoed", udp.Received, udp.Sent)
}

// TestStaleDirectPathHeals moves an endpoint to another host after the direct path toward it was
// learned: the old host sends what still arrives on to the bouncer, the endpoint answers from its
// new host, and the sender learns the new place. No packet is lost.
func TestStaleDirectPathHeals(t *testing.T) {
	lab, log, must := newLab(t)
	// Hosts 0..3; bouncer on 3; endpoints on 0, 1 and 2; the one on 1 moves to 2.
	o, err := testbed.BuildOverlay(lab, testbed.OverlaySpec{Hosts: 4, Bouncers: []int{3}, Endpoints: []int{0, 1, 2}}, log)
	must(err)
	t.Cleanup(func() { o.Close() })
	vni := o.Spec.VNI
	src, moving := o.Endpoints[0], o.Endpoints[1]
	old, dst, bouncer := o.Hosts[1], o.Hosts[2], o.Hosts[3]

	if _, err := testbed.Ping(src.NS, moving.IP, 3, 2*time.Second); err != nil {
		t.Fatalf("ping before the move: %v", err)
	}
	if h, ok := o.Hosts[0].DP.Learned(vni, moving.IP); !ok || h != old.IP {
		t.Fatalf("before the move, host 0 learned %v %v for %v, want %v", h, ok, moving.IP, old.IP)
	}

	// The move: the old host forgets the endpoint, the bouncer points to the new host, and an
	// endpoint with the same address starts there. Host 0 is not told.
	must(old.DP.DeleteEndpoint(vni, moving.IP))
	must(bouncer.DP.UpsertBouncerEntries(dataplane.BouncerEntry{VNI: vni, IP: moving.IP, Host: dst.IP}))
	if _, err := o.AddEndpointAt(lab, 2, "moved", moving.IP, o.Gateway()); err != nil {
		t.Fatal(err)
	}
	before, err := old.DP.Counters()
	must(err)
	res, err := testbed.Ping(src.NS, moving.IP, 10, 2*time.Second)
	if err != nil {
		t.Fatalf("ping after the move: %v (a stale direct path must not black-hole traffic)", err)
	}
	after, err := old.DP.Counters()
	must(err)
	if n := after.Sub(before).Get(dataplane.ReasonRerouted); n == 0 {
		t.Errorf("the old host rerouted nothing: the stale path was not exercised")
	}
	if h, ok := o.Hosts[0].DP.Learned(vni, moving.IP); !ok || h != dst.IP {
		t.Errorf("after the move, host 0 learned %v %v, want the new host %v", h, ok, dst.IP)
	}
	t.Logf("after the move: %d/%d replies, rerouted by the old host: %d", res.Received, res.Sent, after.Sub(before).Get(dataplane.ReasonRerouted))
}

// newLab is a lab removed at the end of the test, its logger, and a fatal error check.
func newLab(t *testing.T) (*testbed.Lab, *slog.Logger, func(error)) {
	if os.Geteuid() != 0 {
		t.Fatal("this test creates network namespaces and needs root (CI runs as root)")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	lab := testbed.NewLab(testbed.NewPrefix(), log)
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("clean up: %v", err)
		}
	})
	return lab, log, func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
}
