// Package hostagent applies the control plane's ops to one host's data plane. It is the host
// side of controlplane.HostAgent: called in-process by the testbed, or behind the gRPC server of
// tools/mizar-agent on a real machine.
package hostagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/mizar-net/mizar/controlplane"
	"github.com/mizar-net/mizar/dataplane"
)

// Agent programs one host. Endpoint ops name the host side of the endpoint's veth; the agent
// resolves it in the host's namespace and attaches the agent program to it.
type Agent struct {
	dp   *dataplane.Dataplane
	ns   netns.NsHandle
	mode dataplane.Mode
	prog dataplane.Program // the agent program endpoint veths get
	log  *slog.Logger

	mu       sync.Mutex
	attached map[string]bool // veths with the agent program
	writes   uint64
}

// New returns an Agent for dp, whose interfaces live in ns (netns.None() for the caller's).
func New(dp *dataplane.Dataplane, ns netns.NsHandle, mode dataplane.Mode, log *slog.Logger) *Agent {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Agent{dp: dp, ns: ns, mode: mode, prog: dataplane.AgentTC, log: log, attached: map[string]bool{}}
}

// ErrAgentProgram is returned for an agent program that is not one.
var ErrAgentProgram = errors.New("not an agent program")

// UseAgentProgram chooses the program attached to endpoint veths from now on: dataplane.AgentTC
// (the default: the endpoints keep TSO, and it measured faster than XDP in dataplane's
// TestThroughputEncapPoints) or dataplane.Agent (XDP; its endpoints need TX checksum offload
// off). Veths already attached keep theirs.
func (a *Agent) UseAgentProgram(p dataplane.Program) error {
	if p != dataplane.Agent && p != dataplane.AgentTC {
		return fmt.Errorf("use %q for endpoints: %w", p, ErrAgentProgram)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.prog = p
	return nil
}

var (
	_ controlplane.HostAgent     = (*Agent)(nil)
	_ controlplane.StatsReporter = (*Agent)(nil)
)

// Writes is the number of ops applied so far.
func (a *Agent) Writes() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.writes
}

// Stats reports the ops applied so far and the data plane's counters.
func (a *Agent) Stats(context.Context) (controlplane.AgentStats, error) {
	c, err := a.dp.Counters()
	if err != nil {
		return controlplane.AgentStats{}, err
	}
	return controlplane.AgentStats{Writes: a.Writes(), Counters: c.Map()}, nil
}

// Apply writes ops in order. Runs of bouncer entries go to the kernel as one batch.
func (a *Agent) Apply(ctx context.Context, ops []controlplane.Op) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := 0; i < len(ops); i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		op := ops[i]
		if op.Kind == controlplane.OpUpsertBouncerEntry {
			j := i
			var batch []dataplane.BouncerEntry
			for ; j < len(ops) && ops[j].Kind == controlplane.OpUpsertBouncerEntry; j++ {
				batch = append(batch, dataplane.BouncerEntry{VNI: ops[j].VNI, IP: ops[j].IP, Host: ops[j].Host})
			}
			if err := a.dp.UpsertBouncerEntries(batch...); err != nil {
				return fmt.Errorf("apply %d bouncer entries: %w", len(batch), err)
			}
			a.writes += uint64(len(batch))
			i = j - 1
			continue
		}
		if err := a.apply(op); err != nil {
			return fmt.Errorf("apply %v: %w", op, err)
		}
		a.writes++
	}
	return nil
}

func (a *Agent) apply(op controlplane.Op) error {
	switch op.Kind {
	case controlplane.OpUpsertEndpoint:
		ifindex, err := a.ifindex(op.Interface)
		if err != nil {
			return err
		}
		// The agent goes on the veth before transit may deliver to the endpoint: otherwise the
		// endpoint's first answer can ARP for its peer into a veth nobody answers on, and the
		// kernel retries that ARP only a second later. (Until its port is written the agent
		// drops what the endpoint sends, which it has no reason to send yet.)
		attached := false
		if !a.attached[op.Interface] {
			if err := a.dp.Attach(a.ns, op.Interface, a.prog, a.mode); err != nil {
				return err
			}
			a.attached[op.Interface], attached = true, true
		}
		if err := a.dp.UpsertEndpoint(dataplane.Endpoint{VNI: op.VNI, IP: op.IP, MAC: op.MAC, Ifindex: ifindex, NetID: op.NetID, VPC: op.VPCCIDR}); err != nil {
			if attached {
				delete(a.attached, op.Interface)
				return errors.Join(err, a.dp.Detach(a.ns, op.Interface))
			}
			return err
		}
		return nil
	case controlplane.OpDeleteEndpoint:
		if err := a.dp.DeleteEndpoint(op.VNI, op.IP); err != nil {
			return err
		}
		if a.attached[op.Interface] {
			delete(a.attached, op.Interface)
			return a.dp.Detach(a.ns, op.Interface)
		}
		return nil
	case controlplane.OpDeleteBouncerEntry:
		return a.dp.DeleteBouncerEntries(op.VNI, op.IP)
	case controlplane.OpUpsertNetwork:
		return a.dp.UpsertNetwork(dataplane.Network{VNI: op.VNI, NetID: op.NetID, CIDR: op.Prefix, Bouncer: op.Flag})
	case controlplane.OpDeleteNetwork:
		return a.dp.DeleteNetwork(op.VNI, op.NetID)
	case controlplane.OpSetBouncers:
		return a.dp.SetBouncers(op.VNI, op.NetID, op.Addrs)
	case controlplane.OpDeleteBouncers:
		return a.dp.DeleteBouncers(op.VNI, op.NetID)
	case controlplane.OpUpsertVPC:
		return a.dp.UpsertVPC(dataplane.VPC{VNI: op.VNI, Divider: op.Flag, Bouncer: op.Bouncer, Dividers: op.Addrs})
	case controlplane.OpDeleteVPC:
		return a.dp.DeleteVPC(op.VNI)
	case controlplane.OpUpsertNeighbor:
		return a.dp.UpsertNeighbor(op.IP, op.MAC)
	case controlplane.OpDeleteNeighbor:
		return a.dp.DeleteNeighbor(op.IP)
	}
	return fmt.Errorf("op kind %v: %w", op.Kind, controlplane.ErrInvalid)
}

func (a *Agent) ifindex(name string) (int, error) {
	if name == "" {
		return 0, fmt.Errorf("endpoint op without an interface: %w", controlplane.ErrInvalid)
	}
	h, err := handle(a.ns)
	if err != nil {
		return 0, err
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		return 0, fmt.Errorf("find %s: %w", name, err)
	}
	return l.Attrs().Index, nil
}

// handle is a netlink handle in ns, or in the caller's namespace for netns.None().
func handle(ns netns.NsHandle) (*netlink.Handle, error) {
	var (
		h   *netlink.Handle
		err error
	)
	if ns.IsOpen() {
		h, err = netlink.NewHandleAt(ns)
	} else {
		h, err = netlink.NewHandle()
	}
	if err != nil {
		return nil, fmt.Errorf("netlink in host namespace: %w", err)
	}
	return h, nil
}
