package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/mizar-net/mizar/controlplane/hostagent"
)

// agentCommand is mizar-agent inside mizar, so that --agent-processes needs no second binary:
// the testbed starts this executable's agent subcommand once per host.
func agentCommand() *cobra.Command {
	return &cobra.Command{
		Use:                "agent [mizar-agent flags]",
		Short:              "Serve one host's agent over gRPC (what mizar-agent does; run --agent-processes starts these)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return hostagent.Main(ctx, args, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
}

// agentProcessCommand is how the testbed starts a host's agent when --agent-processes is set.
func agentProcessCommand() ([]string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("agent processes: find this executable: %w", err)
	}
	return []string{self, "agent"}, nil
}
