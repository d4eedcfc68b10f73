package dataplane

import (
	"net/netip"
	"testing"
	"time"
)

// TestMillionEndpoints fills a bouncer's table with the default capacity of at least 1,000,000
// endpoints through the batched API, and reports what that costs in kernel memory.
func TestMillionEndpoints(t *testing.T) {
	requireRoot(t)
	d, err := New(Config{})
	must(t, err)
	defer d.Close()
	empty, err := d.MapMemory()
	must(t, err)
	const n, batch = 1_000_000, 10_000
	host := netip.MustParseAddr("198.51.100.7")
	entries := make([]BouncerEntry, batch)
	start := time.Now()
	for i := 0; i < n; i += batch {
		for j := range entries {
			v := uint32(0x0a000000 + i + j)
			entries[j] = BouncerEntry{VNI: 1 + uint32(i+j)%7, IP: netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), Host: host}
		}
		must(t, d.UpsertBouncerEntries(entries...))
	}
	took := time.Since(start)
	full, err := d.MapMemory()
	must(t, err)
	var total uint64
	for _, v := range full {
		total += v
	}
	t.Logf("endpoints table: %.1f MiB empty, %.1f MiB with %d entries (%.0f bytes each); all maps %.1f MiB; %d entries written in %v (%.0f ns each)",
		mib(empty["endpoints"]), mib(full["endpoints"]), n, float64(full["endpoints"]-empty["endpoints"])/n, mib(total), n, took.Round(time.Millisecond), float64(took.Nanoseconds())/n)
	if full["endpoints"] <= empty["endpoints"] {
		t.Errorf("memory did not grow with %d entries: %d -> %d", n, empty["endpoints"], full["endpoints"])
	}
	var k transitEpKey
	var v transitEndpoint
	it := d.transit.Endpoints.Iterate()
	count := 0
	for it.Next(&k, &v) {
		count++
	}
	must(t, it.Err())
	if count != n {
		t.Errorf("table holds %d entries, want %d", count, n)
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
