package scenario

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mizar-net/mizar/controlplane"
)

// library is every scenario file shipped in this folder.
var library = []string{
	"quickstart.yaml", "multi-bouncer.yaml", "same-host.yaml", "isolation.yaml", "dividers.yaml",
	"scale-live.yaml", "recreate.yaml", "direct-path.yaml", "host-failure.yaml", "routed.yaml",
}

func TestLibraryParses(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	want := slices.Sorted(slices.Values(library))
	if !slices.Equal(files, want) {
		t.Errorf("scenario files %v, want %v", files, want)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			s, err := Load(f)
			if err != nil {
				t.Fatalf("load:\n%v", err)
			}
			if s.Name+".yaml" != f {
				t.Errorf("name %q, want the file's name", s.Name)
			}
			if s.Description == "" {
				t.Error("no description")
			}
			if len(s.Steps) == 0 {
				t.Error("no steps")
			}
			for i, st := range s.Steps {
				if st.Kind() == "" || st.Line == 0 {
					t.Errorf("steps[%d]: kind %q line %d", i, st.Kind(), st.Line)
				}
			}
			for _, v := range s.VPCs {
				if v.VNI == 0 || v.Dividers == 0 {
					t.Errorf("vpc %s not resolved: %+v", v.Name, v)
				}
				for _, n := range v.Networks {
					if n.VPC != v.Name || n.Bouncers == 0 {
						t.Errorf("network %s not resolved: %+v", n.Name, n)
					}
					for _, e := range n.Endpoints {
						if !e.IP.IsValid() || e.VPC != v.Name || e.Network != n.Name {
							t.Errorf("endpoint %s not resolved: %+v", e.Name, e)
						}
					}
				}
			}
		})
	}
}

func TestQuickstartResolved(t *testing.T) {
	s, err := Load("quickstart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Hosts(); !slices.Equal(got, []string{"h1", "h2", "h3"}) {
		t.Errorf("hosts %v", got)
	}
	if s.Fabric != Bridge || s.MTU != 1500 {
		t.Errorf("fabric %q mtu %d", s.Fabric, s.MTU)
	}
	eps := s.VPCs[0].Networks[0].Endpoints
	if eps[0].IP != netip.MustParseAddr("10.0.1.2") || eps[1].IP != netip.MustParseAddr("10.0.1.20") {
		t.Errorf("endpoint addresses %v %v", eps[0].IP, eps[1].IP)
	}
	ch := s.Steps[0].Check
	if want := []Pair{{"a", "b"}, {"b", "a"}}; !slices.Equal(ch.Pairs(), want) || !ch.Reach.Want {
		t.Errorf("pairs %v want %v", ch.Pairs(), ch.Reach.Want)
	}
}

// TestLibraryPlacement checks the placements the library files' comments promise: the runner
// places roles with controlplane.Place over the live hosts.
func TestLibraryPlacement(t *testing.T) {
	for _, tc := range []struct {
		file, vpc, network string
		bouncer, divider   string
	}{
		{"quickstart.yaml", "blue", "front", "h3", "h3"},
		{"same-host.yaml", "blue", "app", "h3", ""},
		{"direct-path.yaml", "blue", "app", "h3", ""},
		{"host-failure.yaml", "blue", "app", "h3", "h3"},
		{"routed.yaml", "blue", "front", "h3", "h3"},
	} {
		s, err := Load(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		if got := controlplane.Place(controlplane.BouncerKey(tc.vpc, tc.network), s.Hosts(), 1); got[0] != tc.bouncer {
			t.Errorf("%s: bouncer of %s/%s on %v, the file says %s", tc.file, tc.vpc, tc.network, got, tc.bouncer)
		}
		if tc.divider == "" {
			continue
		}
		if got := controlplane.Place(controlplane.DividerKey(tc.vpc), s.Hosts(), 1); got[0] != tc.divider {
			t.Errorf("%s: divider of %s on %v, the file says %s", tc.file, tc.vpc, got, tc.divider)
		}
	}
}

// base is a valid scenario; cases append to it. Its lines:
//
//	1 hosts  3 - name: blue  6 - name: web  9 endpoint a
//	2 vpcs   4 cidr          7 cidr         10 endpoint b
//	         5 networks      8 endpoints
const base = `hosts: [h1, h2, h3]
vpcs:
  - name: blue
    cidr: 10.0.0.0/16
    networks:
      - name: web
        cidr: 10.0.1.0/24
        endpoints:
          - {name: a, host: h1}
          - {name: b, host: h2}
`

// red is a second VPC with the same CIDR, lines 11-18.
const red = `  - name: red
    cidr: 10.0.0.0/16
    networks:
      - name: web
        cidr: 10.0.1.0/24
        endpoints:
          - {name: x, host: h1}
          - {name: y, host: h2}
`

func TestInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want []string // substrings of the error, each file:line: field: message
	}{
		{"bad vpc cidr", strings.Replace(base, "10.0.0.0/16", "10.0.0/16", 1),
			[]string{`t.yaml:4: vpcs[0].cidr: "10.0.0/16" is not a CIDR`}},
		{"cidr host bits", strings.Replace(base, "10.0.1.0/24", "10.0.1.5/24", 1),
			[]string{`t.yaml:7: vpcs[0].networks[0].cidr: 10.0.1.5/24 has host bits set (did you mean 10.0.1.0/24?)`}},
		{"cidr too long", strings.Replace(base, "10.0.1.0/24", "10.0.1.0/31", 1),
			[]string{`t.yaml:7: vpcs[0].networks[0].cidr: 10.0.1.0/31 is longer than /30`}},
		{"ipv6 cidr", strings.Replace(base, "10.0.0.0/16", "fd00::/64", 1),
			[]string{`t.yaml:4: vpcs[0].cidr: fd00::/64 is not IPv4`}},
		{"network outside vpc", base + "      - name: db\n        cidr: 10.1.0.0/24\n",
			[]string{`t.yaml:12: vpcs[0].networks[1].cidr: 10.1.0.0/24 is outside vpc blue (10.0.0.0/16)`}},
		{"network wider than vpc", base + "      - name: db\n        cidr: 10.0.0.0/8\n",
			[]string{`t.yaml:12: vpcs[0].networks[1].cidr: 10.0.0.0/8 is outside vpc blue`}},
		{"network overlaps sibling", base + "      - name: db\n        cidr: 10.0.1.128/25\n",
			[]string{`t.yaml:12: vpcs[0].networks[1].cidr: 10.0.1.128/25 overlaps network web (10.0.1.0/24) in vpc blue`}},
		{"endpoint outside network", base + "          - {name: c, host: h3, ip: 10.0.2.9}\n",
			[]string{`t.yaml:11: vpcs[0].networks[0].endpoints[2].ip: 10.0.2.9 is outside network web (10.0.1.0/24)`}},
		{"endpoint ip duplicated", base + "          - {name: c, host: h3, ip: 10.0.1.9}\n          - {name: d, host: h3, ip: 10.0.1.9}\n",
			[]string{`t.yaml:12: vpcs[0].networks[0].endpoints[3].ip: 10.0.1.9 is already the address of endpoint c in vpc blue`}},
		{"network address", base + "          - {name: c, host: h3, ip: 10.0.1.0}\n",
			[]string{`t.yaml:11: vpcs[0].networks[0].endpoints[2].ip: 10.0.1.0 is the network address of network web`}},
		{"gateway", base + "          - {name: c, host: h3, ip: 10.0.1.1}\n",
			[]string{`t.yaml:11: vpcs[0].networks[0].endpoints[2].ip: 10.0.1.1 is the gateway of network web`}},
		{"broadcast", base + "          - {name: c, host: h3, ip: 10.0.1.255}\n",
			[]string{`t.yaml:11: vpcs[0].networks[0].endpoints[2].ip: 10.0.1.255 is the broadcast address of network web`}},
		{"bad ip", base + "          - {name: c, host: h3, ip: 10.0.1.x}\n",
			[]string{`t.yaml:11: vpcs[0].networks[0].endpoints[2].ip: "10.0.1.x" is not an IP address`}},
		{"unknown host", base + "          - {name: c, host: h9}\n",
			[]string{`t.yaml:11: vpcs[0].networks[0].endpoints[2].host: unknown host h9 (hosts: h1, h2, h3)`}},
		{"missing host", base + "          - {name: c}\n",
			[]string{`t.yaml:11: vpcs[0].networks[0].endpoints[2].host: missing`}},
		{"duplicate host", strings.Replace(base, "[h1, h2, h3]", "[h1, h2, h1]", 1),
			[]string{`t.yaml:1: hosts[2]: host h1 is listed twice`}},
		{"host count", strings.Replace(base, "[h1, h2, h3]", "0", 1),
			[]string{`t.yaml:1: hosts: host count 0 is out of range 1..254`}},
		{"hosts missing", strings.Replace(base, "hosts: [h1, h2, h3]\n", "", 1),
			[]string{`t.yaml:1: hosts: missing`}},
		{"bad name", strings.Replace(base, "name: blue", "name: blue sky", 1),
			[]string{`t.yaml:3: vpcs[0].name: "blue sky": only letters`}},
		{"duplicate vpc", base + "  - {name: blue, cidr: 10.1.0.0/16}\n",
			[]string{`t.yaml:11: vpcs[1].name: vpc blue already exists (line 3)`}},
		{"duplicate network", base + "      - {name: web, cidr: 10.0.2.0/24}\n",
			[]string{`t.yaml:11: vpcs[0].networks[1].name: network web already exists in vpc blue (line 6)`}},
		{"duplicate endpoint across vpcs", base + strings.Replace(red, "name: x", "name: a", 1),
			[]string{`t.yaml:17: vpcs[1].networks[0].endpoints[0].name: endpoint a already exists (line 9)`}},
		{"endpoint named like an address", base + "          - {name: 10.0.1.9, host: h3}\n",
			[]string{`t.yaml:11: vpcs[0].networks[0].endpoints[2].name: 10.0.1.9: an endpoint name cannot be an IP address`}},
		{"duplicate vni", strings.Replace(base, "    cidr: 10.0.0.0/16\n", "    cidr: 10.0.0.0/16\n    vni: 7\n", 1) +
			"  - {name: red, cidr: 10.0.0.0/16, vni: 7}\n",
			[]string{`t.yaml:12: vpcs[1].vni: 7 is already the vni of vpc blue`}},
		{"vni zero", base + "  - {name: red, cidr: 10.0.0.0/16, vni: 0}\n",
			[]string{`t.yaml:11: vpcs[1].vni: 0 is out of range 1..16777215`}},
		{"vni too big", base + "  - {name: red, cidr: 10.0.0.0/16, vni: 16777216}\n",
			[]string{`t.yaml:11: vpcs[1].vni: 16777216 is out of range 1..16777215`}},
		{"vni negative", base + "  - {name: red, cidr: 10.0.0.0/16, vni: -1}\n",
			[]string{`t.yaml:11: vpcs[1].vni: -1 is out of range`}},
		{"bouncers zero", strings.Replace(base, "cidr: 10.0.1.0/24", "cidr: 10.0.1.0/24\n        bouncers: 0", 1),
			[]string{`t.yaml:8: vpcs[0].networks[0].bouncers: 0 is out of range 1..16`}},
		{"bouncers too many", strings.Replace(base, "cidr: 10.0.1.0/24", "cidr: 10.0.1.0/24\n        bouncers: 17", 1),
			[]string{`t.yaml:8: vpcs[0].networks[0].bouncers: 17 is out of range 1..16`}},
		{"dividers zero", base + "  - {name: red, cidr: 10.0.0.0/16, dividers: 0}\n",
			[]string{`t.yaml:11: vpcs[1].dividers: 0 is out of range 1..16`}},
		{"dividers too many", base + "  - {name: red, cidr: 10.0.0.0/16, dividers: 17}\n",
			[]string{`t.yaml:11: vpcs[1].dividers: 17 is out of range 1..16`}},
		{"not an integer", base + "  - {name: red, cidr: 10.0.0.0/16, dividers: two}\n",
			[]string{`t.yaml:11: vpcs[1].dividers: want an integer, got "two"`}},
		{"check unknown endpoint", base + "steps:\n  - check: {reach: [a, zz]}\n",
			[]string{`t.yaml:12: steps[0].check.reach[1]: unknown endpoint zz`}},
		{"check one endpoint", base + "steps:\n  - check: {reach: [a]}\n",
			[]string{`t.yaml:12: steps[0].check.reach: want at least two endpoints`}},
		{"check across vpcs", base + red + "steps:\n  - check: {reach: [a, x]}\n",
			[]string{`t.yaml:20: steps[0].check.reach[1]: x is in vpc red and a in vpc blue: endpoints of different VPCs never reach`}},
		{"check pair across vpcs", base + red + "steps:\n  - check: {from: a, to: x}\n",
			[]string{`t.yaml:20: steps[0].check.to: x is in vpc red and a in vpc blue`}},
		{"check address outside vpc", base + "steps:\n  - check: {from: a, to: 10.9.0.1, reach: false}\n",
			[]string{`t.yaml:12: steps[0].check.to: 10.9.0.1 is outside vpc blue (10.0.0.0/16) of a`}},
		{"check empty", base + "steps:\n  - check: {}\n",
			[]string{`t.yaml:12: steps[0].check: want reach: [endpoints], from and to, or direct`}},
		{"check direct with over", base + "steps:\n  - check: {direct: {from: a, to: b}, over: [tcp]}\n",
			[]string{`t.yaml:12: steps[0].check.over: does not go with direct`}},
		{"bad protocol", base + "steps:\n  - check: {reach: [a, b], over: [icmp, sctp]}\n",
			[]string{`t.yaml:12: steps[0].check.over[1]: "sctp" is not a protocol here (want icmp, tcp, udp)`}},
		{"transfer over udp", base + "steps:\n  - traffic: {start: {name: t, from: a, to: b, proto: udp}}\n",
			[]string{`t.yaml:12: steps[0].traffic.start.proto: "udp" is not a protocol here (want tcp)`}},
		{"bad duration", base + "steps:\n  - wait: forever\n",
			[]string{`t.yaml:12: steps[0].wait: "forever" is not a duration`}},
		{"negative duration", base + "steps:\n  - wait: -1s\n",
			[]string{`t.yaml:12: steps[0].wait: -1s: want a positive duration`}},
		{"bad timeout", base + "steps:\n  - fail: {host: h3}\n  - measure: {recovery: {from: a, to: b, timeout: 5}}\n",
			[]string{`t.yaml:13: steps[1].measure.recovery.timeout: "5" is not a duration`}},
		{"unknown top field", base + "colour: red\n",
			[]string{`t.yaml:11: colour: unknown field (want one of name, description, fabric, mtu, hosts, vpcs, steps)`}},
		{"unknown nested field", strings.Replace(base, "{name: b, host: h2}", "{name: b, host: h2, mac: 02:00:00:00:00:01}", 1),
			[]string{`t.yaml:10: vpcs[0].networks[0].endpoints[1].mac: unknown field (want one of name, vpc, network, host, ip)`}},
		{"unknown step field", base + "steps:\n  - check: {reach: [a, b], timeout: 1s}\n",
			[]string{`t.yaml:12: steps[0].check.timeout: unknown field`}},
		{"unknown step", base + "steps:\n  - ping: {from: a, to: b}\n",
			[]string{`t.yaml:12: steps[0].ping: unknown field (want one of check, create, delete, scale, fail, remove, wait, traffic, measure)`}},
		{"field given twice", strings.Replace(base, "{name: a, host: h1}", "{name: a, host: h1, host: h2}", 1),
			[]string{`t.yaml:9: vpcs[0].networks[0].endpoints[0].host: given twice`}},
		{"two actions", base + "steps:\n  - check: {reach: [a, b]}\n    wait: 1s\n",
			[]string{`t.yaml:12: steps[0]: want exactly one of check, create, delete, scale, fail, remove, wait, traffic, measure, got check and wait`}},
		{"no action", base + "steps:\n  - {}\n",
			[]string{`t.yaml:12: steps[0]: want one of check, create`}},
		{"two objects", base + "steps:\n  - delete: {endpoint: a, vpc: blue}\n",
			[]string{`t.yaml:12: steps[0].delete: want exactly one of endpoint, network, vpc, got endpoint and vpc`}},
		{"deleted endpoint", base + "steps:\n  - delete: {endpoint: b}\n  - check: {reach: [a, b]}\n",
			[]string{`t.yaml:13: steps[1].check.reach[1]: endpoint b was deleted at steps[0] (line 12)`}},
		{"not yet created", base + "steps:\n  - check: {from: a, to: c}\n" +
			"  - create: {endpoint: {name: c, vpc: blue, network: web, host: h3}}\n",
			[]string{`t.yaml:12: steps[0].check.to: endpoint c does not exist at this step`}},
		{"deleted network", base + "steps:\n  - delete: {network: blue/web}\n" +
			"  - create: {endpoint: {name: c, vpc: blue, network: web, host: h3}}\n  - check: {reach: [a, c]}\n",
			[]string{
				`t.yaml:13: steps[1].create.endpoint.network: network web does not exist in vpc blue at this step`,
				`t.yaml:14: steps[2].check.reach[0]: endpoint a was deleted at steps[0] (line 12)`,
			}},
		{"deleted vpc", base + "steps:\n  - delete: {vpc: blue}\n  - scale: {vpc: blue, dividers: 2}\n",
			[]string{`t.yaml:13: steps[1].scale.vpc: vpc blue does not exist at this step`}},
		{"bad network ref", base + "steps:\n  - scale: {network: web, bouncers: 2}\n",
			[]string{`t.yaml:12: steps[0].scale.network: "web": want vpc/network`}},
		{"scale without count", base + "steps:\n  - scale: {network: blue/web}\n",
			[]string{`t.yaml:12: steps[0].scale.bouncers: missing`}},
		{"scale wrong count", base + "steps:\n  - scale: {network: blue/web, dividers: 2}\n",
			[]string{`t.yaml:12: steps[0].scale.dividers: goes with vpc`}},
		{"scale too far", base + "steps:\n  - scale: {vpc: blue, dividers: 20}\n",
			[]string{`t.yaml:12: steps[0].scale.dividers: 20 is out of range 1..16`}},
		{"create on failed host", base + "steps:\n  - fail: {host: h3}\n" +
			"  - create: {endpoint: {name: c, vpc: blue, network: web, host: h3}}\n",
			[]string{`t.yaml:13: steps[1].create.endpoint.host: host h3 failed at steps[0] (line 12)`}},
		{"reach an endpoint on a failed host", base + "steps:\n  - fail: {host: h2}\n  - check: {reach: [a, b]}\n",
			[]string{`t.yaml:13: steps[1].check.reach[1]: endpoint b is on host h2, which failed at steps[0] (line 12)`}},
		{"fail twice", base + "steps:\n  - fail: {host: h3}\n  - fail: {host: h3}\n",
			[]string{`t.yaml:13: steps[1].fail.host: host h3 failed at steps[0] (line 12)`}},
		{"remove host with endpoints", base + "steps:\n  - remove: {host: h1}\n",
			[]string{`t.yaml:12: steps[0].remove.host: endpoints remain on host h1: a; delete them first`}},
		{"use removed host", base + "steps:\n  - remove: {host: h3}\n" +
			"  - create: {endpoint: {name: c, vpc: blue, network: web, host: h3}}\n",
			[]string{`t.yaml:13: steps[1].create.endpoint.host: host h3 was removed at steps[0] (line 12)`}},
		{"fail unknown host", base + "steps:\n  - fail: {host: h7}\n",
			[]string{`t.yaml:12: steps[0].fail.host: unknown host h7`}},
		{"stop not running", base + "steps:\n  - traffic: {stop: t1}\n",
			[]string{`t.yaml:12: steps[0].traffic.stop: no transfer t1 is running at this step`}},
		{"delete endpoint in transfer", base + "steps:\n  - traffic: {start: {name: t1, from: a, to: b}}\n  - delete: {endpoint: b}\n",
			[]string{`t.yaml:13: steps[1].delete.endpoint: endpoint b is in transfer t1, running since steps[0] (line 12); stop it first`}},
		{"fail host of transfer", base + "steps:\n  - traffic: {start: {name: t1, from: a, to: b}}\n  - fail: {host: h1}\n",
			[]string{`t.yaml:13: steps[1].fail.host: host h1 runs endpoint a of transfer t1`}},
		{"transfer twice", base + "steps:\n  - traffic: {start: {name: t1, from: a, to: b}}\n  - traffic: {start: {name: t1, from: b, to: a}}\n",
			[]string{`t.yaml:13: steps[1].traffic.start.name: transfer t1 is already running (since steps[0] (line 12))`}},
		{"measure without fail", base + "steps:\n  - measure: {recovery: {from: a, to: b}}\n",
			[]string{`t.yaml:12: steps[0].measure.recovery: no fail step comes before it`}},
		{"create network in missing vpc", base + "steps:\n  - create: {network: {vpc: green, name: db, cidr: 10.0.2.0/24}}\n",
			[]string{`t.yaml:12: steps[0].create.network.vpc: vpc green does not exist at this step`}},
		{"create network overlapping", base + "steps:\n  - create: {network: {vpc: blue, name: db, cidr: 10.0.1.0/25}}\n",
			[]string{`t.yaml:12: steps[0].create.network.cidr: 10.0.1.0/25 overlaps network web`}},
		{"implied vpc contradicted", strings.Replace(base, "- name: web\n", "- name: web\n        vpc: red\n", 1),
			[]string{`t.yaml:7: vpcs[0].networks[0].vpc: is red, but the network is under vpc blue; leave it out`}},
		{"bad fabric", base + "fabric: mesh\n",
			[]string{`t.yaml:11: fabric: "mesh" is not a fabric (want bridge or routed)`}},
		{"bad mtu", base + "mtu: 9500\n",
			[]string{`t.yaml:11: mtu: 9500 is out of range 1280..9216`}},
		{"wrong kind", base + "steps: {check: {reach: [a, b]}}\n",
			[]string{`t.yaml:11: steps: want a list, got a mapping`}},
		{"yaml syntax", base + "steps:\n  - check: {reach: [a, b]\n",
			[]string{`t.yaml:11: did not find expected ',' or '}'`}},
		{"not a mapping", "- a\n- b\n",
			[]string{`t.yaml:1: want a mapping`}},
		{"empty", "",
			[]string{`t.yaml:1: empty file`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse("t.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("no error; parsed %+v", s)
			}
			if s != nil {
				t.Error("a scenario returned with an error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestValid(t *testing.T) {
	for _, tc := range []struct{ name, yaml string }{
		{"same cidr and address in two vpcs", base + strings.Replace(red, "{name: x, host: h1}", "{name: x, host: h1, ip: 10.0.1.2}", 1) +
			"steps:\n  - check: {from: a, to: x, reach: false}\n  - check: {reach: [x, y]}\n"},
		{"recreate under the same name", base + "steps:\n  - delete: {endpoint: b}\n" +
			"  - check: {from: a, to: 10.0.1.3, reach: false}\n" +
			"  - create: {endpoint: {name: b, vpc: blue, network: web, host: h3}}\n  - check: {reach: [a, b]}\n"},
		{"vni reused after delete", base + "  - {name: red, cidr: 10.0.0.0/16, vni: 7}\nsteps:\n  - delete: {vpc: red}\n" +
			"  - create: {vpc: {name: green, cidr: 10.0.0.0/16, vni: 7}}\n"},
		{"remove a failed host", base + "steps:\n  - fail: {host: h3}\n  - remove: {host: h3}\n"},
		{"hosts as a count", strings.Replace(base, "[h1, h2, h3]", "3", 1)},
		{"no steps", base},
		{"anchors", base + "steps:\n  - check: &c {reach: [a, b]}\n  - check: *c\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse("t.yaml", []byte(tc.yaml)); err != nil {
				t.Fatalf("%v", err)
			}
		})
	}
}

func TestAllErrorsReported(t *testing.T) {
	bad := base +
		"      - {name: db, cidr: 10.1.0.0/24}\n" + // 11: outside the vpc
		"      - {name: web, cidr: 10.0.9.0/24}\n" + // 12: duplicate network
		"  - {name: red, cidr: 10.0.0.0/16, vni: 0, colour: red}\n" + // 13: vni and unknown field
		"steps:\n" +
		"  - wait: soon\n" + // 15
		"  - check: {reach: [a, nobody], over: [ftp]}\n" // 16: two errors
	_, err := Parse("many.yaml", []byte(bad))
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		"many.yaml:11: vpcs[0].networks[1].cidr:",
		"many.yaml:12: vpcs[0].networks[2].name:",
		"many.yaml:13: vpcs[1].vni:",
		"many.yaml:13: vpcs[1].colour:",
		"many.yaml:15: steps[0].wait:",
		"many.yaml:16: steps[1].check.reach[1]:",
		"many.yaml:16: steps[1].check.over[0]:",
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("not a joined error: %T", err)
	}
	errs := joined.Unwrap()
	if len(errs) != len(want) {
		t.Errorf("%d errors, want %d:\n%v", len(errs), len(want), err)
	}
	lines := strings.Split(err.Error(), "\n")
	for _, w := range want {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, w) }) {
			t.Errorf("no error starting %q:\n%v", w, err)
		}
	}
	var e *Error
	if !errors.As(errs[0], &e) || e.File != "many.yaml" || e.Line != 11 || e.Field != "vpcs[0].networks[1].cidr" {
		t.Errorf("first error %#v", errs[0])
	}
}

func TestIPAM(t *testing.T) {
	doc := `hosts: 2
vpcs:
  - name: blue
    cidr: 10.0.0.0/16
    networks:
      - name: web
        cidr: 10.0.1.0/29
        endpoints:
          - {name: a, host: h1}
          - {name: b, host: h2, ip: 10.0.1.2}
          - {name: c, host: h1}
  - name: red
    cidr: 10.0.0.0/16
    networks:
      - name: web
        cidr: 10.0.1.0/29
        endpoints:
          - {name: x, host: h1}
steps:
  - delete: {endpoint: a}
  - create: {endpoint: {name: d, vpc: blue, network: web, host: h2}}
  - create: {endpoint: {name: e, vpc: blue, network: web, host: h2}}
  - create: {endpoint: {name: f, vpc: blue, network: web, host: h2, ip: 10.0.1.5}}
`
	s, err := Parse("ipam.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr
	blue := s.VPCs[0].Networks[0].Endpoints
	// .2 is b's (given), so a gets .3 and c .4; .5 is f's (given later), so a's .3 is reused
	// by d after a is deleted, and e gets .6.
	for _, tc := range []struct {
		name string
		got  netip.Addr
		want string
	}{
		{"a", blue[0].IP, "10.0.1.3"},
		{"b", blue[1].IP, "10.0.1.2"},
		{"c", blue[2].IP, "10.0.1.4"},
		{"x", s.VPCs[1].Networks[0].Endpoints[0].IP, "10.0.1.2"},
		{"d", s.Steps[1].Create.Endpoint.IP, "10.0.1.3"},
		{"e", s.Steps[2].Create.Endpoint.IP, "10.0.1.6"},
		{"f", s.Steps[3].Create.Endpoint.IP, "10.0.1.5"},
	} {
		if tc.got != ip(tc.want) {
			t.Errorf("%s: %v, want %s", tc.name, tc.got, tc.want)
		}
	}
	again, err := Parse("ipam.yaml", []byte(doc))
	if err != nil || !reflect.DeepEqual(s, again) {
		t.Errorf("second parse differs: %v", err)
	}

	full := strings.Replace(doc, "  - create: {endpoint: {name: f", "  - create: {endpoint: {name: g, vpc: blue, network: web, host: h2}}\n  - create: {endpoint: {name: f", 1)
	if _, err := Parse("full.yaml", []byte(full)); err == nil ||
		!strings.Contains(err.Error(), "full.yaml:23: steps[3].create.endpoint.ip: no free address left in network web (10.0.1.0/29)") {
		t.Errorf("full network: %v", err)
	}
}

func TestVNIAllocation(t *testing.T) {
	doc := `hosts: 1
vpcs:
  - {name: a, cidr: 10.0.0.0/16}
  - {name: b, cidr: 10.0.0.0/16, vni: 100}
  - {name: c, cidr: 10.0.0.0/16}
steps:
  - create: {vpc: {name: d, cidr: 10.0.0.0/16}}
  - create: {vpc: {name: e, cidr: 10.0.0.0/16, vni: 103}}
  - delete: {vpc: a}
  - create: {vpc: {name: f, cidr: 10.0.0.0/16}}
`
	s, err := Parse("vni.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	got := []uint32{s.VPCs[0].VNI, s.VPCs[1].VNI, s.VPCs[2].VNI,
		s.Steps[0].Create.VPC.VNI, s.Steps[1].Create.VPC.VNI, s.Steps[3].Create.VPC.VNI}
	// 100 and 103 are given, so a, c, d get 101, 102, 104; a's 101 is free again for f.
	if want := []uint32{101, 100, 102, 104, 103, 101}; !slices.Equal(got, want) {
		t.Errorf("vnis %v, want %v", got, want)
	}
	again, err := Parse("vni.yaml", []byte(doc))
	if err != nil || !reflect.DeepEqual(s, again) {
		t.Errorf("second parse differs: %v", err)
	}
}

func TestDefaults(t *testing.T) {
	s, err := Parse("defaults.yaml", []byte(base+"steps:\n  - check: {from: a, to: b}\n  - fail: {host: h3}\n"+
		"  - measure: {recovery: {from: a, to: b}}\n  - traffic: {start: {name: t, from: a, to: b}}\n  - wait: 1500ms\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "defaults" || s.Fabric != Bridge || s.MTU != DefaultMTU {
		t.Errorf("name %q fabric %q mtu %d", s.Name, s.Fabric, s.MTU)
	}
	if v := s.VPCs[0]; v.VNI != FirstVNI || v.Dividers != 1 || v.Networks[0].Bouncers != 1 {
		t.Errorf("vpc %+v", v)
	}
	ch := s.Steps[0].Check
	if !ch.Reach.Want || !slices.Equal(ch.Over, AllProtos) || !slices.Equal(ch.Pairs(), []Pair{{"a", "b"}}) {
		t.Errorf("check %+v", ch)
	}
	if r := s.Steps[2].Measure.Recovery; r.Proto != ICMP || r.Timeout != DefaultRecoveryTimeout {
		t.Errorf("recovery %+v", r)
	}
	if tr := s.Steps[3].Traffic.Start; tr.Proto != TCP {
		t.Errorf("transfer %+v", tr)
	}
	if w := s.Steps[4].Wait; *w != 1500*time.Millisecond {
		t.Errorf("wait %v", *w)
	}
	for i, want := range []string{KindCheck, KindFail, KindMeasure, KindTraffic, KindWait} {
		if s.Steps[i].Kind() != want || s.Steps[i].Line != 12+i {
			t.Errorf("steps[%d]: kind %q line %d, want %s at %d", i, s.Steps[i].Kind(), s.Steps[i].Line, want, 12+i)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	if _, err := Load("no-such.yaml"); err == nil || errors.Is(err, ErrInvalid) {
		t.Errorf("missing file: %v", err)
	}
}

func TestSplitNetwork(t *testing.T) {
	if v, n, ok := SplitNetwork("blue/web"); v != "blue" || n != "web" || !ok {
		t.Errorf("SplitNetwork(blue/web) = %q %q %v", v, n, ok)
	}
	for _, ref := range []string{"blue", "/web", "blue/", ""} {
		if _, _, ok := SplitNetwork(ref); ok {
			t.Errorf("SplitNetwork(%q) ok", ref)
		}
	}
}

// TestReadmeExample parses the complete example of README.md.
func TestReadmeExample(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), "```yaml\n")
	example, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("README.md has no yaml example")
	}
	s, err := Parse("README.md", []byte(example))
	if err != nil {
		t.Fatalf("the README example:\n%v", err)
	}
	kinds := map[string]bool{}
	for _, st := range s.Steps {
		kinds[st.Kind()] = true
	}
	for _, k := range stepKeys {
		if !kinds[k] {
			t.Errorf("the README example has no %s step", k)
		}
	}
}
