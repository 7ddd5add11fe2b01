// Command stepup-bridge is the step-up authentication sidecar for Keycloak.
//
//	stepup-bridge serve   --config config.yaml   run the sidecar
//	stepup-bridge dev                            run everything on loopback with a built-in realm
//	stepup-bridge plan    --config config.yaml   show what apply would change in Keycloak (exit 2 = changes)
//	stepup-bridge apply   --config config.yaml   provision Keycloak idempotently
//	stepup-bridge version
//
// The command only parses flags and builds the config; the work is done in
// internal/app.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/stepup-bridge/stepup-bridge/internal/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err := newRootCommand(os.Stdout, os.Stderr).ExecuteContext(ctx)
	if err == nil {
		return
	}
	var ec *app.ExitCodeError
	if errors.As(err, &ec) {
		if ec.Err != nil {
			fmt.Fprintln(os.Stderr, "stepup-bridge:", ec.Err)
		}
		os.Exit(ec.Code)
	}
	fmt.Fprintln(os.Stderr, "stepup-bridge:", err)
	os.Exit(1)
}
