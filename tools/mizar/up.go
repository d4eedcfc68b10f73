package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/mizar-net/mizar/testbed"
)

// defaultStateDir holds one state file per running `mizar up`.
const defaultStateDir = "/run/mizar"

// readyLine ends what a detached `up` sends its parent once the topology is up.
const readyLine = "ready"

// upState is what `mizar up` leaves in its state file for `mizar down` (and for people).
type upState struct {
	PID int `json:"pid"`
	// StartTicks is the process's start time (/proc/PID/stat), so a pid reused by another
	// process after a crash is not mistaken for it.
	StartTicks uint64       `json:"start_ticks"`
	Prefix     string       `json:"prefix"`
	File       string       `json:"file"`
	Log        string       `json:"log,omitempty"`
	Endpoints  []upEndpoint `json:"endpoints"`
}

type upEndpoint struct {
	Name  string     `json:"name"`
	Netns string     `json:"netns"`
	IP    netip.Addr `json:"ip"`
}

type upOptions struct {
	play     bool
	detach   bool
	prefix   string
	stateDir string
	readyFD  int // set by a detaching parent: where the child says it is up
}

// statePath is the state file of a run prefix ("mz3fa0-" -> DIR/mz3fa0.json).
func statePath(dir, prefix string) string {
	return filepath.Join(dir, strings.TrimSuffix(prefix, "-")+".json")
}

func upCommand(g *globalOptions) *cobra.Command {
	var o upOptions
	cmd := &cobra.Command{
		Use:   "up FILE",
		Short: "Build a scenario's topology and keep it up until interrupted or `mizar down`",
		Long: `up validates FILE, builds its hosts, VPCs, networks and endpoints on namespaces (with
--play it also plays the timeline), prints the endpoints' namespaces and addresses, writes a
state file, and holds the data planes until SIGINT or SIGTERM; then it removes everything.
--detach returns once the topology is up and leaves it running in the background.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := loadAll(args); err != nil {
				return err
			}
			if o.prefix == "" {
				o.prefix = testbed.NewPrefix()
			}
			if !strings.HasPrefix(o.prefix, testbed.DefaultPrefix) {
				return fmt.Errorf("prefix %q: must start with %q (mizar clean finds runs by it)", o.prefix, testbed.DefaultPrefix)
			}
			if o.detach {
				return detach(cmd.OutOrStdout(), g, o, args[0])
			}
			return up(cmd, g, o, args[0])
		},
	}
	cmd.Flags().BoolVar(&o.play, "play", false, "also play the scenario's timeline before holding the topology")
	cmd.Flags().BoolVar(&o.detach, "detach", false, "run in the background (log in the state directory) once the topology is up")
	cmd.Flags().StringVar(&o.prefix, "prefix", "", "run prefix of every name (default: a new one)")
	cmd.Flags().StringVar(&o.stateDir, "state-dir", defaultStateDir, "where state files live")
	cmd.Flags().IntVar(&o.readyFD, "ready-fd", 0, "file descriptor to report readiness on (set by --detach)")
	_ = cmd.Flags().MarkHidden("ready-fd")
	return cmd
}

// up builds the topology, reports it, and holds it until a signal.
func up(cmd *cobra.Command, g *globalOptions, o upOptions, file string) (err error) {
	out := cmd.OutOrStdout()
	var ready io.WriteCloser
	if o.readyFD > 0 {
		ready = os.NewFile(uintptr(o.readyFD), "ready")
		defer ready.Close()
		defer func() {
			if err != nil {
				fmt.Fprintf(ready, "mizar: %v\n", err)
			}
		}()
		out = io.MultiWriter(out, ready)
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	scs, err := loadAll([]string{file})
	if err != nil {
		return err
	}
	sc := scs[0]
	if err := os.MkdirAll(o.stateDir, 0o755); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	path := statePath(o.stateDir, o.prefix)
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s exists: prefix %s is up already (mizar down --prefix %s)", path, o.prefix, o.prefix)
	}
	run, err := testbed.Up(ctx, sc, testbed.RunOptions{Prefix: o.prefix, Mode: g.mode(), Progress: out}, g.logger(cmd.ErrOrStderr()))
	if err != nil {
		return err
	}
	defer func() {
		if derr := run.Down(); derr != nil {
			err = errors.Join(err, fmt.Errorf("tear down: %w", derr))
		}
		if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
		if err == nil {
			fmt.Fprintf(cmd.OutOrStdout(), "%s: removed everything named %s*\n", sc.Name, o.prefix)
		}
	}()
	if o.play {
		for i := range run.Steps() {
			if res := run.Step(ctx, i); res.Err != nil {
				return fmt.Errorf("%s:%d: %s: %w", sc.File, res.Line, res.Kind, res.Err)
			}
		}
	}
	st := upState{PID: os.Getpid(), Prefix: o.prefix, File: sc.File}
	if st.StartTicks, err = startTicks(st.PID); err != nil {
		return err
	}
	if o.readyFD > 0 {
		st.Log = logPath(o.stateDir, o.prefix)
	}
	eps, err := run.Endpoints()
	if err != nil {
		return err
	}
	for _, e := range eps {
		st.Endpoints = append(st.Endpoints, upEndpoint{Name: e.Name, Netns: e.NS.Name, IP: e.IP})
	}
	if err := writeState(path, st); err != nil {
		return err
	}
	printUp(out, sc.Name, path, run, st)
	if ready != nil {
		fmt.Fprintln(ready, readyLine)
		ready.Close()
	}
	<-ctx.Done()
	fmt.Fprintf(cmd.OutOrStdout(), "%s: signalled, tearing down\n", sc.Name)
	return nil
}

func printUp(w io.Writer, name, path string, run *testbed.Run, st upState) {
	fmt.Fprintf(w, "%s is up: prefix %s, state in %s\n", name, st.Prefix, path)
	for _, h := range run.Cluster().Hosts() {
		fmt.Fprintf(w, "  host %-10s %-15v netns %s\n", h.Name, h.IP, h.NS.Name)
	}
	for _, e := range st.Endpoints {
		fmt.Fprintf(w, "  endpoint %-10s %-15v netns %s\n", e.Name, e.IP, e.Netns)
	}
	if len(st.Endpoints) > 1 {
		a, b := st.Endpoints[0], st.Endpoints[1]
		fmt.Fprintf(w, "try: ip netns exec %s ping %v\n", a.Netns, b.IP)
	}
	fmt.Fprintf(w, "stop with Ctrl-C or: mizar down --prefix %s\n", st.Prefix)
}

func logPath(dir, prefix string) string {
	return filepath.Join(dir, strings.TrimSuffix(prefix, "-")+".log")
}

func writeState(path string, st upState) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

func readState(path string) (upState, error) {
	var st upState
	data, err := os.ReadFile(path)
	if err != nil {
		return st, fmt.Errorf("read state: %w", err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("read state %s: %w", path, err)
	}
	return st, nil
}

// procStat reads /proc/PID/stat: the process's state (field 3) and its start time (field 22,
// clock ticks since boot).
func procStat(pid int) (state string, start uint64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces: count from after it.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return "", 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 20 {
		return "", 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields)+2)
	}
	start, err = strconv.ParseUint(fields[19], 10, 64)
	return fields[0], start, err
}

func startTicks(pid int) (uint64, error) {
	_, start, err := procStat(pid)
	return start, err
}

// alive tells whether the state's process still runs (the same process, not one that reused
// its pid, and not a zombie nobody has reaped yet).
func alive(st upState) bool {
	state, start, err := procStat(st.PID)
	return err == nil && start == st.StartTicks && state != "Z" && state != "X"
}

// detach starts `mizar up` again in its own session, its output in a log file, and returns
// once it reports the topology up (or its error).
func detach(stdout io.Writer, g *globalOptions, o upOptions, file string) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	if err := os.MkdirAll(o.stateDir, 0o755); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	logFile := logPath(o.stateDir, o.prefix)
	log, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	defer log.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	defer r.Close()
	args := []string{"up", file, "--prefix", o.prefix, "--state-dir", o.stateDir, "--ready-fd", "3"}
	if o.play {
		args = append(args, "--play")
	}
	if g.verbose {
		args = append(args, "--verbose")
	}
	if g.generic {
		args = append(args, "--generic")
	}
	child := exec.Command(self, args...)
	child.Stdout, child.Stderr = log, log
	child.ExtraFiles = []*os.File{w}
	child.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := child.Start(); err != nil {
		w.Close()
		return fmt.Errorf("detach: start %s: %w", self, err)
	}
	w.Close()
	// The child reports on the pipe and closes it once up; it runs on after we return.
	go child.Wait()
	sc := bufio.NewScanner(r)
	var last string
	for sc.Scan() {
		last = sc.Text()
		if last != readyLine {
			fmt.Fprintln(stdout, last)
		}
	}
	if last != readyLine {
		return fmt.Errorf("up in the background failed (log: %s)", logFile)
	}
	fmt.Fprintf(stdout, "running in the background as pid %d, log in %s\n", child.Process.Pid, logFile)
	return nil
}

func downCommand() *cobra.Command {
	var (
		prefix, stateDir string
		timeout          time.Duration
	)
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop a running `mizar up` and remove its topology",
		Long: `down signals the mizar up of a prefix (the only one running when --prefix is not given) and
waits until it has removed everything. If that process is gone (it crashed or was killed),
down removes what it left, by prefix.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := findState(stateDir, prefix)
			if err != nil {
				return err
			}
			st, err := readState(path)
			if err != nil {
				return err
			}
			return down(cmd.Context(), cmd.OutOrStdout(), path, st, timeout)
		},
	}
	cmd.Flags().StringVar(&prefix, "prefix", "", "run prefix of the `mizar up` to stop")
	cmd.Flags().StringVar(&stateDir, "state-dir", defaultStateDir, "where state files live")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "how long to wait for it to finish")
	return cmd
}

// findState returns the state file of prefix, or the only one when prefix is empty.
func findState(dir, prefix string) (string, error) {
	if prefix != "" {
		path := statePath(dir, prefix)
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("no mizar up with prefix %s: %w", prefix, err)
		}
		return path, nil
	}
	paths, err := filepath.Glob(filepath.Join(dir, testbed.DefaultPrefix+"*.json"))
	if err != nil {
		return "", err
	}
	switch len(paths) {
	case 0:
		return "", fmt.Errorf("no mizar up is running (no state file in %s)", dir)
	case 1:
		return paths[0], nil
	}
	var prefixes []string
	for _, p := range paths {
		prefixes = append(prefixes, strings.TrimSuffix(filepath.Base(p), ".json")+"-")
	}
	return "", fmt.Errorf("several mizar up are running (%s): say which with --prefix", strings.Join(prefixes, ", "))
}

func down(ctx context.Context, w io.Writer, path string, st upState, timeout time.Duration) error {
	if alive(st) {
		if err := syscall.Kill(st.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("signal pid %d: %w", st.PID, err)
		}
		deadline := time.Now().Add(timeout)
		for alive(st) {
			if time.Now().After(deadline) {
				return fmt.Errorf("pid %d (prefix %s) still running after %v", st.PID, st.Prefix, timeout)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	} else {
		fmt.Fprintf(w, "pid %d (prefix %s) is gone: removing what it left\n", st.PID, st.Prefix)
	}
	// Whatever the process did not remove (it crashed, or failed tearing down) goes now.
	namespaces, links, err := testbed.Leftovers(st.Prefix)
	if err != nil {
		return err
	}
	if len(namespaces)+len(links) > 0 {
		fmt.Fprintf(w, "removing %d namespaces and %d links left behind\n", len(namespaces), len(links))
		if err := testbed.Clean(st.Prefix); err != nil {
			return err
		}
	}
	for _, f := range []string{path, st.Log} {
		if f == "" {
			continue
		}
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	fmt.Fprintf(w, "prefix %s is down\n", st.Prefix)
	return nil
}
