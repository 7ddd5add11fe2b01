// Package hotp implements counter-based one-time passwords (RFC 4226) as a
// factor: hardware tokens and apps in counter mode.
//
// Credential.Counter holds the next counter value expected. Verify tries
// that value and LookAhead more (the token may have been pressed without
// the code being used), and on a match moves the counter past the matched
// value (resynchronisation). A code below the counter is never tried, so a
// replay is impossible by construction; two concurrent uses of one code
// are told apart by the updater, which re-checks the counter in the same
// transaction: one wins, the other gets factors.ErrReplay.
//
// Enrolment is as for TOTP: a 160-bit secret, encrypted with the keyring,
// pending until a first valid code confirms it; the otpauth:// URI carries
// counter=0 as authenticator apps require.
package hotp

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pquerna/otp"
	pqhotp "github.com/pquerna/otp/hotp"

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

// Config tunes the factor. Zero values mean the documented defaults.
type Config struct {
	// Issuer shown in authenticator apps. Defaults to "stepup-bridge".
	Issuer string
	// Digits: 6 or 8. Defaults to 6. Existing enrolments keep theirs.
	Digits int
	// LookAhead is how many counter values past the expected one are
	// tried. Defaults to 10.
	LookAhead int
	// Level is the acr value a success grants. Defaults to "2".
	Level string
	// Label of new credentials. Defaults to "Hardware token".
	Label string
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Rand is the secret source. Defaults to crypto/rand.
	Rand io.Reader
}

// Factor is the HOTP factor. Safe for concurrent use.
type Factor struct {
	cfg   Config
	creds store.Credentials
	kr    *keyring.Keyring
}

// New returns the factor. creds and kr are required.
func New(cfg Config, creds store.Credentials, kr *keyring.Keyring) (*Factor, error) {
	if creds == nil || kr == nil {
		return nil, errors.New("hotp: credentials store and keyring are required")
	}
	if cfg.Issuer == "" {
		cfg.Issuer = "stepup-bridge"
	}
	if cfg.Digits == 0 {
		cfg.Digits = 6
	}
	if cfg.LookAhead == 0 {
		cfg.LookAhead = 10
	}
	if cfg.LookAhead < 0 || cfg.LookAhead > 1000 {
		return nil, fmt.Errorf("hotp: look-ahead %d outside 0..1000", cfg.LookAhead)
	}
	if cfg.Level == "" {
		cfg.Level = "2"
	}
	if cfg.Label == "" {
		cfg.Label = "Hardware token"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if _, err := otpcore.DigitsOf(cfg.Digits); err != nil {
		return nil, fmt.Errorf("hotp: %w", err)
	}
	return &Factor{cfg: cfg, creds: creds, kr: kr}, nil
}

// Name is factors.HOTP.
func (f *Factor) Name() string { return factors.HOTP }

func id(userID string) string { return factors.CredentialID(factors.HOTP, userID) }

// BeginEnrolment generates a secret for userID and stores it pending with
// counter 0. An earlier pending enrolment is replaced; an active one gives
// factors.ErrAlreadyEnrolled.
func (f *Factor) BeginEnrolment(ctx context.Context, userID string, req factors.EnrolRequest) (factors.Enrolment, error) {
	account := req.AccountName
	if account == "" {
		account = userID
	}
	raw, err := otpcore.NewKey(f.cfg.Rand)
	if err != nil {
		return factors.Enrolment{}, fmt.Errorf("hotp: %w", err)
	}
	s := otpcore.Secret{Key: raw, Algorithm: "SHA1", Digits: f.cfg.Digits, Issuer: f.cfg.Issuer, Account: account}
	enr, err := enrolment(userID, s)
	if err != nil {
		return factors.Enrolment{}, err
	}
	data, err := otpcore.Seal(f.kr, userID, factors.HOTP, s)
	if err != nil {
		return factors.Enrolment{}, err
	}
	label := req.Label
	if label == "" {
		label = f.cfg.Label
	}
	if err := otpcore.StorePending(ctx, f.creds, factors.HOTP, userID, label, data, f.cfg.Now()); err != nil {
		return factors.Enrolment{}, err
	}
	return enr, nil
}

// enrolment renders what the user sees for s: URI (with counter=0, which
// apps require for hotp), secret and QR code.
func enrolment(userID string, s otpcore.Secret) (factors.Enrolment, error) {
	dig, err := otpcore.DigitsOf(s.Digits)
	if err != nil {
		return factors.Enrolment{}, fmt.Errorf("hotp: %w", err)
	}
	key, err := pqhotp.Generate(pqhotp.GenerateOpts{
		Issuer: s.Issuer, AccountName: s.Account, Secret: s.Key, Digits: dig, Algorithm: otp.AlgorithmSHA1,
	})
	if err != nil {
		return factors.Enrolment{}, fmt.Errorf("hotp: building key URI: %w", err)
	}
	key, err = otp.NewKeyFromURL(key.URL() + "&counter=0")
	if err != nil {
		return factors.Enrolment{}, fmt.Errorf("hotp: adding counter to URI: %w", err)
	}
	png, err := otpcore.QRPNG(key)
	if err != nil {
		return factors.Enrolment{}, fmt.Errorf("hotp: %w", err)
	}
	return factors.Enrolment{
		Factor: factors.HOTP, CredentialID: id(userID), Pending: true,
		URI: key.URL(), Secret: key.Secret(), QRPNG: png,
	}, nil
}

// PendingEnrolment shows a pending enrolment again (URI, secret, QR code).
// Once confirmed the secret is never shown again:
// factors.ErrAlreadyEnrolled.
func (f *Factor) PendingEnrolment(ctx context.Context, userID string) (factors.Enrolment, error) {
	c, err := f.creds.GetCredential(ctx, id(userID))
	if errors.Is(err, store.ErrNotFound) {
		return factors.Enrolment{}, fmt.Errorf("hotp: %s has no token: %w", userID, factors.ErrNotEnrolled)
	}
	if err != nil {
		return factors.Enrolment{}, fmt.Errorf("hotp: loading credential of %s: %w", userID, err)
	}
	if c.Status != store.StatusPending {
		return factors.Enrolment{}, fmt.Errorf("hotp: %s is confirmed already: %w", userID, factors.ErrAlreadyEnrolled)
	}
	s, err := otpcore.Open(f.kr, userID, factors.HOTP, c.Data)
	if err != nil {
		return factors.Enrolment{}, err
	}
	return enrolment(userID, s)
}

func (f *Factor) verify(ctx context.Context, userID, code, wantStatus string) (factors.Result, error) {
	c, err := f.creds.GetCredential(ctx, id(userID))
	if errors.Is(err, store.ErrNotFound) {
		return factors.Result{}, fmt.Errorf("hotp: %s has no token: %w", userID, factors.ErrNotEnrolled)
	}
	if err != nil {
		return factors.Result{}, fmt.Errorf("hotp: loading credential of %s: %w", userID, err)
	}
	if c.Status != wantStatus {
		if wantStatus == store.StatusPending {
			return factors.Result{}, fmt.Errorf("hotp: %s is confirmed already: %w", userID, factors.ErrAlreadyEnrolled)
		}
		return factors.Result{}, fmt.Errorf("hotp: %s is not confirmed: %w", userID, factors.ErrNotEnrolled)
	}
	s, err := otpcore.Open(f.kr, userID, factors.HOTP, c.Data)
	if err != nil {
		return factors.Result{}, err
	}
	norm, ok := otpcore.ParseCode(code, s.Digits)
	if !ok {
		return factors.Result{}, fmt.Errorf("hotp: malformed code: %w", factors.ErrInvalidCode)
	}
	if c.Counter < 0 {
		return factors.Result{}, fmt.Errorf("hotp: stored counter of %s is negative", userID)
	}
	from := uint64(c.Counter)
	counters, err := otpcore.Match(s, norm, from, from+uint64(f.cfg.LookAhead))
	if err != nil {
		return factors.Result{}, fmt.Errorf("hotp: computing codes: %w", err)
	}
	if len(counters) == 0 {
		return factors.Result{}, fmt.Errorf("hotp: wrong code: %w", factors.ErrInvalidCode)
	}
	// The lowest match: the token moves forward one press at a time.
	matched := counters[0]
	now := f.cfg.Now()
	c, err = f.creds.UpdateCredential(ctx, c.ID, func(c store.Credential) (store.Credential, error) {
		cur, err := otpcore.Open(f.kr, userID, factors.HOTP, c.Data)
		if err != nil {
			return c, err
		}
		if !otpcore.SameKey(cur, s) {
			return c, fmt.Errorf("hotp: token replaced meanwhile: %w", factors.ErrInvalidCode)
		}
		if int64(matched) < c.Counter {
			return c, fmt.Errorf("hotp: counter %d used concurrently: %w", matched, factors.ErrReplay)
		}
		if c.Status != wantStatus {
			return c, fmt.Errorf("hotp: %s changed state meanwhile: %w", userID, factors.ErrNotEnrolled)
		}
		if f.kr.NeedsRotation(c.Data) {
			if c.Data, err = otpcore.Seal(f.kr, userID, factors.HOTP, cur); err != nil {
				return c, err
			}
		}
		c.Status = store.StatusActive
		c.Counter = int64(matched) + 1
		c.LastUsedAt = now
		c.UpdatedAt = now
		return c, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return factors.Result{}, fmt.Errorf("hotp: token removed meanwhile: %w", factors.ErrNotEnrolled)
	}
	if err != nil {
		return factors.Result{}, err
	}
	return factors.Result{Method: factors.HOTP, Level: f.cfg.Level, At: now, CredentialID: c.ID}, nil
}

// Verify checks code against the counter window of the user's active
// token and moves the counter past the matched value.
func (f *Factor) Verify(ctx context.Context, userID, code string) (factors.Result, error) {
	return f.verify(ctx, userID, code, store.StatusActive)
}

// ConfirmEnrolment activates a pending token with a first valid code.
func (f *Factor) ConfirmEnrolment(ctx context.Context, userID, code string) (factors.Result, error) {
	return f.verify(ctx, userID, code, store.StatusPending)
}

// Status reports whether a token is pending or active.
func (f *Factor) Status(ctx context.Context, userID string) (factors.Status, error) {
	return otpcore.CredentialStatus(ctx, f.creds, factors.HOTP, userID)
}

// Reset removes the user's token. See factors.Resetter for who may call it.
func (f *Factor) Reset(ctx context.Context, userID string) error {
	err := f.creds.DeleteCredential(ctx, id(userID))
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("hotp: %s has no token: %w", userID, factors.ErrNotEnrolled)
	}
	if err != nil {
		return fmt.Errorf("hotp: removing token of %s: %w", userID, err)
	}
	return nil
}
