package dataplane

import (
	"strings"
	"testing"

	"github.com/vishvananda/netns"
)

func TestAttachErrors(t *testing.T) {
	d := newDP(t)
	err := d.Attach(netns.None(), "mz-no-such-if", Transit, Native)
	if err == nil || !strings.Contains(err.Error(), "attach transit to mz-no-such-if (native mode)") {
		t.Errorf("attach to a missing interface: %v, want an error naming program, interface and mode", err)
	}
	if err := d.Detach(netns.None(), "mz-no-such-if"); err == nil {
		t.Errorf("detach of nothing attached succeeded")
	}
	if err := d.UpsertEndpoint(Endpoint{VNI: vni, IP: ep1IP, MAC: ep1MAC, Ifindex: ep1If, NetID: netAID, VPC: netB}); err == nil {
		t.Errorf("endpoint outside its VPC CIDR accepted")
	}
	if err := d.UpsertEndpoint(Endpoint{VNI: 1 << 24, IP: ep1IP, MAC: ep1MAC, Ifindex: ep1If, NetID: netAID, VPC: vpcCIDR}); err == nil {
		t.Errorf("25-bit VNI accepted")
	}
	if err := d.UpsertEndpoint(Endpoint{VNI: vni, IP: ep1IP, MAC: ep1MAC, Ifindex: int(DefaultMaxIfindex), NetID: netAID, VPC: vpcCIDR}); err == nil {
		t.Errorf("ifindex beyond the ports array accepted")
	}
	c, err := d.Counters()
	must(t, err)
	if c != (Counters{}) {
		t.Errorf("rejected operations left counters %v", c)
	}
}
