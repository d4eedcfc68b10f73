// Package scenario is the scenario file format: a YAML description of an overlay (hosts, VPCs,
// networks, endpoints) and a timeline of steps (checks, creates, deletes, scaling, host
// failures, traffic, measurements) to run against it.
//
// A file is decoded strictly into the plain structs below, then validated as a whole,
// timeline included, before anything is created: Parse either returns every error it found
// (each naming file, line and field) or a fully concrete scenario, with defaults filled in,
// endpoint addresses and VNIs allocated. The package creates nothing; a runner realizes the
// scenario. The runner places bouncers and dividers itself (files only give counts), spreading
// them over the live hosts with rendezvous hashing.
//
// See README.md in this folder for the format reference.
package scenario

import (
	"net/netip"
	"strings"
	"time"
)

// Limits and defaults of the format.
const (
	// MaxVNI is the largest 24-bit Geneve VNI.
	MaxVNI = 1<<24 - 1
	// FirstVNI is where VNI allocation starts.
	FirstVNI = 100
	// MaxBouncers and MaxDividers are the largest role counts the data plane holds.
	MaxBouncers = 16
	MaxDividers = 16
	// MaxPrefixBits is the longest VPC or network prefix: a /30 leaves one endpoint address
	// beside the network address, the gateway and the broadcast address.
	MaxPrefixBits = 30
	// MaxHosts is the largest host count.
	MaxHosts = 254
	// DefaultMTU is the underlay MTU when the file gives none; MinMTU and MaxMTU bound it.
	DefaultMTU = 1500
	MinMTU     = 1280
	MaxMTU     = 9216
	// DefaultRecoveryTimeout bounds a recovery measurement when the file gives no timeout.
	DefaultRecoveryTimeout = 30 * time.Second
)

// Fabric is how the hosts' underlay is joined.
type Fabric string

const (
	// Bridge joins every host to one L2 segment (the default).
	Bridge Fabric = "bridge"
	// Routed gives each host its own link to a router; the underlay is L3.
	Routed Fabric = "routed"
)

// Proto is a protocol a check or a transfer uses.
type Proto string

const (
	ICMP Proto = "icmp" // echo request and reply
	TCP  Proto = "tcp"  // a connection carrying bytes that must come back intact
	UDP  Proto = "udp"  // datagrams that must come back intact
)

// AllProtos is the default of a check's over: every protocol.
var AllProtos = []Proto{ICMP, TCP, UDP}

// Scenario is one scenario file. After Parse it is fully concrete: every default filled in,
// every endpoint has an IP and every VPC a VNI.
type Scenario struct {
	// File is the name the scenario was parsed under (the path given to Load); errors and
	// Step.Line refer to it. Not part of the file.
	File string `yaml:"-"`
	// Name names the scenario in reports; the file name without its extension by default.
	Name string `yaml:"name"`
	// Description says in one line what the scenario shows. Optional.
	Description string `yaml:"description"`
	// Fabric is the underlay: bridge (default) or routed.
	Fabric Fabric `yaml:"fabric"`
	// MTU is the underlay MTU, MinMTU..MaxMTU, DefaultMTU by default.
	MTU int `yaml:"mtu"`
	// HostList is the hosts, in order: a list of names or, in the file, a count n that names
	// them h1..hn. Use Hosts for a copy.
	HostList HostList `yaml:"hosts"`
	// VPCs is what exists before the first step, created in this order.
	VPCs []VPC `yaml:"vpcs"`
	// Steps is the timeline, run in order.
	Steps []Step `yaml:"steps"`
}

// HostList is the hosts of a scenario. In the file it is a list of names or a count.
type HostList []string

// VPC is a tenant address space, isolated from other VPCs by its VNI; two VPCs may use the
// same CIDR.
type VPC struct {
	// Name is unique among the VPCs that exist at the same time.
	Name string `yaml:"name"`
	// CIDR is the VPC's IPv4 prefix, no longer than /30.
	CIDR netip.Prefix `yaml:"cidr"`
	// VNI is the Geneve VNI, 1..MaxVNI, unique among existing VPCs. Allocated when absent:
	// the lowest free one from FirstVNI up that no VPC of the file names explicitly.
	VNI uint32 `yaml:"vni"`
	// Dividers is how many hosts divide for the VPC, 1..MaxDividers, 1 by default.
	Dividers int `yaml:"dividers"`
	// Networks is the VPC's networks, created with it in this order.
	Networks []Network `yaml:"networks"`
}

// Network is a subnet of a VPC.
type Network struct {
	// Name is unique within its VPC.
	Name string `yaml:"name"`
	// VPC is the VPC the network belongs to. Required in a create step; implied (and filled
	// in) under vpcs[].networks, where it may be left out.
	VPC string `yaml:"vpc"`
	// CIDR is inside the VPC's CIDR and overlaps no sibling network's.
	CIDR netip.Prefix `yaml:"cidr"`
	// Bouncers is how many hosts bounce for the network, 1..MaxBouncers, 1 by default.
	Bouncers int `yaml:"bouncers"`
	// Endpoints is the network's endpoints, created with it in this order.
	Endpoints []Endpoint `yaml:"endpoints"`
}

// Endpoint is a workload's interface in a network, on a host.
type Endpoint struct {
	// Name is unique among all endpoints that exist at the same time, in every VPC. It
	// cannot be an IP address (a check's to may be either).
	Name string `yaml:"name"`
	// VPC and Network say where the endpoint is. Required in a create step; implied (and
	// filled in) under vpcs[].networks[].endpoints.
	VPC     string `yaml:"vpc"`
	Network string `yaml:"network"`
	// Host is one of the scenario's hosts, live when the endpoint is created.
	Host string `yaml:"host"`
	// IP is in the network, not its network address, gateway (first address) or broadcast
	// address, and unique in the VPC. Allocated when absent: the lowest free address from
	// the network's .2 up that no endpoint of the file names explicitly in that VPC.
	IP netip.Addr `yaml:"ip"`
}

// Step is one entry of the timeline: exactly one of its action fields is set.
type Step struct {
	// Line is the step's line in File. Not part of the file.
	Line int `yaml:"-"`

	Check   *Check         `yaml:"check"`   // assert reachability, isolation or the direct path
	Create  *Create        `yaml:"create"`  // create an endpoint, a network or a VPC
	Delete  *Delete        `yaml:"delete"`  // delete an endpoint, a network or a VPC
	Scale   *Scale         `yaml:"scale"`   // change a network's bouncers or a VPC's dividers
	Fail    *HostRef       `yaml:"fail"`    // stop a host; its roles are re-placed
	Remove  *HostRef       `yaml:"remove"`  // take a host without endpoints out of the cluster
	Wait    *time.Duration `yaml:"wait"`    // sleep, a Go duration such as 2s or 500ms
	Traffic *Traffic       `yaml:"traffic"` // start or stop a long-running transfer
	Measure *Measure       `yaml:"measure"` // measure something, such as recovery time
}

// Step kinds, as Step.Kind returns them: the action's key in the file.
const (
	KindCheck   = "check"
	KindCreate  = "create"
	KindDelete  = "delete"
	KindScale   = "scale"
	KindFail    = "fail"
	KindRemove  = "remove"
	KindWait    = "wait"
	KindTraffic = "traffic"
	KindMeasure = "measure"
)

// Kind returns the key of the step's action, "" if none is set.
func (s *Step) Kind() string {
	switch {
	case s.Check != nil:
		return KindCheck
	case s.Create != nil:
		return KindCreate
	case s.Delete != nil:
		return KindDelete
	case s.Scale != nil:
		return KindScale
	case s.Fail != nil:
		return KindFail
	case s.Remove != nil:
		return KindRemove
	case s.Wait != nil:
		return KindWait
	case s.Traffic != nil:
		return KindTraffic
	case s.Measure != nil:
		return KindMeasure
	}
	return ""
}

// Check asserts something about the overlay now. It has one of three forms:
//
//	{reach: [a, b, c], over: [...]}        every ordered pair of the set reaches
//	{from: a, to: b, reach: false, ...}    from -> to reaches (reach true, the default) or not
//	{direct: {from: a, to: b}}             the flow goes direct after its first packets
type Check struct {
	// Reach is a list of endpoints (set form) or a boolean for from -> to (pair form).
	Reach Reach `yaml:"reach"`
	// From is the sending endpoint of the pair form.
	From string `yaml:"from"`
	// To is the pair form's destination: an endpoint name, or an IPv4 address in From's VPC
	// (to prove, say, that a deleted endpoint's old address no longer answers).
	To string `yaml:"to"`
	// Over is the protocols tried, each in AllProtos; all of them by default. Not with direct.
	Over []Proto `yaml:"over"`
	// Direct asserts that, once traffic of the flow has passed, the counters of its
	// network's bouncers stop growing for it: the sender's host learned the direct path.
	Direct *Flow `yaml:"direct"`
}

// Reach is the value of a check's reach key: a list of endpoints (Among; Want is true) or a
// boolean for the pair from -> to (Want; false means it must not reach).
type Reach struct {
	Among []string
	Want  bool
	list  bool // the file gave a list
}

// Pair is one ordered from -> to of a check.
type Pair struct{ From, To string }

// Pairs returns the ordered pairs a reach check tries, nil for a direct check.
func (c *Check) Pairs() []Pair {
	if c.Direct != nil {
		return nil
	}
	if len(c.Reach.Among) == 0 {
		return []Pair{{c.From, c.To}}
	}
	var ps []Pair
	for _, a := range c.Reach.Among {
		for _, b := range c.Reach.Among {
			if a != b {
				ps = append(ps, Pair{a, b})
			}
		}
	}
	return ps
}

// Flow is traffic from one endpoint to another of the same VPC.
type Flow struct {
	From string `yaml:"from"`
	To   string `yaml:"to"`
}

// Create creates exactly one object, which is validated like one in vpcs. A VPC may come
// with networks and a network with endpoints.
type Create struct {
	Endpoint *Endpoint `yaml:"endpoint"` // vpc, network and host required
	Network  *Network  `yaml:"network"`  // vpc required
	VPC      *VPC      `yaml:"vpc"`
}

// Delete deletes exactly one existing object and what it contains (a network's endpoints,
// a VPC's networks and endpoints). An endpoint in a running transfer cannot be deleted.
type Delete struct {
	Endpoint string `yaml:"endpoint"` // endpoint name
	Network  string `yaml:"network"`  // "vpc/network", see SplitNetwork
	VPC      string `yaml:"vpc"`      // VPC name
}

// Scale sets a network's bouncer count or a VPC's divider count.
type Scale struct {
	Network  string `yaml:"network"`  // "vpc/network", with bouncers
	Bouncers int    `yaml:"bouncers"` // 1..MaxBouncers
	VPC      string `yaml:"vpc"`      // VPC name, with dividers
	Dividers int    `yaml:"dividers"` // 1..MaxDividers
}

// HostRef names a host.
type HostRef struct {
	Host string `yaml:"host"`
}

// Traffic starts or stops a transfer: exactly one of Start and Stop.
type Traffic struct {
	Start *Transfer `yaml:"start"`
	// Stop names a running transfer. The runner stops it and checks that every byte came
	// back intact: the transfer survived whatever happened meanwhile. Transfers still running
	// at the end of the timeline are stopped and checked the same way.
	Stop string `yaml:"stop"`
}

// Transfer is a long-running exchange between two endpoints of one VPC, on live hosts.
type Transfer struct {
	// Name is unique among running transfers; stop refers to it.
	Name string `yaml:"name"`
	From string `yaml:"from"`
	To   string `yaml:"to"`
	// Proto is tcp (the default and the only one supported: a verified byte stream).
	Proto Proto `yaml:"proto"`
}

// Measure measures something and reports it: exactly one measurement.
type Measure struct {
	Recovery *Recovery `yaml:"recovery"`
}

// Recovery measures how long from -> to was broken by the most recent fail step: the runner
// probes from the fail step on, and reports the time from that step to the first probe that
// succeeds again. Put it right after the fail step; a fail step must precede it.
type Recovery struct {
	From string `yaml:"from"`
	To   string `yaml:"to"`
	// Proto is the probe's protocol, icmp by default.
	Proto Proto `yaml:"proto"`
	// Timeout fails the step when reach is not back that long after the fail step;
	// DefaultRecoveryTimeout by default.
	Timeout time.Duration `yaml:"timeout"`
}

// Hosts returns a copy of the scenario's host names, in order.
func (s *Scenario) Hosts() []string { return append([]string(nil), s.HostList...) }

// SplitNetwork splits a "vpc/network" reference.
func SplitNetwork(ref string) (vpc, network string, ok bool) {
	vpc, network, ok = strings.Cut(ref, "/")
	return vpc, network, ok && vpc != "" && network != ""
}
