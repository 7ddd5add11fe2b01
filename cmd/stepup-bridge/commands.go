package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/stepup-bridge/stepup-bridge/config"
	"github.com/stepup-bridge/stepup-bridge/internal/app"
)

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "stepup-bridge",
		Short:         "Step-up authentication sidecar for Keycloak",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().String("config", "", "YAML config file (keys as in the README; env STEPUP_* and flags override it)")
	config.BindFlags(root.PersistentFlags())

	load := func(cmd *cobra.Command) (config.Config, error) {
		file, _ := cmd.Flags().GetString("config")
		return config.Load(config.Source{File: file, Flags: cmd.Flags()})
	}

	serve := &cobra.Command{
		Use:   "serve",
		Short: "Run the sidecar",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load(cmd)
			if err != nil {
				return err
			}
			if p, _ := cmd.Flags().GetBool("print-config"); p {
				return app.PrintConfig(cmd.OutOrStdout(), cfg)
			}
			return app.Serve(cmd.Context(), cfg, app.Options{Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr()})
		},
	}
	serve.Flags().Bool("print-config", false, "print the effective config (secrets redacted) and exit")

	dev := &cobra.Command{
		Use:   "dev",
		Short: "Run the sidecar with a built-in Keycloak-compatible realm and SQLite, all on loopback",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, _ := cmd.Flags().GetString("data-dir")
			file, _ := cmd.Flags().GetString("config")
			return app.Dev(cmd.Context(), app.DevOptions{
				DataDir: dir,
				Source:  config.Source{File: file, Flags: cmd.Flags()},
				Stdout:  cmd.OutOrStdout(),
				Stderr:  cmd.ErrOrStderr(),
			})
		},
	}
	dev.Flags().String("data-dir", ".stepup-dev", "where dev mode keeps its SQLite file and generated keys")

	plan := &cobra.Command{
		Use:   "plan",
		Short: "Show what apply would change in Keycloak; exit 0 = nothing, 2 = changes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load(cmd)
			if err != nil {
				return err
			}
			return app.Plan(cmd.Context(), cfg, cmd.OutOrStdout())
		},
	}
	apply := &cobra.Command{
		Use:   "apply",
		Short: "Provision Keycloak for step-up claims, idempotently",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load(cmd)
			if err != nil {
				return err
			}
			return app.Apply(cmd.Context(), cfg, cmd.OutOrStdout())
		},
	}
	version := &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), app.Version())
			return err
		},
	}
	root.AddCommand(serve, dev, plan, apply, version)
	return root
}
