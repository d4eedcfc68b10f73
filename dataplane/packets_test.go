package dataplane

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Addresses of the test world. BPF_PROG_TEST_RUN never sends anything, so these only name
// things; documentation ranges keep them from meaning anything else.
var (
	selfIP    = netip.MustParseAddr("198.51.100.1")
	selfMAC   = mustMAC("02:00:00:00:01:01")
	gwMAC     = mustMAC("02:00:00:00:00:fe")
	h2IP      = netip.MustParseAddr("198.51.100.2")
	h2MAC     = mustMAC("02:00:00:00:01:02")
	h3IP      = netip.MustParseAddr("198.51.100.3")
	h3MAC     = mustMAC("02:00:00:00:01:03")
	b1IP      = netip.MustParseAddr("198.51.100.11")
	b1MAC     = mustMAC("02:00:00:00:01:11")
	b2IP      = netip.MustParseAddr("198.51.100.12")
	b2MAC     = mustMAC("02:00:00:00:01:12")
	d1IP      = netip.MustParseAddr("198.51.100.21")
	d1MAC     = mustMAC("02:00:00:00:01:21")
	routerMAC = mustMAC("02:00:00:00:0f:0f")

	vpcCIDR = netip.MustParsePrefix("10.0.0.0/16")
	netA    = netip.MustParsePrefix("10.0.1.0/24")
	netB    = netip.MustParsePrefix("10.0.2.0/24")
	ep1IP   = netip.MustParseAddr("10.0.1.2") // on this host
	ep1MAC  = mustMAC("02:aa:00:00:01:02")
	ep2IP   = netip.MustParseAddr("10.0.1.3") // on h3
	ep2MAC  = mustMAC("02:aa:00:00:01:03")
	ep3IP   = netip.MustParseAddr("10.0.2.4") // in network B, on h2
	ep4IP   = netip.MustParseAddr("10.0.1.9") // on this host too
	ep4MAC  = mustMAC("02:aa:00:00:01:09")
)

const (
	vni      = 100
	otherVNI = 200
	netAID   = 1
	netBID   = 2
	ep1If    = 7
	ep4If    = 9
	mtu      = 1500
)

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

type flow struct {
	srcMAC, dstMAC net.HardwareAddr
	src, dst       netip.Addr
	proto          layers.IPProtocol
	sport, dport   uint16
	ttl            uint8
	payload        int
}

func defaultFlow() flow {
	return flow{srcMAC: ep2MAC, dstMAC: gwMAC, src: ep2IP, dst: ep1IP, proto: layers.IPProtocolTCP,
		sport: 40000, dport: 80, ttl: 64, payload: 32}
}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// frame builds the inner Ethernet/IPv4/TCP|UDP|ICMP frame an endpoint sends.
func (f flow) frame(t testing.TB) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: f.srcMAC, DstMAC: f.dstMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: f.ttl, Protocol: f.proto, SrcIP: f.src.AsSlice(), DstIP: f.dst.AsSlice(), Flags: layers.IPv4DontFragment}
	payload := gopacket.Payload(make([]byte, f.payload))
	for i := range payload {
		payload[i] = byte(i)
	}
	switch f.proto {
	case layers.IPProtocolTCP:
		tcp := &layers.TCP{SrcPort: layers.TCPPort(f.sport), DstPort: layers.TCPPort(f.dport), Seq: 1, ACK: true, Window: 1000}
		tcp.SetNetworkLayerForChecksum(ip)
		return serialize(t, eth, ip, tcp, payload)
	case layers.IPProtocolUDP:
		udp := &layers.UDP{SrcPort: layers.UDPPort(f.sport), DstPort: layers.UDPPort(f.dport)}
		udp.SetNetworkLayerForChecksum(ip)
		return serialize(t, eth, ip, udp, payload)
	default:
		icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 1, Seq: 1}
		return serialize(t, eth, ip, icmp, payload)
	}
}

func mizarOption(host netip.Addr, flags byte) []byte {
	o := make([]byte, 12)
	binary.BigEndian.PutUint16(o[0:], 0xFF6D)
	o[2] = 0x01
	o[3] = 2
	copy(o[4:8], host.AsSlice())
	o[8] = flags
	return o
}

type outer struct {
	srcMAC, dstMAC net.HardwareAddr
	src, dst       netip.Addr
	ttl            uint8
	vni            uint32
	version        uint8
	proto          uint16
	options        []byte
	udpChecksum    bool
}

// defaultOuter is what h2's agent would send to this host.
func defaultOuter() outer {
	return outer{srcMAC: h2MAC, dstMAC: selfMAC, src: h2IP, dst: selfIP, ttl: 64, vni: vni,
		proto: 0x6558, options: mizarOption(h2IP, 0)}
}

// geneve wraps an inner frame as RFC 8926 Geneve in Ethernet/IPv4/UDP.
func (o outer) wrap(t testing.TB, inner []byte) []byte {
	t.Helper()
	gh := make([]byte, 8, 8+len(o.options)+len(inner))
	gh[0] = o.version<<6 | byte(len(o.options)/4)
	binary.BigEndian.PutUint16(gh[2:], o.proto)
	gh[4], gh[5], gh[6] = byte(o.vni>>16), byte(o.vni>>8), byte(o.vni)
	gh = append(gh, o.options...)
	gh = append(gh, inner...)
	eth := &layers.Ethernet{SrcMAC: o.srcMAC, DstMAC: o.dstMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: o.ttl, Protocol: layers.IPProtocolUDP, SrcIP: o.src.AsSlice(), DstIP: o.dst.AsSlice(), Flags: layers.IPv4DontFragment}
	udp := &layers.UDP{SrcPort: 50000, DstPort: 6081}
	udp.SetNetworkLayerForChecksum(ip)
	b := serialize(t, eth, ip, udp, gopacket.Payload(gh))
	if !o.udpChecksum {
		binary.BigEndian.PutUint16(b[14+20+6:], 0)
	}
	return b
}

// decoded is an output frame taken apart by gopacket.
type decoded struct {
	pkt      gopacket.Packet
	eth      *layers.Ethernet
	ip       *layers.IPv4
	udp      *layers.UDP
	geneve   *layers.Geneve
	innerEth *layers.Ethernet
	innerIP  *layers.IPv4
	raw      []byte
}

func decode(t testing.TB, b []byte) decoded {
	t.Helper()
	p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	d := decoded{pkt: p, raw: b}
	var eths []*layers.Ethernet
	var ips []*layers.IPv4
	for _, l := range p.Layers() {
		switch l := l.(type) {
		case *layers.Ethernet:
			eths = append(eths, l)
		case *layers.IPv4:
			ips = append(ips, l)
		case *layers.UDP:
			if d.udp == nil {
				d.udp = l
			}
		case *layers.Geneve:
			d.geneve = l
		}
	}
	if len(eths) > 0 {
		d.eth = eths[0]
	}
	if len(ips) > 0 {
		d.ip = ips[0]
	}
	if d.geneve != nil && len(eths) > 1 && len(ips) > 1 {
		d.innerEth, d.innerIP = eths[1], ips[1]
	}
	return d
}

func dump(b []byte) string {
	p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	return fmt.Sprintf("%s\n%s", hex.Dump(b), p.Dump())
}

// ipv4ChecksumOK verifies a header's checksum by summing it whole.
func ipv4ChecksumOK(hdr []byte) bool {
	var sum uint32
	for i := 0; i+1 < len(hdr); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(hdr[i:]))
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return sum == 0xffff
}

// udpChecksumOK verifies a UDP checksum over the IPv4 pseudo-header; 0 means none.
func udpChecksumOK(ip *layers.IPv4, udpAndPayload []byte) bool {
	if binary.BigEndian.Uint16(udpAndPayload[6:]) == 0 {
		return true
	}
	var sum uint32
	add := func(b []byte) {
		for i := 0; i < len(b); i += 2 {
			if i+1 < len(b) {
				sum += uint32(binary.BigEndian.Uint16(b[i:]))
			} else {
				sum += uint32(b[i]) << 8
			}
		}
	}
	add(ip.SrcIP.To4())
	add(ip.DstIP.To4())
	sum += 17 + uint32(len(udpAndPayload))
	add(udpAndPayload)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return sum == 0xffff
}
