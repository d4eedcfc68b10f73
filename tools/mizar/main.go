// Command mizar runs and cleans up mizar overlays on network namespaces.
package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mizar-net/mizar/dataplane"
	scenario "github.com/mizar-net/mizar/scenarios"
	"github.com/mizar-net/mizar/testbed"
)

func main() {
	if err := mizar(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mizar:", err)
		os.Exit(1)
	}
}

type globalOptions struct {
	verbose        bool
	generic        bool
	agentProcesses bool
}

// mode is the XDP attach mode the flags ask for.
func (g *globalOptions) mode() dataplane.Mode {
	if g.generic {
		return dataplane.Generic
	}
	return dataplane.Native
}

// loadAll parses every file before anything is built, and reports every file's errors.
func loadAll(files []string) ([]*scenario.Scenario, error) {
	var scs []*scenario.Scenario
	var errs []error
	for _, f := range files {
		sc, err := scenario.Load(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		scs = append(scs, sc)
	}
	return scs, errors.Join(errs...)
}

func (g *globalOptions) logger(w io.Writer) *slog.Logger {
	level := slog.LevelWarn
	if g.verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// mizar is the testable entry point: arguments and output in, error out.
func mizar(args []string, stdout, stderr io.Writer) error {
	var g globalOptions
	root := &cobra.Command{
		Use:           "mizar",
		Short:         "Mizar overlay: XDP data plane on network-namespace topologies",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "log debug messages")
	root.PersistentFlags().BoolVar(&g.generic, "generic", false, "attach XDP in generic (skb) mode instead of native")
	root.PersistentFlags().BoolVar(&g.agentProcesses, "agent-processes", false, "run each host's agent as its own process, programmed over gRPC on loopback")
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(runCommand(&g), validateCommand(), demoCommand(&g), cleanCommand(&g))
	root.AddCommand(reportCommand(&g))
	root.AddCommand(agentCommand())
	root.AddCommand(trafficCommand(&g), benchCommand(&g))
	root.AddCommand(upCommand(&g), downCommand())
	return root.Execute()
}

func runCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "run FILE...",
		Short: "Build each scenario on namespaces, play its timeline, report every step, tear it down",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			scs, err := loadAll(files)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			failed := 0
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			type row struct {
				name          string
				steps, failed int
				writes        int
				took          time.Duration
			}
			var rows []row
			for _, sc := range scs {
				fmt.Fprintf(out, "%s: %s\n", sc.File, sc.Description)
				start := time.Now()
				opts := testbed.RunOptions{Mode: g.mode(), Progress: out, AgentProcesses: g.agentProcesses}
				if g.agentProcesses {
					if opts.AgentCommand, err = agentProcessCommand(); err != nil {
						return err
					}
				}
				results, err := testbed.RunScenario(cmd.Context(), sc, opts, g.logger(cmd.ErrOrStderr()))
				r := row{name: sc.Name, took: time.Since(start)}
				for _, res := range results {
					r.steps++
					r.writes += res.Writes
					if res.Err != nil {
						r.failed++
					}
				}
				if err != nil {
					failed++
					fmt.Fprintf(out, "  %v\n", err)
				}
				rows = append(rows, r)
			}
			fmt.Fprintln(tw, "\nscenario\tsteps\tfailed\twrites\ttime")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%v\n", r.name, r.steps, r.failed, r.writes, r.took.Round(time.Millisecond))
			}
			tw.Flush()
			if failed > 0 {
				return fmt.Errorf("%d of %d scenarios failed", failed, len(scs))
			}
			return nil
		},
	}
}

func validateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check scenario files without building anything",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			scs, err := loadAll(files)
			for _, sc := range scs {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: valid (%d hosts, %d VPCs, %d steps)\n", sc.File, len(sc.Hosts()), len(sc.VPCs), len(sc.Steps))
			}
			return err
		},
	}
}

func demoCommand(g *globalOptions) *cobra.Command {
	var bytes int
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Build the quickstart overlay, send ICMP, TCP and UDP through it, tear it down",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return testbed.Demo(cmd.OutOrStdout(), testbed.DemoOptions{Bytes: bytes, Mode: g.mode()}, g.logger(cmd.ErrOrStderr()))
		},
	}
	cmd.Flags().IntVar(&bytes, "bytes", 8<<20, "bytes of the TCP exchange")
	return cmd
}

func cleanCommand(g *globalOptions) *cobra.Command {
	var prefix string
	cmd := &cobra.Command{
		Use:   "clean",
		Short: "Remove every namespace and link a crashed run left behind",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := testbed.Clean(prefix); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed everything named %s*\n", prefix)
			return nil
		},
	}
	cmd.Flags().StringVar(&prefix, "prefix", testbed.DefaultPrefix, "name prefix of what to remove")
	return cmd
}
