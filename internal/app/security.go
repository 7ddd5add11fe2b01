package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/factors/delivery"
	"github.com/stepup-bridge/stepup-bridge/factors/otpcode"
	"github.com/stepup-bridge/stepup-bridge/internal/devices"
	"github.com/stepup-bridge/stepup-bridge/internal/notify"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// auditHooks is the store with AppendAudit followed by hooks: the
// notifications and the device revocations that factor changes imply
// see every event the Registry and the flows write, whichever path
// (API, hosted pages, admin) caused it.
type auditHooks struct {
	store.Store
	hooks []func(ctx context.Context, e store.AuditEvent)
}

func (h auditHooks) AppendAudit(ctx context.Context, e store.AuditEvent) (store.AuditEvent, error) {
	out, err := h.Store.AppendAudit(ctx, e)
	if err != nil {
		return out, err
	}
	for _, hook := range h.hooks {
		hook(ctx, out)
	}
	return out, nil
}

// newNotifier builds the notifier from notifications.*: with
// notifications off it still records the security activity list.
// backupCodes is read lazily: the Registry is built after the notifier.
func newNotifier(cfg config.Config, st store.Store, br *bridge.Bridge, backupCodes func() *factors.Registry, reg prometheus.Registerer, log *slog.Logger) (*notify.Notifier, error) {
	nc := cfg.Notifications
	ncfg := notify.Config{
		Store: st, Audit: st, Events: nc.Events, Subject: nc.Subject, Templates: nc.Templates,
		Issuer: cfg.Factors.TOTP.Issuer, MaxAttempts: nc.MaxAttempts, LowWatermark: cfg.Factors.BackupCodes.LowWatermark,
		Logger: log, Registerer: reg,
		BackupCodesRemaining: func(ctx context.Context, userID string) (int, error) {
			reg := backupCodes()
			if reg == nil {
				return 0, errors.New("app: registry not built yet")
			}
			f, ok := reg.Factor(factors.BackupCode)
			if !ok {
				return 0, factors.ErrUnknownFactor
			}
			st, err := f.Status(ctx, userID)
			if err != nil {
				return 0, err
			}
			if st.Remaining == nil {
				return -1, nil
			}
			return *st.Remaining, nil
		},
	}
	if nc.Enabled {
		ncfg.Channel = delivery.ChannelEmail
		if nc.Channel == "sms" {
			ncfg.Channel = delivery.ChannelSMS
		}
		sender, err := otpcode.SenderFromConfig(cfg, nc.Channel, otpcode.SenderOptions{Logger: log})
		if err != nil {
			return nil, fmt.Errorf("notifications: %w", err)
		}
		ncfg.Sender = sender
		ncfg.Recipients = notify.KeycloakRecipients{Users: br}
	}
	return notify.New(ncfg)
}

// newDevices builds the trusted-device service, or nil when
// devices.enabled is off.
func newDevices(cfg config.Config, st store.Store, reg prometheus.Registerer, log *slog.Logger) (*devices.Service, error) {
	if !cfg.Devices.Enabled {
		return nil, nil
	}
	pepper, err := cfg.PepperBytes()
	if err != nil {
		return nil, err
	}
	return devices.New(devices.Config{Store: st, Audit: st, Key: devices.KeyFromPepper(pepper),
		TTL: cfg.Devices.TTL, MaxPerUser: cfg.Devices.MaxPerUser, Registerer: reg, Logger: log})
}
