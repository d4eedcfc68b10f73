package controlplane

import (
	"fmt"
	"slices"
	"testing"
)

func hostNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("host-%02d", i)
	}
	return out
}

func TestPlaceSpread(t *testing.T) {
	tests := []struct {
		hosts, n, want int
	}{
		{hosts: 20, n: 3, want: 3},
		{hosts: 3, n: 3, want: 3},
		{hosts: 2, n: 3, want: 2},
		{hosts: 1, n: 16, want: 1},
		{hosts: 0, n: 3, want: 0},
		{hosts: 5, n: 0, want: 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d-of-%d", tt.n, tt.hosts), func(t *testing.T) {
			for k := range 200 {
				got := Place(fmt.Sprintf("key-%d", k), hostNames(tt.hosts), tt.n)
				if len(got) != tt.want {
					t.Fatalf("Place returned %d hosts %v, want %d", len(got), got, tt.want)
				}
				sorted := slices.Clone(got)
				slices.Sort(sorted)
				if len(slices.Compact(sorted)) != len(got) {
					t.Fatalf("Place put two roles on one host: %v", got)
				}
			}
		})
	}
}

func TestPlaceIgnoresOrder(t *testing.T) {
	hosts := hostNames(12)
	rev := slices.Clone(hosts)
	slices.Reverse(rev)
	for k := range 100 {
		key := BouncerKey("vpc", fmt.Sprint(k))
		if a, b := Place(key, hosts, 4), Place(key, rev, 4); !slices.Equal(a, b) {
			t.Fatalf("key %q: %v for sorted hosts, %v for reversed", key, a, b)
		}
	}
}

// roles places n roles for each of keys keys, as a set of (key, host).
func roles(hosts []string, keys, n int) map[string]bool {
	out := map[string]bool{}
	for k := range keys {
		key := BouncerKey("vpc", fmt.Sprint(k))
		for _, h := range Place(key, hosts, n) {
			out[key+"|"+h] = true
		}
	}
	return out
}

func moved(before, after map[string]bool) int {
	n := 0
	for r := range after {
		if !before[r] {
			n++
		}
	}
	return n
}

func TestPlaceStableOnAdd(t *testing.T) {
	const keys, n = 1000, 3
	hosts := hostNames(21)
	before := roles(hosts[:20], keys, n)
	after := roles(hosts, keys, n)
	got := moved(before, after)
	// A fair share for the new host is keys*n/21 ≈ 143 roles; allow 25% over.
	want := keys * n / 21
	if got > want*5/4 {
		t.Errorf("adding 1 host to 20 moved %d of %d roles, want at most ~%d", got, keys*n, want)
	}
	if got < want*3/4 {
		t.Errorf("adding 1 host to 20 moved %d of %d roles: the new host takes less than its share %d", got, keys*n, want)
	}
	for r := range after {
		if !before[r] && r[len(r)-len(hosts[20]):] != hosts[20] {
			t.Errorf("role %s moved to an old host", r)
		}
	}
}

func TestPlaceStableOnRemove(t *testing.T) {
	const keys, n = 1000, 3
	hosts := hostNames(20)
	gone := hosts[7]
	before := roles(hosts, keys, n)
	after := roles(slices.Delete(slices.Clone(hosts), 7, 8), keys, n)
	held := 0
	for r := range before {
		if r[len(r)-len(gone):] == gone {
			held++
		}
	}
	if got := moved(before, after); got != held {
		t.Errorf("removing a host that held %d roles moved %d", held, got)
	}
}

func TestPlaceBalanced(t *testing.T) {
	const keys, n = 2000, 3
	hosts := hostNames(10)
	load := map[string]int{}
	for r := range roles(hosts, keys, n) {
		load[r[len(r)-len(hosts[0]):]]++
	}
	fair := keys * n / len(hosts)
	for _, h := range hosts {
		if load[h] < fair*4/5 || load[h] > fair*6/5 {
			t.Errorf("host %s holds %d roles, fair share %d", h, load[h], fair)
		}
	}
}
