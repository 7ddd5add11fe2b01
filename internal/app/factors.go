package app

import (
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stepup-bridge/stepup-bridge/config"
	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/factors/backupcodes"
	"github.com/stepup-bridge/stepup-bridge/factors/hotp"
	"github.com/stepup-bridge/stepup-bridge/factors/pin"
	"github.com/stepup-bridge/stepup-bridge/factors/totp"
	"github.com/stepup-bridge/stepup-bridge/internal/keyring"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// buildFactors builds every factor named in factors.enabled and the
// Registry they are verified through.
func buildFactors(cfg config.Config, st store.Store, kr *keyring.Keyring, pepper *keyring.Pepper, reg prometheus.Registerer, log *slog.Logger) (*factors.Registry, error) {
	fc := cfg.Factors
	level := cfg.StepUp.Level
	builders := map[string]func() (factors.Factor, error){
		factors.BackupCode: func() (factors.Factor, error) {
			return backupcodes.New(backupcodes.Config{Count: fc.BackupCodes.Count, LowWatermark: fc.BackupCodes.LowWatermark, Level: level}, st, pepper)
		},
		factors.PIN: func() (factors.Factor, error) {
			return pin.New(pin.Config{
				Rules:       pin.Rules{MinLength: fc.PIN.MinLength, MaxLength: fc.PIN.MaxLength, DenyList: fc.PIN.DenyList},
				MaxFailures: fc.PIN.MaxFailures, LockoutBase: fc.PIN.LockoutBase, LockoutMax: fc.PIN.LockoutMax,
				Lifetime: fc.PIN.Lifetime, Level: level,
				Argon2: pin.Argon2{Time: fc.PIN.Argon2.Time, MemoryKiB: fc.PIN.Argon2.MemoryKiB, Threads: fc.PIN.Argon2.Threads},
			}, st)
		},
		factors.TOTP: func() (factors.Factor, error) {
			return totp.New(totp.Config{Issuer: fc.TOTP.Issuer, Digits: fc.TOTP.Digits, Period: fc.TOTP.Period,
				Algorithm: fc.TOTP.Algorithm, Skew: fc.TOTP.Skew, StrictTime: fc.TOTP.Skew == 0, Level: level}, st, kr)
		},
		factors.HOTP: func() (factors.Factor, error) {
			return hotp.New(hotp.Config{Issuer: fc.TOTP.Issuer, Digits: fc.HOTP.Digits, LookAhead: fc.HOTP.LookAhead, Level: level}, st, kr)
		},
	}
	var built []factors.Factor
	for _, name := range fc.Enabled {
		b, ok := builders[name]
		if !ok {
			return nil, fmt.Errorf("factors.enabled: %q is not available in this build", name)
		}
		f, err := b()
		if err != nil {
			return nil, fmt.Errorf("factors.%s: %w", name, err)
		}
		built = append(built, f)
	}
	return factors.NewRegistry(factors.RegistryConfig{
		Enabled:                  fc.Enabled,
		UserFailuresPerHour:      cfg.RateLimits.UserFailuresPerHour,
		ChallengesPerUserPerHour: cfg.RateLimits.ChallengesPerUserPerHour,
		Counters:                 st,
		Audit:                    st,
		Registerer:               reg,
		Logger:                   log,
	}, built...)
}
