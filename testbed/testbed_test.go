package testbed

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// requireRoot fails (never skips) a test that cannot create namespaces.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("testbed tests need root to create network namespaces")
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newLab returns a Lab with a fresh prefix that is closed, and checked to
// have left nothing behind, when the test ends.
func newLab(t *testing.T) *Lab {
	t.Helper()
	requireRoot(t)
	lab := NewLab(NewPrefix(), testLogger(t))
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
		if ns, links := leftovers(t, lab.Prefix()); len(ns)+len(links) > 0 {
			t.Errorf("left behind: netns %v, links %v", ns, links)
			if err := Clean(lab.Prefix()); err != nil {
				t.Errorf("clean %s: %v", lab.Prefix(), err)
			}
		}
	})
	return lab
}

// leftovers lists the named namespaces and root-namespace links that start
// with prefix.
func leftovers(t *testing.T, prefix string) (namespaces, links []string) {
	t.Helper()
	namespaces, links, err := Leftovers(prefix)
	if err != nil {
		t.Fatal(err)
	}
	return namespaces, links
}

var (
	addrA  = netip.MustParsePrefix("10.99.0.1/24")
	addrB  = netip.MustParsePrefix("10.99.0.2/24")
	addr6A = netip.MustParsePrefix("fd00:99::1/64")
	addr6B = netip.MustParsePrefix("fd00:99::2/64")
)

// twoHosts builds namespaces a and b joined by a veth a/eth0 - b/eth0 with
// IPv4 and IPv6 addresses.
func twoHosts(t *testing.T, lab *Lab) (a, b *Namespace, pair VethPair) {
	t.Helper()
	var err error
	if a, err = lab.AddNamespace("a"); err != nil {
		t.Fatal(err)
	}
	if b, err = lab.AddNamespace("b"); err != nil {
		t.Fatal(err)
	}
	if pair, err = lab.AddVeth(a, "eth0", b, "eth0", 1500); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		ns   *Namespace
		addr netip.Prefix
	}{{a, addrA}, {b, addrB}, {a, addr6A}, {b, addr6B}} {
		if err := AddAddr(step.ns, "eth0", step.addr); err != nil {
			t.Fatal(err)
		}
	}
	// Static IPv6 neighbours: neighbour discovery right after a link comes up sometimes loses
	// the first packet on a loaded machine, and these tests are about the traffic, not ND.
	if err := AddNeighbor(a, "eth0", addr6B.Addr(), pair.B.MAC); err != nil {
		t.Fatal(err)
	}
	if err := AddNeighbor(b, "eth0", addr6A.Addr(), pair.A.MAC); err != nil {
		t.Fatal(err)
	}
	return a, b, pair
}

func TestVethTraffic(t *testing.T) {
	lab := newLab(t)
	a, b, pair := twoHosts(t, lab)

	if pair.A.Index == 0 || pair.B.Index == 0 || len(pair.A.MAC) != 6 || len(pair.B.MAC) != 6 ||
		pair.A.MAC.String() == pair.B.MAC.String() {
		t.Errorf("veth pair not described: %+v", pair)
	}
	if pair.A.NS != a || pair.B.NS != b {
		t.Errorf("veth ends in %s and %s, want %s and %s", pair.A.NS, pair.B.NS, a, b)
	}
	link, err := LinkByName(b, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if link.Attrs().Index != pair.B.Index || link.Attrs().MTU != 1500 || link.Attrs().Flags&(1<<0) == 0 {
		t.Errorf("b/eth0 = index %d mtu %d flags %v, want index %d mtu 1500 up", link.Attrs().Index, link.Attrs().MTU, link.Attrs().Flags, pair.B.Index)
	}

	for _, dst := range []netip.Prefix{addrB, addr6B} {
		res, err := Ping(a, dst.Addr(), 3, time.Second)
		if err != nil {
			t.Errorf("ping %s: %v", dst.Addr(), err)
		} else if res.Sent != 3 || res.Received != 3 || len(res.RTTs) != 3 {
			t.Errorf("ping %s = %+v, want 3 of 3", dst.Addr(), res)
		}
	}
	// The reverse direction, and to an address of our own.
	if _, err := Ping(b, addrA.Addr(), 1, time.Second); err != nil {
		t.Errorf("ping b -> a: %v", err)
	}
	if _, err := Ping(a, addrA.Addr(), 1, time.Second); err != nil {
		t.Errorf("ping a -> a: %v", err)
	}

	const mib = 1 << 20
	for _, dst := range []netip.Prefix{addrB, addr6B} {
		tcp, err := TCPExchange(a, b, dst.Addr(), 0, mib, 10*time.Second)
		if err != nil {
			t.Errorf("tcp exchange with %s: %v", dst.Addr(), err)
		} else if tcp.Bytes != mib || tcp.Duration <= 0 || tcp.BitsPerSecond <= 0 {
			t.Errorf("tcp exchange with %s = %+v", dst.Addr(), tcp)
		} else {
			t.Logf("tcp exchange with %s: %d bytes in %s (%.0f Mbit/s)", dst.Addr(), tcp.Bytes, tcp.Duration, tcp.BitsPerSecond/1e6)
		}

		udp, err := UDPExchange(a, b, dst.Addr(), 0, 20, time.Second)
		if err != nil {
			t.Errorf("udp exchange with %s: %v", dst.Addr(), err)
		} else if udp.Sent != 20 || udp.Received != 20 {
			t.Errorf("udp exchange with %s = %+v, want 20 of 20", dst.Addr(), udp)
		}
	}
	// A fixed port, twice in a row: listeners must be released.
	for range 2 {
		if _, err := TCPExchange(b, a, addrA.Addr(), 7777, 1000, 5*time.Second); err != nil {
			t.Errorf("tcp exchange b -> a:7777: %v", err)
		}
		if _, err := UDPExchange(b, a, addrA.Addr(), 7777, 2, time.Second); err != nil {
			t.Errorf("udp exchange b -> a:7777: %v", err)
		}
	}
}

func TestPingUnknownAddressFails(t *testing.T) {
	lab := newLab(t)
	a, _, _ := twoHosts(t, lab)

	res, err := Ping(a, netip.MustParseAddr("10.99.0.77"), 2, 300*time.Millisecond)
	if !errors.Is(err, ErrPacketLoss) {
		t.Errorf("ping of an absent neighbour: err = %v, want ErrPacketLoss", err)
	}
	if res.Received != 0 {
		t.Errorf("ping of an absent neighbour got %d replies", res.Received)
	}

	// No route at all: the send fails.
	if _, err := Ping(a, netip.MustParseAddr("192.0.2.1"), 1, 300*time.Millisecond); err == nil {
		t.Error("ping without a route succeeded")
	}

	// Nothing listens: TCP is refused.
	if _, err := dialTCP(a, netip.AddrPortFrom(addrB.Addr(), 9), time.Now().Add(time.Second)); !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("dial to a closed port: err = %v, want connection refused", err)
	}
	// Nothing listens: UDP gets no echo.
	var conn *net.UDPConn
	if err := doIn(a, func() (err error) {
		conn, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(addrB.Addr(), 9)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = conn.Write([]byte("x"))
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := conn.Read(make([]byte, 10)); !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("udp to a closed port: err = %v, want connection refused", err)
	}
}

func TestLabCloseRemovesEverything(t *testing.T) {
	requireRoot(t)
	prefix := NewPrefix()
	lab := NewLab(prefix, testLogger(t))
	t.Cleanup(func() { _ = Clean(prefix) })

	x, err := lab.AddNamespace("x")
	if err != nil {
		t.Fatal(err)
	}
	y, err := lab.AddNamespace("y")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lab.AddVeth(nil, prefix+"h", x, "eth0", 0); err != nil {
		t.Fatal(err)
	}
	if err := lab.AddBridge(nil, prefix+"br"); err != nil {
		t.Fatal(err)
	}
	if err := lab.AddBridge(y, "br0"); err != nil {
		t.Fatal(err)
	}
	if _, err := lab.AddVeth(x, "eth1", y, "eth1", 9000); err != nil {
		t.Fatal(err)
	}
	if err := SetMaster(y, "eth1", "br0"); err != nil {
		t.Fatal(err)
	}
	ns, links := leftovers(t, prefix)
	if len(ns) != 2 || len(links) != 2 {
		t.Fatalf("before close: netns %v, links %v; want 2 and 2", ns, links)
	}

	if err := lab.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if ns, links := leftovers(t, prefix); len(ns)+len(links) > 0 {
		t.Errorf("after close: netns %v, links %v left", ns, links)
	}
	if out, err := exec.Command("ip", "netns", "list").CombinedOutput(); err == nil {
		if strings.Contains(string(out), prefix) {
			t.Errorf("ip netns list still shows %s:\n%s", prefix, out)
		}
	} else if !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("ip netns list: %v: %s", err, out)
	}
	if err := lab.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if _, err := lab.AddNamespace("z"); !errors.Is(err, ErrClosed) {
		t.Errorf("add namespace after close: err = %v, want ErrClosed", err)
	}
}

func TestCleanRemovesLeftovers(t *testing.T) {
	requireRoot(t)
	prefix := NewPrefix()
	// A run that crashed: its lab is never closed.
	crashed := NewLab(prefix, testLogger(t))
	t.Cleanup(func() { _ = Clean(prefix) })
	for _, name := range []string{"p", "q"} {
		if _, err := crashed.AddNamespace(name); err != nil {
			t.Fatal(err)
		}
	}
	p := &Namespace{Name: prefix + "p"}
	var err error
	if p.Handle, err = netns.GetFromName(p.Name); err != nil {
		t.Fatal(err)
	}
	defer p.Handle.Close()
	if _, err := crashed.AddVeth(nil, prefix+"p", p, "eth0", 0); err != nil {
		t.Fatal(err)
	}
	// Another run's namespace must survive.
	other := newLab(t)
	if _, err := other.AddNamespace("keep"); err != nil {
		t.Fatal(err)
	}

	if err := Clean(prefix); err != nil {
		t.Fatalf("clean: %v", err)
	}
	if ns, links := leftovers(t, prefix); len(ns)+len(links) > 0 {
		t.Errorf("after clean: netns %v, links %v left", ns, links)
	}
	if ns, _ := leftovers(t, other.Prefix()); len(ns) != 1 {
		t.Errorf("clean %s removed another run's netns: %v left", prefix, ns)
	}
	if err := Clean(prefix); err != nil {
		t.Errorf("second clean: %v", err)
	}
	// Closing the crashed lab afterwards finds nothing to do and says so quietly.
	if err := crashed.Close(); err != nil {
		t.Errorf("close after clean: %v", err)
	}
}

func TestBridge(t *testing.T) {
	lab := newLab(t)
	sw, err := lab.AddNamespace("sw")
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.AddBridge(sw, "br0"); err != nil {
		t.Fatal(err)
	}
	type host struct {
		ns   *Namespace
		addr netip.Addr
	}
	var hosts []host
	for i, name := range []string{"h1", "h2", "h3"} {
		ns, err := lab.AddNamespace(name)
		if err != nil {
			t.Fatal(err)
		}
		port := "p" + name
		if _, err := lab.AddVeth(ns, "eth0", sw, port, 0); err != nil {
			t.Fatal(err)
		}
		if err := SetMaster(sw, port, "br0"); err != nil {
			t.Fatal(err)
		}
		addr := netip.AddrFrom4([4]byte{10, 98, 0, byte(i + 1)})
		if err := AddAddr(ns, "eth0", netip.PrefixFrom(addr, 24)); err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, host{ns, addr})
	}
	for _, from := range hosts {
		for _, to := range hosts {
			if from == to {
				continue
			}
			if _, err := Ping(from.ns, to.addr, 2, 2*time.Second); err != nil {
				t.Errorf("ping %s -> %s: %v", from.ns, to.addr, err)
			}
		}
	}
	if _, err := TCPExchange(hosts[0].ns, hosts[2].ns, hosts[2].addr, 0, 64<<10, 5*time.Second); err != nil {
		t.Errorf("tcp exchange across the bridge: %v", err)
	}
}

// TestRouter checks routes, forwarding, permanent neighbours and sysctls:
// a - r - b with a and b in different subnets.
func TestRouter(t *testing.T) {
	lab := newLab(t)
	a, err := lab.AddNamespace("a")
	if err != nil {
		t.Fatal(err)
	}
	r, err := lab.AddNamespace("r")
	if err != nil {
		t.Fatal(err)
	}
	b, err := lab.AddNamespace("b")
	if err != nil {
		t.Fatal(err)
	}
	ar, err := lab.AddVeth(a, "eth0", r, "ra", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lab.AddVeth(b, "eth0", r, "rb", 0); err != nil {
		t.Fatal(err)
	}
	mustDo := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	gwA, gwB := netip.MustParseAddr("10.97.1.1"), netip.MustParseAddr("10.97.2.1")
	hostB := netip.MustParseAddr("10.97.2.2")
	mustDo(AddAddr(a, "eth0", netip.MustParsePrefix("10.97.1.2/24")))
	mustDo(AddAddr(r, "ra", netip.PrefixFrom(gwA, 24)))
	mustDo(AddAddr(r, "rb", netip.PrefixFrom(gwB, 24)))
	mustDo(AddAddr(b, "eth0", netip.PrefixFrom(hostB, 24)))
	mustDo(AddDefaultRoute(a, gwA, "eth0"))
	mustDo(AddRoute(b, netip.MustParsePrefix("10.97.1.0/24"), gwB, "eth0"))

	if _, err := Ping(a, hostB, 1, 500*time.Millisecond); err == nil {
		t.Error("ping through r succeeded with forwarding off")
	}
	mustDo(SetSysctl(r, "net.ipv4.ip_forward", "1"))
	data, err := readSysctl(r, "net/ipv4/ip_forward")
	mustDo(err)
	if data != "1" {
		t.Errorf("ip_forward in r = %q, want 1", data)
	}
	if root, err := os.ReadFile("/proc/sys/net/ipv4/conf/lo/forwarding"); err == nil && strings.TrimSpace(string(root)) == "1" {
		t.Log("root netns forwards already; cannot tell whether SetSysctl leaked")
	}

	// A permanent neighbour for the gateway, with its MAC changed first.
	mac := ar.B.MAC
	mac[5] ^= 0x55
	mustDo(SetMAC(r, "ra", mac))
	mustDo(AddNeighbor(a, "eth0", gwA, mac))
	neighs, err := neighList(a, ar.A.Index)
	mustDo(err)
	found := false
	for _, n := range neighs {
		if n.IP.Equal(gwA.AsSlice()) {
			found = true
			if n.State != netlink.NUD_PERMANENT || n.HardwareAddr.String() != mac.String() {
				t.Errorf("neighbour %s = state %#x mac %s, want permanent %s", gwA, n.State, n.HardwareAddr, mac)
			}
		}
	}
	if !found {
		t.Errorf("neighbour %s not found in a: %v", gwA, neighs)
	}

	if _, err := Ping(a, hostB, 2, time.Second); err != nil {
		t.Errorf("ping a -> b through r: %v", err)
	}
	if _, err := TCPExchange(b, a, netip.MustParseAddr("10.97.1.2"), 0, 1<<20, 10*time.Second); err != nil {
		t.Errorf("tcp b -> a through r: %v", err)
	}
	mustDo(SetMTU(r, "rb", 1280))
	if l, err := LinkByName(r, "rb"); err != nil || l.Attrs().MTU != 1280 {
		t.Errorf("mtu of r/rb: %v %v", l, err)
	}
}

func readSysctl(ns *Namespace, rel string) (string, error) {
	var out string
	err := doIn(ns, func() error {
		b, err := os.ReadFile("/proc/sys/" + rel)
		out = strings.TrimSpace(string(b))
		return err
	})
	return out, err
}

func neighList(ns *Namespace, index int) ([]netlink.Neigh, error) {
	h, err := handleFor(ns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	return h.NeighList(index, unix.AF_INET)
}

func TestOffloads(t *testing.T) {
	lab := newLab(t)
	a, b, _ := twoHosts(t, lab)

	on, err := TxChecksum(a, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if !on {
		t.Log("tx checksum offload was already off on a veth")
	}
	if err := DisableTxChecksum(a, "eth0"); err != nil {
		t.Fatal(err)
	}
	if on, err := TxChecksum(a, "eth0"); err != nil || on {
		t.Errorf("tx checksum after disable = %t, %v; want off", on, err)
	}
	if on, err := TxChecksum(b, "eth0"); err != nil || !on {
		t.Errorf("tx checksum of the peer = %t, %v; want untouched (on)", on, err)
	}
	if _, err := exec.LookPath("ethtool"); err == nil {
		out, err := exec.Command("ip", "netns", "exec", a.Name, "ethtool", "-k", "eth0").CombinedOutput()
		if err != nil {
			t.Errorf("ethtool -k: %v: %s", err, out)
		} else if !strings.Contains(string(out), "tx-checksumming: off") {
			t.Errorf("ethtool -k eth0 in %s does not show tx-checksumming off:\n%s", a, out)
		}
	}

	for _, want := range []bool{true, false, true} {
		if err := SetGRO(b, "eth0", want); err != nil {
			t.Fatal(err)
		}
		if got, err := GRO(b, "eth0"); err != nil || got != want {
			t.Errorf("gro after SetGRO(%t) = %t, %v", want, got, err)
		}
	}
	if err := DisableTxChecksum(a, "nosuchdev"); err == nil {
		t.Error("disable tx checksum on a missing device succeeded")
	}

	// Checksums computed in software must still be right.
	if _, err := TCPExchange(a, b, addrB.Addr(), 0, 1<<20, 10*time.Second); err != nil {
		t.Errorf("tcp exchange with tx checksum off: %v", err)
	}
	if _, err := UDPExchange(a, b, addrB.Addr(), 0, 5, time.Second); err != nil {
		t.Errorf("udp exchange with tx checksum off: %v", err)
	}
}

func TestTCPStream(t *testing.T) {
	lab := newLab(t)
	a, b, _ := twoHosts(t, lab)

	s, err := StartTCPStream(a, b, addrB.Addr(), 0, StreamOptions{Stall: 2 * time.Second, MaxDuration: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	waitProgress(t, s)
	// A change that must not break the connection.
	if err := SetMTU(a, "eth0", 1400); err != nil {
		t.Fatal(err)
	}
	waitProgress(t, s)
	res, err := s.Stop()
	if err != nil {
		t.Errorf("stop: %v", err)
	}
	if res.Sent == 0 || res.Sent != res.Received || res.Duration <= 0 {
		t.Errorf("stream result %+v", res)
	}
	if res2, err2 := s.Stop(); res2 != res || !errors.Is(err2, err) {
		t.Errorf("second stop = %+v, %v; want %+v, %v", res2, err2, res, err)
	}
	t.Logf("stream: %+v", res)

	// Cutting the path must be reported.
	s, err = StartTCPStream(a, b, addrB.Addr(), 0, StreamOptions{Stall: 500 * time.Millisecond, MaxDuration: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	waitProgress(t, s)
	if err := SetLinkUp(b, "eth0", false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if res, err := s.Stop(); !errors.Is(err, ErrStalled) {
		t.Errorf("stop of a cut stream = %+v, %v; want ErrStalled", res, err)
	}
}

// waitProgress waits until the stream has delivered more bytes than it had.
func waitProgress(t *testing.T, s *TCPStream) {
	t.Helper()
	before := s.Received()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if s.Received() > before {
			return
		}
	}
	t.Fatalf("stream stuck at %d bytes", before)
}

func TestDo(t *testing.T) {
	lab := newLab(t)
	ns, err := lab.AddNamespace("d")
	if err != nil {
		t.Fatal(err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()

	var inside netns.NsHandle
	if err := Do(ns.Handle, func() (err error) {
		inside, err = netns.Get()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer inside.Close()
	if !inside.Equal(ns.Handle) {
		t.Errorf("Do ran in %s, want %s", inside.UniqueId(), ns.Handle.UniqueId())
	}
	after, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()
	if !after.Equal(before) {
		t.Errorf("caller's thread moved from %s to %s", before.UniqueId(), after.UniqueId())
	}

	sentinel := errors.New("from fn")
	if err := Do(ns.Handle, func() error { return sentinel }); !errors.Is(err, sentinel) {
		t.Errorf("Do returned %v, want fn's error", err)
	}
}

func TestNames(t *testing.T) {
	lab := newLab(t)
	a, err := lab.AddNamespace("n")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lab.AddVeth(a, "a-name-too-long-x", a, "b", 0); !errors.Is(err, ErrName) {
		t.Errorf("over-long name: err = %v, want ErrName", err)
	}
	if _, err := lab.AddVeth(nil, "eth9", a, "b", 0); !errors.Is(err, ErrName) {
		t.Errorf("root link without prefix: err = %v, want ErrName", err)
	}
	if _, err := lab.AddNamespace("../x"); !errors.Is(err, ErrName) {
		t.Errorf("netns name with slash: err = %v, want ErrName", err)
	}
	if _, err := lab.AddNamespace("n"); err == nil {
		t.Error("second namespace with the same name succeeded")
	}
	if p := NewPrefix(); len(p) != 7 || !strings.HasPrefix(p, DefaultPrefix) || !strings.HasSuffix(p, "-") {
		t.Errorf("NewPrefix() = %q", p)
	}
}

// assertNothingLeft looks for this run's names only: other packages' tests run alongside.
func assertNothingLeft(t *testing.T, prefix string) {
	t.Helper()
	namespaces, links := leftovers(t, prefix)
	for _, n := range namespaces {
		t.Errorf("namespace %s left behind", n)
	}
	for _, l := range links {
		t.Errorf("link %s left behind", l)
	}
}
