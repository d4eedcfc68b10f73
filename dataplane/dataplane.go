// Package dataplane loads Mizar's XDP programs (transit, agent), attaches them to interfaces
// inside network namespaces, and offers typed operations on their maps. One Dataplane is one
// host: its programs and maps. Nothing here is global.
package dataplane

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Config sizes the maps at load time. Zero fields take the defaults.
type Config struct {
	// MaxEndpoints bounds the endpoint table: those hosted here plus, on a bouncer, those of
	// its networks (default 1,048,576).
	MaxEndpoints uint32
	// MaxIfindex bounds the ifindex of an endpoint's veth: ports[] is an array indexed by it
	// (default 131,072).
	MaxIfindex uint32
	// MaxLearned bounds the direct-path LRU (default 262,144).
	MaxLearned uint32
	// MaxNetworks bounds networks, bouncer sets and VPCs (default 16,384).
	MaxNetworks uint32
	// MaxHosts bounds the underlay hosts this host can reach (default 65,536).
	MaxHosts uint32
	// XDPFrags loads the XDP programs as multi-buffer (xdp.frags): a veth takes an XDP program
	// only while its MTU fits one page, unless the program handles frames spread over
	// several buffers. Needed for jumbo underlay MTUs.
	XDPFrags bool
	Logger   *slog.Logger
}

const (
	DefaultMaxEndpoints = 1 << 20
	DefaultMaxIfindex   = 1 << 17
	DefaultMaxLearned   = 1 << 18
	DefaultMaxNetworks  = 1 << 14
	DefaultMaxHosts     = 1 << 16
)

func (c Config) withDefaults() Config {
	def := func(v *uint32, d uint32) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.MaxEndpoints, DefaultMaxEndpoints)
	def(&c.MaxIfindex, DefaultMaxIfindex)
	def(&c.MaxLearned, DefaultMaxLearned)
	def(&c.MaxNetworks, DefaultMaxNetworks)
	def(&c.MaxHosts, DefaultMaxHosts)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Dataplane is one host's loaded programs and maps.
type Dataplane struct {
	log       *slog.Logger
	transit   transitObjects
	agent     agentObjects
	agentTC   agentTCObjects
	reference referenceObjects
	pass      passObjects

	cfg   Config
	mu    sync.Mutex
	links map[attachKey]link.Link

	// state mirrors what was programmed, to hand out slots and to keep an endpoint's bouncer
	// entry when it is also hosted here. Guarded by its own lock.
	state *shadow
}

// ErrClosed is returned by operations on a closed Dataplane.
var ErrClosed = errors.New("dataplane closed")

// New loads transit, agent (XDP and tc), and the helper programs; the agents share every map
// with transit.
func New(cfg Config) (*Dataplane, error) {
	cfg = cfg.withDefaults()
	spec, err := loadTransit()
	if err != nil {
		return nil, fmt.Errorf("load transit spec: %w", err)
	}
	sizes := map[string]uint32{
		"endpoints":    cfg.MaxEndpoints,
		"neighbors":    cfg.MaxHosts,
		"ports":        cfg.MaxIfindex,
		"learned":      cfg.MaxLearned,
		"networks":     cfg.MaxNetworks,
		"bouncer_sets": cfg.MaxNetworks,
		"vpcs":         cfg.MaxNetworks,
	}
	if err := resize(spec, sizes); err != nil {
		return nil, fmt.Errorf("transit: %w", err)
	}
	cfg.frags(spec)
	d := &Dataplane{log: cfg.Logger, cfg: cfg, links: map[attachKey]link.Link{}, state: newShadow()}
	if err := spec.LoadAndAssign(&d.transit, nil); err != nil {
		return nil, fmt.Errorf("load transit: %w", verifierError(err))
	}
	if err := d.loadShared(loadAgent, &d.agent, sizes); err != nil {
		d.transit.Close()
		return nil, fmt.Errorf("agent: %w", err)
	}
	if err := d.loadShared(loadAgentTC, &d.agentTC, sizes); err != nil {
		d.Close()
		return nil, fmt.Errorf("agent_tc: %w", err)
	}
	if err := loadReferenceObjects(&d.reference, nil); err != nil {
		d.Close()
		return nil, fmt.Errorf("load reference: %w", err)
	}
	passSpec, err := loadPass()
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("load pass spec: %w", err)
	}
	cfg.frags(passSpec)
	if err := passSpec.LoadAndAssign(&d.pass, nil); err != nil {
		d.Close()
		return nil, fmt.Errorf("load pass: %w", err)
	}
	return d, nil
}

// loadShared loads a collection whose maps are all transit's: the agent's two attach points
// (XDP and tc) decide from the same tables.
func (d *Dataplane) loadShared(load func() (*ebpf.CollectionSpec, error), objs any, sizes map[string]uint32) error {
	spec, err := load()
	if err != nil {
		return fmt.Errorf("load spec: %w", err)
	}
	d.cfg.frags(spec)
	// Each copy of a shared map must match in size, or the replacement is refused.
	for name, ms := range spec.Maps {
		if n, ok := sizes[name]; ok {
			ms.MaxEntries = n
		}
	}
	shared := map[string]*ebpf.Map{}
	for name := range spec.Maps {
		m, err := d.transitMap(name)
		if err != nil {
			return err
		}
		shared[name] = m
	}
	if err := spec.LoadAndAssign(objs, &ebpf.CollectionOptions{MapReplacements: shared}); err != nil {
		return fmt.Errorf("load: %w", verifierError(err))
	}
	return nil
}

// frags marks spec's XDP programs multi-buffer when c asks for it. The C is written for both:
// it reads headers from the first buffer and lengths from bpf_xdp_get_buff_len.
func (c Config) frags(spec *ebpf.CollectionSpec) {
	if !c.XDPFrags {
		return
	}
	for _, p := range spec.Programs {
		if p.Type == ebpf.XDP {
			p.Flags |= unix.BPF_F_XDP_HAS_FRAGS
		}
	}
}

func resize(spec *ebpf.CollectionSpec, sizes map[string]uint32) error {
	for name, n := range sizes {
		ms, ok := spec.Maps[name]
		if !ok {
			return fmt.Errorf("no map %q", name)
		}
		ms.MaxEntries = n
	}
	return nil
}

func (d *Dataplane) transitMap(name string) (*ebpf.Map, error) {
	m := map[string]*ebpf.Map{
		"endpoints":    d.transit.Endpoints,
		"bouncer_sets": d.transit.BouncerSets,
		"host_config":  d.transit.HostConfig,
		"learned":      d.transit.Learned,
		"neighbors":    d.transit.Neighbors,
		"networks":     d.transit.Networks,
		"ports":        d.transit.Ports,
		"stats":        d.transit.Stats,
		"vpcs":         d.transit.Vpcs,
	}[name]
	if m == nil {
		return nil, fmt.Errorf("agent uses map %q that transit does not define", name)
	}
	return m, nil
}

func verifierError(err error) error {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		return fmt.Errorf("%+v", ve)
	}
	return err
}

// Close detaches everything this Dataplane attached and releases its programs and maps.
func (d *Dataplane) Close() error {
	errs := []error{d.DetachAll()}
	errs = append(errs, d.agent.Close(), d.agentTC.Close(), d.reference.Close(), d.pass.Close(), d.transit.Close())
	return errors.Join(errs...)
}
