// Package factors defines what a second factor is to stepup-bridge and the
// one place every verification passes through.
//
// Every factor implements the small Factor interface (its name, Verify,
// Status). What a factor can do beyond that is told by capability
// interfaces it implements only where it can, as dex connectors do:
//
//	Enroller    has an enrolment step (TOTP/HOTP QR, backup codes shown once, PIN set)
//	Reshower    can show a pending enrolment again until it is confirmed (TOTP/HOTP)
//	Challenger  delivers something before Verify (flash call, SMS, e-mail)
//	Changer     the user replaces the secret by proving the old one (PIN)
//	Resetter    the credential can be removed (admin, or the user after a step-up)
//	Unlocker    a lockout can be lifted by an admin
//
// Each factor package states at compile time what it satisfies:
//
//	var _ factors.Enroller = (*pin.Factor)(nil)
//
// Callers never call a factor's Verify directly: the Registry's Verify is
// the single choke point that enforces the per-account failure budget across
// all factors (ASVS 2.2.1), writes the audit trail and counts metrics. A
// successful verification yields a Result naming the method and level;
// policies compare those and never import a factor package.
package factors

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Factor names, as config's factors.enabled spells them and as they appear
// in Result.Method (and so in the amr of step-up claims).
const (
	BackupCode = "backup_code"
	PIN        = "pin"
	TOTP       = "totp"
	HOTP       = "hotp"
	FlashCall  = "flash_call"
	SMS        = "sms"
	Email      = "email"
)

// Factor is what every second factor implements.
type Factor interface {
	// Name is the factor's name (one of the constants above); stable,
	// because it is stored in credentials, audit events and claims.
	Name() string
	// Verify checks code for userID and, on success, records whatever makes
	// the code single-use. It returns ErrInvalidCode, ErrNotEnrolled,
	// ErrReplay, ErrExpired or a *LockedError; other errors are failures
	// of the machinery (store down) and must be answered with 503, never
	// with success. Call it through Registry.Verify.
	Verify(ctx context.Context, userID, code string) (Result, error)
	// Status describes userID's credential of this factor without revealing
	// any secret. A user without one gets State StateNone and no error.
	Status(ctx context.Context, userID string) (Status, error)
}

// Enroller is a factor with an enrolment step.
//
// BeginEnrolment creates the credential and returns what must be shown to
// the user exactly once (a QR code, backup codes). If Enrolment.Pending is
// true the credential does nothing until ConfirmEnrolment succeeds with a
// first valid code (TOTP/HOTP: proves the app holds the secret); otherwise
// (PIN, backup codes) it is active at once and ConfirmEnrolment returns
// ErrAlreadyEnrolled.
//
// BeginEnrolment returns ErrAlreadyEnrolled when an active credential
// exists and the factor cannot replace it in place; a pending one is
// replaced. Backup codes are the exception: beginning again regenerates the
// whole set (Enrolment.Replaced tells). Whether the user may enrol at all
// (a recent step-up once any factor is active) is the caller's decision.
type Enroller interface {
	Factor
	BeginEnrolment(ctx context.Context, userID string, req EnrolRequest) (Enrolment, error)
	ConfirmEnrolment(ctx context.Context, userID, code string) (Result, error)
}

// Reshower is an Enroller whose pending enrolment can be shown again
// (TOTP/HOTP: the QR code for an image endpoint or a reloaded page) until
// it is confirmed; after that it answers ErrAlreadyEnrolled, so a secret
// in use is never shown twice.
type Reshower interface {
	Enroller
	PendingEnrolment(ctx context.Context, userID string) (Enrolment, error)
}

// Challenger is a factor that must deliver something before the user can
// answer: a flash call, an SMS or an e-mail. Challenge sends it and reports
// how, without the secret. The factor keeps what it sent (hashed) with the
// user's credential, so a later Verify(ctx, userID, code) needs nothing
// else; a new Challenge replaces the previous one. Challenge must refuse
// with ErrNotEnrolled when there is nowhere to deliver to, and may return a
// *RateLimitedError when deliveries come too fast.
type Challenger interface {
	Factor
	Challenge(ctx context.Context, userID string, req ChallengeRequest) (Delivery, error)
}

// Changer is a factor whose secret the user replaces by proving the current
// one (PIN). Change counts as a verification for lockouts and the failure
// budget: call it through Registry.Change.
type Changer interface {
	Factor
	Change(ctx context.Context, userID, current string, req EnrolRequest) (Result, error)
}

// Resetter is a factor whose credential can be removed. Reset removes
// userID's credential of this factor (pending or active) and returns
// ErrNotEnrolled when there is none. It does not check who asks: the
// caller allows it for an admin, or for the user after a recent step-up
// with another factor.
type Resetter interface {
	Factor
	Reset(ctx context.Context, userID string) error
}

// Unlocker is a factor that keeps its own lockout (PIN); Unlock clears it
// and the consecutive failure count. An admin action.
type Unlocker interface {
	Factor
	Unlock(ctx context.Context, userID string) error
}

// Result is what a successful verification proves, in the terms policies
// use. It names no secret.
type Result struct {
	// Method is the factor name; it goes into the amr of step-up claims.
	Method string `json:"method"`
	// Level is the acr value the factor grants.
	Level string `json:"level"`
	// At is when the proof happened (the injected clock's now).
	At time.Time `json:"at"`
	// CredentialID is the credential that was used.
	CredentialID string `json:"credential_id"`
}

// EnrolRequest carries what a user supplies to enrol. Factors ignore the
// fields they do not use.
type EnrolRequest struct {
	// Label is a user-visible name for the credential; optional.
	Label string
	// AccountName names the account inside authenticator apps (username or
	// e-mail). Defaults to the user id.
	AccountName string
	// Destination is where a delivering factor sends its codes: a phone
	// number (flash call, SMS; normalised to E.164) or an e-mail address.
	Destination string
	// Secret is a secret the user chooses (a PIN); Confirmation must repeat
	// it exactly, or the request fails with an ErrInvalidInput.
	Secret       string
	Confirmation string
}

// Enrolment is the answer to BeginEnrolment. It holds secrets to show the
// user once: the caller must not log or store it.
type Enrolment struct {
	// Factor and CredentialID name the new credential.
	Factor       string `json:"factor"`
	CredentialID string `json:"credential_id"`
	// Pending is true while a first code must confirm the credential.
	Pending bool `json:"pending"`
	// Replaced is true when an existing credential was replaced
	// (regenerated backup codes).
	Replaced bool `json:"replaced,omitempty"`
	// Codes are backup codes, formatted for display.
	Codes []string `json:"codes,omitempty"`
	// URI is the otpauth:// URI of a TOTP/HOTP secret.
	URI string `json:"uri,omitempty"`
	// Secret is the base32 TOTP/HOTP secret, for manual entry.
	Secret string `json:"secret,omitempty"`
	// QRPNG is the URI as a QR code, PNG-encoded (JSON carries it base64).
	QRPNG []byte `json:"qr_png,omitempty"`
}

// ChallengeRequest carries what a Challenger may need to deliver.
type ChallengeRequest struct {
	// SessionID is the Keycloak session the challenge belongs to.
	SessionID string
	// Locale for the message, BCP 47; empty means the default.
	Locale string
}

// Delivery tells the user how a challenge reached them, without the secret.
type Delivery struct {
	// Channel is "call", "sms" or "email".
	Channel string `json:"channel"`
	// Destination is masked ("+49 *** *** 12", "a***@example.com").
	Destination string `json:"destination"`
	// CodeLength is how many characters the user must enter.
	CodeLength int `json:"code_length"`
	// ExpiresAt is when the delivered code stops working.
	ExpiresAt time.Time `json:"expires_at"`
}

// Credential states reported by Status.
const (
	StateNone    = "none"
	StatePending = "pending"
	StateActive  = "active"
	// StateExhausted: the credential exists but can verify nothing more
	// (every backup code used); the user should regenerate.
	StateExhausted = "exhausted"
)

// Status describes one factor of one user. Factor-specific fields are zero
// (and omitted from JSON) for the other factors.
type Status struct {
	Factor string `json:"factor"`
	// State is StateNone, StatePending or StateActive.
	State        string    `json:"state"`
	CredentialID string    `json:"credential_id,omitempty"`
	Label        string    `json:"label,omitempty"`
	CreatedAt    time.Time `json:"created_at,omitzero"`
	LastUsedAt   time.Time `json:"last_used_at,omitzero"`
	// LockedUntil is set while the factor refuses verification.
	LockedUntil time.Time `json:"locked_until,omitzero"`
	// ExpiresAt is when the secret must be changed (PIN lifetime).
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// Remaining unused backup codes; nil for other factors.
	Remaining *int `json:"remaining,omitempty"`
	// Low is true when few backup codes remain (at or below the
	// configured watermark): the user should regenerate.
	Low bool `json:"low,omitempty"`
}

// CredentialID is the store id of userID's credential of factor. Each user
// has at most one credential per factor; a deterministic id lets the store's
// uniqueness of ids enforce that across replicas (two concurrent first
// enrolments: one gets store.ErrConflict).
func CredentialID(factor, userID string) string {
	sum := sha256.Sum256([]byte(userID))
	return factor + "-" + hex.EncodeToString(sum[:16])
}
