package controlplane

import (
	"cmp"
	"hash/fnv"
	"slices"
)

// Place chooses the hosts that take n roles of kind key, by rendezvous (highest random weight)
// hashing: every host gets a weight hash(key, host) and the n heaviest win, heaviest first.
//
//   - Spread: the hosts returned are distinct, min(n, len(hosts)) of them. When n exceeds the
//     number of hosts every host takes the role once and the rest wait for more hosts.
//   - Stable: adding a host moves a role only to that host, about n/(len(hosts)+1) of them per
//     key; removing a host moves only the roles it held.
//   - Pure: the result depends on key and the set of hosts only, not on their order.
//
// Keys in use are BouncerKey and DividerKey.
func Place(key string, hosts []string, n int) []string {
	if n <= 0 || len(hosts) == 0 {
		return nil
	}
	type ranked struct {
		host   string
		weight uint64
	}
	rs := make([]ranked, 0, len(hosts))
	for _, h := range hosts {
		rs = append(rs, ranked{h, weight(key, h)})
	}
	slices.SortFunc(rs, func(a, b ranked) int {
		if c := cmp.Compare(b.weight, a.weight); c != 0 {
			return c
		}
		return cmp.Compare(a.host, b.host)
	})
	rs = slices.CompactFunc(rs, func(a, b ranked) bool { return a.host == b.host })
	out := make([]string, 0, min(n, len(rs)))
	for _, r := range rs[:min(n, len(rs))] {
		out = append(out, r.host)
	}
	return out
}

// BouncerKey is the placement key of the bouncers of network netName in VPC vpc.
func BouncerKey(vpc, netName string) string { return "bouncer\x00" + vpc + "\x00" + netName }

// DividerKey is the placement key of the dividers of VPC vpc.
func DividerKey(vpc string) string { return "divider\x00" + vpc }

// weight is FNV-1a of key and host, finished with the splitmix64 mixer so that keys differing
// in one byte give unrelated rankings.
func weight(key, host string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write([]byte(host))
	z := h.Sum64()
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}
