// Package example is a Ginkgo suite written against the testbed the way a user would: bring a
// cluster up, create VPCs and endpoints through the control plane, check with real traffic.
package example

import (
	"context"
	"net/netip"
	"os"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/mizar-net/mizar/controlplane"
	"github.com/mizar-net/mizar/testbed"
)

func TestExample(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this suite creates network namespaces and needs root (CI runs as root)")
	}
	RegisterFailHandler(Fail)
	RunSpecs(t, "testbed example")
}

var _ = Describe("two tenants with the same address space", Label("privileged"), Serial, func() {
	var (
		ctx     = context.Background()
		cluster *testbed.Cluster
	)

	BeforeEach(func() {
		var err error
		cluster, err = testbed.NewCluster(testbed.NewPrefix(), testbed.ClusterOptions{}, nil)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(cluster.Close)
		for _, h := range []string{"h1", "h2", "h3"} {
			_, err := cluster.AddHost(ctx, h)
			Expect(err).NotTo(HaveOccurred())
		}
		for _, vpc := range []string{"blue", "red"} {
			_, err := cluster.Controller.CreateVPC(ctx, controlplane.VPC{Name: vpc, CIDR: netip.MustParsePrefix("10.0.0.0/16"), Dividers: 1})
			Expect(err).NotTo(HaveOccurred())
			_, err = cluster.Controller.CreateNetwork(ctx, controlplane.Network{Name: "web", VPC: vpc, CIDR: netip.MustParsePrefix("10.0.1.0/24"), Bouncers: 1})
			Expect(err).NotTo(HaveOccurred())
		}
	})

	endpoint := func(vpc, name, host string, ip string) testbed.Workload {
		e := controlplane.Endpoint{Name: name, VPC: vpc, Network: "web", Host: host}
		if ip != "" {
			e.IP = netip.MustParseAddr(ip)
		}
		_, err := cluster.Controller.CreateEndpoint(ctx, e)
		Expect(err).NotTo(HaveOccurred())
		w, err := cluster.Workload(vpc, name)
		Expect(err).NotTo(HaveOccurred())
		return w
	}

	It("connects endpoints of one VPC over ICMP, TCP and UDP", func() {
		a := endpoint("blue", "a", "h1", "")
		b := endpoint("blue", "b", "h2", "")
		Expect(a).To(testbed.Reach(b, testbed.ICMP, testbed.TCP, testbed.UDP))
		Expect(b).To(testbed.Reach(a))
	})

	It("keeps VPCs apart even at the same address", func() {
		a := endpoint("blue", "a", "h1", "10.0.1.20")
		b := endpoint("blue", "b", "h3", "10.0.1.30")
		redA := endpoint("red", "a", "h2", "10.0.1.20")
		redOnly := endpoint("red", "d", "h3", "10.0.1.40")
		Expect(a).To(testbed.Reach(b))
		Expect(redA).To(testbed.Reach(redOnly))
		// 10.0.1.40 exists in red only: blue's a must not get there, nor red's a to blue's b.
		Expect(a).NotTo(testbed.Reach(redOnly))
		Expect(redA).NotTo(testbed.Reach(b))
	})

	It("stops answering at a deleted endpoint's address", func() {
		a := endpoint("blue", "a", "h1", "")
		b := endpoint("blue", "b", "h3", "")
		Expect(a).To(testbed.Reach(b))
		Expect(cluster.Controller.DeleteEndpoint(ctx, "blue", "b")).To(Succeed())
		Expect(a).NotTo(testbed.Reach(testbed.Workload{Name: "gone", NS: a.NS, IP: b.IP}))
	})
})
