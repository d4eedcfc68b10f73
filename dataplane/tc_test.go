package dataplane

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
)

// TestAgentTC runs every agent fixture through the tc agent: same maps, same decisions, the
// same frames out.
func TestAgentTC(t *testing.T) { runFixtures(t, agentFixtures(AgentTC)) }

// skbCtx is struct __sk_buff up to hwtstamp, the context BPF_PROG_TEST_RUN takes for tc. Only
// the fields the kernel lets a test set are named.
type skbCtx struct {
	_              [9]uint32 // len .. priority: must be zero
	IngressIfindex uint32
	Ifindex        uint32
	_              [29]uint32 // tc_index .. tstamp
	WireLen        uint32
	GSOSegs        uint32
	_              [2]uint32 // sk
	GSOSize        uint32
	_              uint32 // tstamp_type
	_              uint64 // hwtstamp
}

func init() {
	if n := binary.Size(skbCtx{}); n != 192 {
		panic("skbCtx does not match struct __sk_buff")
	}
}

// runSkb runs prog on a copy of pkt as an skb with ctx, and returns the verdict, the frame and
// the context the program left.
func runSkb(t *testing.T, prog *ebpf.Program, pkt []byte, ctx skbCtx) (uint32, []byte, skbCtx) {
	t.Helper()
	out := make([]byte, len(pkt)+512)
	var ctxOut skbCtx
	ret, err := prog.Run(&ebpf.RunOptions{Data: pkt, DataOut: out, Context: ctx, ContextOut: &ctxOut})
	if err != nil {
		t.Fatalf("BPF_PROG_TEST_RUN: %v", err)
	}
	return ret, out, ctxOut
}

// TestAgentTCSizesGSOBySegment feeds the tc agent GSO super-packets, as TCP hands them to a veth
// with TSO: longer than the underlay's MTU as a whole, they are judged by the segments they
// become. BPF_PROG_TEST_RUN cannot mark an skb as TCP GSO (it sets gso_size, never gso_type),
// so bpf_skb_adjust_room refuses to encapsulate the one that fits (counted malformed); that it
// gets that far, not dropped as too big, is what this shows. TestAgentTCTraffic encapsulates
// real super-packets.
func TestAgentTCSizesGSOBySegment(t *testing.T) {
	// TCP header 20 bytes (the test flow carries no options), IPv4 20. Two segments at most:
	// test input must fit one page.
	fits := mtu - Overhead - 40
	for _, c := range []struct {
		name    string
		gsoSize int
		reason  Reason
	}{
		{"segments that fit pass the size check", fits, ReasonMalformed},
		{"segments one byte too big are dropped", fits + 1, ReasonTooBig},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := newDP(t)
			withPort(t, d)
			withNeighbors(t, d)
			must(t, d.SetBouncers(vni, netAID, []netip.Addr{b1IP}))
			in := fromEp1(func(f *flow) { f.payload = 2 * c.gsoSize })(t)
			got, out, _ := runSkb(t, d.agentTC.AgentTc, in, skbCtx{GSOSize: uint32(c.gsoSize), GSOSegs: 2})
			cs, err := d.Counters()
			must(t, err)
			if got != tcShot || cs.Get(c.reason) != 1 || cs.Get(ReasonTooBig)+cs.Get(ReasonMalformed) != 1 {
				t.Fatalf("verdict %s, counters %v; want TC_ACT_SHOT and %s=1 only\n%s", tcVerdictNames[got], cs, ReasonName(c.reason), dump(out))
			}
		})
	}
}
