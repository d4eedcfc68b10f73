package dataplane

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

var otherMAC = mustMAC("02:bb:00:00:01:02")

// FuzzPrograms feeds arbitrary frames to transit and agent. Invariants: nothing returns
// XDP_ABORTED, and nothing is ever delivered into a VNI other than the one it arrived in: ep1's
// address exists in two VNIs, behind two different veths.
func FuzzPrograms(f *testing.F) {
	f.Add(defaultOuter().wrap(f, defaultFlow().frame(f)))
	f.Add(geneveIn(func(o *outer) { o.vni = otherVNI }, nil)(f))
	f.Add(geneveIn(nil, func(fl *flow) { fl.dst = ep3IP })(f))
	f.Add(fromEp1(nil)(f))
	f.Add(fromEp1(func(fl *flow) { fl.dst = ep4IP })(f))
	f.Add(arpRequest(f, ep1MAC, ep1IP, ep2IP))

	d := newDP(f)
	withNeighbors(f, d)
	must(f, d.UpsertEndpoint(Endpoint{VNI: vni, IP: ep1IP, MAC: ep1MAC, Ifindex: ep1If, NetID: netAID, VPC: vpcCIDR}))
	must(f, d.UpsertEndpoint(Endpoint{VNI: otherVNI, IP: ep1IP, MAC: otherMAC, Ifindex: 8, NetID: netAID, VPC: vpcCIDR}))
	// The agent's port: an endpoint of VNI 100 behind lo.
	must(f, d.UpsertEndpoint(Endpoint{VNI: vni, IP: ep4IP, MAC: ep4MAC, Ifindex: loIfindex, NetID: netAID, VPC: vpcCIDR}))
	must(f, d.UpsertNetwork(Network{VNI: vni, NetID: netAID, CIDR: netA}))
	must(f, d.UpsertNetwork(Network{VNI: vni, NetID: netBID, CIDR: netB}))
	must(f, d.SetBouncers(vni, netAID, []netip.Addr{b1IP, b2IP}))
	must(f, d.SetBouncers(vni, netBID, []netip.Addr{h3IP}))
	must(f, d.UpsertVPC(VPC{VNI: vni, Divider: true, Bouncer: true, Dividers: []netip.Addr{d1IP}}))
	must(f, d.UpsertBouncerEntries(BouncerEntry{VNI: vni, IP: ep2IP, Host: h3IP}))
	hosted := map[uint32]map[netip.Addr][]byte{
		vni:      {ep1IP: ep1MAC, ep4IP: ep4MAC},
		otherVNI: {ep1IP: otherMAC},
	}

	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) < 14 || len(frame) > 4000 {
			return // BPF_PROG_TEST_RUN refuses frames shorter than Ethernet
		}
		got, out, _, err := testRun(d.transit.Transit, frame, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got == xdpAborted {
			t.Fatalf("transit aborted\n%s", dump(frame))
		}
		if got == xdpRedirect {
			v, dst, ok := geneveTarget(frame)
			if !ok {
				t.Fatalf("transit delivered a frame that is not Geneve\n%s", dump(frame))
			}
			mac := hosted[v][dst]
			if mac == nil || !bytes.Equal(out[0:6], mac) {
				t.Fatalf("transit delivered vni %d dst %v to mac %x\n%s", v, dst, out[0:6], dump(frame))
			}
		}
		if got == xdpTX {
			if v, _, ok := geneveTarget(out); !ok || v != vni {
				t.Fatalf("transit forwarded into vni %d (geneve %v)\n%s", v, ok, dump(frame))
			}
		}

		got, out, _, err = testRun(d.agent.Agent, frame, loIfindex)
		if err != nil {
			t.Fatal(err)
		}
		if got == xdpAborted {
			t.Fatalf("agent aborted\n%s", dump(frame))
		}
		if got == xdpRedirect && len(out) == len(frame)+62 {
			if v, _, ok := geneveTarget(out); !ok || v != vni {
				t.Fatalf("agent encapsulated into vni %d, its port is in %d\n%s", v, vni, dump(frame))
			}
		} else if got == xdpRedirect && !bytes.Equal(out[0:6], ep1MAC) && !bytes.Equal(out[0:6], ep4MAC) {
			t.Fatalf("agent delivered to mac %x\n%s", out[0:6], dump(frame))
		}
	})
}

// geneveTarget reads the VNI and inner destination of an Ethernet/IPv4/UDP/Geneve frame.
func geneveTarget(b []byte) (uint32, netip.Addr, bool) {
	if len(b) < 34 || binary.BigEndian.Uint16(b[12:]) != 0x0800 {
		return 0, netip.Addr{}, false
	}
	ihl := int(b[14]&0x0f) * 4
	g := 14 + ihl + 8
	if len(b) < g+8 || b[14+9] != 17 || binary.BigEndian.Uint16(b[14+ihl+2:]) != 6081 {
		return 0, netip.Addr{}, false
	}
	v := uint32(b[g+4])<<16 | uint32(b[g+5])<<8 | uint32(b[g+6])
	inner := g + 8 + int(b[g]&0x3f)*4
	if len(b) < inner+14+20 {
		return v, netip.Addr{}, false
	}
	dst, _ := netip.AddrFromSlice(b[inner+14+16 : inner+14+20])
	return v, dst, true
}
