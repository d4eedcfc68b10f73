package testbed

import (
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/mizar-net/mizar/dataplane"
)

// DemoOptions shapes Demo.
type DemoOptions struct {
	Prefix string // run prefix; NewPrefix() when empty
	Bytes  int    // bytes of the TCP exchange (default 8 MiB)
	Mode   dataplane.Mode
}

// Demo builds the quickstart overlay (three hosts on a bridged underlay, the network's bouncer
// on the third, an endpoint on each of the first two), sends ICMP, TCP and UDP between the
// endpoints, writes what happened to w, and removes everything it made.
func Demo(w io.Writer, opts DemoOptions, log *slog.Logger) (err error) {
	if opts.Prefix == "" {
		opts.Prefix = NewPrefix()
	}
	if opts.Bytes == 0 {
		opts.Bytes = 8 << 20
	}
	lab := NewLab(opts.Prefix, log)
	defer func() {
		if cerr := lab.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("clean up: %w", cerr)
		}
	}()
	start := time.Now()
	o, err := BuildOverlay(lab, OverlaySpec{Hosts: 3, Bouncers: []int{2}, Endpoints: []int{0, 1}, Mode: opts.Mode}, log)
	if err != nil {
		return fmt.Errorf("build overlay: %w", err)
	}
	defer o.Close()
	a, b := o.Endpoints[0], o.Endpoints[1]
	fmt.Fprintf(w, "overlay up in %v: 3 hosts, bouncer on %s, endpoints %v (on %s) and %v (on %s)\n",
		time.Since(start).Round(time.Millisecond), o.Hosts[2].NS.Name, a.IP, a.Host.NS.Name, b.IP, b.Host.NS.Name)

	ping, err := Ping(a.NS, b.IP, 5, 2*time.Second)
	if err != nil {
		return fmt.Errorf("ping %v -> %v: %w", a.IP, b.IP, err)
	}
	fmt.Fprintf(w, "icmp %v -> %v: %d/%d replies, first rtt %v (through the bouncer), last %v (direct path)\n",
		a.IP, b.IP, ping.Received, ping.Sent, ping.RTTs[0].Round(time.Microsecond), ping.RTTs[len(ping.RTTs)-1].Round(time.Microsecond))
	tcp, err := TCPExchange(b.NS, a.NS, a.IP, 0, opts.Bytes, 30*time.Second)
	if err != nil {
		return fmt.Errorf("tcp %v -> %v: %w", b.IP, a.IP, err)
	}
	fmt.Fprintf(w, "tcp  %v -> %v: %d bytes echoed intact in %v (%.0f Mbit/s each way)\n",
		b.IP, a.IP, tcp.Bytes, tcp.Duration.Round(time.Millisecond), tcp.BitsPerSecond/1e6)
	udp, err := UDPExchange(a.NS, b.NS, b.IP, 0, 50, 2*time.Second)
	if err != nil {
		return fmt.Errorf("udp %v -> %v: %w", a.IP, b.IP, err)
	}
	fmt.Fprintf(w, "udp  %v -> %v: %d/%d datagrams echoed\n\n", a.IP, b.IP, udp.Received, udp.Sent)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "host\trole\tcounters")
	for i, h := range o.Hosts {
		c, err := h.DP.Counters()
		if err != nil {
			return err
		}
		role := "endpoint host"
		if i == 2 {
			role = "bouncer"
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\n", h.NS.Name, role, c)
	}
	return tw.Flush()
}
