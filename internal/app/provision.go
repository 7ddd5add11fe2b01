package app

import (
	"context"
	"io"
	"log/slog"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/provision"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// desired is the Keycloak configuration cfg asks for.
func desired(cfg config.Config) provision.Desired {
	return provision.Desired{
		Attribute:   cfg.Claims.Attribute,
		ClientScope: cfg.Claims.ClientScope,
		Clients:     cfg.Claims.Clients,
		AdminRole:   cfg.Admin.Role,
	}
}

// Plan prints what Apply would change and returns an ExitCodeError with
// code 2 when something would (terraform plan -detailed-exitcode). It
// needs no store: only Keycloak's admin API.
func Plan(ctx context.Context, cfg config.Config, w io.Writer) error {
	b, err := bridge.FromConfig(cfg, nil)
	if err != nil {
		return err
	}
	defer b.Close()
	changes, err := provision.Plan(ctx, b, desired(cfg))
	if err != nil {
		return err
	}
	if err := provision.Print(w, changes, "Plan"); err != nil {
		return err
	}
	if len(changes) > 0 {
		return &ExitCodeError{Code: 2}
	}
	return nil
}

// Apply provisions Keycloak idempotently: a second Apply changes nothing.
func Apply(ctx context.Context, cfg config.Config, w io.Writer) error {
	b, err := bridge.FromConfig(cfg, nil)
	if err != nil {
		return err
	}
	defer b.Close()
	changes, err := provision.Apply(ctx, b, desired(cfg))
	if perr := provision.Print(w, changes, "Applied"); perr != nil && err == nil {
		err = perr
	}
	return err
}

// checkDrift logs, at start, what the realm lacks; serving goes on (the
// write-back then fails with a message naming `stepup-bridge apply`).
func checkDrift(ctx context.Context, b *bridge.Bridge, cfg config.Config, log *slog.Logger) {
	changes, err := provision.Plan(ctx, b, desired(cfg))
	if err != nil {
		log.Warn("could not check Keycloak for drift", "err", err)
		return
	}
	for _, c := range changes {
		log.Warn("Keycloak drift: run `stepup-bridge apply`", "change", c.String())
	}
	if len(changes) == 0 {
		log.Info("Keycloak has everything stepup-bridge needs")
	}
}
