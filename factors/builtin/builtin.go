// Package builtin builds the factors.Registry from the configuration: it
// knows every factor this binary contains, constructs the ones named in
// factors.enabled with their settings, and refuses names it cannot build.
// It is the only package that imports every factor package, so the server
// stays a thin caller:
//
//	reg, err := builtin.NewRegistry(cfg, builtin.Deps{Store: st, Registerer: prometheus.DefaultRegisterer})
package builtin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stepup-bridge/stepup-bridge/config"
	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/factors/backupcodes"
	"github.com/stepup-bridge/stepup-bridge/factors/delivery"
	"github.com/stepup-bridge/stepup-bridge/factors/delivery/challenge"
	"github.com/stepup-bridge/stepup-bridge/factors/flashcall"
	"github.com/stepup-bridge/stepup-bridge/factors/hotp"
	"github.com/stepup-bridge/stepup-bridge/factors/otpcode"
	"github.com/stepup-bridge/stepup-bridge/factors/pin"
	"github.com/stepup-bridge/stepup-bridge/factors/totp"
	"github.com/stepup-bridge/stepup-bridge/internal/keyring"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// Store is what the factors and the registry persist through.
type Store interface {
	store.Credentials
	store.Counters
	store.Audit
}

// Deps are what the factors need besides the configuration.
type Deps struct {
	// Store is required.
	Store Store
	// Registerer receives the metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Rand is the source of secrets and salts. Defaults to crypto/rand;
	// only tests set it.
	Rand io.Reader
	// Logger for audit writes that failed. Defaults to discarding.
	Logger *slog.Logger
	// Extra are factors built elsewhere, offered when factors.enabled
	// names them; one named like a built-in factor replaces it (tests plug
	// in fakes this way).
	Extra []factors.Factor
}

// Available are the factor names this binary can build.
func Available() []string {
	return []string{factors.BackupCode, factors.PIN, factors.TOTP, factors.HOTP, factors.FlashCall, factors.SMS, factors.Email}
}

// NewRegistry builds every factor in cfg.Factors.Enabled and the registry
// around them. cfg must have passed Validate. A name config accepts but this
// binary does not contain and Deps.Extra does not supply is an error wrapping factors.ErrUnknownFactor, so a typo or a missing feature
// stops the start instead of silently offering less.
func NewRegistry(cfg config.Config, d Deps) (*factors.Registry, error) {
	if d.Store == nil {
		return nil, errors.New("builtin: a store is required")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	level := cfg.StepUp.Level
	var (
		built []factors.Factor
		kr    *keyring.Keyring
		pep   *keyring.Pepper
		dm    *delivery.Metrics
		// reg is assigned once NewRegistry returns: the delivering factors
		// ask it which other factors a user has (PSTN is never the first).
		reg *factors.Registry
	)
	others := challenge.ActiveFunc(func(ctx context.Context, userID string) ([]string, error) {
		if reg == nil {
			return nil, errors.New("builtin: registry not built yet")
		}
		return reg.Active(ctx, userID)
	})
	pepper := func() (*keyring.Pepper, error) {
		if pep != nil {
			return pep, nil
		}
		var err error
		pep, err = keyring.PepperFromConfig(cfg)
		return pep, err
	}
	deliveryMetrics := func() (*delivery.Metrics, error) {
		if dm != nil {
			return dm, nil
		}
		var err error
		dm, err = delivery.NewMetrics(d.Registerer)
		return dm, err
	}
	ring := func() (*keyring.Keyring, error) {
		if kr != nil {
			return kr, nil
		}
		var err error
		kr, err = keyring.FromConfig(cfg)
		return kr, err
	}
	for _, name := range cfg.Factors.Enabled {
		var (
			f   factors.Factor
			err error
		)
		if i := slices.IndexFunc(d.Extra, func(x factors.Factor) bool { return x != nil && x.Name() == name }); i >= 0 {
			built = append(built, d.Extra[i])
			continue
		}
		switch name {
		case factors.BackupCode:
			if _, err = pepper(); err != nil {
				return nil, fmt.Errorf("builtin: %s: %w", name, err)
			}
			bc := cfg.Factors.BackupCodes
			f, err = backupcodes.New(backupcodes.Config{
				Count: bc.Count, LowWatermark: bc.LowWatermark, Level: level, Now: d.Now, Rand: d.Rand,
			}, d.Store, pep)
		case factors.PIN:
			p := cfg.Factors.PIN
			f, err = pin.New(pin.Config{
				Rules:       pin.Rules{MinLength: p.MinLength, MaxLength: p.MaxLength, DenyList: p.DenyList},
				MaxFailures: p.MaxFailures, LockoutBase: p.LockoutBase, LockoutMax: p.LockoutMax,
				Lifetime: p.Lifetime,
				Argon2:   pin.Argon2{Time: p.Argon2.Time, MemoryKiB: p.Argon2.MemoryKiB, Threads: p.Argon2.Threads},
				Level:    level, Now: d.Now, Rand: d.Rand,
			}, d.Store)
		case factors.TOTP:
			var r *keyring.Keyring
			if r, err = ring(); err != nil {
				return nil, fmt.Errorf("builtin: %s: %w", name, err)
			}
			t := cfg.Factors.TOTP
			f, err = totp.New(totp.Config{
				Issuer: t.Issuer, Digits: t.Digits, Period: t.Period, Algorithm: t.Algorithm,
				Skew: t.Skew, StrictTime: t.Skew == 0, Level: level, Now: d.Now, Rand: d.Rand,
			}, d.Store, r)
		case factors.HOTP:
			var r *keyring.Keyring
			if r, err = ring(); err != nil {
				return nil, fmt.Errorf("builtin: %s: %w", name, err)
			}
			h := cfg.Factors.HOTP
			f, err = hotp.New(hotp.Config{
				Issuer: cfg.Factors.TOTP.Issuer, Digits: h.Digits, LookAhead: h.LookAhead,
				Level: level, Now: d.Now, Rand: d.Rand,
			}, d.Store, r)
		case factors.FlashCall:
			f, err = buildFlashCall(cfg, d, ring, pepper, deliveryMetrics, others)
		case factors.SMS, factors.Email:
			f, err = buildOneTimeCode(cfg, name, d, ring, pepper, deliveryMetrics, others)
		default:
			return nil, fmt.Errorf("builtin: factor %q is not available in this build (available: %v): %w", name, Available(), factors.ErrUnknownFactor)
		}
		if err != nil {
			return nil, fmt.Errorf("builtin: %s: %w", name, err)
		}
		built = append(built, f)
	}
	r, err := factors.NewRegistry(factors.RegistryConfig{
		Enabled:                  cfg.Factors.Enabled,
		UserFailuresPerHour:      cfg.RateLimits.UserFailuresPerHour,
		ChallengesPerUserPerHour: cfg.RateLimits.ChallengesPerUserPerHour,
		Counters:                 d.Store,
		Audit:                    d.Store,
		Registerer:               d.Registerer,
		Now:                      d.Now,
		Logger:                   d.Logger,
	}, built...)
	if err != nil {
		return nil, err
	}
	reg = r
	return r, nil
}

func buildFlashCall(cfg config.Config, d Deps, ring func() (*keyring.Keyring, error), pepper func() (*keyring.Pepper, error),
	metrics func() (*delivery.Metrics, error), others challenge.ActiveLister) (factors.Factor, error) {
	kr, pep, m, err := deliveryDeps(ring, pepper, metrics)
	if err != nil {
		return nil, err
	}
	p, err := flashcall.ProviderFromConfig(cfg, flashcall.ProviderOptions{Logger: d.Logger, Now: d.Now, Rand: d.Rand})
	if err != nil {
		return nil, err
	}
	fc := flashcall.ConfigFrom(cfg)
	fc.Provider, fc.Others, fc.Credentials, fc.Counters = p, others, d.Store, d.Store
	fc.Keyring, fc.Pepper, fc.Metrics, fc.Now, fc.Rand = kr, pep, m, d.Now, d.Rand
	return flashcall.New(fc)
}

func buildOneTimeCode(cfg config.Config, name string, d Deps, ring func() (*keyring.Keyring, error), pepper func() (*keyring.Pepper, error),
	metrics func() (*delivery.Metrics, error), others challenge.ActiveLister) (factors.Factor, error) {
	kr, pep, m, err := deliveryDeps(ring, pepper, metrics)
	if err != nil {
		return nil, err
	}
	s, err := otpcode.SenderFromConfig(cfg, name, otpcode.SenderOptions{Logger: d.Logger, Now: d.Now, Rand: d.Rand})
	if err != nil {
		return nil, err
	}
	oc := otpcode.ConfigFrom(cfg, name)
	oc.Sender, oc.Others, oc.Credentials, oc.Counters = s, others, d.Store, d.Store
	oc.Keyring, oc.Pepper, oc.Metrics, oc.Now, oc.Rand = kr, pep, m, d.Now, d.Rand
	return otpcode.New(oc)
}

func deliveryDeps(ring func() (*keyring.Keyring, error), pepper func() (*keyring.Pepper, error),
	metrics func() (*delivery.Metrics, error)) (*keyring.Keyring, *keyring.Pepper, *delivery.Metrics, error) {
	kr, err := ring()
	if err != nil {
		return nil, nil, nil, err
	}
	pep, err := pepper()
	if err != nil {
		return nil, nil, nil, err
	}
	m, err := metrics()
	if err != nil {
		return nil, nil, nil, err
	}
	return kr, pep, m, nil
}
