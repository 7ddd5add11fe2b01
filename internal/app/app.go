// Package app wires the sidecar together from a config.Config: it opens the
// store, connects the bridge, builds the factors and the policies, and runs
// the HTTP server. cmd/stepup-bridge only parses flags and calls it.
package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/stepup-bridge/stepup-bridge/config"
)

// version is set at link time: -ldflags "-X github.com/stepup-bridge/stepup-bridge/internal/app.version=v1.2.3".
var version = ""

// Version is the build's version: the linker-set one, else the module
// version and VCS revision Go recorded.
func Version() string {
	if version != "" {
		return "stepup-bridge " + version
	}
	v := "devel"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " " + s.Value[:12]
			}
		}
	}
	return "stepup-bridge " + v
}

// ExitCodeError asks main to exit with Code (plan's 2 = changes pending).
type ExitCodeError struct {
	Code int
	Err  error
}

func (e *ExitCodeError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit code %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitCodeError) Unwrap() error { return e.Err }

// Options are the process's outputs.
type Options struct {
	Stdout, Stderr io.Writer
}

// PrintConfig writes the effective configuration as YAML with every secret
// redacted (config.Secret marshals as "[redacted]").
func PrintConfig(w io.Writer, cfg config.Config) error {
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(cfg); err != nil {
		return fmt.Errorf("printing config: %w", err)
	}
	return enc.Close()
}

// NewLogger builds the process logger from log.level and log.format.
func NewLogger(w io.Writer, c config.Log) *slog.Logger {
	var level slog.Level
	switch strings.ToLower(c.Level) {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// Serve runs the sidecar until ctx is done.
func Serve(ctx context.Context, cfg config.Config, opts Options) error {
	log := NewLogger(opts.Stderr, cfg.Log)
	rt, err := New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer rt.Close()
	return rt.Run(ctx)
}
