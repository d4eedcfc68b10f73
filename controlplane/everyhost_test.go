package controlplane

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// TestWritesPerEndpointByMode: an endpoint on a host that already holds its VPC costs its
// network's bouncers plus one writes whatever the number of hosts; with ProgramEveryHost it
// costs one write per live host, so the comparison mode really is the per-host flow programming.
func TestWritesPerEndpointByMode(t *testing.T) {
	const bouncers = 3
	for _, everyHost := range []bool{false, true} {
		for _, hosts := range []int{4, 16, 48} {
			t.Run(fmt.Sprintf("everyHost=%t/hosts=%d", everyHost, hosts), func(t *testing.T) {
				agents := NewRecordingAgents()
				c, err := New(Options{Agents: agents, ProgramEveryHost: everyHost})
				must(t, err)
				names := hostNames(hosts)
				for i, name := range names {
					must(t, c.AddHost(ctx, Host{Name: name, IP: hostIP(i + 1), Interface: "eth0"}))
				}
				mustVPC(t, c, VPC{Name: "blue", CIDR: pfx("10.0.0.0/16"), Dividers: 1})
				mustNet(t, c, Network{Name: "web", VPC: "blue", CIDR: pfx("10.0.0.0/20"), Bouncers: bouncers})
				// One endpoint per host first, so every host is a member of the VPC.
				for i, h := range names {
					mustEP(t, c, Endpoint{Name: fmt.Sprintf("warm%d", i), VPC: "blue", Network: "web", Host: h})
				}
				for i := range 2 * hosts {
					h := names[i%hosts]
					e := mustEP(t, c, Endpoint{Name: fmt.Sprintf("e%d", i), VPC: "blue", Network: "web", Host: h})
					w := c.Stats().Last["CreateEndpoint"]
					// On one of its bouncers' hosts an endpoint's host gets both its own entry
					// and the bouncer's: same writes, one host fewer.
					want, wantHosts := bouncers+1, bouncers+1
					if isBouncerOf(t, c, h) {
						wantHosts--
					}
					if everyHost {
						want, wantHosts = hosts, hosts
						if isBouncerOf(t, c, h) {
							want++
						}
					}
					if w.Total != want || len(w.PerHost) != wantHosts {
						t.Fatalf("endpoint %s on %s: %d writes on %d hosts (%v), want %d on %d", e.Name, h, w.Total, len(w.PerHost), w.PerHost, want, wantHosts)
					}
				}
				// Deleting one undoes the same number of entries.
				must(t, c.DeleteEndpoint(ctx, "blue", "e1"))
				if w := c.Stats().Last["DeleteEndpoint"]; !everyHost && w.Total != bouncers+1 || everyHost && w.Total < hosts {
					t.Errorf("delete e1: %d writes (%v)", w.Total, w.PerHost)
				}
				// Every host holds every endpoint in every-host mode; in mizar mode a host
				// that is not a bouncer holds only its own.
				entries := map[string]int{} // distinct endpoints a host holds, own or bounced
				for _, h := range names {
					ips := map[netip.Addr]bool{}
					for _, op := range agents.Host(h).Table() {
						if op.Kind == OpUpsertBouncerEntry || op.Kind == OpUpsertEndpoint {
							ips[op.IP] = true
						}
					}
					entries[h] = len(ips)
				}
				total := len(c.State().VPCs["blue"].Endpoints)
				for _, h := range names {
					switch {
					case everyHost && entries[h] != total:
						t.Errorf("host %s holds %d endpoints, want all %d", h, entries[h], total)
					case !everyHost && !isBouncerOf(t, c, h) && entries[h] >= total:
						t.Errorf("host %s (not a bouncer) holds all %d endpoints", h, total)
					}
				}
			})
		}
	}
}

func isBouncerOf(t *testing.T, c *Controller, host string) bool {
	t.Helper()
	bs, err := c.Bouncers("blue", "web")
	must(t, err)
	for _, b := range bs {
		if b == host {
			return true
		}
	}
	return false
}

// TestFocusedEndpointDiff: what an endpoint create or delete sends (computed only for the
// endpoint's address and host) equals the difference of the whole desired state before and
// after, in both modes, through random creates, deletes, host failures and recoveries.
func TestFocusedEndpointDiff(t *testing.T) {
	for _, everyHost := range []bool{false, true} {
		t.Run(fmt.Sprintf("everyHost=%t", everyHost), func(t *testing.T) {
			agents := NewRecordingAgents()
			c, err := New(Options{Agents: agents, ProgramEveryHost: everyHost})
			must(t, err)
			names := hostNames(7)
			for i, name := range names {
				must(t, c.AddHost(ctx, Host{Name: name, IP: hostIP(i + 1), Interface: "eth0"}))
			}
			mustVPC(t, c, VPC{Name: "blue", CIDR: pfx("10.0.0.0/16"), Dividers: 2})
			mustNet(t, c, Network{Name: "web", VPC: "blue", CIDR: pfx("10.0.1.0/24"), Bouncers: 2})
			mustNet(t, c, Network{Name: "db", VPC: "blue", CIDR: pfx("10.0.2.0/24"), Bouncers: 1})
			whole := func(s *State) desired {
				d := desired{}
				desiredVPC(d, s, "blue", liveHosts(s), everyHost, nil)
				return d
			}
			rng := rand.New(rand.NewPCG(1, 2))
			failed := map[string]bool{}
			var eps []string
			for i := range 300 {
				before := c.State()
				agents.ResetAll()
				switch r := rng.IntN(10); {
				case r < 6 || len(eps) == 0:
					h := names[rng.IntN(len(names))]
					if failed[h] {
						continue
					}
					name := fmt.Sprintf("e%d", i)
					mustEP(t, c, Endpoint{Name: name, VPC: "blue", Network: []string{"web", "db"}[rng.IntN(2)], Host: h})
					eps = append(eps, name)
				case r < 9:
					j := rng.IntN(len(eps))
					must(t, c.DeleteEndpoint(ctx, "blue", eps[j]))
					eps = slices.Delete(eps, j, j+1)
				default:
					h := names[rng.IntN(len(names))]
					if failed[h] {
						must(t, c.RecoverHost(ctx, h))
					} else {
						must(t, c.FailHost(ctx, h))
					}
					failed[h] = !failed[h]
					continue
				}
				want := diff(whole(before), whole(c.State()))
				for _, h := range names {
					if failed[h] {
						delete(want, h)
					}
					got := agents.Host(h).Ops()
					if len(got) != len(want[h]) || !slices.EqualFunc(got, want[h], opEqual) {
						t.Fatalf("step %d, host %s: sent %v, whole diff %v", i, h, got, want[h])
					}
				}
			}
		})
	}
}
