package reports

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Unknown fills a header field that could not be found out.
const Unknown = "unknown"

// New starts a report of scenario with the header filled from this machine: the commit of
// the code (checkout is the directory of the git checkout; "" is the current directory),
// kernel, CPU, and Started set to now.
func New(scenario, checkout string) *Report {
	r := &Report{Schema: SchemaVersion, Scenario: scenario, Started: time.Now().UTC()}
	r.Commit, r.Dirty = GitCommit(checkout)
	r.Kernel = Kernel()
	r.CPU, r.CPUs = CPUModel()
	return r
}

// GitCommit says which commit the code is and whether the checkout had uncommitted changes.
// The binary's own VCS stamp wins when the build recorded one (it names the code that runs,
// wherever it runs from); otherwise git is asked about checkout. "unknown" when neither
// knows.
func GitCommit(checkout string) (commit string, dirty bool) {
	if info, ok := debug.ReadBuildInfo(); ok {
		var rev string
		var modified bool
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if rev != "" {
			return rev, modified
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	git := func(args ...string) (string, error) {
		if checkout != "" {
			args = append([]string{"-C", checkout}, args...)
		}
		out, err := exec.CommandContext(ctx, "git", args...).Output()
		return strings.TrimSpace(string(out)), err
	}
	rev, err := git("rev-parse", "HEAD")
	if err != nil || rev == "" {
		return Unknown, false
	}
	status, err := git("status", "--porcelain", "--untracked-files=no")
	return rev, err == nil && status != ""
}

// Kernel is the kernel release (uname -r).
func Kernel() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return Unknown
	}
	if r := unix.ByteSliceToString(u.Release[:]); r != "" {
		return r
	}
	return Unknown
}

// CPUModel is the CPU's model name from /proc/cpuinfo and the number of CPUs this process
// may run on (runtime.NumCPU: the affinity mask, which is what the run could use).
func CPUModel() (model string, cpus int) {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return Unknown, runtime.NumCPU()
	}
	return cpuModel(data), runtime.NumCPU()
}

// cpuModel reads the model from cpuinfo text: "model name" on x86, "Model" or "Hardware" on
// some ARM kernels, "cpu" on POWER.
func cpuModel(cpuinfo []byte) string {
	found := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if _, seen := found[key]; !seen && value != "" {
			found[key] = value
		}
	}
	for _, key := range []string{"model name", "Model", "Hardware", "cpu"} {
		if v, ok := found[key]; ok {
			return v
		}
	}
	return Unknown
}
