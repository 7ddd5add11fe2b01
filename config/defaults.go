package config

import "time"

// Default returns the configuration with every documented default filled in.
// It is safe: loopback listener, SQLite store, no factor secret invented.
func Default() Config {
	return Config{
		Listen: Listen{
			Addr:              "127.0.0.1:8080",
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       15 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       120 * time.Second,
			ShutdownTimeout:   20 * time.Second,
			MaxBodyBytes:      64 << 10,
		},
		Log: Log{Level: "info", Format: "json"},
		Keycloak: Keycloak{
			ClockSkew:        30 * time.Second,
			JWKSRefreshFloor: 10 * time.Second,
			Timeout:          5 * time.Second,
		},
		Claims: Claims{
			Attribute:   "stepup",
			ClientScope: "stepup",
			MaxEntries:  20,
			EntryTTL:    time.Hour,
			LockTTL:     10 * time.Second,
		},
		Store: Store{
			Type:     "sqlite",
			SQLite:   SQLite{Path: "stepup-bridge.db"},
			Postgres: Postgres{MaxConns: 10},
		},
		Factors: Factors{
			Enabled:     []string{"backup_code", "pin", "totp"},
			BackupCodes: BackupCodes{Count: 10, LowWatermark: 3},
			PIN: PIN{
				MinLength:   4,
				MaxLength:   8,
				MaxFailures: 5,
				LockoutBase: time.Minute,
				LockoutMax:  time.Hour,
				Argon2:      Argon2{Time: 2, MemoryKiB: 46 * 1024, Threads: 1},
			},
			TOTP: TOTP{Issuer: "stepup-bridge", Digits: 6, Period: 30, Algorithm: "SHA1", Skew: 1},
			HOTP: HOTP{Digits: 6, LookAhead: 10},
			FlashCall: FlashCall{
				Provider: "log", Digits: 4, TTL: 2 * time.Minute, MaxAttempts: 3,
				ResendCooldown: 30 * time.Second, SendsPerUserPerHour: 5, SendsPerDestinationPerHour: 5,
				Sinch: Sinch{BaseURL: "https://verification.api.sinch.com"},
			},
			SMS: OneTimeCode{
				Sender: "log", TTL: 5 * time.Minute, ResendCooldown: 30 * time.Second,
				SendsPerUserPerHour: 5, SendsPerDestinationPerHour: 5,
			},
			Email: OneTimeCode{
				Sender: "log", TTL: 5 * time.Minute, ResendCooldown: 30 * time.Second,
				SendsPerUserPerHour: 5, SendsPerDestinationPerHour: 5,
				Subject: "Your verification code", SMTP: SMTP{Port: 587, TLS: "starttls"},
			},
		},
		StepUp: StepUp{
			ChallengeTTL:     5 * time.Minute,
			MaxAttempts:      5,
			Level:            "2",
			ManagementMaxAge: 5 * time.Minute,
		},
		Login: Login{
			Enabled:     true,
			MFATokenTTL: 5 * time.Minute,
			MaxAttempts: 5,
			Require:     LoginRequire{Mode: "enrolled"},
		},
		RateLimits: RateLimits{
			UserFailuresPerHour:      100,
			IPRequestsPerMinute:      60,
			ChallengesPerUserPerHour: 30,
		},
		Policies: Policies{Watch: true},
		Admin:    Admin{Role: "stepup-admin"},
		Pages:    Pages{Enabled: true},
		Delivery: Delivery{Timeout: 5 * time.Second, Retries: 2, Backoff: 200 * time.Millisecond},
		Devices:  Devices{TTL: 30 * 24 * time.Hour, MaxPerUser: 10, CookieName: "stepup_device"},
		Notifications: Notifications{
			Events:      NotificationEvents(),
			Channel:     "email",
			Subject:     "Security alert: {{.Title}}",
			MaxAttempts: 5,
			Retention:   90 * 24 * time.Hour,
		},
	}
}
