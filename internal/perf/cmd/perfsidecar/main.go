// Command perfsidecar runs a sidecar for load tests: the Keycloak-compatible
// server with the dev realm and the sidecar (SQLite, production defaults,
// logs at warn) on 127.0.0.1, and writes what a load script needs to a
// shell-sourceable file:
//
//	SIDECAR_URL=http://127.0.0.1:port
//	KEYCLOAK_URL=http://127.0.0.1:port
//	ACCESS_TOKEN=<alice's access token, valid 5 minutes>
//
// It stops on SIGTERM or SIGINT, and by itself after -for, so a load run
// that is interrupted leaves nothing behind.
//
//	go run ./internal/perf/cmd/perfsidecar -env /tmp/perf.env -for 2m
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/stepup-bridge/stepup-bridge/internal/perf"
)

func main() {
	envFile := flag.String("env", "", "file to write SIDECAR_URL, KEYCLOAK_URL and ACCESS_TOKEN to (required)")
	lifetime := flag.Duration("for", 2*time.Minute, "stop by itself after this long")
	flag.Parse()
	if *envFile == "" {
		fmt.Fprintln(os.Stderr, "perfsidecar: -env is required")
		os.Exit(2)
	}
	if err := run(*envFile, *lifetime); err != nil {
		fmt.Fprintln(os.Stderr, "perfsidecar:", err)
		os.Exit(1)
	}
}

func run(envFile string, lifetime time.Duration) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, lifetime)
	defer cancel()

	dir, err := os.MkdirTemp("", "perfsidecar-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := perf.Start(ctx, perf.Options{Dir: dir, Logger: log})
	if err != nil {
		return err
	}
	tok, err := s.PasswordTokens(ctx, "alice", "alice")
	if err != nil {
		return errors.Join(err, s.Close())
	}
	body := fmt.Sprintf("SIDECAR_URL=%s\nKEYCLOAK_URL=%s\nACCESS_TOKEN=%s\n", s.URL, s.KeycloakURL, tok.AccessToken)
	tmp := filepath.Join(filepath.Dir(envFile), "."+filepath.Base(envFile)+".tmp")
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		return errors.Join(err, s.Close())
	}
	// Renamed into place so a script polling for the file never reads half of it.
	if err := os.Rename(tmp, envFile); err != nil {
		return errors.Join(err, s.Close())
	}
	fmt.Fprintf(os.Stderr, "perfsidecar: sidecar %s, keycloak %s; stopping on SIGTERM or after %s\n", s.URL, s.KeycloakURL, lifetime)
	<-ctx.Done()
	return s.Close()
}
