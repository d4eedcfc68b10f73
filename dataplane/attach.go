package dataplane

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Mode is the XDP attach mode.
type Mode int

const (
	// Native runs the program in the driver (veth supports it). The default.
	Native Mode = iota
	// Generic runs it on the skb path; only when asked for.
	Generic
)

func (m Mode) flags() link.XDPAttachFlags {
	if m == Generic {
		return link.XDPGenericMode
	}
	return link.XDPDriverMode
}

func (m Mode) String() string {
	if m == Generic {
		return "generic"
	}
	return "native"
}

// Program names an attachable program.
type Program string

const (
	Transit Program = "transit"
	// Agent is the agent as XDP on the host side of an endpoint's veth.
	Agent Program = "agent"
	// AgentTC is the agent at tc ingress (tcx) of the same veth: the same decisions on the skb
	// path, where the endpoint's GSO super-packets stay whole until the substrate segments them.
	// XDP's Mode does not apply to it.
	AgentTC   Program = "agent_tc"
	Pass      Program = "pass"
	Reference Program = "reference"
)

type attachKey struct {
	ns     string
	ifname string
}

func (d *Dataplane) program(p Program) (*ebpf.Program, error) {
	switch p {
	case Transit:
		return d.transit.Transit, nil
	case Agent:
		return d.agent.Agent, nil
	case AgentTC:
		return d.agentTC.AgentTc, nil
	case Pass:
		return d.pass.Pass, nil
	case Reference:
		return d.reference.Reference, nil
	}
	return nil, fmt.Errorf("unknown program %q", p)
}

// Attach attaches program p to interface ifname inside network namespace ns (an open handle;
// netns.None() means the caller's namespace): XDP programs in mode, AgentTC at tcx ingress. The
// attachment is a bpf_link: it is removed when Detach or Close runs, or when the process dies.
func (d *Dataplane) Attach(ns netns.NsHandle, ifname string, p Program, mode Mode) error {
	prog, err := d.program(p)
	if err != nil {
		return err
	}
	key := attachKey{ns: nsID(ns), ifname: ifname}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.links[key]; ok {
		return fmt.Errorf("attach %s to %s: already attached", p, ifname)
	}
	var l link.Link
	err = InNamespace(ns, func() error {
		iface, err := netlink.LinkByName(ifname)
		if err != nil {
			return fmt.Errorf("find interface: %w", err)
		}
		if prog.Type() == ebpf.SchedCLS {
			l, err = link.AttachTCX(link.TCXOptions{
				Program:   prog,
				Interface: iface.Attrs().Index,
				Attach:    ebpf.AttachTCXIngress,
			})
			return err
		}
		l, err = link.AttachXDP(link.XDPOptions{
			Program:   prog,
			Interface: iface.Attrs().Index,
			Flags:     mode.flags(),
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("attach %s to %s (%s mode): %w", p, ifname, mode, err)
	}
	d.links[key] = l
	d.log.Debug("attached", "prog", string(p), "iface", ifname, "mode", mode.String())
	return nil
}

// Detach removes whatever this Dataplane attached to ifname in ns.
func (d *Dataplane) Detach(ns netns.NsHandle, ifname string) error {
	key := attachKey{ns: nsID(ns), ifname: ifname}
	d.mu.Lock()
	defer d.mu.Unlock()
	l, ok := d.links[key]
	if !ok {
		return fmt.Errorf("detach %s: nothing attached", ifname)
	}
	delete(d.links, key)
	if err := l.Close(); err != nil {
		return fmt.Errorf("detach %s: %w", ifname, err)
	}
	return nil
}

// DetachAll removes every attachment.
func (d *Dataplane) DetachAll() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for k, l := range d.links {
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("detach %s: %w", k.ifname, err))
		}
		delete(d.links, k)
	}
	return errors.Join(errs...)
}

func nsID(ns netns.NsHandle) string {
	if !ns.IsOpen() {
		return ""
	}
	return ns.UniqueId()
}

// InNamespace runs fn on a thread switched into ns (netns.None(): the caller's namespace, on the
// caller's goroutine). The calling goroutine never moves; a thread that cannot switch back stays
// locked so the runtime discards it. Sockets fn creates stay in ns.
func InNamespace(ns netns.NsHandle, fn func() error) error {
	if !ns.IsOpen() {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter namespace: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("return to namespace: %w", err))
			return // thread stays locked and dies with the goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
