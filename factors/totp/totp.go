// Package totp implements time-based one-time passwords (RFC 6238) as a
// factor, compatible with authenticator apps: SHA1, 6 digits, 30 seconds
// by default.
//
// Enrolment returns the otpauth:// URI, the base32 secret and the URI as a
// QR PNG; the 160-bit secret (crypto/rand) is stored encrypted with the
// keyring, bound to the user and the factor, and the credential stays
// pending until a first valid code confirms it.
//
// Replay: a code is accepted once. The time step of every accepted code is
// stored in Credential.Counter through UpdateCredential, whose updater
// re-checks it, so a code at or below the last accepted step is refused
// with factors.ErrReplay on every replica (ASVS 2.8.5), including when the
// same code arrives twice at once.
package totp

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	pqtotp "github.com/pquerna/otp/totp"

	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/factors/internal/otpcore"
	"github.com/stepup-bridge/stepup-bridge/internal/keyring"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// Capabilities.
var (
	_ factors.Factor   = (*Factor)(nil)
	_ factors.Enroller = (*Factor)(nil)
	_ factors.Resetter = (*Factor)(nil)
	_ factors.Reshower = (*Factor)(nil)
)

// Config tunes the factor. Zero values mean the documented defaults; the
// parameters apply to new enrolments, existing ones keep theirs.
type Config struct {
	// Issuer shown in authenticator apps. Defaults to "stepup-bridge".
	Issuer string
	// Digits: 6 or 8. Defaults to 6.
	Digits int
	// Period in seconds. Defaults to 30.
	Period uint
	// Algorithm: SHA1, SHA256 or SHA512. Defaults to SHA1, the only one
	// every app supports.
	Algorithm string
	// Skew is the number of steps accepted either side of now. Defaults to
	// 1 unless StrictTime is set.
	Skew uint
	// StrictTime accepts the current step only (Skew 0).
	StrictTime bool
	// Level is the acr value a success grants. Defaults to "2".
	Level string
	// Label of new credentials. Defaults to "Authenticator app".
	Label string
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Rand is the secret source. Defaults to crypto/rand.
	Rand io.Reader
}

// Factor is the TOTP factor. Safe for concurrent use.
type Factor struct {
	cfg   Config
	creds store.Credentials
	kr    *keyring.Keyring
}

// New returns the factor. creds and kr are required.
func New(cfg Config, creds store.Credentials, kr *keyring.Keyring) (*Factor, error) {
	if creds == nil || kr == nil {
		return nil, errors.New("totp: credentials store and keyring are required")
	}
	if cfg.Issuer == "" {
		cfg.Issuer = "stepup-bridge"
	}
	if cfg.Digits == 0 {
		cfg.Digits = 6
	}
	if cfg.Period == 0 {
		cfg.Period = 30
	}
	if cfg.Algorithm == "" {
		cfg.Algorithm = "SHA1"
	}
	if cfg.StrictTime {
		cfg.Skew = 0
	} else if cfg.Skew == 0 {
		cfg.Skew = 1
	}
	if cfg.Level == "" {
		cfg.Level = "2"
	}
	if cfg.Label == "" {
		cfg.Label = "Authenticator app"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if _, err := otpcore.ParseAlgorithm(cfg.Algorithm); err != nil {
		return nil, fmt.Errorf("totp: %w", err)
	}
	if _, err := otpcore.DigitsOf(cfg.Digits); err != nil {
		return nil, fmt.Errorf("totp: %w", err)
	}
	if cfg.Skew > 10 {
		return nil, fmt.Errorf("totp: skew %d is above 10 steps", cfg.Skew)
	}
	return &Factor{cfg: cfg, creds: creds, kr: kr}, nil
}

// Name is factors.TOTP.
func (f *Factor) Name() string { return factors.TOTP }

func id(userID string) string { return factors.CredentialID(factors.TOTP, userID) }

// BeginEnrolment generates a secret for userID and stores it pending. An
// earlier pending enrolment is replaced; an active one gives
// factors.ErrAlreadyEnrolled (reset it first). req.AccountName (default:
// the user id) and the Issuer name the entry in the app.
func (f *Factor) BeginEnrolment(ctx context.Context, userID string, req factors.EnrolRequest) (factors.Enrolment, error) {
	account := req.AccountName
	if account == "" {
		account = userID
	}
	raw, err := otpcore.NewKey(f.cfg.Rand)
	if err != nil {
		return factors.Enrolment{}, fmt.Errorf("totp: %w", err)
	}
	s := otpcore.Secret{
		Key: raw, Algorithm: f.cfg.Algorithm, Digits: f.cfg.Digits, Period: f.cfg.Period,
		Issuer: f.cfg.Issuer, Account: account,
	}
	enr, err := enrolment(userID, s)
	if err != nil {
		return factors.Enrolment{}, err
	}
	data, err := otpcore.Seal(f.kr, userID, factors.TOTP, s)
	if err != nil {
		return factors.Enrolment{}, err
	}
	label := req.Label
	if label == "" {
		label = f.cfg.Label
	}
	if err := otpcore.StorePending(ctx, f.creds, factors.TOTP, userID, label, data, f.cfg.Now()); err != nil {
		return factors.Enrolment{}, err
	}
	return enr, nil
}

// enrolment renders what the user sees for s: URI, secret and QR code.
func enrolment(userID string, s otpcore.Secret) (factors.Enrolment, error) {
	alg, err := otpcore.ParseAlgorithm(s.Algorithm)
	if err != nil {
		return factors.Enrolment{}, fmt.Errorf("totp: %w", err)
	}
	dig, err := otpcore.DigitsOf(s.Digits)
	if err != nil {
		return factors.Enrolment{}, fmt.Errorf("totp: %w", err)
	}
	key, err := pqtotp.Generate(pqtotp.GenerateOpts{
		Issuer: s.Issuer, AccountName: s.Account, Period: s.Period, Secret: s.Key, Digits: dig, Algorithm: alg,
	})
	if err != nil {
		return factors.Enrolment{}, fmt.Errorf("totp: building key URI: %w", err)
	}
	png, err := otpcore.QRPNG(key)
	if err != nil {
		return factors.Enrolment{}, fmt.Errorf("totp: %w", err)
	}
	return factors.Enrolment{
		Factor: factors.TOTP, CredentialID: id(userID), Pending: true,
		URI: key.URL(), Secret: key.Secret(), QRPNG: png,
	}, nil
}

// PendingEnrolment shows a pending enrolment again (URI, secret, QR code),
// for a QR image endpoint or a reloaded page. Once confirmed the secret is
// never shown again: factors.ErrAlreadyEnrolled.
func (f *Factor) PendingEnrolment(ctx context.Context, userID string) (factors.Enrolment, error) {
	c, s, err := f.load(ctx, userID)
	if err != nil {
		return factors.Enrolment{}, err
	}
	if c.Status != store.StatusPending {
		return factors.Enrolment{}, fmt.Errorf("totp: %s is confirmed already: %w", userID, factors.ErrAlreadyEnrolled)
	}
	return enrolment(userID, s)
}

// step is the RFC 6238 time step containing t.
func step(t time.Time, period uint) uint64 {
	return uint64(t.Unix()) / uint64(period)
}

// match finds the step code belongs to within the skew window of now.
// Among several matching steps it prefers the highest above last, so a
// collision with an already used step does not hide a fresh one.
func (f *Factor) match(s otpcore.Secret, code string, now time.Time, last int64) (uint64, error) {
	cur := step(now, s.Period)
	from := cur - min(cur, uint64(f.cfg.Skew))
	steps, err := otpcore.Match(s, code, from, cur+uint64(f.cfg.Skew))
	if err != nil {
		return 0, fmt.Errorf("totp: computing codes: %w", err)
	}
	if len(steps) == 0 {
		return 0, fmt.Errorf("totp: wrong code: %w", factors.ErrInvalidCode)
	}
	best := slices.Max(steps)
	if int64(best) <= last {
		return 0, fmt.Errorf("totp: code of step %d not after the last accepted %d: %w", best, last, factors.ErrReplay)
	}
	return best, nil
}

// load returns the credential and its opened secret.
func (f *Factor) load(ctx context.Context, userID string) (store.Credential, otpcore.Secret, error) {
	c, err := f.creds.GetCredential(ctx, id(userID))
	if errors.Is(err, store.ErrNotFound) {
		return store.Credential{}, otpcore.Secret{}, fmt.Errorf("totp: %s has no authenticator: %w", userID, factors.ErrNotEnrolled)
	}
	if err != nil {
		return store.Credential{}, otpcore.Secret{}, fmt.Errorf("totp: loading credential of %s: %w", userID, err)
	}
	s, err := otpcore.Open(f.kr, userID, factors.TOTP, c.Data)
	if err != nil {
		return store.Credential{}, otpcore.Secret{}, err
	}
	if s.Period == 0 {
		return store.Credential{}, otpcore.Secret{}, fmt.Errorf("totp: stored secret of %s has no period", userID)
	}
	return c, s, nil
}

// accept records step as used, in the transaction that re-checks it is
// still above the last accepted step and that the secret is the one the
// code was checked against. wantStatus is the status the credential must
// be in; the stored status becomes active.
func (f *Factor) accept(ctx context.Context, userID string, s otpcore.Secret, st uint64, wantStatus string, now time.Time) (store.Credential, error) {
	c, err := f.creds.UpdateCredential(ctx, id(userID), func(c store.Credential) (store.Credential, error) {
		cur, err := otpcore.Open(f.kr, userID, factors.TOTP, c.Data)
		if err != nil {
			return c, err
		}
		if !otpcore.SameKey(cur, s) {
			return c, fmt.Errorf("totp: authenticator replaced meanwhile: %w", factors.ErrInvalidCode)
		}
		if int64(st) <= c.Counter {
			return c, fmt.Errorf("totp: step %d already used: %w", st, factors.ErrReplay)
		}
		if c.Status != wantStatus {
			if wantStatus == store.StatusPending {
				return c, fmt.Errorf("totp: %s is confirmed already: %w", userID, factors.ErrAlreadyEnrolled)
			}
			return c, fmt.Errorf("totp: %s is not confirmed: %w", userID, factors.ErrNotEnrolled)
		}
		if f.kr.NeedsRotation(c.Data) {
			// Re-encrypt under the current key while we hold the row.
			if c.Data, err = otpcore.Seal(f.kr, userID, factors.TOTP, cur); err != nil {
				return c, err
			}
		}
		c.Status = store.StatusActive
		c.Counter = int64(st)
		c.LastUsedAt = now
		c.UpdatedAt = now
		return c, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return store.Credential{}, fmt.Errorf("totp: authenticator removed meanwhile: %w", factors.ErrNotEnrolled)
	}
	if err != nil {
		return store.Credential{}, err
	}
	return c, nil
}

func (f *Factor) verify(ctx context.Context, userID, code, wantStatus string) (factors.Result, error) {
	c, s, err := f.load(ctx, userID)
	if err != nil {
		return factors.Result{}, err
	}
	if c.Status != wantStatus {
		if wantStatus == store.StatusPending {
			return factors.Result{}, fmt.Errorf("totp: %s is confirmed already: %w", userID, factors.ErrAlreadyEnrolled)
		}
		return factors.Result{}, fmt.Errorf("totp: %s is not confirmed: %w", userID, factors.ErrNotEnrolled)
	}
	norm, ok := otpcore.ParseCode(code, s.Digits)
	if !ok {
		return factors.Result{}, fmt.Errorf("totp: malformed code: %w", factors.ErrInvalidCode)
	}
	now := f.cfg.Now()
	st, err := f.match(s, norm, now, c.Counter)
	if err != nil {
		return factors.Result{}, err
	}
	c, err = f.accept(ctx, userID, s, st, wantStatus, now)
	if err != nil {
		return factors.Result{}, err
	}
	return factors.Result{Method: factors.TOTP, Level: f.cfg.Level, At: now, CredentialID: c.ID}, nil
}

// Verify checks code against the user's active authenticator within the
// skew window and accepts its step once. A code of an already accepted
// step (or earlier) gives factors.ErrReplay; a pending enrolment
// factors.ErrNotEnrolled.
func (f *Factor) Verify(ctx context.Context, userID, code string) (factors.Result, error) {
	return f.verify(ctx, userID, code, store.StatusActive)
}

// ConfirmEnrolment activates a pending enrolment with a first valid code,
// whose step is then used: the same code cannot verify again.
func (f *Factor) ConfirmEnrolment(ctx context.Context, userID, code string) (factors.Result, error) {
	return f.verify(ctx, userID, code, store.StatusPending)
}

// Status reports whether an authenticator is pending or active.
func (f *Factor) Status(ctx context.Context, userID string) (factors.Status, error) {
	return otpcore.CredentialStatus(ctx, f.creds, factors.TOTP, userID)
}

// Reset removes the user's authenticator, pending or active. See
// factors.Resetter for who may call it.
func (f *Factor) Reset(ctx context.Context, userID string) error {
	err := f.creds.DeleteCredential(ctx, id(userID))
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("totp: %s has no authenticator: %w", userID, factors.ErrNotEnrolled)
	}
	if err != nil {
		return fmt.Errorf("totp: removing authenticator of %s: %w", userID, err)
	}
	return nil
}
