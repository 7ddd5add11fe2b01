// Package pin implements the PIN factor: a short secret of digits, kept as
// an argon2id hash with a per-user random salt and protected against
// guessing by a lockout with a growing wait.
//
// Lifecycle. BeginEnrolment sets the PIN (Secret plus Confirmation, which
// must match); it is active at once. Change replaces it after checking the
// current PIN. Reset removes it without any check: only an admin, or the
// user right after a step-up with ANOTHER factor, may be allowed to call
// it (the caller decides; see factors.Resetter). Unlock lifts a lockout
// (admin).
//
// Guessing. Each check first records a failure and, from the MaxFailures-th
// consecutive one on, a lockout (LockoutBase, doubling with every further
// failure up to LockoutMax) in the credential row through
// UpdateCredential, and only then computes the hash; a success clears
// both. So the count holds across replicas, and parallel guesses cannot
// run more than MaxFailures checks before the lockout: while locked, Verify
// answers *factors.LockedError without looking at the PIN.
//
// Hashes are PHC strings ($argon2id$v=19$m=...,t=...,p=...$salt$key) that
// carry their parameters, so raising the configured cost takes effect for
// each user at their next successful verification (rehash).
package pin

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// Capabilities.
var (
	_ factors.Factor   = (*Factor)(nil)
	_ factors.Enroller = (*Factor)(nil)
	_ factors.Changer  = (*Factor)(nil)
	_ factors.Resetter = (*Factor)(nil)
	_ factors.Unlocker = (*Factor)(nil)
)

// Config tunes the factor. Zero values mean the documented defaults.
type Config struct {
	// Rules say which PINs may be set.
	Rules Rules
	// MaxFailures consecutive failures start a lockout. Defaults to 5.
	MaxFailures int
	// LockoutBase is the first lockout's wait; every further consecutive
	// failure doubles it, up to LockoutMax. Default to 1m and 1h.
	LockoutBase, LockoutMax time.Duration
	// Lifetime after which a PIN must be changed; 0 means never.
	Lifetime time.Duration
	// Argon2 is the cost of new hashes. Zero fields take DefaultArgon2.
	Argon2 Argon2
	// Level is the acr value a success grants. Defaults to "2".
	Level string
	// Label of new credentials. Defaults to "PIN".
	Label string
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Rand is the salt source. Defaults to crypto/rand.
	Rand io.Reader
}

// Factor is the PIN factor. Safe for concurrent use.
type Factor struct {
	cfg   Config
	creds store.Credentials
}

// New returns the factor. creds is required.
func New(cfg Config, creds store.Credentials) (*Factor, error) {
	if creds == nil {
		return nil, errors.New("pin: credentials store is required")
	}
	lo, hi := cfg.Rules.lengths()
	if lo < 4 || hi < lo || hi > maxInput {
		return nil, fmt.Errorf("pin: lengths %d..%d invalid (at least 4 digits)", lo, hi)
	}
	if cfg.MaxFailures == 0 {
		cfg.MaxFailures = 5
	}
	if cfg.LockoutBase == 0 {
		cfg.LockoutBase = time.Minute
	}
	if cfg.LockoutMax == 0 {
		cfg.LockoutMax = time.Hour
	}
	if cfg.MaxFailures < 1 || cfg.LockoutBase < 0 || cfg.LockoutMax < cfg.LockoutBase || cfg.Lifetime < 0 {
		return nil, errors.New("pin: max failures must be positive and lockout_base <= lockout_max")
	}
	cfg.Argon2 = cfg.Argon2.withDefaults()
	if cfg.Argon2.MemoryKiB < 8*1024 || cfg.Argon2.MemoryKiB > maxMemoryKiB || cfg.Argon2.Time > maxTime {
		return nil, fmt.Errorf("pin: argon2 memory %d KiB outside 8192..%d or time above %d", cfg.Argon2.MemoryKiB, maxMemoryKiB, maxTime)
	}
	if cfg.Level == "" {
		cfg.Level = "2"
	}
	if cfg.Label == "" {
		cfg.Label = "PIN"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	return &Factor{cfg: cfg, creds: creds}, nil
}

// Name is factors.PIN.
func (f *Factor) Name() string { return factors.PIN }

// stored is the credential's Data.
type stored struct {
	Hash  string    `json:"hash"`
	SetAt time.Time `json:"set_at"`
}

func decode(data []byte) (stored, phc, error) {
	var s stored
	if err := json.Unmarshal(data, &s); err != nil {
		return stored{}, phc{}, fmt.Errorf("pin: decoding credential: %w", err)
	}
	h, err := parsePHC(s.Hash)
	if err != nil {
		return stored{}, phc{}, err
	}
	return s, h, nil
}

func (f *Factor) encode(h phc, setAt time.Time) ([]byte, error) {
	b, err := json.Marshal(stored{Hash: h.String(), SetAt: setAt})
	if err != nil {
		return nil, fmt.Errorf("pin: encoding credential: %w", err)
	}
	return b, nil
}

// lockoutWait is the wait after the given number of consecutive failures
// (at least MaxFailures): LockoutBase doubled once per failure beyond
// MaxFailures, capped at LockoutMax.
func (f *Factor) lockoutWait(failures int) time.Duration {
	d := f.cfg.LockoutBase
	for i := f.cfg.MaxFailures; i < failures && d < f.cfg.LockoutMax; i++ {
		d *= 2
	}
	return min(d, f.cfg.LockoutMax)
}

func id(userID string) string { return factors.CredentialID(factors.PIN, userID) }

// checkNew validates a PIN to set and its confirmation.
func (f *Factor) checkNew(req factors.EnrolRequest) error {
	if subtle.ConstantTimeCompare([]byte(req.Secret), []byte(req.Confirmation)) != 1 {
		return factors.InvalidInput("PIN and confirmation do not match")
	}
	return f.cfg.Rules.Check(req.Secret)
}

// BeginEnrolment sets the user's first PIN from req.Secret, which must
// equal req.Confirmation and pass the Rules (else *factors.InputError).
// The PIN is active at once. An existing PIN gives
// factors.ErrAlreadyEnrolled: use Change or Reset.
func (f *Factor) BeginEnrolment(ctx context.Context, userID string, req factors.EnrolRequest) (factors.Enrolment, error) {
	if err := f.checkNew(req); err != nil {
		return factors.Enrolment{}, err
	}
	h, err := hashPIN(req.Secret, f.cfg.Argon2, f.cfg.Rand)
	if err != nil {
		return factors.Enrolment{}, err
	}
	now := f.cfg.Now()
	data, err := f.encode(h, now)
	if err != nil {
		return factors.Enrolment{}, err
	}
	label := req.Label
	if label == "" {
		label = f.cfg.Label
	}
	err = f.creds.CreateCredential(ctx, store.Credential{
		ID: id(userID), UserID: userID, Factor: factors.PIN, Status: store.StatusActive,
		Label: label, Data: data, CreatedAt: now, UpdatedAt: now,
	})
	if errors.Is(err, store.ErrConflict) {
		return factors.Enrolment{}, fmt.Errorf("pin: %s has a PIN: %w", userID, factors.ErrAlreadyEnrolled)
	}
	if err != nil {
		return factors.Enrolment{}, fmt.Errorf("pin: storing PIN of %s: %w", userID, err)
	}
	return factors.Enrolment{Factor: factors.PIN, CredentialID: id(userID)}, nil
}

// ConfirmEnrolment has nothing to confirm: a PIN is active when set. It
// returns factors.ErrAlreadyEnrolled, or factors.ErrNotEnrolled without a
// PIN.
func (f *Factor) ConfirmEnrolment(ctx context.Context, userID, _ string) (factors.Result, error) {
	_, err := f.creds.GetCredential(ctx, id(userID))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return factors.Result{}, fmt.Errorf("pin: %s has no PIN: %w", userID, factors.ErrNotEnrolled)
	case err != nil:
		return factors.Result{}, fmt.Errorf("pin: loading PIN of %s: %w", userID, err)
	}
	return factors.Result{}, fmt.Errorf("pin: a PIN is active when set: %w", factors.ErrAlreadyEnrolled)
}

// Verify checks pin. It returns *factors.LockedError while locked (without
// checking), factors.ErrInvalidCode for a wrong or malformed PIN (a
// *factors.LockedError wrapping it when this failure starts a lockout),
// and factors.ErrExpired for a right PIN past its Lifetime: the user must
// Change it.
func (f *Factor) Verify(ctx context.Context, userID, pin string) (factors.Result, error) {
	c, expired, err := f.check(ctx, userID, pin)
	if err != nil {
		return factors.Result{}, err
	}
	if expired {
		return factors.Result{}, fmt.Errorf("pin: PIN of %s is older than %s: %w", userID, f.cfg.Lifetime, factors.ErrExpired)
	}
	return factors.Result{Method: factors.PIN, Level: f.cfg.Level, At: f.cfg.Now(), CredentialID: c.ID}, nil
}

// check runs one guarded check of pin and, on success, clears the failure
// count (and rehashes with raised parameters). It reports whether the PIN
// is past its lifetime; expired PINs are still checked, so Change works.
func (f *Factor) check(ctx context.Context, userID, pin string) (store.Credential, bool, error) {
	digits, ok := parseDigits(pin)
	if !ok {
		return store.Credential{}, false, fmt.Errorf("pin: malformed PIN: %w", factors.ErrInvalidCode)
	}
	now := f.cfg.Now()
	// Count the failure before checking: see the package doc.
	c, err := f.creds.UpdateCredential(ctx, id(userID), func(c store.Credential) (store.Credential, error) {
		if c.Status != store.StatusActive {
			return c, factors.ErrNotEnrolled
		}
		if now.Before(c.LockedUntil) {
			return c, &factors.LockedError{Until: c.LockedUntil}
		}
		c.Failures++
		if c.Failures >= f.cfg.MaxFailures {
			c.LockedUntil = now.Add(f.lockoutWait(c.Failures))
		}
		c.UpdatedAt = now
		return c, nil
	})
	var le *factors.LockedError
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, factors.ErrNotEnrolled):
		return store.Credential{}, false, fmt.Errorf("pin: %s has no PIN: %w", userID, factors.ErrNotEnrolled)
	case errors.As(err, &le):
		return store.Credential{}, false, err
	case err != nil:
		return store.Credential{}, false, fmt.Errorf("pin: counting attempt of %s: %w", userID, err)
	}
	s, h, err := decode(c.Data)
	if err != nil {
		return store.Credential{}, false, err
	}
	if !h.matches(digits) {
		if c.Failures >= f.cfg.MaxFailures {
			return store.Credential{}, false, &factors.LockedError{Until: c.LockedUntil, Err: factors.ErrInvalidCode}
		}
		return store.Credential{}, false, fmt.Errorf("pin: wrong PIN: %w", factors.ErrInvalidCode)
	}
	expired := f.cfg.Lifetime > 0 && !now.Before(s.SetAt.Add(f.cfg.Lifetime))
	var newData []byte
	if h.params.weakerThan(f.cfg.Argon2) {
		nh, err := hashPIN(digits, f.cfg.Argon2, f.cfg.Rand)
		if err != nil {
			return store.Credential{}, false, err
		}
		if newData, err = f.encode(nh, s.SetAt); err != nil {
			return store.Credential{}, false, err
		}
	}
	c, err = f.creds.UpdateCredential(ctx, c.ID, func(cur store.Credential) (store.Credential, error) {
		cs, _, err := decode(cur.Data)
		if err != nil {
			return cur, err
		}
		if cs.Hash != s.Hash {
			// Changed or reset and set again meanwhile: the PIN we
			// checked is no longer the PIN.
			return cur, fmt.Errorf("pin: PIN changed meanwhile: %w", factors.ErrInvalidCode)
		}
		cur.Failures = 0
		cur.LockedUntil = time.Time{}
		cur.UpdatedAt = now
		if !expired {
			cur.LastUsedAt = now
		}
		if newData != nil {
			cur.Data = newData
		}
		return cur, nil
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Credential{}, false, fmt.Errorf("pin: PIN removed meanwhile: %w", factors.ErrNotEnrolled)
	case errors.Is(err, factors.ErrInvalidCode):
		return store.Credential{}, false, err
	case err != nil:
		return store.Credential{}, false, fmt.Errorf("pin: recording success of %s: %w", userID, err)
	}
	return c, expired, nil
}

// Change replaces the PIN after checking current (which counts towards the
// lockout like Verify, and may be expired). req.Secret is the new PIN and
// must equal req.Confirmation, pass the Rules and differ from current
// (*factors.InputError otherwise, before current is checked).
func (f *Factor) Change(ctx context.Context, userID, current string, req factors.EnrolRequest) (factors.Result, error) {
	if err := f.checkNew(req); err != nil {
		return factors.Result{}, err
	}
	if cur, ok := parseDigits(current); ok && subtle.ConstantTimeCompare([]byte(cur), []byte(req.Secret)) == 1 {
		return factors.Result{}, factors.InvalidInput("the new PIN must differ from the current one")
	}
	c, _, err := f.check(ctx, userID, current)
	if err != nil {
		return factors.Result{}, err
	}
	oldHash := c.Data
	h, err := hashPIN(req.Secret, f.cfg.Argon2, f.cfg.Rand)
	if err != nil {
		return factors.Result{}, err
	}
	now := f.cfg.Now()
	data, err := f.encode(h, now)
	if err != nil {
		return factors.Result{}, err
	}
	_, err = f.creds.UpdateCredential(ctx, c.ID, func(cur store.Credential) (store.Credential, error) {
		if subtle.ConstantTimeCompare(cur.Data, oldHash) != 1 {
			return cur, fmt.Errorf("pin: PIN changed meanwhile: %w", factors.ErrInvalidCode)
		}
		cur.Data = data
		cur.Failures = 0
		cur.LockedUntil = time.Time{}
		cur.UpdatedAt = now
		cur.LastUsedAt = now
		return cur, nil
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return factors.Result{}, fmt.Errorf("pin: PIN removed meanwhile: %w", factors.ErrNotEnrolled)
	case errors.Is(err, factors.ErrInvalidCode):
		return factors.Result{}, err
	case err != nil:
		return factors.Result{}, fmt.Errorf("pin: storing new PIN of %s: %w", userID, err)
	}
	return factors.Result{Method: factors.PIN, Level: f.cfg.Level, At: now, CredentialID: c.ID}, nil
}

// Reset removes the PIN without checking anything: allow it only for an
// admin, or for the user right after a step-up with another factor.
func (f *Factor) Reset(ctx context.Context, userID string) error {
	err := f.creds.DeleteCredential(ctx, id(userID))
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("pin: %s has no PIN: %w", userID, factors.ErrNotEnrolled)
	}
	if err != nil {
		return fmt.Errorf("pin: removing PIN of %s: %w", userID, err)
	}
	return nil
}

// Unlock clears the lockout and the failure count (admin).
func (f *Factor) Unlock(ctx context.Context, userID string) error {
	_, err := f.creds.UpdateCredential(ctx, id(userID), func(c store.Credential) (store.Credential, error) {
		c.Failures = 0
		c.LockedUntil = time.Time{}
		c.UpdatedAt = f.cfg.Now()
		return c, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("pin: %s has no PIN: %w", userID, factors.ErrNotEnrolled)
	}
	if err != nil {
		return fmt.Errorf("pin: unlocking %s: %w", userID, err)
	}
	return nil
}

// Status reports the PIN: whether set, the lockout if one is running, and
// when it expires if a Lifetime is configured.
func (f *Factor) Status(ctx context.Context, userID string) (factors.Status, error) {
	st := factors.Status{Factor: factors.PIN, State: factors.StateNone}
	c, err := f.creds.GetCredential(ctx, id(userID))
	if errors.Is(err, store.ErrNotFound) {
		return st, nil
	}
	if err != nil {
		return factors.Status{}, fmt.Errorf("pin: loading PIN of %s: %w", userID, err)
	}
	s, _, err := decode(c.Data)
	if err != nil {
		return factors.Status{}, err
	}
	st.State = factors.StateActive
	st.CredentialID, st.Label, st.CreatedAt, st.LastUsedAt = c.ID, c.Label, c.CreatedAt, c.LastUsedAt
	if f.cfg.Now().Before(c.LockedUntil) {
		st.LockedUntil = c.LockedUntil
	}
	if f.cfg.Lifetime > 0 {
		st.ExpiresAt = s.SetAt.Add(f.cfg.Lifetime)
	}
	return st, nil
}
