package testbed

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// DefaultPrefix starts every run prefix made by NewPrefix; Clean("") removes
// everything that starts with it.
const DefaultPrefix = "mz"

// MaxIfName is the longest interface name the kernel accepts (IFNAMSIZ-1).
const MaxIfName = unix.IFNAMSIZ - 1

var (
	// ErrName reports a namespace or interface name that is malformed, too
	// long, or (in the root namespace) lacks the run prefix.
	ErrName = errors.New("invalid name")
	// ErrClosed reports use of a Lab after Close.
	ErrClosed = errors.New("lab closed")
)

// NewPrefix returns a fresh run prefix: DefaultPrefix, 4 random hex digits and
// a dash, e.g. "mz3fa0-". It is 7 characters long, which leaves 8 for the rest
// of an interface name in the root namespace.
func NewPrefix() string {
	return fmt.Sprintf("%s%04x-", DefaultPrefix, rand.N(0x10000))
}

// Namespace is a named network namespace created by a Lab. Its loopback
// interface is up. Functions taking a *Namespace treat nil as the process's
// own (root) namespace.
type Namespace struct {
	Name   string         // full name under NetnsDir, run prefix included
	Handle netns.NsHandle // open until the Lab is closed
}

func (ns *Namespace) String() string {
	if ns == nil {
		return "root"
	}
	return ns.Name
}

// VethEnd is one end of a veth pair.
type VethEnd struct {
	NS    *Namespace // nil for the root namespace
	Name  string
	Index int
	MAC   net.HardwareAddr
}

// VethPair describes a veth pair created by Lab.AddVeth.
type VethPair struct {
	A, B VethEnd
}

type labLink struct {
	ns   *Namespace
	name string
}

// Lab creates namespaces and links whose names start with its run prefix,
// records them, and removes them all in Close. It is safe for concurrent use.
type Lab struct {
	prefix string
	log    *slog.Logger

	mu         sync.Mutex
	closed     bool
	namespaces []*Namespace
	links      []labLink
}

// NewLab returns an empty Lab for the given run prefix (see NewPrefix). A nil
// log discards messages.
func NewLab(prefix string, log *slog.Logger) *Lab {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Lab{prefix: prefix, log: log}
}

// Prefix returns the lab's run prefix.
func (l *Lab) Prefix() string { return l.prefix }

// AddNamespace creates the network namespace prefix+name and brings its
// loopback interface up.
func (l *Lab) AddNamespace(name string) (*Namespace, error) {
	full := l.prefix + name
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	h, err := NewNamed(full)
	if err != nil {
		return nil, err
	}
	ns := &Namespace{Name: full, Handle: h}
	if err := SetLinkUp(ns, "lo", true); err != nil {
		h.Close()
		return nil, errors.Join(err, DeleteNamed(full))
	}
	// Without duplicate address detection, IPv6 works as soon as a link is up: a tentative
	// link-local address would hold back neighbour discovery, and so the first packets, for
	// a second.
	for _, key := range []string{"net/ipv6/conf/all/accept_dad", "net/ipv6/conf/default/accept_dad"} {
		if err := SetSysctl(ns, key, "0"); err != nil {
			h.Close()
			return nil, errors.Join(err, DeleteNamed(full))
		}
	}
	l.namespaces = append(l.namespaces, ns)
	l.log.Debug("netns created", "netns", full)
	return ns, nil
}

// AddBridge creates a Linux bridge called name in ns and brings it up.
func (l *Lab) AddBridge(ns *Namespace, name string) error {
	if err := l.checkLinkName(ns, name); err != nil {
		return err
	}
	h, err := handleFor(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
	if err := h.LinkAdd(br); err != nil {
		return fmt.Errorf("add bridge %s in %s: %w", name, ns, err)
	}
	if err := h.LinkSetUp(br); err != nil {
		return errors.Join(fmt.Errorf("set bridge %s in %s up: %w", name, ns, err), h.LinkDel(br))
	}
	l.links = append(l.links, labLink{ns, name})
	l.log.Debug("bridge created", "netns", ns.String(), "iface", name)
	return nil
}

// AddVeth creates a veth pair with end aName in a and end bName in b, sets the
// MTU of both ends (unless mtu is 0) and brings both up. The pair is created
// in a and its peer is placed directly into b.
func (l *Lab) AddVeth(a *Namespace, aName string, b *Namespace, bName string, mtu int) (VethPair, error) {
	if err := l.checkLinkName(a, aName); err != nil {
		return VethPair{}, err
	}
	if err := l.checkLinkName(b, bName); err != nil {
		return VethPair{}, err
	}
	if a == b && aName == bName {
		return VethPair{}, fmt.Errorf("veth ends both named %s in %s: %w", aName, a, ErrName)
	}
	if mtu < 0 {
		return VethPair{}, fmt.Errorf("veth %s: mtu %d", aName, mtu)
	}
	ha, err := handleFor(a)
	if err != nil {
		return VethPair{}, err
	}
	defer ha.Close()
	hb, err := handleFor(b)
	if err != nil {
		return VethPair{}, err
	}
	defer hb.Close()
	peerNS := netns.None()
	if b == nil {
		if peerNS, err = rootHandle(); err != nil {
			return VethPair{}, err
		}
		defer peerNS.Close()
	} else {
		peerNS = b.Handle
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return VethPair{}, ErrClosed
	}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: aName, MTU: mtu},
		PeerName:      bName,
		PeerNamespace: netlink.NsFd(int(peerNS)),
		PeerMTU:       uint32(mtu),
	}
	if err := ha.LinkAdd(veth); err != nil {
		return VethPair{}, fmt.Errorf("add veth %s/%s - %s/%s: %w", a, aName, b, bName, err)
	}
	pair, err := func() (VethPair, error) {
		la, err := ha.LinkByName(aName)
		if err != nil {
			return VethPair{}, fmt.Errorf("find veth %s in %s: %w", aName, a, err)
		}
		lb, err := hb.LinkByName(bName)
		if err != nil {
			return VethPair{}, fmt.Errorf("find veth %s in %s: %w", bName, b, err)
		}
		if err := ha.LinkSetUp(la); err != nil {
			return VethPair{}, fmt.Errorf("set veth %s in %s up: %w", aName, a, err)
		}
		if err := hb.LinkSetUp(lb); err != nil {
			return VethPair{}, fmt.Errorf("set veth %s in %s up: %w", bName, b, err)
		}
		return VethPair{
			A: VethEnd{NS: a, Name: aName, Index: la.Attrs().Index, MAC: la.Attrs().HardwareAddr},
			B: VethEnd{NS: b, Name: bName, Index: lb.Attrs().Index, MAC: lb.Attrs().HardwareAddr},
		}, nil
	}()
	if err != nil {
		return VethPair{}, errors.Join(err, ha.LinkDel(veth))
	}
	l.links = append(l.links, labLink{a, aName}, labLink{b, bName})
	l.log.Debug("veth created", "netns", a.String(), "iface", aName, "peer_netns", b.String(), "peer_iface", bName)
	return pair, nil
}

// Close removes every link and namespace the lab created, newest first. It
// carries on past failures and returns them joined. Things already gone (for
// instance removed by Clean) are not errors. Close is idempotent.
func (l *Lab) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	var errs []error
	for _, ll := range slices.Backward(l.links) {
		if err := deleteLink(ll.ns, ll.name); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ns := range slices.Backward(l.namespaces) {
		ns.Handle.Close()
		if err := DeleteNamed(ns.Name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
		l.log.Debug("netns deleted", "netns", ns.Name)
	}
	l.links, l.namespaces = nil, nil
	return errors.Join(errs...)
}

// Clean removes every link in the root namespace and every named namespace
// under NetnsDir whose name starts with prefix: what a crashed run left
// behind. An empty prefix means DefaultPrefix, which matches every run.
func Clean(prefix string) error {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	var errs []error
	h, err := handleFor(nil)
	if err != nil {
		return err
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		errs = append(errs, fmt.Errorf("list links: %w", err))
	}
	for _, link := range links {
		name := link.Attrs().Name
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		if err := h.LinkDel(link); err != nil && !isLinkNotFound(err) {
			errs = append(errs, fmt.Errorf("delete link %s: %w", name, err))
		}
	}
	entries, err := os.ReadDir(NetnsDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("list %s: %w", NetnsDir, err))
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			if err := DeleteNamed(e.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Leftovers lists the named namespaces and root-namespace links whose names start with
// prefix: what Clean(prefix) would remove.
func Leftovers(prefix string) (namespaces, links []string, err error) {
	entries, err := os.ReadDir(NetnsDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("list %s: %w", NetnsDir, err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			namespaces = append(namespaces, e.Name())
		}
	}
	h, err := handleFor(nil)
	if err != nil {
		return nil, nil, err
	}
	defer h.Close()
	all, err := h.LinkList()
	if err != nil {
		return nil, nil, fmt.Errorf("list links: %w", err)
	}
	for _, l := range all {
		if strings.HasPrefix(l.Attrs().Name, prefix) {
			links = append(links, l.Attrs().Name)
		}
	}
	return namespaces, links, nil
}

// LinkByName looks up an interface in ns.
func LinkByName(ns *Namespace, ifname string) (netlink.Link, error) {
	h, err := handleFor(ns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	link, err := h.LinkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("find %s in %s: %w", ifname, ns, err)
	}
	return link, nil
}

// SetMaster attaches interface link in ns to the bridge called bridge.
func SetMaster(ns *Namespace, link, bridge string) error {
	return withLink(ns, link, func(h *netlink.Handle, l netlink.Link) error {
		br, err := h.LinkByName(bridge)
		if err != nil {
			return fmt.Errorf("find bridge %s in %s: %w", bridge, ns, err)
		}
		if err := h.LinkSetMaster(l, br); err != nil {
			return fmt.Errorf("attach %s to %s in %s: %w", link, bridge, ns, err)
		}
		return nil
	})
}

// SetLinkUp brings interface ifname in ns up or down.
func SetLinkUp(ns *Namespace, ifname string, up bool) error {
	return withLink(ns, ifname, func(h *netlink.Handle, l netlink.Link) error {
		set, state := h.LinkSetUp, "up"
		if !up {
			set, state = h.LinkSetDown, "down"
		}
		if err := set(l); err != nil {
			return fmt.Errorf("set %s in %s %s: %w", ifname, ns, state, err)
		}
		return nil
	})
}

// SetMAC sets the hardware address of ifname in ns.
func SetMAC(ns *Namespace, ifname string, mac net.HardwareAddr) error {
	return withLink(ns, ifname, func(h *netlink.Handle, l netlink.Link) error {
		if err := h.LinkSetHardwareAddr(l, mac); err != nil {
			return fmt.Errorf("set mac of %s in %s to %s: %w", ifname, ns, mac, err)
		}
		return nil
	})
}

// SetMTU sets the MTU of ifname in ns.
func SetMTU(ns *Namespace, ifname string, mtu int) error {
	return withLink(ns, ifname, func(h *netlink.Handle, l netlink.Link) error {
		if err := h.LinkSetMTU(l, mtu); err != nil {
			return fmt.Errorf("set mtu of %s in %s to %d: %w", ifname, ns, mtu, err)
		}
		return nil
	})
}

// AddAddr adds address prefix (host address and prefix length, e.g.
// 10.0.0.1/24) to ifname in ns. IPv6 addresses skip duplicate address
// detection so they are usable at once.
func AddAddr(ns *Namespace, ifname string, prefix netip.Prefix) error {
	if !prefix.IsValid() {
		return fmt.Errorf("add address to %s in %s: invalid prefix %s", ifname, ns, prefix)
	}
	return withLink(ns, ifname, func(h *netlink.Handle, l netlink.Link) error {
		addr := &netlink.Addr{IPNet: ipNet(prefix, false)}
		if prefix.Addr().Unmap().Is6() {
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(l, addr); err != nil {
			return fmt.Errorf("add address %s to %s in %s: %w", prefix, ifname, ns, err)
		}
		return nil
	})
}

// AddRoute adds a route to dst in ns, via gw if gw is valid (otherwise the
// destination is on-link), out of ifname if ifname is not empty.
func AddRoute(ns *Namespace, dst netip.Prefix, gw netip.Addr, ifname string) error {
	if !dst.IsValid() {
		return fmt.Errorf("add route in %s: invalid destination %s", ns, dst)
	}
	if !gw.IsValid() && ifname == "" {
		return fmt.Errorf("add route to %s in %s: need a gateway or an interface", dst, ns)
	}
	h, err := handleFor(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	route := &netlink.Route{Family: unix.AF_INET}
	if dst.Addr().Unmap().Is6() {
		route.Family = unix.AF_INET6
	}
	if dst.Bits() > 0 {
		route.Dst = ipNet(dst, true)
	}
	if gw.IsValid() {
		route.Gw = net.IP(gw.Unmap().AsSlice())
	} else {
		route.Scope = netlink.SCOPE_LINK
	}
	if ifname != "" {
		l, err := h.LinkByName(ifname)
		if err != nil {
			return fmt.Errorf("find %s in %s: %w", ifname, ns, err)
		}
		route.LinkIndex = l.Attrs().Index
	}
	if err := h.RouteAdd(route); err != nil {
		return fmt.Errorf("add route to %s via %s dev %s in %s: %w", dst, gw, ifname, ns, err)
	}
	return nil
}

// AddDefaultRoute adds a default route via gw (out of ifname if not empty) in
// ns, for gw's address family.
func AddDefaultRoute(ns *Namespace, gw netip.Addr, ifname string) error {
	if !gw.IsValid() {
		return fmt.Errorf("add default route in %s: invalid gateway", ns)
	}
	dst := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	if gw.Unmap().Is6() {
		dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	return AddRoute(ns, dst, gw, ifname)
}

// AddNeighbor adds (or replaces) a permanent neighbour entry ip -> mac on
// ifname in ns.
func AddNeighbor(ns *Namespace, ifname string, ip netip.Addr, mac net.HardwareAddr) error {
	return withLink(ns, ifname, func(h *netlink.Handle, l netlink.Link) error {
		family := unix.AF_INET
		if ip.Unmap().Is6() {
			family = unix.AF_INET6
		}
		neigh := &netlink.Neigh{
			LinkIndex:    l.Attrs().Index,
			Family:       family,
			State:        netlink.NUD_PERMANENT,
			IP:           net.IP(ip.Unmap().AsSlice()),
			HardwareAddr: mac,
		}
		if err := h.NeighSet(neigh); err != nil {
			return fmt.Errorf("add neighbour %s lladdr %s dev %s in %s: %w", ip, mac, ifname, ns, err)
		}
		return nil
	})
}

// SetSysctl writes value to the sysctl key inside ns. key is either dotted
// ("net.ipv4.ip_forward") or a path below /proc/sys ("net/ipv4/conf/eth0.1/rp_filter",
// needed when a component contains a dot).
func SetSysctl(ns *Namespace, key, value string) error {
	rel := key
	if !strings.Contains(rel, "/") {
		rel = strings.ReplaceAll(rel, ".", "/")
	}
	rel = strings.TrimPrefix(rel, "/")
	if rel == "" || slices.Contains(strings.Split(rel, "/"), "..") {
		return fmt.Errorf("sysctl %q: %w", key, ErrName)
	}
	path := filepath.Join("/proc/sys", rel)
	return doIn(ns, func() error {
		// /proc/sys/net resolves to the netns of the thread that opens it.
		if err := os.WriteFile(path, []byte(value), 0); err != nil {
			return fmt.Errorf("set sysctl %s=%s in %s: %w", key, value, ns, err)
		}
		return nil
	})
}

// handleFor returns a netlink handle bound to ns (nil: the root namespace).
// The caller closes it.
func handleFor(ns *Namespace) (*netlink.Handle, error) {
	nsh := netns.None()
	if ns == nil {
		var err error
		if nsh, err = rootHandle(); err != nil {
			return nil, err
		}
		defer nsh.Close()
	} else {
		nsh = ns.Handle
	}
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		return nil, fmt.Errorf("netlink handle in %s: %w", ns, err)
	}
	return h, nil
}

// doIn runs fn inside ns (nil: the root namespace) with Do.
func doIn(ns *Namespace, fn func() error) error {
	if ns != nil {
		return Do(ns.Handle, fn)
	}
	h, err := rootHandle()
	if err != nil {
		return err
	}
	defer h.Close()
	return Do(h, fn)
}

func withLink(ns *Namespace, ifname string, fn func(*netlink.Handle, netlink.Link) error) error {
	h, err := handleFor(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("find %s in %s: %w", ifname, ns, err)
	}
	return fn(h, l)
}

func deleteLink(ns *Namespace, name string) error {
	h, err := handleFor(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		if isLinkNotFound(err) {
			return nil // removed with its veth peer, or by Clean
		}
		return fmt.Errorf("find %s in %s: %w", name, ns, err)
	}
	if err := h.LinkDel(l); err != nil && !isLinkNotFound(err) {
		return fmt.Errorf("delete %s in %s: %w", name, ns, err)
	}
	return nil
}

func isLinkNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

// checkLinkName checks that name is a valid interface name and, in the root
// namespace, that it starts with the run prefix so Clean can find it.
func (l *Lab) checkLinkName(ns *Namespace, name string) error {
	if err := ValidIfName(name); err != nil {
		return err
	}
	if ns == nil && !strings.HasPrefix(name, l.prefix) {
		return fmt.Errorf("interface %q in the root netns must start with %q: %w", name, l.prefix, ErrName)
	}
	return nil
}

// ValidIfName reports whether name is acceptable as a Linux interface name:
// 1 to MaxIfName bytes, no '/', ':' or white space, not "." or "..".
func ValidIfName(name string) error {
	if name == "" || len(name) > MaxIfName || name == "." || name == ".." ||
		strings.ContainsAny(name, "/: \t\n") {
		return fmt.Errorf("interface name %q (at most %d bytes): %w", name, MaxIfName, ErrName)
	}
	return nil
}

func ipNet(p netip.Prefix, masked bool) *net.IPNet {
	if masked {
		p = p.Masked()
	}
	a := p.Addr().Unmap()
	bits := p.Bits()
	if p.Addr().Is4In6() && bits >= 96 {
		bits -= 96
	}
	return &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(bits, a.BitLen())}
}

// RemoveNamespace deletes one namespace of the lab before Close, and with it every link inside
// (a veth with an end inside goes too).
func (l *Lab) RemoveNamespace(ns *Namespace) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := slices.Index(l.namespaces, ns)
	if i < 0 {
		return fmt.Errorf("remove namespace %s: not in this lab", ns)
	}
	ns.Handle.Close()
	if err := DeleteNamed(ns.Name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove namespace %s: %w", ns, err)
	}
	l.namespaces = slices.Delete(l.namespaces, i, i+1)
	l.links = slices.DeleteFunc(l.links, func(ll labLink) bool { return ll.ns == ns })
	l.log.Debug("netns deleted", "netns", ns.Name)
	return nil
}
