package testbed_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"path/filepath"
	"slices"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/mizar-net/mizar/controlplane"
	"github.com/mizar-net/mizar/dataplane"
	scenario "github.com/mizar-net/mizar/scenarios"
	"github.com/mizar-net/mizar/testbed"
)

// A breakCase proves a scenario's checks can fail: apply, run through the cluster just before
// step at, breaks what the scenario relies on, and step fails (a check or a measurement at or
// after at) must then fail. The steps before at must pass, as the library suite shows they do
// unbroken.
type breakCase struct {
	what      string
	at, fails int
	// prepare, when set, edits the loaded scenario first (say, a timeout only a break makes
	// run out, shortened so the failure comes quickly).
	prepare func(*scenario.Scenario)
	// apply breaks the running scenario; the stop it may return ends the break after the step.
	apply func(*testbed.Run) (stop func())
}

// breaks holds at least one break per library file: a file without one fails the suite, so a
// new scenario comes with proof that its checks can fail.
var breaks = map[string][]breakCase{
	"quickstart.yaml": {{
		what: "the bouncer forgets the network's endpoints", at: 0, fails: 0,
		apply: func(run *testbed.Run) func() { dropBouncerEntries(run, "blue", "front"); return nil },
	}},
	"routed.yaml": {{
		what: "the bouncer behind the router forgets the network's endpoints", at: 0, fails: 0,
		apply: func(run *testbed.Run) func() { dropBouncerEntries(run, "blue", "front"); return nil },
	}},
	"multi-bouncer.yaml": {{
		what: "every bouncer forgets the network's endpoints", at: 0, fails: 0,
		apply: func(run *testbed.Run) func() { dropBouncerEntries(run, "blue", "web"); return nil },
	}},
	"same-host.yaml": {{
		what: "a2's host forgets it, so a1 cannot deliver to it on the host", at: 0, fails: 0,
		apply: func(run *testbed.Run) func() {
			v, e := endpoint(run, "blue", "a2")
			Expect(dp(host(run, e.Host)).DeleteEndpoint(v.VNI, e.IP)).To(Succeed())
			return nil
		},
	}},
	"isolation.yaml": {{
		what: "red-a's host programs it into blue at its address, across the VNIs", at: 2, fails: 2,
		apply: func(run *testbed.Run) func() {
			blue := state(run).VPCs["blue"]
			red, redA := endpoint(run, "red", "red-a")
			h := host(run, redA.Host)
			veth, err := testbed.LinkByName(h.NS, controlplane.HostVeth(red.VNI, redA.IP))
			Expect(err).NotTo(HaveOccurred())
			// red-a's veth now says blue: blue-a's packets to 10.0.1.11 are delivered to red-a,
			// and red-a's replies go back to blue-a.
			Expect(dp(h).UpsertEndpoint(dataplane.Endpoint{
				VNI: blue.VNI, IP: redA.IP, MAC: controlplane.EndpointMAC(red.VNI, redA.IP),
				Ifindex: veth.Attrs().Index, NetID: blue.Networks["web"].ID, VPC: blue.CIDR,
			})).To(Succeed())
			return nil
		},
	}},
	"dividers.yaml": {{
		what: "every host forgets the VPC's dividers", at: 0, fails: 0,
		apply: func(run *testbed.Run) func() {
			c := run.Cluster()
			v := state(run).VPCs["blue"]
			dividers, err := c.Controller.Dividers("blue")
			Expect(err).NotTo(HaveOccurred())
			bouncers := map[string]bool{}
			for n := range v.Networks {
				names, err := c.Controller.Bouncers("blue", n)
				Expect(err).NotTo(HaveOccurred())
				for _, b := range names {
					bouncers[b] = true
				}
			}
			for _, h := range c.Hosts() {
				Expect(dp(h).UpsertVPC(dataplane.VPC{VNI: v.VNI, Divider: slices.Contains(dividers, h.Name), Bouncer: bouncers[h.Name]})).To(Succeed())
			}
			return nil
		},
	}},
	"scale-live.yaml": {{
		what: "the scaled-out bouncers forget the network's endpoints, hosts their direct paths", at: 7, fails: 7,
		apply: func(run *testbed.Run) func() {
			dropBouncerEntries(run, "blue", "web")
			forgetLearned(run, "blue")
			return nil
		},
	}},
	"recreate.yaml": {{
		what: "something still answers at the deleted endpoint's address", at: 2, fails: 2,
		apply: func(run *testbed.Run) func() {
			_, err := run.Cluster().Controller.CreateEndpoint(context.Background(), controlplane.Endpoint{
				Name: "ghost", VPC: "blue", Network: "web", Host: "h2", IP: netip.MustParseAddr("10.0.1.30"),
			})
			Expect(err).NotTo(HaveOccurred())
			return nil
		},
	}},
	"direct-path.yaml": {{
		what: "hosts that are not the bouncer have no next hop to each other, so they never learn a direct path", at: 1, fails: 1,
		apply: func(run *testbed.Run) func() {
			bouncers, err := run.Cluster().Controller.Bouncers("blue", "app")
			Expect(err).NotTo(HaveOccurred())
			for _, x := range run.Cluster().Hosts() {
				for _, y := range run.Cluster().Hosts() {
					if x != y && !slices.Contains(bouncers, x.Name) && !slices.Contains(bouncers, y.Name) {
						Expect(dp(x).DeleteNeighbor(y.IP)).To(Succeed())
					}
				}
			}
			forgetLearned(run, "blue")
			return nil
		},
	}},
	"host-failure.yaml": {{
		what: "the failed host's bouncer role is not re-placed", at: 3, fails: 3,
		prepare: func(sc *scenario.Scenario) { sc.Steps[3].Measure.Recovery.Timeout = 5 * time.Second },
		apply: func(run *testbed.Run) func() {
			failed := host(run, run.Steps()[2].Fail.Host)
			v := state(run).VPCs["blue"]
			n := v.Networks["app"]
			// Hosts still send to the failed host as the network's bouncer, and the host the
			// role moved to does not know the network's endpoints.
			for _, h := range run.Cluster().Hosts() {
				if h != failed {
					Expect(dp(h).SetBouncers(v.VNI, n.ID, []netip.Addr{failed.IP})).To(Succeed())
				}
			}
			dropBouncerEntries(run, "blue", "app")
			return nil
		},
	}},
}

var _ = Describe("breaking the scenario library", Label("privileged"), Serial, func() {
	files := libraryFiles()
	names := map[string]bool{}
	for _, f := range files {
		names[filepath.Base(f)] = true
	}
	It("has no break for a file that is not in the library", func() {
		for name := range breaks {
			Expect(names).To(HaveKey(name), "breaks has %s, which %s does not match", name, library)
		}
	})
	for _, f := range files {
		name := filepath.Base(f)
		cases, ok := breaks[name]
		if !ok || len(cases) == 0 {
			It(name+" has a break", func() {
				Fail(fmt.Sprintf("%s has no entry in breaks (scenario_break_test.go): add one that makes one of its checks fail", name))
			})
			continue
		}
		for _, b := range cases {
			It(fmt.Sprintf("%s fails when %s", name, b.what), func() {
				sc, err := scenario.Load(f)
				Expect(err).NotTo(HaveOccurred())
				if b.prepare != nil {
					b.prepare(sc)
				}
				Expect(b.at).To(BeNumerically("<=", b.fails))
				Expect(b.fails).To(BeNumerically("<", len(sc.Steps)))
				Expect(sc.Steps[b.fails].Kind()).To(BeElementOf("check", "measure"), "step %d must be a check", b.fails)
				// One failed pair is proof enough, and every failure waits out its timeouts.
				opts := testbed.RunOptions{Prefix: testbed.NewPrefix(), Progress: GinkgoWriter, FailFast: true}
				run, err := testbed.Up(context.Background(), sc, opts, nil)
				Expect(err).NotTo(HaveOccurred())
				DeferCleanup(func() {
					// A break may well make a running transfer fail too: only what is left matters.
					if err := run.Down(); err != nil {
						GinkgoWriter.Printf("down: %v\n", err)
					}
					expectNothingLeft(run.Prefix())
				})
				for i := 0; i <= b.fails; i++ {
					if i == b.at {
						if stop := b.apply(run); stop != nil {
							defer stop()
						}
					}
					res := run.Step(context.Background(), i)
					switch {
					case i < b.at:
						if res.Err != nil {
							logCounters(run)
						}
						Expect(res.Err).NotTo(HaveOccurred(), "line %d, before the break", res.Line)
					case i == b.fails:
						Expect(res.Err).To(HaveOccurred(), "line %d (%s %s) passed although %s", res.Line, res.Kind, res.What, b.what)
						GinkgoWriter.Printf("as expected, line %d failed: %v\n", res.Line, res.Err)
					}
				}
			})
		}
	}
})

func state(run *testbed.Run) *controlplane.State { return run.Cluster().Controller.State() }

func host(run *testbed.Run, name string) *testbed.ClusterHost {
	GinkgoHelper()
	h, ok := run.Cluster().Host(name)
	Expect(ok).To(BeTrue(), "host %s", name)
	return h
}

func endpoint(run *testbed.Run, vpc, name string) (controlplane.VPCState, controlplane.Endpoint) {
	GinkgoHelper()
	v, ok := state(run).VPCs[vpc]
	Expect(ok).To(BeTrue(), "vpc %s", vpc)
	e, ok := v.Endpoints[name]
	Expect(ok).To(BeTrue(), "endpoint %s/%s", vpc, name)
	return v, e
}

// addresses lists the endpoints of a VPC, or of one of its networks when network is set.
func addresses(v controlplane.VPCState, network string) []netip.Addr {
	var ips []netip.Addr
	for _, name := range slices.Sorted(maps.Keys(v.Endpoints)) {
		if e := v.Endpoints[name]; network == "" || e.Network == network {
			ips = append(ips, e.IP)
		}
	}
	return ips
}

// dropBouncerEntries removes a network's endpoints from the tables of its bouncers.
func dropBouncerEntries(run *testbed.Run, vpc, network string) {
	GinkgoHelper()
	v := state(run).VPCs[vpc]
	names, err := run.Cluster().Controller.Bouncers(vpc, network)
	Expect(err).NotTo(HaveOccurred())
	Expect(names).NotTo(BeEmpty())
	for _, name := range names {
		Expect(dp(host(run, name)).DeleteBouncerEntries(v.VNI, addresses(v, network)...)).To(Succeed(), "bouncer %s", name)
	}
}

// forgetLearned drops every direct path toward a VPC's endpoints, on every host.
func forgetLearned(run *testbed.Run, vpc string) {
	GinkgoHelper()
	Expect(forgetAll(run, vpc)).To(Succeed())
}

func forgetAll(run *testbed.Run, vpc string) error {
	v := state(run).VPCs[vpc]
	ips := addresses(v, "")
	var errs []error
	for _, h := range run.Cluster().Hosts() {
		for _, ip := range ips {
			errs = append(errs, dp(h).ForgetLearned(v.VNI, ip))
		}
	}
	return errors.Join(errs...)
}

// dp is a host's data plane in this process: the breaks write to it directly, which the
// suite's clusters (in-process agents) allow.
func dp(h *testbed.ClusterHost) *dataplane.Dataplane {
	GinkgoHelper()
	d, ok := h.DP.(*dataplane.Dataplane)
	Expect(ok).To(BeTrue(), "host %s: data plane %T is not in this process", h.Name, h.DP)
	return d
}
