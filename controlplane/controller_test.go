package controlplane

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
)

var ctx = context.Background()

func hostIP(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}) }

// newController returns a controller with hosts host-00 .. host-(n-1).
func newController(t *testing.T, n int) (*Controller, *RecordingAgents) {
	t.Helper()
	agents := NewRecordingAgents()
	c, err := New(Options{Agents: agents})
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range hostNames(n) {
		must(t, c.AddHost(ctx, Host{Name: name, IP: hostIP(i + 1), Interface: "eth0"}))
	}
	return c, agents
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustVPC(t *testing.T, c *Controller, v VPC) VPC {
	t.Helper()
	v, err := c.CreateVPC(ctx, v)
	must(t, err)
	return v
}

func mustNet(t *testing.T, c *Controller, n Network) Network {
	t.Helper()
	n, err := c.CreateNetwork(ctx, n)
	must(t, err)
	return n
}

func mustEP(t *testing.T, c *Controller, e Endpoint) Endpoint {
	t.Helper()
	e, err := c.CreateEndpoint(ctx, e)
	must(t, err)
	return e
}

var (
	pfx  = netip.MustParsePrefix
	addr = netip.MustParseAddr
)

// fixture: 4 hosts (host-03 failed), vpc blue 10.0.0.0/16 with network web 10.0.1.0/24 and
// endpoint e1 on host-00.
func fixture(t *testing.T) (*Controller, *RecordingAgents) {
	c, agents := newController(t, 4)
	mustVPC(t, c, VPC{Name: "blue", CIDR: pfx("10.0.0.0/16"), VNI: 100, Dividers: 2})
	mustNet(t, c, Network{Name: "web", VPC: "blue", CIDR: pfx("10.0.1.0/24"), Bouncers: 2})
	mustEP(t, c, Endpoint{Name: "e1", VPC: "blue", Network: "web", Host: "host-00"})
	must(t, c.FailHost(ctx, "host-03"))
	return c, agents
}

func totalOps(agents *RecordingAgents, hosts int) int {
	n := 0
	for _, h := range hostNames(hosts) {
		n += len(agents.Host(h).Ops())
	}
	return n
}

func TestValidation(t *testing.T) {
	ep := func(mod func(*Endpoint)) func(*Controller) error {
		return func(c *Controller) error {
			e := Endpoint{Name: "e2", VPC: "blue", Network: "web", Host: "host-01"}
			mod(&e)
			_, err := c.CreateEndpoint(ctx, e)
			return err
		}
	}
	vpc := func(mod func(*VPC)) func(*Controller) error {
		return func(c *Controller) error {
			v := VPC{Name: "red", CIDR: pfx("10.1.0.0/16"), Dividers: 1}
			mod(&v)
			_, err := c.CreateVPC(ctx, v)
			return err
		}
	}
	network := func(mod func(*Network)) func(*Controller) error {
		return func(c *Controller) error {
			n := Network{Name: "db", VPC: "blue", CIDR: pfx("10.0.2.0/24"), Bouncers: 1}
			mod(&n)
			_, err := c.CreateNetwork(ctx, n)
			return err
		}
	}
	host := func(h Host) func(*Controller) error {
		return func(c *Controller) error { return c.AddHost(ctx, h) }
	}
	tests := []struct {
		name string
		call func(*Controller) error
		want error
		text string // the error names the field
	}{
		{"host empty name", host(Host{IP: addr("198.18.1.1")}), ErrInvalid, "host name"},
		{"host bad name", host(Host{Name: "a b", IP: addr("198.18.1.1")}), ErrInvalid, "host name"},
		{"host no ip", host(Host{Name: "x"}), ErrInvalid, "ip"},
		{"host ipv6", host(Host{Name: "x", IP: addr("2001:db8::1")}), ErrInvalid, "ip"},
		{"host bad interface", host(Host{Name: "x", IP: addr("198.18.1.1"), Interface: "a/b"}), ErrInvalid, "interface"},
		{"host duplicate name", host(Host{Name: "host-01", IP: addr("198.18.1.1")}), ErrExists, "host-01"},
		{"host duplicate ip", host(Host{Name: "x", IP: hostIP(1)}), ErrConflict, "ip 198.18.0.1"},
		{"remove unknown host", func(c *Controller) error { return c.RemoveHost(ctx, "x") }, ErrNotFound, "x"},
		{"remove host with endpoints", func(c *Controller) error { return c.RemoveHost(ctx, "host-00") }, ErrConflict, "blue/e1"},
		{"fail unknown host", func(c *Controller) error { return c.FailHost(ctx, "x") }, ErrNotFound, "x"},
		{"recover unknown host", func(c *Controller) error { return c.RecoverHost(ctx, "x") }, ErrNotFound, "x"},

		{"vpc empty name", vpc(func(v *VPC) { v.Name = "" }), ErrInvalid, "vpc name"},
		{"vpc duplicate name", vpc(func(v *VPC) { v.Name = "blue" }), ErrExists, "blue"},
		{"vpc no cidr", vpc(func(v *VPC) { v.CIDR = netip.Prefix{} }), ErrInvalid, "cidr"},
		{"vpc ipv6 cidr", vpc(func(v *VPC) { v.CIDR = pfx("2001:db8::/48") }), ErrInvalid, "cidr"},
		{"vpc host bits", vpc(func(v *VPC) { v.CIDR = pfx("10.1.0.1/16") }), ErrInvalid, "cidr"},
		{"vpc cidr too long", vpc(func(v *VPC) { v.CIDR = pfx("10.1.0.0/31") }), ErrInvalid, "cidr"},
		{"vpc no dividers", vpc(func(v *VPC) { v.Dividers = 0 }), ErrInvalid, "dividers"},
		{"vpc too many dividers", vpc(func(v *VPC) { v.Dividers = MaxDividers + 1 }), ErrInvalid, "dividers"},
		{"vpc vni too big", vpc(func(v *VPC) { v.VNI = MaxVNI + 1 }), ErrInvalid, "vni"},
		{"vpc duplicate vni", vpc(func(v *VPC) { v.VNI = 100 }), ErrConflict, "vni 100"},
		{"delete unknown vpc", func(c *Controller) error { return c.DeleteVPC(ctx, "x", true) }, ErrNotFound, "x"},
		{"delete vpc with networks", func(c *Controller) error { return c.DeleteVPC(ctx, "blue", false) }, ErrConflict, "web"},
		{"scale dividers to 0", func(c *Controller) error { return c.ScaleDividers(ctx, "blue", 0) }, ErrInvalid, "dividers"},
		{"scale dividers of unknown vpc", func(c *Controller) error { return c.ScaleDividers(ctx, "x", 1) }, ErrNotFound, "x"},

		{"network empty name", network(func(n *Network) { n.Name = "" }), ErrInvalid, "network name"},
		{"network unknown vpc", network(func(n *Network) { n.VPC = "x" }), ErrNotFound, "vpc"},
		{"network duplicate name", network(func(n *Network) { n.Name = "web" }), ErrExists, "web"},
		{"network no cidr", network(func(n *Network) { n.CIDR = netip.Prefix{} }), ErrInvalid, "cidr"},
		{"network host bits", network(func(n *Network) { n.CIDR = pfx("10.0.2.1/24") }), ErrInvalid, "cidr"},
		{"network outside vpc", network(func(n *Network) { n.CIDR = pfx("10.9.0.0/24") }), ErrInvalid, "outside vpc"},
		{"network wider than vpc", network(func(n *Network) { n.CIDR = pfx("10.0.0.0/8") }), ErrInvalid, "outside vpc"},
		{"network overlaps sibling", network(func(n *Network) { n.CIDR = pfx("10.0.1.128/25") }), ErrConflict, "overlaps network web"},
		{"network contains sibling", network(func(n *Network) { n.CIDR = pfx("10.0.0.0/22") }), ErrConflict, "overlaps network web"},
		{"network no bouncers", network(func(n *Network) { n.Bouncers = 0 }), ErrInvalid, "bouncers"},
		{"network too many bouncers", network(func(n *Network) { n.Bouncers = MaxBouncers + 1 }), ErrInvalid, "bouncers"},
		{"network duplicate id", network(func(n *Network) { n.ID = 1 }), ErrConflict, "id 1"},
		{"delete unknown network", func(c *Controller) error { return c.DeleteNetwork(ctx, "blue", "x") }, ErrNotFound, "x"},
		{"delete network with endpoints", func(c *Controller) error { return c.DeleteNetwork(ctx, "blue", "web") }, ErrConflict, "e1"},
		{"scale bouncers to 0", func(c *Controller) error { return c.ScaleBouncers(ctx, "blue", "web", 0) }, ErrInvalid, "bouncers"},
		{"scale bouncers past max", func(c *Controller) error { return c.ScaleBouncers(ctx, "blue", "web", 17) }, ErrInvalid, "bouncers"},
		{"scale bouncers of unknown network", func(c *Controller) error { return c.ScaleBouncers(ctx, "blue", "x", 1) }, ErrNotFound, "x"},

		{"endpoint empty name", ep(func(e *Endpoint) { e.Name = "" }), ErrInvalid, "endpoint name"},
		{"endpoint duplicate name", ep(func(e *Endpoint) { e.Name = "e1" }), ErrExists, "e1"},
		{"endpoint unknown vpc", ep(func(e *Endpoint) { e.VPC = "x" }), ErrNotFound, "vpc"},
		{"endpoint unknown network", ep(func(e *Endpoint) { e.Network = "x" }), ErrNotFound, "network"},
		{"endpoint unknown host", ep(func(e *Endpoint) { e.Host = "x" }), ErrNotFound, "host"},
		{"endpoint on failed host", ep(func(e *Endpoint) { e.Host = "host-03" }), ErrConflict, "host-03"},
		{"endpoint ipv6", ep(func(e *Endpoint) { e.IP = addr("2001:db8::5") }), ErrInvalid, "ip"},
		{"endpoint ip outside network", ep(func(e *Endpoint) { e.IP = addr("10.0.2.5") }), ErrInvalid, "outside network web"},
		{"endpoint network address", ep(func(e *Endpoint) { e.IP = addr("10.0.1.0") }), ErrInvalid, "reserved"},
		{"endpoint gateway", ep(func(e *Endpoint) { e.IP = addr("10.0.1.1") }), ErrInvalid, "reserved"},
		{"endpoint broadcast", ep(func(e *Endpoint) { e.IP = addr("10.0.1.255") }), ErrInvalid, "reserved"},
		{"endpoint ip taken", ep(func(e *Endpoint) { e.IP = addr("10.0.1.2") }), ErrConflict, "taken by endpoint e1"},
		{"endpoint wrong mac", ep(func(e *Endpoint) { e.MAC = net.HardwareAddr{2, 0, 0, 0, 0, 1} }), ErrInvalid, "mac"},
		{"delete unknown endpoint", func(c *Controller) error { return c.DeleteEndpoint(ctx, "blue", "x") }, ErrNotFound, "x"},
		{"delete endpoint of unknown vpc", func(c *Controller) error { return c.DeleteEndpoint(ctx, "x", "e1") }, ErrNotFound, "vpc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, agents := fixture(t)
			before := c.State()
			agents.ResetAll()
			err := tt.call(c)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got error %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q does not name %q", err, tt.text)
			}
			if after := c.State(); !reflect.DeepEqual(before, after) {
				t.Errorf("state changed on error:\nbefore %+v\nafter  %+v", before, after)
			}
			if n := totalOps(agents, 4); n != 0 {
				t.Errorf("%d ops sent on error", n)
			}
		})
	}
}

func TestNewNeedsAgents(t *testing.T) {
	if _, err := New(Options{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("New without agents: %v, want ErrInvalid", err)
	}
}

func TestTwoVPCsSameCIDR(t *testing.T) {
	c, _ := newController(t, 3)
	a := mustVPC(t, c, VPC{Name: "a", CIDR: pfx("10.0.0.0/16"), Dividers: 1})
	b := mustVPC(t, c, VPC{Name: "b", CIDR: pfx("10.0.0.0/16"), Dividers: 1})
	if a.VNI == b.VNI {
		t.Fatalf("both VPCs got VNI %d", a.VNI)
	}
	mustNet(t, c, Network{Name: "n", VPC: "a", CIDR: pfx("10.0.1.0/24"), Bouncers: 1})
	mustNet(t, c, Network{Name: "n", VPC: "b", CIDR: pfx("10.0.1.0/24"), Bouncers: 1})
	ea := mustEP(t, c, Endpoint{Name: "e", VPC: "a", Network: "n", Host: "host-00"})
	eb := mustEP(t, c, Endpoint{Name: "e", VPC: "b", Network: "n", Host: "host-00"})
	if ea.IP != eb.IP {
		t.Errorf("same first address expected in both VPCs, got %v and %v", ea.IP, eb.IP)
	}
	if ea.MAC.String() == eb.MAC.String() {
		t.Errorf("endpoints of different VNIs share MAC %v", ea.MAC)
	}
}

func TestAllocateIDs(t *testing.T) {
	c, _ := newController(t, 1)
	var vnis []uint32
	for _, v := range []VPC{
		{Name: "a", VNI: 0}, {Name: "b", VNI: 3}, {Name: "c", VNI: 0}, {Name: "d", VNI: 0}, {Name: "e", VNI: 0},
	} {
		v.CIDR, v.Dividers = pfx("10.0.0.0/8"), 1
		vnis = append(vnis, mustVPC(t, c, v).VNI)
	}
	if want := []uint32{1, 3, 2, 4, 5}; !slices.Equal(vnis, want) {
		t.Errorf("VNIs %v, want %v", vnis, want)
	}
	var ids []uint32
	for i, id := range []uint32{0, 0, 7, 0} {
		n := mustNet(t, c, Network{Name: fmt.Sprint("n", i), VPC: "a", CIDR: pfx(fmt.Sprintf("10.%d.0.0/16", i)), Bouncers: 1, ID: id})
		ids = append(ids, n.ID)
	}
	must(t, c.DeleteNetwork(ctx, "a", "n0"))
	n := mustNet(t, c, Network{Name: "again", VPC: "a", CIDR: pfx("10.9.0.0/16"), Bouncers: 1})
	ids = append(ids, n.ID)
	if want := []uint32{1, 2, 7, 3, 1}; !slices.Equal(ids, want) {
		t.Errorf("network IDs %v, want %v", ids, want)
	}
}

func TestIPAM(t *testing.T) {
	c, _ := newController(t, 2)
	mustVPC(t, c, VPC{Name: "v", CIDR: pfx("10.0.0.0/24"), Dividers: 1})
	// 10.0.0.8/29: .8 network, .9 gateway, .15 broadcast; .10-.14 for endpoints.
	mustNet(t, c, Network{Name: "n", VPC: "v", CIDR: pfx("10.0.0.8/29"), Bouncers: 1})
	create := func(name string, ip netip.Addr) (Endpoint, error) {
		return c.CreateEndpoint(ctx, Endpoint{Name: name, VPC: "v", Network: "n", Host: "host-01", IP: ip})
	}
	var got []string
	for i := range 5 {
		e, err := create(fmt.Sprint("e", i), netip.Addr{})
		must(t, err)
		got = append(got, e.IP.String())
	}
	if want := []string{"10.0.0.10", "10.0.0.11", "10.0.0.12", "10.0.0.13", "10.0.0.14"}; !slices.Equal(got, want) {
		t.Fatalf("allocated %v, want %v", got, want)
	}
	if _, err := create("full", netip.Addr{}); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "no free address") {
		t.Fatalf("allocation in a full network: %v, want ErrConflict naming no free address", err)
	}
	must(t, c.DeleteEndpoint(ctx, "v", "e3"))
	must(t, c.DeleteEndpoint(ctx, "v", "e1"))
	if e, _ := create("x", netip.Addr{}); e.IP != addr("10.0.0.11") {
		t.Errorf("after deletes, allocated %v, want the lowest free 10.0.0.11", e.IP)
	}
	if e, err := create("y", addr("10.0.0.13")); err != nil || e.IP != addr("10.0.0.13") {
		t.Errorf("explicit free address: %v %v", e.IP, err)
	}
	e, err := c.Endpoint("v", "y")
	must(t, err)
	if e.MAC.String() != EndpointMAC(1, addr("10.0.0.13")).String() {
		t.Errorf("stored MAC %v, want derived", e.MAC)
	}
}

func TestEndpointMAC(t *testing.T) {
	m := EndpointMAC(0x123456, addr("10.1.2.3"))
	if m.String() != "02:56:0a:01:02:03" {
		t.Errorf("MAC %v", m)
	}
	if m[0]&2 == 0 || m[0]&1 != 0 {
		t.Errorf("MAC %v is not locally administered unicast", m)
	}
	if v := HostVeth(0x123456, addr("10.1.2.3")); v != "v1234560a010203" || len(v) > 15 {
		t.Errorf("veth %q", v)
	}
}

// opsByHost returns the ops each agent received since the last reset, by host.
func opsByHost(agents *RecordingAgents, n int) map[string][]Op {
	out := map[string][]Op{}
	for _, h := range hostNames(n) {
		if ops := agents.Host(h).Ops(); len(ops) > 0 {
			out[h] = ops
		}
	}
	return out
}

func TestCreateEndpointWrites(t *testing.T) {
	const bouncers, dividers = 3, 2
	for _, hosts := range []int{3, 10, 50} {
		t.Run(fmt.Sprint(hosts, "-hosts"), func(t *testing.T) {
			c, agents := newController(t, hosts)
			mustVPC(t, c, VPC{Name: "v", CIDR: pfx("10.0.0.0/16"), Dividers: dividers})
			mustNet(t, c, Network{Name: "other", VPC: "v", CIDR: pfx("10.0.9.0/24"), Bouncers: 1})
			mustNet(t, c, Network{Name: "n", VPC: "v", CIDR: pfx("10.0.1.0/24"), Bouncers: bouncers})
			bs, err := c.Bouncers("v", "n")
			must(t, err)
			isBouncer := map[string]bool{}
			for _, b := range bs {
				isBouncer[b] = true
			}

			// A host not yet in the VPC joins it with its first endpoint: the VPC, and each
			// network and its bouncer set, once.
			outsider := ""
			for _, h := range hostNames(hosts) {
				if !c.isMember("v", h) {
					outsider = h
					break
				}
			}
			if outsider != "" {
				agents.ResetAll()
				mustEP(t, c, Endpoint{Name: "first", VPC: "v", Network: "n", Host: outsider})
				join := 1 + 2*2
				if got := c.Stats().Last["CreateEndpoint"].Total; got != bouncers+1+join {
					t.Errorf("first endpoint on a new host: %d writes, want %d", got, bouncers+1+join)
				}
			}

			for i, host := range []string{"host-00", "host-01", hostNames(hosts)[hosts-1]} {
				mustEP(t, c, Endpoint{Name: fmt.Sprint("warm", i), VPC: "v", Network: "n", Host: host})
				agents.ResetAll()
				e := mustEP(t, c, Endpoint{Name: fmt.Sprint("e", i), VPC: "v", Network: "n", Host: host})
				w := c.Stats().Last["CreateEndpoint"]
				if w.Total != bouncers+1 {
					t.Errorf("endpoint on %s: %d writes (%v), want %d", host, w.Total, w.PerHost, bouncers+1)
				}
				got := opsByHost(agents, hosts)
				for h, ops := range got {
					if w.PerHost[h] != len(ops) {
						t.Errorf("stats say %d writes to %s, agent got %d", w.PerHost[h], h, len(ops))
					}
					if h != host && !isBouncer[h] {
						t.Errorf("host %s is neither the endpoint's host nor a bouncer, got %v", h, ops)
					}
				}
				hostIP := c.State().Hosts[host].IP
				for _, b := range bs {
					want := Op{Kind: OpUpsertBouncerEntry, VNI: 1, IP: e.IP, Host: hostIP}
					if !slices.ContainsFunc(got[b], func(o Op) bool { return opEqual(o, want) }) {
						t.Errorf("bouncer %s did not get %v: %v", b, want, got[b])
					}
				}
				want := Op{Kind: OpUpsertEndpoint, VNI: 1, IP: e.IP, MAC: e.MAC, Interface: HostVeth(1, e.IP), NetID: 2, VPCCIDR: pfx("10.0.0.0/16")}
				if !slices.ContainsFunc(got[host], func(o Op) bool { return opEqual(o, want) }) {
					t.Errorf("host %s did not get %v: %v", host, want, got[host])
				}
			}
		})
	}
}

// isMember tells whether host holds VPC vpc's state.
func (c *Controller) isMember(vpc, host string) bool {
	d := desired{}
	desiredVPC(d, c.state, vpc, liveHosts(c.state), c.everyHost, nil)
	_, ok := d[host][opKey{kind: OpUpsertVPC, vni: c.state.VPCs[vpc].VNI}]
	return ok
}

func countKind(ops []Op, k OpKind) int {
	n := 0
	for _, o := range ops {
		if o.Kind == k {
			n++
		}
	}
	return n
}

func TestScaleBouncers(t *testing.T) {
	const hosts, eps = 12, 20
	c, agents := newController(t, hosts)
	mustVPC(t, c, VPC{Name: "v", CIDR: pfx("10.0.0.0/16"), Dividers: 1})
	mustNet(t, c, Network{Name: "n", VPC: "v", CIDR: pfx("10.0.1.0/24"), Bouncers: 2})
	for i := range eps {
		mustEP(t, c, Endpoint{Name: fmt.Sprint("e", i), VPC: "v", Network: "n", Host: hostNames(hosts)[i%3]})
	}
	old, _ := c.Bouncers("v", "n")
	agents.ResetAll()
	must(t, c.ScaleBouncers(ctx, "v", "n", 3))
	now, _ := c.Bouncers("v", "n")
	if len(now) != 3 || !slices.Equal(now[:2], old) {
		t.Fatalf("scale-out moved bouncers: %v -> %v", old, now)
	}
	added := now[2]
	for h, ops := range opsByHost(agents, hosts) {
		want := 0
		if h == added {
			want = eps
		}
		if got := countKind(ops, OpUpsertBouncerEntry); got != want {
			t.Errorf("%s got %d bouncer entries, want %d", h, got, want)
		}
		if got := countKind(ops, OpSetBouncers); got != 1 {
			t.Errorf("%s got %d bouncer sets, want 1: %v", h, got, ops)
		}
		if h != added && len(ops) != 1 {
			t.Errorf("member %s got more than the new bouncer set: %v", h, ops)
		}
	}
	if c.isMember("v", added) && len(agents.Host(added).Ops()) == 0 {
		t.Errorf("new bouncer %s got nothing", added)
	}

	agents.ResetAll()
	must(t, c.ScaleBouncers(ctx, "v", "n", 2))
	if got := countKind(agents.Host(added).Ops(), OpDeleteBouncerEntry); got != eps {
		t.Errorf("removed bouncer %s got %d entry deletes, want %d", added, got, eps)
	}
}

func TestFailHostMovesRoles(t *testing.T) {
	const hosts = 8
	c, agents := newController(t, hosts)
	mustVPC(t, c, VPC{Name: "v", CIDR: pfx("10.0.0.0/16"), Dividers: 2})
	mustNet(t, c, Network{Name: "n", VPC: "v", CIDR: pfx("10.0.1.0/24"), Bouncers: 2})
	old, _ := c.Bouncers("v", "n")
	epHost := ""
	for _, h := range hostNames(hosts) {
		if !slices.Contains(old, h) {
			epHost = h
			break
		}
	}
	for i := range 5 {
		mustEP(t, c, Endpoint{Name: fmt.Sprint("e", i), VPC: "v", Network: "n", Host: epHost})
	}
	agents.ResetAll()
	must(t, c.FailHost(ctx, old[0]))
	now, _ := c.Bouncers("v", "n")
	if slices.Contains(now, old[0]) || !slices.Contains(now, old[1]) || len(now) != 2 {
		t.Fatalf("bouncers after failing %s: %v -> %v", old[0], old, now)
	}
	if ops := agents.Host(old[0]).Ops(); len(ops) != 0 {
		t.Errorf("failed host was sent %v", ops)
	}
	repl := now[0]
	if repl == old[1] {
		repl = now[1]
	}
	if got := countKind(agents.Host(repl).Ops(), OpUpsertBouncerEntry); got != 5 {
		t.Errorf("replacement bouncer %s got %d entries, want 5", repl, got)
	}

	// The endpoints' host stays reachable through the live bouncers even when it fails.
	must(t, c.FailHost(ctx, epHost))
	for _, b := range now {
		if b == epHost {
			continue
		}
		if got := countKind(agents.Host(b).Table(), OpUpsertBouncerEntry); got != 5 {
			t.Errorf("bouncer %s lost entries of a failed host: holds %d", b, got)
		}
	}
}

func TestAgentErrorKeepsState(t *testing.T) {
	c, agents := newController(t, 1)
	mustVPC(t, c, VPC{Name: "v", CIDR: pfx("10.0.0.0/16"), Dividers: 1})
	mustNet(t, c, Network{Name: "n", VPC: "v", CIDR: pfx("10.0.1.0/24"), Bouncers: 1})
	boom := errors.New("boom")
	agents.Host("host-00").FailWith(boom)
	_, err := c.CreateEndpoint(ctx, Endpoint{Name: "e", VPC: "v", Network: "n", Host: "host-00"})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "host-00") {
		t.Fatalf("got %v, want boom naming host-00", err)
	}
	if _, err := c.Endpoint("v", "e"); err != nil {
		t.Fatalf("endpoint lost after agent error: %v", err)
	}
	agents.Host("host-00").FailWith(nil)
	must(t, c.Reconcile(ctx))
	if got := countKind(agents.Host("host-00").Table(), OpUpsertEndpoint); got != 1 {
		t.Errorf("after reconcile host holds %d endpoints, want 1", got)
	}
}

func TestDeleteVPCCascade(t *testing.T) {
	const hosts = 6
	c, agents := newController(t, hosts)
	mustVPC(t, c, VPC{Name: "v", CIDR: pfx("10.0.0.0/16"), Dividers: 2})
	mustVPC(t, c, VPC{Name: "keep", CIDR: pfx("10.0.0.0/16"), Dividers: 1})
	for i := range 3 {
		mustNet(t, c, Network{Name: fmt.Sprint("n", i), VPC: "v", CIDR: pfx(fmt.Sprintf("10.0.%d.0/24", i)), Bouncers: 2})
		mustEP(t, c, Endpoint{Name: fmt.Sprint("e", i), VPC: "v", Network: fmt.Sprint("n", i), Host: hostNames(hosts)[i]})
	}
	must(t, c.DeleteVPC(ctx, "v", true))
	for _, h := range hostNames(hosts) {
		for _, op := range agents.Host(h).Table() {
			if op.VNI == 1 {
				t.Errorf("%s still holds %v", h, op)
			}
		}
	}
	if _, ok := c.State().VPCs["keep"]; !ok {
		t.Error("cascade deleted another VPC")
	}
}

// TestIncrementalMatchesReconcile runs a sequence of mutations and checks that what every live
// host holds, built from the differences sent, equals its whole desired state sent afresh to an
// empty agent by a controller restarted from the same store.
func TestIncrementalMatchesReconcile(t *testing.T) {
	store := NewMemoryStore()
	agents := NewRecordingAgents()
	c, err := New(Options{Store: store, Agents: agents})
	must(t, err)
	rng := rand.New(rand.NewPCG(1, 2))
	names := hostNames(10)
	for i, h := range names[:8] {
		must(t, c.AddHost(ctx, Host{Name: h, IP: hostIP(i + 1)}))
	}
	for v := range 3 {
		vpc := fmt.Sprint("vpc", v)
		mustVPC(t, c, VPC{Name: vpc, CIDR: pfx("10.0.0.0/16"), Dividers: 1 + v})
		for n := range 3 {
			mustNet(t, c, Network{Name: fmt.Sprint("n", n), VPC: vpc, CIDR: pfx(fmt.Sprintf("10.0.%d.0/24", n)), Bouncers: 1 + n})
		}
	}
	for i := range 60 {
		vpc, n := fmt.Sprint("vpc", i%3), fmt.Sprint("n", rng.IntN(3))
		mustEP(t, c, Endpoint{Name: fmt.Sprint("e", i), VPC: vpc, Network: n, Host: names[rng.IntN(7)]})
	}
	steps := []func() error{
		func() error { return c.ScaleBouncers(ctx, "vpc0", "n0", 4) },
		func() error { return c.ScaleDividers(ctx, "vpc1", 5) },
		func() error { return c.FailHost(ctx, "host-02") },
		func() error { return c.AddHost(ctx, Host{Name: names[8], IP: hostIP(9)}) },
		func() error { return c.DeleteEndpoint(ctx, "vpc0", "e0") },
		func() error { return c.DeleteEndpoint(ctx, "vpc1", "e4") },
		func() error { return c.ScaleBouncers(ctx, "vpc2", "n2", 1) },
		func() error { return c.RemoveHost(ctx, "host-07") },
		func() error { agents.Restart("host-02"); return c.RecoverHost(ctx, "host-02") },
		func() error { return c.FailHost(ctx, "host-05") },
		func() error { return c.AddHost(ctx, Host{Name: names[9], IP: hostIP(10)}) },
		func() error { return c.ScaleDividers(ctx, "vpc0", 1) },
		func() error { return c.DeleteVPC(ctx, "vpc2", true) },
	}
	for i, step := range steps {
		must(t, step())
		t.Logf("step %d: %d writes so far", i, c.Stats().Total.Total)
	}

	fresh := NewRecordingAgents()
	c2, err := New(Options{Store: store, Agents: fresh})
	must(t, err)
	if !reflect.DeepEqual(c.State(), c2.State()) {
		t.Fatal("restarted controller loaded a different state")
	}
	must(t, c2.Reconcile(ctx))
	for _, h := range names {
		hs, ok := c.State().Hosts[h]
		if !ok || hs.Failed {
			if n := len(fresh.Host(h).Ops()); n != 0 {
				t.Errorf("reconcile sent %d ops to %s, which is failed or gone", n, h)
			}
			continue
		}
		got, want := agents.Host(h).Table(), fresh.Host(h).Table()
		if !slices.EqualFunc(got, want, opEqual) {
			t.Errorf("host %s holds, from differences:\n%v\nwant, from reconcile:\n%v", h, got, want)
		}
		if len(want) == 0 {
			t.Errorf("host %s holds nothing", h)
		}
	}
}
