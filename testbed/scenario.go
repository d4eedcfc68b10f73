package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/mizar-net/mizar/controlplane"
	"github.com/mizar-net/mizar/dataplane"
	scenario "github.com/mizar-net/mizar/scenarios"
)

// StepResult is what one step of a scenario did.
type StepResult struct {
	Line     int
	Kind     string
	What     string
	Duration time.Duration
	Err      error // a failed check, or a step that could not run
	Measured time.Duration
	// Writes and WriteHosts are the control plane's map writes for the step and the number of
	// hosts they went to (setup, create, delete, scale, fail and remove steps; zero otherwise).
	Writes, WriteHosts int
}

// RunOptions shapes Up and RunScenario.
type RunOptions struct {
	Prefix string
	Mode   dataplane.Mode
	// Progress, when set, gets a line per step as it finishes.
	Progress io.Writer
	// BeforeStep, when set, runs before each step RunScenario plays, with the cluster. A suite
	// that drives the steps itself (Up, Run.Step) acts on Run.Cluster() instead.
	BeforeStep func(i int, c *Cluster)
	// StopOnFailure ends RunScenario's timeline at the first failed step.
	StopOnFailure bool
	// AgentProcesses and AgentCommand are ClusterOptions': each host's agent in its own
	// process, programmed over gRPC.
	AgentProcesses bool
	AgentCommand   []string
	// FailFast ends a reach check at its first failed pair instead of trying every pair over
	// every protocol (each failure waits out its timeouts).
	FailFast bool
}

// Run is a scenario brought up on namespaces: its hosts, VPCs, networks and endpoints exist,
// and its timeline is played one step at a time (in order: each step acts on what the ones
// before it left). Down removes everything.
type Run struct {
	sc    *scenario.Scenario
	opts  RunOptions
	r     *runner
	setup StepResult
	down  bool
}

// Up builds a validated scenario's topology on namespaces (hosts on a fabric, then its VPCs,
// networks and endpoints through the control plane) and returns it ready to play. On error
// nothing is left behind.
func Up(ctx context.Context, sc *scenario.Scenario, opts RunOptions, log *slog.Logger) (_ *Run, err error) {
	if opts.Prefix == "" {
		opts.Prefix = NewPrefix()
	}
	start := time.Now()
	c, err := NewCluster(opts.Prefix, ClusterOptions{MTU: sc.MTU, Mode: opts.Mode, Fabric: Fabric(sc.Fabric),
		AgentProcesses: opts.AgentProcesses, AgentCommand: opts.AgentCommand}, log)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Close())
		}
	}()
	r := &runner{c: c, sc: sc, failFast: opts.FailFast, eps: map[string]*scenario.Endpoint{}, transfers: map[string]*TCPStream{}}
	before := c.Controller.Stats().Total
	for _, h := range sc.Hosts() {
		if _, err := c.AddHost(ctx, h); err != nil {
			return nil, fmt.Errorf("host %s: %w", h, err)
		}
	}
	for i := range sc.VPCs {
		if err := r.createVPC(ctx, &sc.VPCs[i]); err != nil {
			return nil, err
		}
	}
	run := &Run{sc: sc, opts: opts, r: r}
	run.setup = StepResult{Kind: "setup", What: fmt.Sprintf("%d hosts, %d VPCs", len(sc.Hosts()), len(sc.VPCs)), Duration: time.Since(start)}
	run.setup.Writes, run.setup.WriteHosts = writesSince(before, c.Controller.Stats().Total)
	progress(opts.Progress, run.setup)
	return run, nil
}

// Scenario returns the scenario being played.
func (run *Run) Scenario() *scenario.Scenario { return run.sc }

// Prefix is the run prefix every name the run made starts with.
func (run *Run) Prefix() string { return run.opts.Prefix }

// Cluster returns the hosts and control plane the scenario runs on, to act on or inspect.
func (run *Run) Cluster() *Cluster { return run.r.c }

// Setup returns what Up did, as a step result (kind "setup").
func (run *Run) Setup() StepResult { return run.setup }

// Steps returns the scenario's timeline; Step(i) plays Steps()[i].
func (run *Run) Steps() []scenario.Step { return run.sc.Steps }

// Step plays step i of the timeline and reports it (also to RunOptions.Progress).
func (run *Run) Step(ctx context.Context, i int) StepResult {
	if i < 0 || i >= len(run.sc.Steps) {
		return StepResult{Kind: "?", Err: fmt.Errorf("%s: step %d: the timeline has %d steps", run.sc.File, i, len(run.sc.Steps))}
	}
	s := &run.sc.Steps[i]
	res := StepResult{Line: s.Line, Kind: s.Kind()}
	if run.down {
		res.Err = fmt.Errorf("%s:%d: %s: the run is down", run.sc.File, s.Line, res.Kind)
		return res
	}
	t0 := time.Now()
	before := run.r.c.Controller.Stats().Total
	res.What, res.Measured, res.Err = run.r.step(ctx, s)
	res.Duration = time.Since(t0)
	res.Writes, res.WriteHosts = writesSince(before, run.r.c.Controller.Stats().Total)
	progress(run.opts.Progress, res)
	return res
}

// writesSince counts the writes between two snapshots of the control plane's totals, and the
// hosts they went to.
func writesSince(before, after controlplane.Writes) (writes, hosts int) {
	for h, n := range after.PerHost {
		if n > before.PerHost[h] {
			hosts++
		}
	}
	return after.Total - before.Total, hosts
}

// Endpoints returns the endpoints that exist at this point of the timeline, by name.
func (run *Run) Endpoints() ([]Workload, error) {
	var out []Workload
	for _, name := range slices.Sorted(maps.Keys(run.r.eps)) {
		w, err := run.r.workload(name)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}

// Down stops transfers the timeline left running, then removes everything the run made. The
// error reports a transfer that lost or corrupted bytes, and anything that could not be
// removed. Calling it again does nothing.
func (run *Run) Down() error {
	if run.down {
		return nil
	}
	run.down = true
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(run.r.transfers)) {
		if _, err := run.r.transfers[name].Stop(); err != nil {
			errs = append(errs, fmt.Errorf("%s: transfer %s: %w", run.sc.File, name, err))
		}
	}
	if err := run.r.c.Close(); err != nil {
		errs = append(errs, fmt.Errorf("clean up: %w", err))
	}
	return errors.Join(errs...)
}

// RunScenario brings a validated scenario up (Up), plays its whole timeline (Run.Step), takes
// it down (Run.Down), and returns the setup's result then one per step played. The error is
// non-nil when a step failed.
func RunScenario(ctx context.Context, sc *scenario.Scenario, opts RunOptions, log *slog.Logger) (results []StepResult, err error) {
	run, err := Up(ctx, sc, opts, log)
	if err != nil {
		return nil, err
	}
	results = append(results, run.Setup())
	var failed []error
	for i := range run.Steps() {
		if opts.BeforeStep != nil {
			opts.BeforeStep(i, run.Cluster())
		}
		res := run.Step(ctx, i)
		results = append(results, res)
		if res.Err != nil {
			failed = append(failed, fmt.Errorf("%s:%d: %s: %w", sc.File, res.Line, res.Kind, res.Err))
			if opts.StopOnFailure {
				break
			}
		}
	}
	return results, errors.Join(append(failed, run.Down())...)
}

func progress(w io.Writer, r StepResult) {
	if w == nil {
		return
	}
	status := "ok"
	if r.Err != nil {
		status = "FAIL: " + r.Err.Error()
	}
	writes := ""
	if r.Writes > 0 {
		writes = fmt.Sprintf("%d writes/%d hosts", r.Writes, r.WriteHosts)
	}
	extra := ""
	if r.Measured > 0 {
		extra = fmt.Sprintf("measured %v  ", r.Measured.Round(time.Millisecond))
	}
	fmt.Fprintf(w, "  line %-3d %-8s %-40s %8v  %-18s %s%s\n", r.Line, r.Kind, r.What, r.Duration.Round(time.Millisecond), writes, extra, status)
}

type runner struct {
	c         *Cluster
	sc        *scenario.Scenario
	failFast  bool
	eps       map[string]*scenario.Endpoint
	transfers map[string]*TCPStream
	lastFail  time.Time
}

func (r *runner) createVPC(ctx context.Context, v *scenario.VPC) error {
	if _, err := r.c.Controller.CreateVPC(ctx, controlplane.VPC{Name: v.Name, CIDR: v.CIDR, VNI: v.VNI, Dividers: v.Dividers}); err != nil {
		return fmt.Errorf("vpc %s: %w", v.Name, err)
	}
	for i := range v.Networks {
		if err := r.createNetwork(ctx, &v.Networks[i]); err != nil {
			return err
		}
	}
	return nil
}

func (r *runner) createNetwork(ctx context.Context, n *scenario.Network) error {
	if _, err := r.c.Controller.CreateNetwork(ctx, controlplane.Network{Name: n.Name, VPC: n.VPC, CIDR: n.CIDR, Bouncers: n.Bouncers}); err != nil {
		return fmt.Errorf("network %s/%s: %w", n.VPC, n.Name, err)
	}
	for i := range n.Endpoints {
		if err := r.createEndpoint(ctx, &n.Endpoints[i]); err != nil {
			return err
		}
	}
	return nil
}

func (r *runner) createEndpoint(ctx context.Context, e *scenario.Endpoint) error {
	if _, err := r.c.Controller.CreateEndpoint(ctx, controlplane.Endpoint{Name: e.Name, VPC: e.VPC, Network: e.Network, Host: e.Host, IP: e.IP}); err != nil {
		return fmt.Errorf("endpoint %s: %w", e.Name, err)
	}
	r.eps[e.Name] = e
	return nil
}

func (r *runner) workload(name string) (Workload, error) {
	e, ok := r.eps[name]
	if !ok {
		return Workload{}, fmt.Errorf("endpoint %s: not created", name)
	}
	return r.c.Workload(e.VPC, e.Name)
}

// target is a check's destination: an endpoint, or a bare address in the sender's VPC (for
// must-not-reach checks only, so no namespace is needed to serve it).
func (r *runner) target(from Workload, to string) (Workload, error) {
	if ip, err := netip.ParseAddr(to); err == nil {
		return Workload{Name: to, NS: from.NS, IP: ip}, nil
	}
	return r.workload(to)
}

const (
	checkTimeout    = 2 * time.Second
	negativeTimeout = 500 * time.Millisecond
)

func (r *runner) step(ctx context.Context, s *scenario.Step) (string, time.Duration, error) {
	switch {
	case s.Check != nil:
		return r.check(s.Check)
	case s.Create != nil:
		switch {
		case s.Create.Endpoint != nil:
			return "endpoint " + s.Create.Endpoint.Name, 0, r.createEndpoint(ctx, s.Create.Endpoint)
		case s.Create.Network != nil:
			return "network " + s.Create.Network.Name, 0, r.createNetwork(ctx, s.Create.Network)
		default:
			return "vpc " + s.Create.VPC.Name, 0, r.createVPC(ctx, s.Create.VPC)
		}
	case s.Delete != nil:
		switch {
		case s.Delete.Endpoint != "":
			e, ok := r.eps[s.Delete.Endpoint]
			if !ok {
				return "", 0, fmt.Errorf("endpoint %s: not created", s.Delete.Endpoint)
			}
			delete(r.eps, e.Name)
			return "endpoint " + e.Name, 0, r.c.Controller.DeleteEndpoint(ctx, e.VPC, e.Name)
		case s.Delete.Network != "":
			vpc, n, _ := scenario.SplitNetwork(s.Delete.Network)
			for name, e := range r.eps {
				if e.VPC == vpc && e.Network == n {
					if err := r.c.Controller.DeleteEndpoint(ctx, vpc, name); err != nil {
						return "network " + s.Delete.Network, 0, err
					}
					delete(r.eps, name)
				}
			}
			return "network " + s.Delete.Network, 0, r.c.Controller.DeleteNetwork(ctx, vpc, n)
		default:
			r.forget(func(e *scenario.Endpoint) bool { return e.VPC == s.Delete.VPC })
			return "vpc " + s.Delete.VPC, 0, r.c.Controller.DeleteVPC(ctx, s.Delete.VPC, true)
		}
	case s.Scale != nil:
		if s.Scale.Network != "" {
			vpc, n, _ := scenario.SplitNetwork(s.Scale.Network)
			return fmt.Sprintf("%s bouncers -> %d", s.Scale.Network, s.Scale.Bouncers), 0, r.c.Controller.ScaleBouncers(ctx, vpc, n, s.Scale.Bouncers)
		}
		return fmt.Sprintf("%s dividers -> %d", s.Scale.VPC, s.Scale.Dividers), 0, r.c.Controller.ScaleDividers(ctx, s.Scale.VPC, s.Scale.Dividers)
	case s.Fail != nil:
		r.lastFail = time.Now()
		return "host " + s.Fail.Host, 0, r.c.FailHost(ctx, s.Fail.Host)
	case s.Remove != nil:
		return "host " + s.Remove.Host, 0, r.c.RemoveHost(ctx, s.Remove.Host)
	case s.Wait != nil:
		select {
		case <-time.After(*s.Wait):
		case <-ctx.Done():
			return "", 0, ctx.Err()
		}
		return s.Wait.String(), 0, nil
	case s.Traffic != nil:
		if t := s.Traffic.Start; t != nil {
			a, err := r.workload(t.From)
			if err != nil {
				return "", 0, err
			}
			b, err := r.workload(t.To)
			if err != nil {
				return "", 0, err
			}
			st, err := StartTCPStream(a.NS, b.NS, b.IP, 0, StreamOptions{})
			if err != nil {
				return "", 0, err
			}
			r.transfers[t.Name] = st
			return fmt.Sprintf("start %s %s -> %s", t.Name, t.From, t.To), 0, nil
		}
		st, ok := r.transfers[s.Traffic.Stop]
		if !ok {
			return "", 0, fmt.Errorf("transfer %s: not running", s.Traffic.Stop)
		}
		delete(r.transfers, s.Traffic.Stop)
		res, err := st.Stop()
		return fmt.Sprintf("stop %s: %d bytes verified", s.Traffic.Stop, res.Received), 0, err
	case s.Measure != nil:
		return r.recovery(s.Measure.Recovery)
	}
	return "", 0, fmt.Errorf("step of kind %q: not supported", s.Kind())
}

func (r *runner) forget(match func(*scenario.Endpoint) bool) {
	for n, e := range r.eps {
		if match(e) {
			delete(r.eps, n)
		}
	}
}

func (r *runner) check(c *scenario.Check) (string, time.Duration, error) {
	if c.Direct != nil {
		return r.direct(c.Direct)
	}
	pairs := c.Pairs()
	var errs []error
	for _, p := range pairs {
		if r.failFast && len(errs) > 0 {
			break
		}
		a, err := r.workload(p.From)
		if err != nil {
			return "", 0, err
		}
		b, err := r.target(a, p.To)
		if err != nil {
			return "", 0, err
		}
		bare := b.NS == a.NS
		timeout := checkTimeout
		if !c.Reach.Want {
			timeout = negativeTimeout
		}
		for _, proto := range c.Over {
			if r.failFast && len(errs) > 0 {
				break
			}
			// Must-not-reach: toward a bare address only ICMP can tell (nothing serves TCP or
			// UDP there); toward an endpoint only TCP and UDP can, because their server runs in
			// the target's own namespace, while an echo reply could come from another VPC's
			// endpoint at the same address, which is allowed.
			if !c.Reach.Want && (bare != (proto == scenario.ICMP)) {
				continue
			}
			ok, err := Reachable(a, b, Proto(proto), timeout)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s -> %s over %s: %w", p.From, p.To, proto, err))
			} else if ok != c.Reach.Want {
				verb := "did not reach"
				if ok {
					verb = "reached, and must not"
				}
				errs = append(errs, fmt.Errorf("%s -> %s over %s: %s", p.From, p.To, proto, verb))
			}
		}
	}
	what := fmt.Sprintf("reach %d pairs over %v", len(pairs), c.Over)
	if !c.Reach.Want {
		what = fmt.Sprintf("must not reach: %d pairs", len(pairs))
	}
	return what, 0, errors.Join(errs...)
}

// direct sends a flow's first packets, then more: the bouncers of the destination's network
// must bounce nothing more once the sender's host learned the path.
func (r *runner) direct(f *scenario.Flow) (string, time.Duration, error) {
	a, err := r.workload(f.From)
	if err != nil {
		return "", 0, err
	}
	b, err := r.workload(f.To)
	if err != nil {
		return "", 0, err
	}
	what := fmt.Sprintf("direct path %s -> %s", f.From, f.To)
	if _, err := Ping(a.NS, b.IP, 3, checkTimeout); err != nil {
		return what, 0, fmt.Errorf("first packets: %w", err)
	}
	e := r.eps[f.To]
	names, err := r.c.Controller.Bouncers(e.VPC, e.Network)
	if err != nil {
		return what, 0, err
	}
	count := func() (uint64, error) {
		var n uint64
		for _, name := range names {
			h, ok := r.c.Host(name)
			if !ok {
				continue
			}
			c, err := h.DP.Counters()
			if err != nil {
				return 0, err
			}
			n += c.Get(dataplane.ReasonBounced)
		}
		return n, nil
	}
	before, err := count()
	if err != nil {
		return what, 0, err
	}
	if _, err := Ping(a.NS, b.IP, 10, checkTimeout); err != nil {
		return what, 0, err
	}
	if _, err := Ping(b.NS, a.IP, 10, checkTimeout); err != nil {
		return what, 0, err
	}
	after, err := count()
	if err != nil {
		return what, 0, err
	}
	if after != before {
		return what, 0, fmt.Errorf("bouncers %v bounced %d packets after the first ones", names, after-before)
	}
	return what, 0, nil
}

// recovery measures from the last failure until the flow's traffic gets through.
func (r *runner) recovery(rc *scenario.Recovery) (string, time.Duration, error) {
	a, err := r.workload(rc.From)
	if err != nil {
		return "", 0, err
	}
	b, err := r.workload(rc.To)
	if err != nil {
		return "", 0, err
	}
	what := fmt.Sprintf("recovery %s -> %s", rc.From, rc.To)
	since := r.lastFail
	deadline := time.Now().Add(rc.Timeout)
	for time.Now().Before(deadline) {
		ok, err := Reachable(a, b, Proto(rc.Proto), 200*time.Millisecond)
		if err != nil {
			return what, 0, err
		}
		if ok {
			return what, time.Since(since), nil
		}
	}
	return what, 0, fmt.Errorf("not recovered within %v", rc.Timeout)
}
