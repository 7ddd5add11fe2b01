package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/factors/builtin"
	"github.com/stepup-bridge/stepup-bridge/internal/devices"
	"github.com/stepup-bridge/stepup-bridge/internal/keyring"
	"github.com/stepup-bridge/stepup-bridge/internal/notify"
	"github.com/stepup-bridge/stepup-bridge/internal/server"
	"github.com/stepup-bridge/stepup-bridge/internal/stepup"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
	"github.com/stepup-bridge/stepup-bridge/internal/store/backend"
	"github.com/stepup-bridge/stepup-bridge/policies"
)

// Runtime is one assembled sidecar: build it with New, serve with Run,
// release with Close. Tests and embedders use it; the binary uses Serve.
type Runtime struct {
	cfg     config.Config
	log     *slog.Logger
	store   store.Store
	bridge  *bridge.Bridge
	stepup  *stepup.Service
	factors *factors.Registry
	devices *devices.Service
	notify  *notify.Notifier
	server  *server.Server
	source  *policies.FileSource
	closers []func() error
}

// Addr is the bound listen address.
func (rt *Runtime) Addr() string { return rt.server.Addr() }

// Store is the runtime's store (tests read the audit trail through it).
func (rt *Runtime) Store() store.Store { return rt.store }

// Factors is the runtime's factor registry (tests enrol through it).
func (rt *Runtime) Factors() *factors.Registry { return rt.factors }

// Notifier is the runtime's notifier (tests read the security activity
// and deliver through it).
func (rt *Runtime) Notifier() *notify.Notifier { return rt.notify }

// Devices is the runtime's trusted-device service; nil when
// devices.enabled is off.
func (rt *Runtime) Devices() *devices.Service { return rt.devices }

// Close releases everything New opened.
func (r *Runtime) Close() error {
	var errs []error
	for i := len(r.closers) - 1; i >= 0; i-- {
		errs = append(errs, r.closers[i]())
	}
	return errors.Join(errs...)
}

// New opens every dependency and assembles the server. On error it closes
// what it opened. The listener is bound, so Addr is known.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (rt *Runtime, err error) {
	rt = &Runtime{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			_ = rt.Close()
			rt = nil
		}
	}()
	reg := prometheus.NewRegistry()

	opened, err := backend.Open(ctx, cfg.Store)
	if err != nil {
		return nil, fmt.Errorf("opening the %s store: %w", cfg.Store.Type, err)
	}
	rt.closers = append(rt.closers, opened.Close)
	st := loggedStore{Store: opened, log: log}
	rt.store = st

	kr, err := keyring.FromConfig(cfg)
	if err != nil {
		return nil, err
	}

	br, err := bridge.FromConfig(cfg, st)
	if err != nil {
		return nil, err
	}
	rt.bridge = br
	rt.closers = append(rt.closers, br.Close)
	if err := br.RegisterMetrics(reg); err != nil {
		return nil, fmt.Errorf("registering bridge metrics: %w", err)
	}
	checkDrift(ctx, br, cfg, log)
	if len(cfg.Keycloak.Audiences) == 0 {
		log.Warn("keycloak.audiences is empty: tokens issued to any client of the realm are accepted; name your clients in production")
	}

	notifier, err := newNotifier(cfg, st, br, func() *factors.Registry { return rt.factors }, reg, log)
	if err != nil {
		return nil, err
	}
	rt.notify = notifier
	devs, err := newDevices(cfg, st, reg, log)
	if err != nil {
		return nil, err
	}
	rt.devices = devs
	// Everything that writes the audit trail goes through the hooks.
	hooked := auditHooks{Store: st, hooks: []func(context.Context, store.AuditEvent){notifier.FromAudit}}
	var flowDevices stepup.Devices
	if devs != nil {
		hooked.hooks = append(hooked.hooks, devs.FromAudit)
		flowDevices = devs
	}

	registry, err := builtin.NewRegistry(cfg, builtin.Deps{Store: hooked, Registerer: reg, Logger: log})
	if err != nil {
		return nil, err
	}
	rt.factors = registry

	graceUntil := time.Time{}
	if cfg.Login.Require.GracePeriod > 0 {
		start := time.Now()
		if cfg.Login.Require.GraceStart != "" {
			start, _ = time.Parse(time.RFC3339, cfg.Login.Require.GraceStart) // validated by config
		}
		graceUntil = start.Add(cfg.Login.Require.GracePeriod)
	}
	svc, err := stepup.New(stepup.Config{
		Keycloak: br, Verifier: br.Verifier(), Factors: registry, Store: hooked, Keyring: kr,
		Devices: flowDevices, SignIns: notifier,
		ChallengesPerHour: cfg.RateLimits.ChallengesPerUserPerHour, Counters: st,
		Level: cfg.StepUp.Level, ChallengeTTL: cfg.StepUp.ChallengeTTL, MaxAttempts: cfg.StepUp.MaxAttempts,
		EntryTTL: cfg.Claims.EntryTTL, LoginTTL: cfg.Login.MFATokenTTL, LoginAttempts: cfg.Login.MaxAttempts,
		Require: stepup.LoginRequire{Mode: cfg.Login.Require.Mode, Roles: cfg.Login.Require.Roles,
			Groups: cfg.Login.Require.Groups, GraceUntil: graceUntil},
		Logger: log,
	})
	if err != nil {
		return nil, err
	}
	rt.stepup = svc

	pmetrics, err := policies.NewMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("registering policy metrics: %w", err)
	}
	var source policies.Source
	if cfg.Policies.File != "" {
		fs, err := policies.NewFileSource(cfg.Policies.File, policies.FileSourceOptions{Logger: log, Metrics: pmetrics})
		if err != nil {
			return nil, fmt.Errorf("policies.file: %w", err)
		}
		rt.source = fs
		source = fs
	}
	authz, err := policies.NewAuthorizer(ctx, policies.Config{
		Verifier: br.Verifier(), Source: source, Realm: cfg.Keycloak.Realm, Logger: log, Metrics: pmetrics,
	})
	if err != nil {
		return nil, err
	}

	srv, err := server.New(server.Options{
		Config:   cfg,
		Store:    st,
		Logger:   log,
		Registry: reg,
		Verifier: br.Verifier(),
		StepUp:   svc,
		Factors:  registry,
		Devices:  devs,
		Notifier: notifier,
		Authz:    authz.ForwardAuth(policies.ForwardAuthOptions{PathPrefix: "/v1/authz"}),
		Checks:   []server.Check{{Name: "keycloak", Check: br.Ping}},
	})
	if err != nil {
		return nil, err
	}
	if err := srv.Listen(); err != nil {
		return nil, err
	}
	rt.server = srv
	return rt, nil
}

// Run serves until ctx is done, with the background work a sidecar needs:
// policy reloads (SIGHUP, file changes) and the sweep of expired
// challenges (which logs out abandoned pending logins).
func (rt *Runtime) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if rt.source != nil {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		go func() {
			if err := rt.source.Watch(ctx, policies.WatchOptions{Signals: hup, Files: rt.cfg.Policies.Watch}); err != nil && ctx.Err() == nil {
				rt.log.Error("policy watch stopped", "err", err)
			}
		}()
	}
	go rt.sweep(ctx, 30*time.Second)
	go rt.notify.Run(ctx)
	return rt.server.Serve(ctx)
}

func (rt *Runtime) sweep(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := rt.stepup.Sweep(ctx)
			if err != nil {
				rt.log.Warn("sweeping expired challenges", "err", err)
			} else if n > 0 {
				rt.log.Debug("swept expired challenges", "count", n)
			}
			if ret := rt.cfg.Audit.Retention; ret > 0 {
				if _, err := rt.store.PruneAudit(ctx, time.Now().Add(-ret)); err != nil {
					rt.log.Warn("pruning the audit trail", "err", err)
				}
			}
			if ret := rt.cfg.Notifications.Retention; ret > 0 {
				if _, err := rt.store.PruneNotifications(ctx, time.Now().Add(-ret)); err != nil {
					rt.log.Warn("pruning the security activity", "err", err)
				}
			}
			// Expired and revoked devices are kept a while for the admins'
			// eyes (the audit trail keeps them for good).
			if _, err := rt.store.DeleteExpiredDevices(ctx, time.Now().Add(-30*24*time.Hour)); err != nil {
				rt.log.Warn("deleting expired devices", "err", err)
			}
		}
	}
}
