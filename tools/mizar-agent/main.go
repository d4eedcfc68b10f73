// Command mizar-agent is a host's agent: it loads the data plane on this machine (or in a named
// network namespace), attaches transit to the substrate interface, and applies the control
// plane's ops received over gRPC. Once serving it prints its address to stdout.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/mizar-net/mizar/controlplane/hostagent"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := hostagent.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mizar-agent:", err)
		os.Exit(1)
	}
}
