package dataplane

import (
	"testing"
)

// Every prefix of a good packet, cut at each header boundary and at every byte in between, is
// dropped or passed and counted exactly once; none is delivered, bounced or sent.
func TestTruncated(t *testing.T) {
	d := newDP(t)
	withEndpoint(t, d)
	withNeighbors(t, d)
	full := defaultOuter().wrap(t, defaultFlow().frame(t))
	for _, prog := range []Program{Transit, Agent} {
		p, err := d.program(prog)
		must(t, err)
		in := full
		if prog == Agent {
			withPort(t, d)
			in = fromEp1(nil)(t)
		}
		for n := 14; n < len(in); n++ {
			before, err := d.Counters()
			must(t, err)
			var ingress uint32
			if prog == Agent {
				ingress = loIfindex
			}
			got, out, _, err := testRun(p, in[:n], ingress)
			must(t, err)
			after, err := d.Counters()
			must(t, err)
			diff := after.Sub(before)
			var total uint64
			for _, v := range diff {
				total += v
			}
			if got != xdpDrop && got != xdpPass {
				t.Errorf("%s on %d of %d bytes: verdict %s\n%s", prog, n, len(in), verdictNames[got], dump(out))
			}
			if total != 1 {
				t.Errorf("%s on %d of %d bytes: %d counts (%v), want exactly 1", prog, n, len(in), total, diff)
			}
		}
	}
}
