package dataplane

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// TestTsharkDecodes checks that what the agent sends is ordinary Geneve to Wireshark: tshark
// (installed by make deps) decodes the VNI, our option's class and the inner packet.
func TestTsharkDecodes(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Fatal("tshark not found: make deps installs it")
	}
	d := newDP(t)
	withPort(t, d)
	withNeighbors(t, d)
	must(t, d.SetBouncers(vni, netAID, []netip.Addr{b1IP}))
	got, out, _, err := testRun(d.agent.Agent, fromEp1(nil)(t), loIfindex)
	must(t, err)
	if got != xdpRedirect {
		t.Fatalf("agent verdict %s", verdictNames[got])
	}
	path := filepath.Join(t.TempDir(), "encap.pcap")
	f, err := os.Create(path)
	must(t, err)
	w := pcapgo.NewWriter(f)
	must(t, w.WriteFileHeader(65535, layers.LinkTypeEthernet))
	must(t, w.WritePacket(captureInfo(len(out)), out))
	must(t, f.Close())

	text, err := exec.Command(tshark, "-r", path, "-V").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, text)
	}
	for _, want := range []string{
		"Generic Network Virtualization Encapsulation",
		"Virtual Network Identifier (VNI): 0x000064",
		"Class: Unknown (0xff6d)",
		"Src: " + ep1IP.String() + ", Dst: " + ep2IP.String(),
		"Transmission Control Protocol",
	} {
		if !strings.Contains(string(text), want) {
			t.Errorf("tshark output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(string(text), "Malformed") {
		t.Errorf("tshark calls the packet malformed:\n%s", text)
	}
}

func captureInfo(n int) gopacket.CaptureInfo {
	return gopacket.CaptureInfo{Timestamp: time.Unix(1700000000, 0), CaptureLength: n, Length: n}
}
