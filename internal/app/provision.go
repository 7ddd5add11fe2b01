package app

import (
	"context"
	"errors"
	"io"

	"github.com/stepup-bridge/stepup-bridge/config"
)

// errProvisioningUnavailable is returned by plan and apply until the
// provisioning units exist in this build.
var errProvisioningUnavailable = errors.New("plan and apply are not available yet in this build; see docs/keycloak.md for the Keycloak objects to create by hand")

// Plan prints what Apply would change and returns an ExitCodeError with
// code 2 when something would.
func Plan(ctx context.Context, cfg config.Config, w io.Writer) error {
	return errProvisioningUnavailable
}

// Apply provisions Keycloak idempotently.
func Apply(ctx context.Context, cfg config.Config, w io.Writer) error {
	return errProvisioningUnavailable
}
