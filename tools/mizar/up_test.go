package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/mizar-net/mizar/testbed"
)

// TestUpDown brings the quickstart scenario up in the background with the real binary, pings
// between its endpoints, and takes it down: once through the running process, once after
// killing it (down then removes what it left).
func TestUpDown(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("mizar up creates network namespaces and needs root (CI runs as root)")
	}
	bin := filepath.Join(t.TempDir(), "mizar")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build mizar: %v\n%s", err, out)
	}
	stateDir := t.TempDir()
	for _, killed := range []bool{false, true} {
		name := "signalled"
		if killed {
			name = "killed"
		}
		t.Run(name, func(t *testing.T) {
			prefix := testbed.NewPrefix()
			t.Cleanup(func() {
				if namespaces, links, _ := testbed.Leftovers(prefix); len(namespaces)+len(links) > 0 {
					t.Errorf("left behind: netns %v, links %v", namespaces, links)
					_ = testbed.Clean(prefix)
				}
			})
			out := runBin(t, bin, "up", "--detach", "--prefix", prefix, "--state-dir", stateDir, "../../scenarios/quickstart.yaml")
			if !strings.Contains(out, "ip netns exec "+prefix) {
				t.Errorf("up does not say how to get in:\n%s", out)
			}
			path := statePath(stateDir, prefix)
			st, err := readState(path)
			if err != nil {
				t.Fatal(err)
			}
			if !alive(st) {
				t.Fatalf("pid %d from %s is not running", st.PID, path)
			}
			if len(st.Endpoints) != 2 {
				t.Fatalf("state lists %d endpoints, want 2: %+v", len(st.Endpoints), st.Endpoints)
			}
			namespaces, _, err := testbed.Leftovers(prefix)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range st.Endpoints {
				if !slices.Contains(namespaces, e.Netns) {
					t.Errorf("endpoint %s: netns %s does not exist (have %v)", e.Name, e.Netns, namespaces)
				}
			}
			a, b := st.Endpoints[0], st.Endpoints[1]
			h, err := netns.GetFromName(a.Netns)
			if err != nil {
				t.Fatal(err)
			}
			res, err := testbed.Ping(&testbed.Namespace{Name: a.Netns, Handle: h}, b.IP, 3, 2*time.Second)
			h.Close()
			if err != nil || res.Received != 3 {
				t.Errorf("%s -> %s (%v): %+v, %v", a.Name, b.Name, b.IP, res, err)
			}
			if killed {
				if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				for deadline := time.Now().Add(10 * time.Second); alive(st); time.Sleep(50 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("pid %d survived SIGKILL", st.PID)
					}
				}
			}
			out = runBin(t, bin, "down", "--prefix", prefix, "--state-dir", stateDir)
			if killed != strings.Contains(out, "is gone") {
				t.Errorf("down after the process was killed=%v says:\n%s", killed, out)
			}
			if alive(st) {
				t.Errorf("pid %d still running after down", st.PID)
			}
			if _, err := os.Stat(path); err == nil {
				t.Errorf("%s still there after down", path)
			}
			if namespaces, links, _ := testbed.Leftovers(prefix); len(namespaces)+len(links) > 0 {
				t.Errorf("down left netns %v, links %v", namespaces, links)
			}
		})
	}
}

func runBin(t *testing.T, bin string, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("mizar %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	t.Logf("mizar %s:\n%s", strings.Join(args, " "), out.String())
	return out.String()
}

// TestDownWithoutUp fails clearly, through the entry point, when nothing is up.
func TestDownWithoutUp(t *testing.T) {
	var out, errOut bytes.Buffer
	err := mizar([]string{"down", "--state-dir", t.TempDir()}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "no mizar up is running") {
		t.Fatalf("down with nothing up: %v", err)
	}
	err = mizar([]string{"down", "--prefix", "mz0000-", "--state-dir", t.TempDir()}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "no mizar up with prefix mz0000-") {
		t.Fatalf("down of an unknown prefix: %v", err)
	}
}

// TestUpBadFile builds nothing for an invalid scenario and names the file.
func TestUpBadFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(f, []byte("name: bad\nhosts: 2\nbogus: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	err := mizar([]string{"up", f, "--state-dir", t.TempDir()}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "bad.yaml:3") {
		t.Fatalf("up of an invalid file: %v", err)
	}
}
