package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/mizar-net/mizar/dataplane"
	"github.com/mizar-net/mizar/reports"
	"github.com/mizar-net/mizar/testbed"
)

// benchOptions is what `mizar bench` measures; the defaults are the full measurement.
type benchOptions struct {
	out       string
	sizes     string
	bouncers  int
	everyMax  int
	duration  time.Duration
	streams   int
	rounds    int
	mtu       int
	agent     string
	skipProv  bool
	skipTraff bool
}

// parseSizes reads "10x10,100x20": endpoints x hosts.
func parseSizes(s string) ([]testbed.Size, error) {
	var out []testbed.Size
	for i, f := range strings.Split(s, ",") {
		e, h, ok := strings.Cut(strings.TrimSpace(f), "x")
		ne, err1 := strconv.Atoi(e)
		nh, err2 := strconv.Atoi(h)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("--sizes: item %d %q: want ENDPOINTSxHOSTS, e.g. 100x20", i+1, f)
		}
		out = append(out, testbed.Size{Endpoints: ne, Hosts: nh})
	}
	return out, nil
}

func benchCommand(g *globalOptions) *cobra.Command {
	o := benchOptions{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure provisioning (a sweep of sizes, mizar and every-host modes) and traffic (overlay against plain routing and VXLAN) and write a report folder",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sizes, err := parseSizes(o.sizes)
			if err != nil {
				return err
			}
			// Ctrl-C ends the measurement through its context, so that what it built is removed.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, unix.SIGTERM)
			defer stop()
			out := cmd.OutOrStdout()
			log := g.logger(cmd.ErrOrStderr())
			start := time.Now()
			r := reports.New("mizar bench", ".")
			r.Config = map[string]string{
				"sizes": o.sizes, "bouncers": strconv.Itoa(o.bouncers), "every_host_max_endpoints": strconv.Itoa(o.everyMax),
				"traffic_duration": o.duration.String(), "streams": strconv.Itoa(o.streams), "xdp_mode": g.mode().String(),
				"rounds": strconv.Itoa(o.rounds), "mtu": strconv.Itoa(o.mtu), "agent": o.agent,
			}
			dir := o.out
			if dir == "" {
				dir = filepath.Join("reports", "runs", start.UTC().Format("20060102-150405"))
			}
			var errs []error
			if !o.skipProv {
				fmt.Fprintf(out, "provisioning: %s, %d bouncers\n", o.sizes, o.bouncers)
				p, err := testbed.MeasureProvisioning(ctx, testbed.ProvisionOptions{
					Sizes: sizes, Bouncers: o.bouncers, EveryHostMaxEndpoints: o.everyMax,
					Mode: g.mode(), Progress: out, Samples: true,
				}, log)
				r.Provisioning = p
				r.Checks = append(r.Checks, testbed.ProvisioningChecks(p)...)
				if err != nil {
					errs = append(errs, fmt.Errorf("provisioning: %w", err))
				}
			}
			if !o.skipTraff {
				fmt.Fprintf(out, "traffic: %v per figure, %d streams\n", o.duration, o.streams)
				t, err := testbed.MeasureTraffic(ctx, testbed.TrafficOptions{
					Duration: o.duration, Streams: o.streams, Rounds: o.rounds, MTU: o.mtu, Mode: g.mode(),
					Agent: dataplane.Program(o.agent),
				}, log)
				if len(t) > 0 {
					if werr := testbed.WriteTrafficTable(out, t); werr != nil {
						return werr
					}
				}
				r.Traffic = t
				if err != nil {
					errs = append(errs, fmt.Errorf("traffic: %w", err))
				}
			}
			r.Seconds = time.Since(start).Seconds()
			for _, e := range errs {
				r.Notes = append(r.Notes, "error: "+e.Error())
			}
			if err := reports.Write(dir, r); err != nil {
				return err
			}
			fmt.Fprintf(out, "report written to %s (summary.md, report.json, plots)\n", dir)
			if err := errors.Join(errs...); err != nil {
				return err
			}
			// The properties fail the run; targets (reports.Targets, in summary.md) are reported.
			for _, c := range r.Checks {
				if !c.Passed {
					return fmt.Errorf("check %s failed: %s", c.Name, c.Detail)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.out, "out", "", "run folder to write (default reports/runs/<UTC time>)")
	f.StringVar(&o.sizes, "sizes", "10x10,100x20,1000x50,5000x50", "provisioning sweep: ENDPOINTSxHOSTS,...")
	f.IntVar(&o.bouncers, "bouncers", 2, "bouncers of the sweep's network")
	f.IntVar(&o.everyMax, "every-host-max", 1000, "largest size also measured in every-host mode (0: all)")
	f.DurationVar(&o.duration, "duration", 5*time.Second, "measured window of each traffic figure")
	f.IntVar(&o.streams, "streams", 4, "connections of the multi-stream TCP test")
	f.IntVar(&o.rounds, "rounds", 3, "passes over every traffic path; a figure is the median of its rounds")
	f.IntVar(&o.mtu, "mtu", 1500, "underlay MTU of the traffic measurements")
	f.StringVar(&o.agent, "agent", string(dataplane.AgentTC), "encapsulation point on the endpoints' hosts: agent_tc or agent (XDP)")
	f.BoolVar(&o.skipProv, "no-provisioning", false, "skip the provisioning sweep")
	f.BoolVar(&o.skipTraff, "no-traffic", false, "skip the traffic measurements")
	return cmd
}
