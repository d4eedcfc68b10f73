package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mizar-net/mizar/controlplane"
	"github.com/mizar-net/mizar/dataplane"
)

const (
	// agentStartTimeout bounds how long an agent process may take to load its data plane and
	// listen: a loaded CI machine verifies programs slowly.
	agentStartTimeout = 30 * time.Second
	// agentStopTimeout is how long an agent gets to detach its programs after SIGTERM before
	// it is killed (the kernel then removes its XDP links with it).
	agentStopTimeout = 5 * time.Second
	agentCallTimeout = 10 * time.Second
)

// passConfig sizes the local data plane that only attaches the pass program for a host whose
// agent is a process: its maps are never written.
var passConfig = dataplane.Config{MaxEndpoints: 1, MaxIfindex: 1, MaxLearned: 1, MaxNetworks: 1, MaxHosts: 1}

// Agent processes run a real agent program (mizar-agent, or "mizar agent"), never a re-run of
// the calling program with a magic environment variable: a test binary or a user's program that
// forgot to divert on that variable would run its own tests or scenarios again in every child.
// Tests build tools/mizar-agent once with go build; the mizar CLI starts itself as "mizar agent".

// startAgentProcess starts the host's agent as a child process serving gRPC on loopback, in
// the root namespace, working on the host's namespace by name, and dials it.
func (c *Cluster) startAgentProcess(ctx context.Context, h *ClusterHost) (err error) {
	args := []string{"-listen", "127.0.0.1:0", "-netns", h.NS.Name, "-iface", "eth0", "-gateway-mac", gatewayMAC.String()}
	if h.routerMAC != nil {
		args = append(args, "-next-hop", h.routerMAC.String())
	}
	args = append(args, "-agent", string(c.opts.AgentProgram))
	if c.opts.Mode == dataplane.Generic {
		args = append(args, "-generic")
	}
	log := c.log.With("host", h.Name)
	proc, err := startProcess(ctx, append(append([]string{}, c.opts.AgentCommand...), args...), log)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			proc.stop()
		}
	}()
	agent, conn, err := controlplane.DialAgent(proc.addr)
	if err != nil {
		return err
	}
	stats, ok := agent.(controlplane.StatsReporter)
	if !ok {
		conn.Close()
		return fmt.Errorf("agent client %T reports no stats", agent)
	}
	pass, err := dataplane.New(withLogger(passConfig, log))
	if err != nil {
		conn.Close()
		return err
	}
	h.DP = &remoteDataplane{agent: agent, stats: stats, conn: conn, proc: proc}
	h.Agent, h.pass, h.ownPass = agent, pass, true
	return nil
}

func withLogger(cfg dataplane.Config, log *slog.Logger) dataplane.Config {
	cfg.Logger = log
	return cfg
}

// remoteDataplane is a host's data plane inside its agent process: the testbed's own writes
// (underlay neighbors) go as ops, counters come from the agent's Stats.
type remoteDataplane struct {
	agent controlplane.HostAgent
	stats controlplane.StatsReporter
	conn  io.Closer
	proc  *process
}

func (r *remoteDataplane) apply(op controlplane.Op) error {
	ctx, cancel := context.WithTimeout(context.Background(), agentCallTimeout)
	defer cancel()
	return r.agent.Apply(ctx, []controlplane.Op{op})
}

func (r *remoteDataplane) UpsertNeighbor(host netip.Addr, mac net.HardwareAddr) error {
	return r.apply(controlplane.Op{Kind: controlplane.OpUpsertNeighbor, IP: host, MAC: mac})
}

func (r *remoteDataplane) DeleteNeighbor(host netip.Addr) error {
	return r.apply(controlplane.Op{Kind: controlplane.OpDeleteNeighbor, IP: host})
}

// Counters reads the agent's counters by name, as the data plane names them.
func (r *remoteDataplane) Counters() (dataplane.Counters, error) {
	var c dataplane.Counters
	ctx, cancel := context.WithTimeout(context.Background(), agentCallTimeout)
	defer cancel()
	st, err := r.stats.Stats(ctx)
	if err != nil {
		return c, err
	}
	for i := range c {
		c[i] = st.Counters[dataplane.ReasonName(dataplane.Reason(i))]
	}
	return c, nil
}

// Close ends the connection and the process.
func (r *remoteDataplane) Close() error {
	return errors.Join(r.conn.Close(), r.proc.stop())
}

// process is a child the cluster started and must stop.
type process struct {
	cmd    *exec.Cmd
	addr   string        // what it printed on its first line of stdout
	done   chan struct{} // closed once it exited and was waited for
	err    error         // its exit status, once done
	stderr *tail

	once    sync.Once
	stopErr error
}

// startProcess runs argv and waits for the address it prints on stdout. Its stderr goes to
// log at debug level, and its last lines into errors about it.
func startProcess(ctx context.Context, argv []string, log *slog.Logger) (*process, error) {
	p := &process{cmd: exec.Command(argv[0], argv[1:]...), done: make(chan struct{}), stderr: &tail{log: log}}
	// Should the test process die first, the kernel kills the agents with it (strictly: when
	// the thread that forked dies; Go keeps its threads unless a locked goroutine exits).
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.cmd.Stderr = p.stderr
	first := &firstLine{line: make(chan string, 1)}
	p.cmd.Stdout = first
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	log.Debug("agent process started", "pid", p.cmd.Process.Pid, "argv", strings.Join(argv, " "))
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	fail := func(err error) (*process, error) {
		p.stop()
		return nil, fmt.Errorf("agent process %s: %w%s", argv[0], err, p.stderr.last())
	}
	select {
	case <-p.done:
		return fail(fmt.Errorf("exited before serving (%v)", p.err))
	case addr := <-first.line:
		if _, err := netip.ParseAddrPort(addr); err != nil {
			return fail(fmt.Errorf("first line %q is not the address it serves on", addr))
		}
		p.addr = addr
		return p, nil
	case <-time.After(agentStartTimeout):
		return fail(fmt.Errorf("not serving after %v", agentStartTimeout))
	case <-ctx.Done():
		return fail(ctx.Err())
	}
}

// stop asks the process to end, kills it if it does not in time, and waits for it. It
// reports an exit other than the one asked for.
func (p *process) stop() error {
	p.once.Do(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(agentStopTimeout):
				p.cmd.Process.Kill()
				<-p.done
				p.stopErr = fmt.Errorf("agent process %d: killed, %v after SIGTERM%s", p.cmd.Process.Pid, agentStopTimeout, p.stderr.last())
				return
			}
		}
		if p.err != nil {
			p.stopErr = fmt.Errorf("agent process %d: %w%s", p.cmd.Process.Pid, p.err, p.stderr.last())
		}
	})
	return p.stopErr
}

// firstLine hands on the first line written to it and discards the rest.
type firstLine struct {
	line chan string
	buf  []byte
	sent bool
}

func (f *firstLine) Write(b []byte) (int, error) {
	if f.sent {
		return len(b), nil
	}
	f.buf = append(f.buf, b...)
	if i := bytes.IndexByte(f.buf, '\n'); i >= 0 {
		f.line <- strings.TrimSpace(string(f.buf[:i]))
		f.sent, f.buf = true, nil
	}
	return len(b), nil
}

// tail logs what a child writes, line by line, and keeps the last lines for error messages.
type tail struct {
	log *slog.Logger

	mu      sync.Mutex
	partial []byte
	lines   []string
}

const tailLines = 10

func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.partial = append(t.partial, b...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		line := string(t.partial[:i])
		t.partial = t.partial[i+1:]
		t.log.Debug("agent: " + line)
		t.lines = append(t.lines, line)
		if len(t.lines) > tailLines {
			t.lines = t.lines[1:]
		}
	}
	return len(b), nil
}

// last is ": stderr: ..." with the last lines, or "" when there were none.
func (t *tail) last() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := t.lines
	if len(t.partial) > 0 {
		lines = append(lines[:len(lines):len(lines)], string(t.partial))
	}
	if len(lines) == 0 {
		return ""
	}
	return "; its stderr: " + strings.Join(lines, " | ")
}
