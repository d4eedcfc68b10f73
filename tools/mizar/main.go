// Command mizar runs and cleans up mizar overlays on network namespaces.
package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/mizar-net/mizar/dataplane"
	"github.com/mizar-net/mizar/testbed"
)

func main() {
	if err := mizar(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mizar:", err)
		os.Exit(1)
	}
}

type globalOptions struct {
	verbose bool
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
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(demoCommand(&g), cleanCommand(&g))
	return root.Execute()
}

type demoOptions struct {
	bytes   int
	generic bool
}

func demoCommand(g *globalOptions) *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Build the quickstart overlay, send ICMP, TCP and UDP through it, tear it down",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			mode := dataplane.Native
			if o.generic {
				mode = dataplane.Generic
			}
			return testbed.Demo(cmd.OutOrStdout(), testbed.DemoOptions{Bytes: o.bytes, Mode: mode}, g.logger(cmd.ErrOrStderr()))
		},
	}
	cmd.Flags().IntVar(&o.bytes, "bytes", 8<<20, "bytes of the TCP exchange")
	cmd.Flags().BoolVar(&o.generic, "generic", false, "attach XDP in generic (skb) mode instead of native")
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
