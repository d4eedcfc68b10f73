package testbed

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"github.com/onsi/gomega/types"
)

// Proto is a traffic kind a reachability check uses.
type Proto string

const (
	ICMP Proto = "icmp"
	TCP  Proto = "tcp"
	UDP  Proto = "udp"
)

// Workload is an endpoint as a test sees it: its namespace and address.
type Workload struct {
	Name string
	NS   *Namespace
	IP   netip.Addr
}

func (w Workload) String() string { return fmt.Sprintf("%s (%v)", w.Name, w.IP) }

// Workload returns an endpoint the control plane created, for traffic and matchers.
func (c *Cluster) Workload(vpc, name string) (Workload, error) {
	ns, e, err := c.EndpointNS(vpc, name)
	if err != nil {
		return Workload{}, err
	}
	return Workload{Name: vpc + "/" + name, NS: ns, IP: e.IP}, nil
}

// Reachable sends real traffic of kind proto from a to b and reports whether it made the round
// trip intact. A false answer with a nil error means the traffic did not arrive; an error means
// the check itself could not run.
func Reachable(a, b Workload, proto Proto, timeout time.Duration) (bool, error) {
	var err error
	switch proto {
	case ICMP:
		_, err = Ping(a.NS, b.IP, 3, timeout)
	case TCP:
		_, err = TCPExchange(a.NS, b.NS, b.IP, 0, 64<<10, timeout)
	case UDP:
		_, err = UDPExchange(a.NS, b.NS, b.IP, 0, 5, timeout)
	default:
		return false, fmt.Errorf("reach over %q: unknown protocol", proto)
	}
	if err == nil {
		return true, nil
	}
	// Refused: what arrived at that address is not b (another endpoint of the sender's own
	// VPC at the same address answered with a reset or port unreachable).
	if errors.Is(err, ErrPacketLoss) || isTimeout(err) || errors.Is(err, syscall.ECONNREFUSED) {
		return false, nil
	}
	return false, err
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// Reach succeeds when the actual Workload reaches b over every given protocol (ICMP when none):
//
//	Expect(a).To(testbed.Reach(b))
//	Expect(a).NotTo(testbed.Reach(c))
func Reach(b Workload, protos ...Proto) types.GomegaMatcher {
	if len(protos) == 0 {
		protos = []Proto{ICMP}
	}
	return &reachMatcher{to: b, protos: protos, timeout: time.Second}
}

type reachMatcher struct {
	to      Workload
	protos  []Proto
	timeout time.Duration
	failed  Proto
}

func (m *reachMatcher) Match(actual any) (bool, error) {
	a, ok := actual.(Workload)
	if !ok {
		return false, fmt.Errorf("Reach matches a testbed.Workload, got %T", actual)
	}
	for _, p := range m.protos {
		ok, err := Reachable(a, m.to, p, m.timeout)
		if err != nil {
			return false, err
		}
		if !ok {
			m.failed = p
			return false, nil
		}
	}
	return true, nil
}

func (m *reachMatcher) FailureMessage(actual any) string {
	return fmt.Sprintf("expected %v to reach %v over %v; %s did not arrive", actual, m.to, m.protos, m.failed)
}

func (m *reachMatcher) NegatedFailureMessage(actual any) string {
	return fmt.Sprintf("expected %v not to reach %v over %v, but it did", actual, m.to, m.protos)
}
