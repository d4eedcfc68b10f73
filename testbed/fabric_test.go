package testbed

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mizar-net/mizar/controlplane"
	"github.com/mizar-net/mizar/dataplane"
	scenario "github.com/mizar-net/mizar/scenarios"
)

// overlayOnThreeHosts brings up three hosts, VPC blue with network web whose one bouncer is
// on the third host, endpoints a and b on the other two, and VPC red with the same CIDR and an
// endpoint c on the bouncer's host.
func overlayOnThreeHosts(t *testing.T, c *Cluster) (a, b, cr Workload, bouncer string) {
	t.Helper()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	hosts := []string{"h1", "h2", "h3"}
	for _, h := range hosts {
		_, err := c.AddHost(ctx, h)
		must(err)
	}
	cidr := netip.MustParsePrefix("10.0.0.0/16")
	for _, v := range []string{"blue", "red"} {
		_, err := c.Controller.CreateVPC(ctx, controlplane.VPC{Name: v, CIDR: cidr, Dividers: 1})
		must(err)
		_, err = c.Controller.CreateNetwork(ctx, controlplane.Network{Name: "web", VPC: v, CIDR: netip.MustParsePrefix("10.0.1.0/24"), Bouncers: 1})
		must(err)
	}
	bs, err := c.Controller.Bouncers("blue", "web")
	must(err)
	bouncer = bs[0]
	others := slices.DeleteFunc(slices.Clone(hosts), func(h string) bool { return h == bouncer })
	for _, e := range []controlplane.Endpoint{
		{Name: "a", VPC: "blue", Network: "web", Host: others[0]},
		{Name: "b", VPC: "blue", Network: "web", Host: others[1]},
		{Name: "c", VPC: "red", Network: "web", Host: bouncer, IP: netip.MustParseAddr("10.0.1.50")},
	} {
		_, err := c.Controller.CreateEndpoint(ctx, e)
		must(err)
	}
	a, err = c.Workload("blue", "a")
	must(err)
	b, err = c.Workload("blue", "b")
	must(err)
	cr, err = c.Workload("red", "c")
	must(err)
	return a, b, cr, bouncer
}

// checkOverlay runs the checks every fabric must pass: a and b reach each other over ICMP and
// TCP (the first packets through the bouncer), red's c sees neither, and once the path is
// learned the bouncer bounces nothing more.
func checkOverlay(t *testing.T, c *Cluster, a, b, cr Workload, bouncer string) {
	t.Helper()
	bounced := func() uint64 {
		t.Helper()
		h, _ := c.Host(bouncer)
		cs, err := h.DP.Counters()
		if err != nil {
			t.Fatalf("counters of %s: %v", bouncer, err)
		}
		return cs.Get(dataplane.ReasonBounced)
	}
	if _, err := Ping(a.NS, b.IP, 3, 2*time.Second); err != nil {
		t.Errorf("a -> b: %v", err)
	} else if bounced() == 0 {
		t.Errorf("a reached b without the bouncer %s bouncing anything", bouncer)
	}
	if _, err := TCPExchange(b.NS, a.NS, a.IP, 0, 1<<20, 10*time.Second); err != nil {
		t.Errorf("b -> a tcp: %v", err)
	}
	if res, err := Ping(a.NS, cr.IP, 2, 300*time.Millisecond); !errors.Is(err, ErrPacketLoss) {
		t.Errorf("blue a reached red c at %v: %+v, %v", cr.IP, res, err)
	}
	if res, err := Ping(cr.NS, b.IP, 2, 300*time.Millisecond); !errors.Is(err, ErrPacketLoss) {
		t.Errorf("red c reached blue b at %v: %+v, %v", b.IP, res, err)
	}
	// Both directions have talked: both hosts learned the direct path.
	before := bounced()
	if _, err := Ping(a.NS, b.IP, 10, 2*time.Second); err != nil {
		t.Errorf("a -> b on the direct path: %v", err)
	}
	if _, err := Ping(b.NS, a.IP, 10, 2*time.Second); err != nil {
		t.Errorf("b -> a on the direct path: %v", err)
	}
	if after := bounced(); after != before {
		t.Errorf("bouncer %s bounced %d packets after the path was learned", bouncer, after-before)
	}
}

// forwarded is how many datagrams ns's kernel has routed (Ip ForwDatagrams of its
// /proc/net/snmp).
func forwarded(ns *Namespace) (uint64, error) {
	var n uint64
	err := Do(ns.Handle, func() error {
		// thread-self: /proc/self/net is the main thread's namespace, not this thread's.
		f, err := os.Open("/proc/thread-self/net/snmp")
		if err != nil {
			return err
		}
		defer f.Close()
		var names []string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) == 0 || fields[0] != "Ip:" {
				continue
			}
			if names == nil {
				names = fields
				continue
			}
			if i := slices.Index(names, "ForwDatagrams"); i > 0 && i < len(fields) {
				n, err = strconv.ParseUint(fields[i], 10, 64)
				return err
			}
		}
		return fmt.Errorf("no Ip ForwDatagrams in /proc/net/snmp: %v", sc.Err())
	})
	return n, err
}

// TestClusterRouted runs the overlay on a routed underlay: every host on its own /24 to a
// router namespace. Reach, isolation and the direct path hold, and the overlay's packets
// were routed by the fabric's kernel, not switched.
func TestClusterRouted(t *testing.T) {
	requireRoot(t)
	prefix := NewPrefix()
	c, err := NewCluster(prefix, ClusterOptions{Fabric: Routed}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		assertNothingLeft(t, prefix)
	})
	a, b, cr, bouncer := overlayOnThreeHosts(t, c)
	for _, h := range c.Hosts() {
		if h.IP.As4()[2] == 0 || h.routerMAC == nil {
			t.Errorf("host %s at %v: not on a /24 of its own behind the router", h.Name, h.IP)
		}
	}
	fwd0, err := forwarded(c.Fabric)
	if err != nil {
		t.Fatal(err)
	}
	checkOverlay(t, c, a, b, cr, bouncer)
	fwd, err := forwarded(c.Fabric)
	if err != nil {
		t.Fatal(err)
	}
	// 1 MiB each way over TCP alone is hundreds of packets.
	if fwd-fwd0 < 100 {
		t.Errorf("the router forwarded %d datagrams during the checks, want the overlay's traffic", fwd-fwd0)
	}
	t.Logf("router forwarded %d datagrams", fwd-fwd0)
}

// buildAgent builds tools/mizar-agent into a temporary directory: the agent processes run the
// real binary, not a stand-in.
func buildAgent(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mizar-agent")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/mizar-net/mizar/tools/mizar-agent").CombinedOutput()
	if err != nil {
		t.Fatalf("go build mizar-agent: %v\n%s", err, out)
	}
	return bin
}

// TestClusterAgentProcesses runs every host's agent as its own mizar-agent process, programmed
// over gRPC on loopback, on both fabrics. The overlay checks pass; each agent applied exactly
// the ops the controller sent it plus the testbed's neighbor entries; Close leaves no process
// and no namespace.
func TestClusterAgentProcesses(t *testing.T) {
	requireRoot(t)
	bin := buildAgent(t)
	for _, fabric := range []Fabric{Bridge, Routed} {
		t.Run(string(fabric), func(t *testing.T) {
			prefix := NewPrefix()
			c, err := NewCluster(prefix, ClusterOptions{Fabric: fabric, AgentProcesses: true, AgentCommand: []string{bin}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			closed := false
			t.Cleanup(func() {
				if !closed {
					c.Close()
				}
			})
			a, b, cr, bouncer := overlayOnThreeHosts(t, c)
			var procs []*process
			for _, h := range c.Hosts() {
				r, ok := h.DP.(*remoteDataplane)
				if !ok {
					t.Fatalf("host %s: data plane %T, want one in an agent process", h.Name, h.DP)
				}
				procs = append(procs, r.proc)
			}
			checkOverlay(t, c, a, b, cr, bouncer)
			if kids := children(t); len(kids) != len(procs) {
				t.Errorf("child processes while running: %v, want the %d agents", kids, len(procs))
			}

			sent := c.Controller.Stats().Total.PerHost
			hosts := c.Hosts()
			for _, h := range hosts {
				st, err := h.Stats(context.Background())
				if err != nil {
					t.Fatalf("stats of %s over grpc: %v", h.Name, err)
				}
				// One neighbor entry per peer, from the testbed; the rest from the controller.
				if want := uint64(sent[h.Name] + len(hosts) - 1); st.Writes != want || sent[h.Name] == 0 {
					t.Errorf("agent of %s applied %d ops, want the controller's %d + %d neighbors", h.Name, st.Writes, sent[h.Name], len(hosts)-1)
				}
			}

			if err := c.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
			closed = true
			for _, p := range procs {
				select {
				case <-p.done:
				default:
					t.Errorf("agent process %d still running after Close", p.cmd.Process.Pid)
				}
				if _, err := os.Stat(fmt.Sprintf("/proc/%d", p.cmd.Process.Pid)); err == nil {
					t.Errorf("agent process %d still exists after Close", p.cmd.Process.Pid)
				}
			}
			assertNothingLeft(t, prefix)
			if kids := children(t); len(kids) > 0 {
				t.Errorf("processes left running: %v", kids)
			}
		})
	}
}

// TestClusterAgentProcessFails: an agent that dies before serving fails AddHost with what it
// said, and the cluster still closes clean.
func TestClusterAgentProcessFails(t *testing.T) {
	requireRoot(t)
	prefix := NewPrefix()
	c, err := NewCluster(prefix, ClusterOptions{AgentProcesses: true, AgentCommand: []string{"sh", "-c", "echo cannot load >&2; exit 3", "agent"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.AddHost(context.Background(), "h1")
	if err == nil || !strings.Contains(err.Error(), "cannot load") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("add host with a failing agent: %v, want its exit status and stderr", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	assertNothingLeft(t, prefix)
}

// TestScenarioAgentProcesses plays quickstart and the routed scenario with every host's agent
// in its own process.
func TestScenarioAgentProcesses(t *testing.T) {
	requireRoot(t)
	bin := buildAgent(t)
	for _, f := range []string{"quickstart.yaml", "routed.yaml", "host-failure.yaml"} {
		t.Run(f, func(t *testing.T) {
			sc, err := scenario.Load(filepath.Join("../scenarios", f))
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			prefix := NewPrefix()
			_, err = RunScenario(context.Background(), sc, RunOptions{Prefix: prefix, Progress: &out, AgentProcesses: true, AgentCommand: []string{bin}}, nil)
			t.Logf("%s\n%s", sc.Name, out.String())
			if err != nil {
				t.Fatal(err)
			}
			assertNothingLeft(t, prefix)
			if kids := children(t); len(kids) > 0 {
				t.Errorf("processes left running: %v", kids)
			}
		})
	}
}

// children lists this process's child processes by pid and name.
func children(t *testing.T) []string {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...; comm may hold spaces, so split after its ')'.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		if fields := strings.Fields(s[i+1:]); len(fields) < 2 || fields[1] != strconv.Itoa(os.Getpid()) {
			continue
		}
		out = append(out, s[:i+1])
	}
	return out
}
