package testbed

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mizar-net/mizar/controlplane"
	"github.com/mizar-net/mizar/dataplane"
)

// TestCluster drives a real control plane onto real data planes: three hosts, two VPCs with the
// same CIDR, endpoints created through the controller. Endpoints in one VPC reach each other;
// the same address in the other VPC does not answer; an endpoint costs its network's bouncers
// plus one writes.
func TestCluster(t *testing.T) { clusterTest(t, ClusterOptions{}) }

// TestClusterXDPAgent is TestCluster with the XDP agent on every endpoint veth instead of the
// default tc agent.
func TestClusterXDPAgent(t *testing.T) {
	clusterTest(t, ClusterOptions{AgentProgram: dataplane.Agent})
}

func clusterTest(t *testing.T, opts ClusterOptions) {
	requireRoot(t)
	ctx := context.Background()
	c, err := NewCluster(NewPrefix(), opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	a, b, cr, bouncer := overlayOnThreeHosts(t, c)
	// A fourth endpoint on a host already in the VPC: exactly bouncers + 1 writes.
	bEp, err := c.Controller.Endpoint("blue", "b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Controller.CreateEndpoint(ctx, controlplane.Endpoint{Name: "d", VPC: "blue", Network: "web", Host: bEp.Host}); err != nil {
		t.Fatal(err)
	}
	if w := c.Controller.Stats().Last["CreateEndpoint"]; w.Total != 2 {
		t.Errorf("endpoint d cost %d writes (%v), want 2 (one bouncer + its host)", w.Total, w.PerHost)
	}
	checkOverlay(t, c, a, b, cr, bouncer)

	// Deleting an endpoint removes its namespace and stops its address answering.
	if err := c.Controller.DeleteEndpoint(ctx, "blue", "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := Ping(a.NS, b.IP, 2, 300*time.Millisecond); !errors.Is(err, ErrPacketLoss) {
		t.Errorf("deleted b still answers: %v", err)
	}
}

// TestControllerRestart keeps state on disk, restarts the controller while a TCP stream runs
// between two endpoints, and reconciles: the stream survives, state is intact.
func TestControllerRestart(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	store, err := controlplane.OpenBoltStore(t.TempDir() + "/state.db")
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	c, err := NewCluster(NewPrefix(), ClusterOptions{Store: store}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range []string{"h1", "h2", "h3"} {
		_, err := c.AddHost(ctx, h)
		must(err)
	}
	_, err = c.Controller.CreateVPC(ctx, controlplane.VPC{Name: "blue", CIDR: netip.MustParsePrefix("10.0.0.0/16"), Dividers: 1})
	must(err)
	_, err = c.Controller.CreateNetwork(ctx, controlplane.Network{Name: "web", VPC: "blue", CIDR: netip.MustParsePrefix("10.0.1.0/24"), Bouncers: 1})
	must(err)
	for _, e := range []controlplane.Endpoint{{Name: "a", VPC: "blue", Network: "web", Host: "h1"}, {Name: "b", VPC: "blue", Network: "web", Host: "h2"}} {
		_, err := c.Controller.CreateEndpoint(ctx, e)
		must(err)
	}
	a, err := c.Workload("blue", "a")
	must(err)
	b, err := c.Workload("blue", "b")
	must(err)
	stream, err := StartTCPStream(a.NS, b.NS, b.IP, 0, StreamOptions{})
	must(err)
	time.Sleep(300 * time.Millisecond)
	must(c.RestartController(ctx))
	if w := c.Controller.Stats().Last["Reconcile"]; w.Total == 0 {
		t.Errorf("reconcile sent nothing")
	}
	time.Sleep(300 * time.Millisecond)
	res, err := stream.Stop()
	if err != nil {
		t.Fatalf("tcp stream across the restart: %v", err)
	}
	if _, err := c.Controller.Endpoint("blue", "b"); err != nil {
		t.Errorf("after restart: %v", err)
	}
	t.Logf("stream across the controller restart: %+v", res)
}

// fiveHosts brings up a cluster of five hosts with VPC blue and network web of n bouncers, and
// returns the hosts that are not bouncers.
func fiveHosts(t *testing.T, bouncers int) (*Cluster, []string) {
	t.Helper()
	requireRoot(t)
	ctx := context.Background()
	c, err := NewCluster(NewPrefix(), ClusterOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for _, h := range []string{"h1", "h2", "h3", "h4", "h5"} {
		if _, err := c.AddHost(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Controller.CreateVPC(ctx, controlplane.VPC{Name: "blue", CIDR: netip.MustParsePrefix("10.0.0.0/16"), Dividers: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Controller.CreateNetwork(ctx, controlplane.Network{Name: "web", VPC: "blue", CIDR: netip.MustParsePrefix("10.0.1.0/24"), Bouncers: bouncers}); err != nil {
		t.Fatal(err)
	}
	bs, err := c.Controller.Bouncers("blue", "web")
	if err != nil {
		t.Fatal(err)
	}
	var others []string
	for _, h := range []string{"h1", "h2", "h3", "h4", "h5"} {
		if !slices.Contains(bs, h) {
			others = append(others, h)
		}
	}
	return c, others
}

func workload(t *testing.T, c *Cluster, name, host string) Workload {
	t.Helper()
	if _, err := c.Controller.CreateEndpoint(context.Background(), controlplane.Endpoint{Name: name, VPC: "blue", Network: "web", Host: host}); err != nil {
		t.Fatal(err)
	}
	w, err := c.Workload("blue", name)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestScaleWhileStreaming adds and removes bouncers and dividers while a TCP transfer runs: it
// must not break, and endpoints that never talked still reach each other after each change.
func TestScaleWhileStreaming(t *testing.T) {
	ctx := context.Background()
	c, others := fiveHosts(t, 1)
	a, b := workload(t, c, "a", others[0]), workload(t, c, "b", others[1])
	x, y := workload(t, c, "x", others[0]), workload(t, c, "y", others[1])
	stream, err := StartTCPStream(a.NS, b.NS, b.IP, 0, StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		do   func() error
	}{
		{"bouncers 1 -> 3", func() error { return c.Controller.ScaleBouncers(ctx, "blue", "web", 3) }},
		{"dividers 1 -> 2", func() error { return c.Controller.ScaleDividers(ctx, "blue", 2) }},
		{"bouncers 3 -> 1", func() error { return c.Controller.ScaleBouncers(ctx, "blue", "web", 1) }},
		{"dividers 2 -> 1", func() error { return c.Controller.ScaleDividers(ctx, "blue", 1) }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		time.Sleep(200 * time.Millisecond)
		if _, err := UDPExchange(x.NS, y.NS, y.IP, 0, 5, time.Second); err != nil {
			t.Errorf("after %s: x -> y over udp: %v", s.name, err)
		}
	}
	res, err := stream.Stop()
	if err != nil {
		t.Fatalf("tcp transfer across scaling: %v", err)
	}
	t.Logf("tcp transfer across four scaling steps: %d bytes verified in %v", res.Received, res.Duration)
}

// TestBouncerHostFailure fails the host of a network's only bouncer: the control plane moves
// the role, and endpoints that had not talked before reach each other again. The time from
// the failure to the first reply is the recovery time.
func TestBouncerHostFailure(t *testing.T) {
	ctx := context.Background()
	c, others := fiveHosts(t, 1)
	a, b := workload(t, c, "a", others[0]), workload(t, c, "b", others[1])
	bs, err := c.Controller.Bouncers("blue", "web")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c.FailHost(ctx, bs[0]); err != nil {
		t.Fatalf("fail %s: %v", bs[0], err)
	}
	after, err := c.Controller.Bouncers("blue", "web")
	if err != nil || len(after) != 1 || after[0] == bs[0] {
		t.Fatalf("bouncers after failing %s: %v %v", bs[0], after, err)
	}
	deadline := start.Add(10 * time.Second)
	for {
		if _, err := Ping(a.NS, b.IP, 1, 100*time.Millisecond); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a -> b not recovered 10s after the bouncer host %s failed", bs[0])
		}
	}
	t.Logf("bouncer moved %s -> %s; a reached b %v after the failure", bs[0], after[0], time.Since(start).Round(time.Millisecond))
}
