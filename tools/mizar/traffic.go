package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/mizar-net/mizar/dataplane"
	"github.com/mizar-net/mizar/reports"
	"github.com/mizar-net/mizar/testbed"
)

// trafficOptions are the flags of `mizar traffic`.
type trafficOptions struct {
	duration, warmup time.Duration
	streams, mtu     int
	rounds           int
	paths            []string
	iperf3           string
	iperf3Path       string
	out              string
	agent            string
}

func trafficCommand(g *globalOptions) *cobra.Command {
	var o trafficOptions
	cmd := &cobra.Command{
		Use:   "traffic",
		Short: "Measure throughput, packet rate and latency on the overlay and on kernel baselines over the same endpoints",
		Long: `traffic builds two endpoints on two hosts and the network's bouncer on a third, and measures,
on each path in turn over the same endpoint namespaces: bulk TCP (one and --streams connections),
small UDP datagrams received per second, and TCP request/response latency. Paths: bouncer and
direct (the overlay), plain-routing and vxlan (kernel baselines, overlay detached), and the
baselines again with the endpoints' TX offloads on. It prints every figure and its ratio to the
baselines; --out writes them as a report.json.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, unix.SIGTERM)
			defer stop()
			return runTraffic(ctx, cmd, g, o)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.duration, "duration", 5*time.Second, "measured window of each figure")
	f.DurationVar(&o.warmup, "warmup", 300*time.Millisecond, "load before each window, not counted")
	f.IntVar(&o.streams, "streams", 4, "connections of the multi-stream TCP test")
	f.IntVar(&o.rounds, "rounds", 1, "passes over every path; a figure is the median of its rounds")
	f.IntVar(&o.mtu, "mtu", 1500, "underlay MTU (endpoints get it minus the overlay's overhead on every path)")
	f.StringSliceVar(&o.paths, "paths", nil, "paths to measure (default all: "+strings.Join(testbed.TrafficPaths, ",")+")")
	f.StringVar(&o.iperf3, "iperf3", "", `iperf3 binary for the cross-check ("" looks on PATH, "none" skips)`)
	f.StringVar(&o.iperf3Path, "iperf3-path", "direct", "path the iperf3 cross-check runs on")
	f.StringVar(&o.out, "out", "", "write the figures as a report folder (report.json, summary.md, plots) here")
	f.StringVar(&o.agent, "agent", string(dataplane.AgentTC), "encapsulation point on the endpoints' hosts: agent_tc (tc, the default) or agent (XDP)")
	return cmd
}

func runTraffic(ctx context.Context, cmd *cobra.Command, g *globalOptions, o trafficOptions) error {
	start := time.Now()
	opts := testbed.TrafficOptions{Duration: o.duration, Warmup: o.warmup, Streams: o.streams, Rounds: o.rounds, MTU: o.mtu,
		Mode: g.mode(), Agent: dataplane.Program(o.agent), Paths: o.paths, Iperf3: o.iperf3, Iperf3Path: o.iperf3Path}
	figs, err := testbed.MeasureTraffic(ctx, opts, g.logger(cmd.ErrOrStderr()))
	if len(figs) > 0 {
		if werr := testbed.WriteTrafficTable(cmd.OutOrStdout(), figs); werr != nil {
			return werr
		}
	}
	if err != nil {
		return err
	}
	if o.out == "" {
		return nil
	}
	rep := reports.New("traffic", ".")
	rep.Started = start
	rep.Seconds = time.Since(start).Seconds()
	rep.Config = map[string]string{
		"duration": o.duration.String(), "warmup": o.warmup.String(), "streams": strconv.Itoa(o.streams), "rounds": strconv.Itoa(o.rounds),
		"mtu": strconv.Itoa(o.mtu), "mode": g.mode().String(), "agent": o.agent, "paths": strings.Join(o.paths, ","),
	}
	rep.Traffic = figs
	if err := reports.Write(o.out, rep); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "report written to %s\n", o.out)
	return nil
}
