package stepup

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/internal/devices"
	"github.com/stepup-bridge/stepup-bridge/internal/keyring"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
	"github.com/stepup-bridge/stepup-bridge/internal/token"
)

// Keycloak is what the flows need of the bridge.
type Keycloak interface {
	PasswordLogin(ctx context.Context, username, password string) (bridge.Tokens, error)
	Refresh(ctx context.Context, refreshToken string) (bridge.Tokens, error)
	Logout(ctx context.Context, refreshToken string) error
	WriteStepUp(ctx context.Context, userID string, e token.StepUpEntry) error
	UserGroups(ctx context.Context, userID string) ([]string, error)
}

// Verifier verifies Keycloak access tokens.
type Verifier interface {
	Verify(ctx context.Context, raw string) (*token.Claims, error)
}

// Factors is what the flows need of the factor registry.
type Factors interface {
	Names() []string
	Active(ctx context.Context, userID string) ([]string, error)
	Verify(ctx context.Context, name, userID, code string, meta factors.Meta) (factors.Result, error)
	Challenge(ctx context.Context, name, userID string, req factors.ChallengeRequest, meta factors.Meta) (factors.Delivery, error)
	Factor(name string) (factors.Factor, bool)
}

// Devices is what the flows need of trusted devices (internal/devices).
type Devices interface {
	Trust(ctx context.Context, userID, userAgent string, meta devices.Meta) (devices.Issued, error)
	Check(ctx context.Context, userID, token, userAgent string, meta devices.Meta) (devices.Device, error)
}

// SignIns is told of every login that released tokens without a trusted
// device, so the user hears of a sign-in from a new device
// (internal/notify). It must deduplicate itself.
type SignIns interface {
	NewSignIn(ctx context.Context, userID, label, ip string) error
}

// Store is the part of the store the flows use.
type Store interface {
	store.Challenges
	store.Audit
}

// LoginRequire says who must pass a second factor at login.
type LoginRequire struct {
	// Mode is "enrolled", "members" or "everyone" (config login.require.mode).
	Mode   string
	Roles  []string
	Groups []string
	// GraceUntil: before it, a required user without a factor still gets
	// tokens (and EnrolmentRequired); after it, login is refused.
	GraceUntil time.Time
}

// Config builds a Service. Keycloak, Verifier, Factors, Store and Keyring
// are required.
type Config struct {
	Keycloak Keycloak
	Verifier Verifier
	Factors  Factors
	Store    Store
	// Keyring encrypts the Keycloak tokens a pending login holds.
	Keyring *keyring.Keyring

	// Level is the acr a successful factor grants. Defaults to "2".
	Level string
	// ChallengeTTL defaults to 5 minutes; MaxAttempts to 5.
	ChallengeTTL time.Duration
	MaxAttempts  int
	// EntryTTL is the life of a step-up entry. Defaults to 1 hour.
	EntryTTL time.Duration

	// ChallengesPerHour caps the step-up challenges one user may open in an
	// hour (config rate_limits.challenges_per_user_per_hour); 0 means no
	// cap. Needs Counters.
	ChallengesPerHour int
	Counters          store.Counters

	// LoginTTL bounds a pending login (defaults to 5 minutes);
	// LoginAttempts its factor attempts (defaults to 5).
	LoginTTL      time.Duration
	LoginAttempts int
	Require       LoginRequire

	// Devices, if set, lets a login on a trusted device skip the second
	// factor and lets the client ask to trust its device after one. Nil
	// turns trusted devices off.
	Devices Devices
	// SignIns, if set, hears of sign-ins not made on a trusted device.
	SignIns SignIns

	// PersistTimeout bounds the retries of writes that record work already
	// done (a spent code, a granted step-up). Defaults to 10 seconds.
	PersistTimeout time.Duration

	Now    func() time.Time
	Rand   io.Reader
	Logger *slog.Logger
}

// Service runs the flows. It is safe for concurrent use; every piece of
// state lives in the store, so any replica can answer any request.
type Service struct {
	cfg Config
	log *slog.Logger
}

// New checks cfg and fills the defaults.
func New(cfg Config) (*Service, error) {
	if cfg.Keycloak == nil || cfg.Verifier == nil || cfg.Factors == nil || cfg.Store == nil || cfg.Keyring == nil {
		return nil, errors.New("stepup: Keycloak, Verifier, Factors, Store and Keyring are required")
	}
	if cfg.ChallengesPerHour > 0 && cfg.Counters == nil {
		return nil, errors.New("stepup: ChallengesPerHour needs Counters")
	}
	if cfg.Level == "" {
		cfg.Level = "2"
	}
	if cfg.ChallengeTTL <= 0 {
		cfg.ChallengeTTL = 5 * time.Minute
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.EntryTTL <= 0 {
		cfg.EntryTTL = time.Hour
	}
	if cfg.LoginTTL <= 0 {
		cfg.LoginTTL = 5 * time.Minute
	}
	if cfg.LoginAttempts <= 0 {
		cfg.LoginAttempts = 5
	}
	if cfg.PersistTimeout <= 0 {
		cfg.PersistTimeout = 10 * time.Second
	}
	if cfg.Require.Mode == "" {
		cfg.Require.Mode = "enrolled"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, log: log}, nil
}

// Errors callers branch on; the HTTP layer maps them.
var (
	// ErrNoSession: the token has no Keycloak session (client credentials,
	// service accounts): step-up and MFA login are for users only.
	ErrNoSession = errors.New("stepup: the token has no Keycloak session")
	// ErrFactorUnavailable: the factor is not enabled, or the user has no
	// active credential of it.
	ErrFactorUnavailable = errors.New("stepup: factor not available for this user")
	// ErrChallengeNotFound: no such challenge for this user and session
	// (also for someone else's challenge: nothing is revealed).
	ErrChallengeNotFound = errors.New("stepup: no such challenge")
	// ErrLevelUnsupported: the requested acr_values cannot be granted.
	ErrLevelUnsupported = errors.New("stepup: requested acr cannot be granted")
	// ErrEnrolmentRequired: policy requires a second factor the user has
	// not enrolled and the grace period is over.
	ErrEnrolmentRequired = errors.New("stepup: a second factor is required; enrol one first")
	// ErrLoginFailed: the pending login was ended (too many wrong codes);
	// its Keycloak session has been logged out.
	ErrLoginFailed = errors.New("stepup: too many failed attempts; log in again")
	// ErrDevicesDisabled: the client asked to trust its device but trusted
	// devices are off.
	ErrDevicesDisabled = errors.New("stepup: trusted devices are not enabled")
)

// InvalidCodeError is a wrong code; Remaining attempts are left on the
// challenge.
type InvalidCodeError struct {
	Remaining int
	Err       error
}

func (e *InvalidCodeError) Error() string {
	return fmt.Sprintf("stepup: invalid code (%d attempts left): %v", e.Remaining, e.Err)
}

func (e *InvalidCodeError) Unwrap() error { return e.Err }

// newID returns a random 128-bit id for the client and its SHA-256 for the
// store: a leaked store row does not give a usable id.
func (s *Service) newID() (raw, hashed string, err error) {
	var b [16]byte
	if _, err := io.ReadFull(s.cfg.Rand, b[:]); err != nil {
		return "", "", fmt.Errorf("stepup: random id: %w", err)
	}
	raw = base64.RawURLEncoding.EncodeToString(b[:])
	return raw, hashID(raw), nil
}

func hashID(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return hex.EncodeToString(sum[:])
}

// validRawID accepts only ids of the shape newID makes, so junk never
// reaches the store.
func validRawID(raw string) bool {
	if len(raw) != 22 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(raw)
	return err == nil
}

// offerOrder puts the restricted channels (PSTN: flash call, SMS) last, so
// they are never offered first.
func offerOrder(names []string) []string {
	restricted := func(n string) bool { return n == factors.FlashCall || n == factors.SMS }
	out := slices.Clone(names)
	slices.SortStableFunc(out, func(a, b string) int {
		switch {
		case restricted(a) == restricted(b):
			return 0
		case restricted(a):
			return 1
		default:
			return -1
		}
	})
	return out
}

func (s *Service) audit(ctx context.Context, e store.AuditEvent) {
	e.Time = s.cfg.Now()
	if _, err := s.cfg.Store.AppendAudit(ctx, e); err != nil {
		s.log.ErrorContext(ctx, "audit append failed", "type", e.Type, "err", err)
	}
}
