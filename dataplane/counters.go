package dataplane

import (
	"fmt"
	"github.com/cilium/ebpf"
	"slices"
	"strings"
)

// Reason is why a program returned its verdict (enum reason in bpf/types.h).
type Reason = transitReason

// Exported reasons, for tests and reports.
const (
	ReasonPass           = transitReasonR_PASS
	ReasonDelivered      = transitReasonR_DELIVERED
	ReasonBounced        = transitReasonR_BOUNCED
	ReasonDivided        = transitReasonR_DIVIDED
	ReasonToDivider      = transitReasonR_TO_DIVIDER
	ReasonRerouted       = transitReasonR_REROUTED
	ReasonARPReplied     = transitReasonR_ARP_REPLIED
	ReasonEncapBouncer   = transitReasonR_ENCAP_BOUNCER
	ReasonDirectHit      = transitReasonR_DIRECT_HIT
	ReasonSameHost       = transitReasonR_SAME_HOST
	ReasonLearned        = transitReasonR_LEARNED
	ReasonSpoofed        = transitReasonR_SPOOFED
	ReasonUnknownDest    = transitReasonR_UNKNOWN_DEST
	ReasonUnknownPort    = transitReasonR_UNKNOWN_PORT
	ReasonNoBouncer      = transitReasonR_NO_BOUNCER
	ReasonNoNeighbor     = transitReasonR_NO_NEIGHBOR
	ReasonMalformed      = transitReasonR_MALFORMED
	ReasonBadVersion     = transitReasonR_BAD_VERSION
	ReasonCriticalOption = transitReasonR_CRITICAL_OPTION
	ReasonTTLExpired     = transitReasonR_TTL_EXPIRED
	ReasonTooBig         = transitReasonR_TOO_BIG
	ReasonNotIPv4        = transitReasonR_NOT_IPV4
	ReasonARPIgnored     = transitReasonR_ARP_IGNORED
	ReasonRedirectFailed = transitReasonR_REDIRECT_FAILED
	numReasons           = int(transitReasonR_MAX)
)

var reasonNames = map[Reason]string{
	ReasonPass: "pass", ReasonDelivered: "delivered", ReasonBounced: "bounced",
	ReasonDivided: "divided", ReasonToDivider: "to_divider", ReasonRerouted: "rerouted",
	ReasonARPReplied: "arp_replied", ReasonEncapBouncer: "encap_bouncer",
	ReasonDirectHit: "direct_hit", ReasonSameHost: "same_host", ReasonLearned: "learned",
	ReasonSpoofed: "spoofed", ReasonUnknownDest: "unknown_dest", ReasonUnknownPort: "unknown_port",
	ReasonNoBouncer: "no_bouncer", ReasonNoNeighbor: "no_neighbor", ReasonMalformed: "malformed",
	ReasonBadVersion: "bad_version", ReasonCriticalOption: "critical_option",
	ReasonTTLExpired: "ttl_expired", ReasonTooBig: "too_big", ReasonNotIPv4: "not_ipv4",
	ReasonARPIgnored: "arp_ignored", ReasonRedirectFailed: "redirect_failed",
}

// ReasonName is the reason as reports and logs spell it: "delivered", "ttl_expired".
func ReasonName(r Reason) string {
	if n, ok := reasonNames[r]; ok {
		return n
	}
	return fmt.Sprintf("reason_%d", r)
}

// Counters holds the packets counted for each reason, summed over CPUs.
type Counters [numReasons]uint64

// Get returns one reason's count.
func (c Counters) Get(r Reason) uint64 {
	if int(r) >= len(c) {
		return 0
	}
	return c[r]
}

// Sub returns c - prev, for the packets counted between two reads.
func (c Counters) Sub(prev Counters) Counters {
	var out Counters
	for i := range c {
		out[i] = c[i] - prev[i]
	}
	return out
}

// Map returns the non-zero counters by name.
func (c Counters) Map() map[string]uint64 {
	m := map[string]uint64{}
	for i, v := range c {
		if v != 0 {
			m[ReasonName(Reason(i))] = v
		}
	}
	return m
}

func (c Counters) String() string {
	m := c.Map()
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%d", k, m[k])
	}
	return b.String()
}

// Counters reads every per-CPU counter of this host.
func (d *Dataplane) Counters() (Counters, error) {
	var c Counters
	var per []uint64
	for i := range numReasons {
		if err := d.transit.Stats.Lookup(uint32(i), &per); err != nil {
			return c, fmt.Errorf("read counter %s: %w", ReasonName(Reason(i)), err)
		}
		for _, v := range per {
			c[i] += v
		}
	}
	return c, nil
}

// ResetCounters zeroes every counter.
func (d *Dataplane) ResetCounters() error {
	n, err := possibleCPUs()
	if err != nil {
		return err
	}
	zero := make([]uint64, n)
	for i := range numReasons {
		if err := d.transit.Stats.Put(uint32(i), zero); err != nil {
			return fmt.Errorf("reset counter %s: %w", ReasonName(Reason(i)), err)
		}
	}
	return nil
}

func possibleCPUs() (int, error) {
	n, err := ebpf.PossibleCPU()
	if err != nil {
		return 0, fmt.Errorf("count possible cpus: %w", err)
	}
	return n, nil
}

// MapMemory reports what the kernel charges for each map that says, in bytes (its memlock figure: for
// tables without preallocation, the bucket array plus the entries in use).
func (d *Dataplane) MapMemory() (map[string]uint64, error) {
	out := map[string]uint64{}
	for _, name := range []string{"endpoints", "ports", "learned", "networks", "bouncer_sets", "vpcs", "neighbors", "host_config", "stats"} {
		m, err := d.transitMap(name)
		if err != nil {
			return nil, err
		}
		info, err := m.Info()
		if err != nil {
			return nil, fmt.Errorf("map %s info: %w", name, err)
		}
		if n, ok := info.Memlock(); ok { // not every map type reports it
			out[name] = n
		}
	}
	return out, nil
}
