package testbed

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

var (
	// ErrPacketLoss reports echo requests or datagrams that got no reply in time.
	ErrPacketLoss = errors.New("packet loss")
	// ErrCorrupt reports data that came back different from what was sent.
	ErrCorrupt = errors.New("data corrupted")
	// ErrStalled reports a TCP stream that made no progress for too long.
	ErrStalled = errors.New("stream stalled")
)

// PingResult counts the echo requests sent and the matching replies received.
type PingResult struct {
	Sent, Received int
	RTTs           []time.Duration // one per reply received, in order
}

// Ping sends count ICMP (or ICMPv6) echo requests to dst from a raw socket in
// ns, one after the other, waiting up to timeout for each reply. A reply
// counts only if it comes from dst and matches the request's id, sequence
// number and payload. If any request goes unanswered the error wraps
// ErrPacketLoss; the result is filled in either way.
func Ping(ns *Namespace, dst netip.Addr, count int, timeout time.Duration) (PingResult, error) {
	dst = dst.Unmap()
	if !dst.IsValid() || count <= 0 || timeout <= 0 {
		return PingResult{}, fmt.Errorf("ping %s from %s: need an address, count > 0 and timeout > 0", dst, ns)
	}
	network, laddr, proto := "ip4:icmp", "0.0.0.0", 1
	var reqType, replyType icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if dst.Is6() {
		network, laddr, proto = "ip6:ipv6-icmp", "::", 58
		reqType, replyType = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	var c *icmp.PacketConn
	err := doIn(ns, func() (err error) {
		c, err = icmp.ListenPacket(network, laddr)
		return err
	})
	if err != nil {
		return PingResult{}, fmt.Errorf("ping %s from %s: open socket: %w", dst, ns, err)
	}
	defer c.Close()

	id := 1 + rand.IntN(0xfffe)
	to := &net.IPAddr{IP: net.IP(dst.AsSlice())}
	buf := make([]byte, 1500)
	var res PingResult
	for seq := 1; seq <= count; seq++ {
		payload := randomBytes(rand.Uint64(), 56)
		req, err := (&icmp.Message{Type: reqType, Body: &icmp.Echo{ID: id, Seq: seq, Data: payload}}).Marshal(nil)
		if err != nil {
			return res, fmt.Errorf("ping %s from %s: marshal: %w", dst, ns, err)
		}
		start := time.Now()
		if _, err := c.WriteTo(req, to); err != nil {
			return res, fmt.Errorf("ping %s from %s: send seq %d: %w", dst, ns, seq, err)
		}
		res.Sent++
		if err := c.SetReadDeadline(start.Add(timeout)); err != nil {
			return res, err
		}
		for {
			n, from, err := c.ReadFrom(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break // lost
			}
			if err != nil {
				return res, fmt.Errorf("ping %s from %s: receive: %w", dst, ns, err)
			}
			if ip, ok := from.(*net.IPAddr); !ok || !ip.IP.Equal(to.IP) {
				continue
			}
			m, err := icmp.ParseMessage(proto, buf[:n])
			if err != nil || m.Type != replyType {
				continue
			}
			echo, ok := m.Body.(*icmp.Echo)
			if !ok || echo.ID != id || echo.Seq != seq || !bytes.Equal(echo.Data, payload) {
				continue
			}
			res.Received++
			res.RTTs = append(res.RTTs, time.Since(start))
			break
		}
	}
	if res.Received < res.Sent {
		return res, fmt.Errorf("ping %s from %s: %d of %d replies missing: %w", dst, ns, res.Sent-res.Received, res.Sent, ErrPacketLoss)
	}
	return res, nil
}

// TCPResult describes one TCPExchange.
type TCPResult struct {
	Bytes         int           // bytes sent, and received back intact
	Duration      time.Duration // from the first byte sent to the last echoed byte received
	BitsPerSecond float64       // Bytes in one direction over Duration
}

// TCPExchange listens on serverAddr:port in server (port 0 picks a free one),
// dials it from client, sends nbytes of pseudo-random data, has the server
// echo them back, and checks the echo byte for byte. The whole exchange must
// finish within timeout.
func TCPExchange(client, server *Namespace, serverAddr netip.Addr, port int, nbytes int, timeout time.Duration) (TCPResult, error) {
	if nbytes < 0 || timeout <= 0 {
		return TCPResult{}, fmt.Errorf("tcp exchange: need nbytes >= 0 and timeout > 0")
	}
	deadline := time.Now().Add(timeout)
	ln, err := listenTCP(server, serverAddr, port)
	if err != nil {
		return TCPResult{}, err
	}
	defer ln.Close()
	if err := ln.SetDeadline(deadline); err != nil {
		return TCPResult{}, err
	}
	srvErr := make(chan error, 1)
	go func() { srvErr <- echoTCP(ln, deadline) }()

	raddr := ln.Addr().(*net.TCPAddr).AddrPort()
	conn, err := dialTCP(client, raddr, deadline)
	if err != nil {
		ln.Close()
		<-srvErr
		return TCPResult{}, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(deadline); err != nil {
		return TCPResult{}, err
	}

	data := randomBytes(rand.Uint64(), nbytes)
	start := time.Now()
	wErr := make(chan error, 1)
	go func() {
		_, err := conn.Write(data)
		if err == nil {
			err = conn.CloseWrite()
		}
		wErr <- err
	}()
	got := make([]byte, nbytes)
	_, rerr := io.ReadFull(conn, got)
	if rerr == nil {
		// The server closes its side after echoing everything.
		var extra [1]byte
		if n, err := conn.Read(extra[:]); n > 0 {
			rerr = fmt.Errorf("echo longer than %d bytes: %w", nbytes, ErrCorrupt)
		} else if err != io.EOF {
			rerr = fmt.Errorf("wait for end of echo: %w", err)
		}
	}
	dur := time.Since(start)
	conn.Close() // unblocks the writer if reading failed
	werr := <-wErr
	ln.Close()
	serr := <-srvErr

	what := fmt.Sprintf("tcp exchange %s -> %s %s", client, server, raddr)
	if rerr != nil {
		return TCPResult{}, errors.Join(fmt.Errorf("%s: read echo: %w", what, rerr), wrapIf(what+": write", werr), wrapIf(what+": server", serr))
	}
	if werr != nil || serr != nil {
		return TCPResult{}, errors.Join(wrapIf(what+": write", werr), wrapIf(what+": server", serr))
	}
	if off := firstDiff(data, got); off >= 0 {
		return TCPResult{}, fmt.Errorf("%s: echo differs at byte %d of %d: %w", what, off, nbytes, ErrCorrupt)
	}
	res := TCPResult{Bytes: nbytes, Duration: dur}
	if dur > 0 {
		res.BitsPerSecond = float64(nbytes) * 8 / dur.Seconds()
	}
	return res, nil
}

// echoTCP accepts one connection on ln and echoes it until the peer closes
// its side.
func echoTCP(ln *net.TCPListener, deadline time.Time) error {
	c, err := ln.AcceptTCP()
	if err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	defer c.Close()
	if err := c.SetDeadline(deadline); err != nil {
		return err
	}
	if _, err := io.Copy(c, c); err != nil {
		return fmt.Errorf("echo: %w", err)
	}
	return c.CloseWrite()
}

// UDPResult counts the datagrams sent and echoed back intact.
type UDPResult struct {
	Sent, Received int
	RTTs           []time.Duration
}

// udpPayload is the size of the datagrams UDPExchange sends.
const udpPayload = 512

// UDPExchange runs a UDP echo server on addr:port in server (port 0 picks a
// free one) and sends it count datagrams of pseudo-random data from client,
// one after the other, waiting up to timeout for each echo. An echo counts
// only if it is identical to the datagram sent. If any goes missing the
// error wraps ErrPacketLoss; a changed echo gives ErrCorrupt.
func UDPExchange(client, server *Namespace, addr netip.Addr, port int, count int, timeout time.Duration) (UDPResult, error) {
	if count <= 0 || timeout <= 0 {
		return UDPResult{}, fmt.Errorf("udp exchange: need count > 0 and timeout > 0")
	}
	if err := checkPort(port); err != nil {
		return UDPResult{}, err
	}
	srv, err := listenUDP(server, netip.AddrPortFrom(addr.Unmap(), uint16(port)))
	if err != nil {
		return UDPResult{}, err
	}
	defer srv.Close()
	// The server stops when srv is closed, at the latest when the exchange
	// can no longer run.
	if err := srv.SetDeadline(time.Now().Add(time.Duration(count+1) * timeout)); err != nil {
		return UDPResult{}, err
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = srv.WriteToUDPAddrPort(buf[:n], from)
		}
	})
	defer wg.Wait()
	defer srv.Close()

	raddr := srv.LocalAddr().(*net.UDPAddr)
	what := fmt.Sprintf("udp exchange %s -> %s %s", client, server, raddr)
	var conn *net.UDPConn
	err = doIn(client, func() (err error) {
		conn, err = net.DialUDP("udp", nil, raddr)
		return err
	})
	if err != nil {
		return UDPResult{}, fmt.Errorf("%s: dial: %w", what, err)
	}
	defer conn.Close()

	tag := rand.Uint64()
	buf := make([]byte, 65536)
	var res UDPResult
	for seq := range uint64(count) {
		msg := randomBytes(rand.Uint64(), udpPayload)
		binary.BigEndian.PutUint64(msg[0:], tag)
		binary.BigEndian.PutUint64(msg[8:], seq)
		start := time.Now()
		if _, err := conn.Write(msg); err != nil {
			return res, fmt.Errorf("%s: send %d: %w", what, seq, err)
		}
		res.Sent++
		if err := conn.SetReadDeadline(start.Add(timeout)); err != nil {
			return res, err
		}
		for {
			n, err := conn.Read(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break // lost
			}
			if err != nil {
				return res, fmt.Errorf("%s: receive: %w", what, err)
			}
			got := buf[:n]
			if n < 16 || binary.BigEndian.Uint64(got[0:]) != tag || binary.BigEndian.Uint64(got[8:]) != seq {
				continue // not ours, or a late echo of an earlier datagram
			}
			if !bytes.Equal(got, msg) {
				return res, fmt.Errorf("%s: echo %d differs from datagram sent: %w", what, seq, ErrCorrupt)
			}
			res.Received++
			res.RTTs = append(res.RTTs, time.Since(start))
			break
		}
	}
	if res.Received < res.Sent {
		return res, fmt.Errorf("%s: %d of %d echoes missing: %w", what, res.Sent-res.Received, res.Sent, ErrPacketLoss)
	}
	return res, nil
}

// StreamOptions tunes StartTCPStream. Zero fields take the defaults shown.
type StreamOptions struct {
	Chunk       int           // bytes per write; 16 KiB
	Interval    time.Duration // pause between writes; 1ms
	Stall       time.Duration // longest either side may go without progress; 3s
	MaxDuration time.Duration // the stream ends by itself after this; 2m
}

// StreamResult describes a TCP stream once stopped.
type StreamResult struct {
	Sent, Received int64 // bytes written by the client, bytes read and verified by the server
	Duration       time.Duration
}

// TCPStream is a long-running TCP connection from client to server carrying
// a verified pseudo-random byte stream. Stop must be called.
type TCPStream struct {
	client, server *net.TCPConn
	start          time.Time
	stop           chan struct{}
	stopOnce       sync.Once
	sent, received atomic.Int64
	writerErr      chan error
	readerErr      chan error
	result         StreamResult
	err            error
}

// StartTCPStream connects client to a server listening on serverAddr:port in
// server (port 0 picks a free one) and keeps sending pseudo-random data,
// which the server checks as it reads. It is meant to show that an
// established connection survives changes to the topology: Stop reports an
// error if the connection broke, stalled for longer than opts.Stall, or
// delivered different bytes.
func StartTCPStream(client, server *Namespace, serverAddr netip.Addr, port int, opts StreamOptions) (*TCPStream, error) {
	if opts.Chunk <= 0 {
		opts.Chunk = 16 << 10
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Millisecond
	}
	if opts.Stall <= 0 {
		opts.Stall = 3 * time.Second
	}
	if opts.MaxDuration <= 0 {
		opts.MaxDuration = 2 * time.Minute
	}
	ln, err := listenTCP(server, serverAddr, port)
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	deadline := time.Now().Add(opts.Stall)
	if err := ln.SetDeadline(deadline); err != nil {
		return nil, err
	}
	type accepted struct {
		c   *net.TCPConn
		err error
	}
	acc := make(chan accepted, 1)
	go func() {
		c, err := ln.AcceptTCP()
		acc <- accepted{c, err}
	}()
	raddr := ln.Addr().(*net.TCPAddr).AddrPort()
	cc, err := dialTCP(client, raddr, deadline)
	if err != nil {
		ln.Close()
		if a := <-acc; a.c != nil {
			a.c.Close()
		}
		return nil, err
	}
	a := <-acc
	if a.err != nil {
		cc.Close()
		return nil, fmt.Errorf("tcp stream to %s in %s: accept: %w", raddr, server, a.err)
	}

	s := &TCPStream{
		client:    cc,
		server:    a.c,
		start:     time.Now(),
		stop:      make(chan struct{}),
		writerErr: make(chan error, 1),
		readerErr: make(chan error, 1),
	}
	seed := rand.Uint64()
	go func() { s.writerErr <- s.write(seed, opts) }()
	go func() { s.readerErr <- s.read(seed, opts) }()
	return s, nil
}

// Sent returns the bytes written so far.
func (s *TCPStream) Sent() int64 { return s.sent.Load() }

// Received returns the bytes the server has read and verified so far.
func (s *TCPStream) Received() int64 { return s.received.Load() }

// Stop ends the stream: the client stops writing and closes its side, the
// server reads the rest. It returns the bytes transferred and an error if the
// connection broke, stalled or corrupted data. Stop can be called again and
// returns the same.
func (s *TCPStream) Stop() (StreamResult, error) {
	s.stopOnce.Do(func() {
		close(s.stop)
		werr := <-s.writerErr
		rerr := <-s.readerErr
		s.client.Close()
		s.server.Close()
		s.result = StreamResult{Sent: s.sent.Load(), Received: s.received.Load(), Duration: time.Since(s.start)}
		s.err = errors.Join(wrapIf("tcp stream: client", werr), wrapIf("tcp stream: server", rerr))
		if s.err == nil && s.result.Sent != s.result.Received {
			s.err = fmt.Errorf("tcp stream: sent %d bytes, received %d: %w", s.result.Sent, s.result.Received, ErrPacketLoss)
		}
	})
	return s.result, s.err
}

func (s *TCPStream) write(seed uint64, opts StreamOptions) error {
	gen := rand.NewChaCha8(seedBytes(seed))
	buf := make([]byte, opts.Chunk)
	end := time.NewTimer(opts.MaxDuration)
	defer end.Stop()
	tick := time.NewTicker(opts.Interval)
	defer tick.Stop()
	for {
		_, _ = gen.Read(buf)
		if err := s.client.SetWriteDeadline(time.Now().Add(opts.Stall)); err != nil {
			return err
		}
		n, err := s.client.Write(buf)
		s.sent.Add(int64(n))
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return fmt.Errorf("write blocked for %s: %w", opts.Stall, ErrStalled)
			}
			return fmt.Errorf("write: %w", err)
		}
		select {
		case <-s.stop:
			return s.client.CloseWrite()
		case <-end.C:
			return s.client.CloseWrite()
		case <-tick.C:
		}
	}
}

func (s *TCPStream) read(seed uint64, opts StreamOptions) error {
	gen := rand.NewChaCha8(seedBytes(seed))
	buf := make([]byte, 64<<10)
	want := make([]byte, len(buf))
	for {
		if err := s.server.SetReadDeadline(time.Now().Add(opts.Stall)); err != nil {
			return err
		}
		n, err := s.server.Read(buf)
		if n > 0 {
			_, _ = gen.Read(want[:n])
			if off := firstDiff(want[:n], buf[:n]); off >= 0 {
				return fmt.Errorf("byte %d of the stream differs: %w", s.received.Load()+int64(off), ErrCorrupt)
			}
			s.received.Add(int64(n))
		}
		switch {
		case err == io.EOF:
			return nil
		case errors.Is(err, os.ErrDeadlineExceeded):
			return fmt.Errorf("nothing received for %s: %w", opts.Stall, ErrStalled)
		case err != nil:
			return fmt.Errorf("read: %w", err)
		}
	}
}

func listenTCP(ns *Namespace, addr netip.Addr, port int) (*net.TCPListener, error) {
	if err := checkPort(port); err != nil {
		return nil, err
	}
	laddr := net.TCPAddrFromAddrPort(netip.AddrPortFrom(addr.Unmap(), uint16(port)))
	var ln *net.TCPListener
	err := doIn(ns, func() (err error) {
		ln, err = net.ListenTCP("tcp", laddr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen tcp %s in %s: %w", laddr, ns, err)
	}
	return ln, nil
}

func listenUDP(ns *Namespace, laddr netip.AddrPort) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := doIn(ns, func() (err error) {
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(laddr))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen udp %s in %s: %w", laddr, ns, err)
	}
	return c, nil
}

func dialTCP(ns *Namespace, raddr netip.AddrPort, deadline time.Time) (*net.TCPConn, error) {
	var c net.Conn
	err := doIn(ns, func() (err error) {
		d := net.Dialer{Deadline: deadline}
		c, err = d.Dial("tcp", raddr.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dial tcp %s from %s: %w", raddr, ns, err)
	}
	return c.(*net.TCPConn), nil
}

func checkPort(port int) error {
	if port < 0 || port > 65535 {
		return fmt.Errorf("port %d out of range", port)
	}
	return nil
}

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(seedBytes(seed)).Read(b)
	return b
}

func seedBytes(seed uint64) [32]byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return s
}

// firstDiff returns the first offset where a and b differ, or -1 if they are
// equal.
func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func wrapIf(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}
