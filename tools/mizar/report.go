package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/mizar-net/mizar/reports"
)

func reportCommand(g *globalOptions) *cobra.Command {
	var compare bool
	cmd := &cobra.Command{
		Use:   "report DIR | report --compare A B",
		Short: "Re-render a run folder's summary.md and plots from its report.json and print the summary, or compare two runs",
		Long: "report DIR rewrites DIR/summary.md and DIR's plots from DIR/report.json and prints the summary.\n" +
			"report --compare A B prints what changed from run A to run B (run folders or report.json files).",
		Args: func(cmd *cobra.Command, args []string) error {
			if compare {
				return cobra.ExactArgs(2)(cmd, args)
			}
			return cobra.ExactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			if compare {
				a, err := reports.Load(args[0])
				if err != nil {
					return err
				}
				b, err := reports.Load(args[1])
				if err != nil {
					return err
				}
				_, err = fmt.Fprint(out, reports.Compare(a, b))
				return err
			}
			dir := args[0]
			if err := reports.Render(dir); err != nil {
				return err
			}
			summary, err := os.ReadFile(filepath.Join(dir, reports.SummaryFile))
			if err != nil {
				return fmt.Errorf("read rendered summary: %w", err)
			}
			g.logger(cmd.ErrOrStderr()).Debug("rendered run folder", "dir", dir)
			_, err = out.Write(summary)
			return err
		},
	}
	cmd.Flags().BoolVar(&compare, "compare", false, "compare run A with run B instead of rendering one run")
	return cmd
}
