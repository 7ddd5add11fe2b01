// Package store defines what stepup-bridge persists and the contract every
// backend keeps. Backends live in subpackages (sqlite, postgres); one
// conformance suite (storetest) runs against each.
//
// The store never reads a clock: callers pass "now", so TTL, lockout and
// rate-limit behaviour is testable without sleeping and every replica
// decides by the same rules. Secrets reach the store already hashed or
// encrypted by the factor that owns them; the store treats Data as opaque.
//
// Anything that must happen once (consuming a backup code, accepting a
// TOTP step, consuming a challenge) goes through an Update* call, whose
// updater runs inside one transaction holding the row: of concurrent
// updaters of one row, each sees the result of the one before, so a check
// in the updater ("not used yet") has exactly one winner, across replicas.
package store

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Errors callers branch on. Backends wrap them with context; test with errors.Is.
var (
	// ErrNotFound: no such record.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a record with that key already exists.
	ErrConflict = errors.New("store: already exists")
	// ErrExpired: the challenge is past its ExpiresAt.
	ErrExpired = errors.New("store: expired")
	// ErrConsumed: the challenge was already used.
	ErrConsumed = errors.New("store: already consumed")
	// ErrTooManyAttempts: the challenge has used up its attempts.
	ErrTooManyAttempts = errors.New("store: too many attempts")
	// ErrLockHeld: the lease is held by another holder.
	ErrLockHeld = errors.New("store: lock held by another holder")
)

// Credential statuses.
const (
	StatusPending = "pending" // enrolled, waiting for the first valid code
	StatusActive  = "active"
)

// Credential is one factor record of one user: a TOTP secret, a PIN hash,
// a set of backup codes, a phone number.
type Credential struct {
	// ID is a random identifier chosen by the caller.
	ID string
	// UserID is the Keycloak user id (sub).
	UserID string
	// Factor is the factor name (totp, pin, backup_code, ...).
	Factor string
	// Status is StatusPending or StatusActive.
	Status string
	// Label is a user-visible name ("Phone", "Authenticator").
	Label string
	// Data is the factor's own encoding, already hashed or encrypted.
	Data []byte
	// Counter is a monotonic number the factor owns: the HOTP counter or
	// the last accepted TOTP step (replay protection).
	Counter int64
	// Failures counts consecutive failed verifications (lockouts).
	Failures int
	// LockedUntil, if after now, refuses verification.
	LockedUntil time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
	// LastUsedAt is the time of the last successful verification.
	LastUsedAt time.Time
}

// Credentials stores factor records.
type Credentials interface {
	// CreateCredential inserts c; ErrConflict if c.ID exists.
	CreateCredential(ctx context.Context, c Credential) error
	// GetCredential returns the record or ErrNotFound.
	GetCredential(ctx context.Context, id string) (Credential, error)
	// ListCredentials returns a user's records, oldest first; none is not an error.
	ListCredentials(ctx context.Context, userID string) ([]Credential, error)
	// UpdateCredential runs fn on the current record inside one transaction
	// holding the row and stores what fn returns (ID, UserID and CreatedAt
	// are kept). If fn returns an error nothing is written and that error is
	// returned. ErrNotFound if there is no such record.
	UpdateCredential(ctx context.Context, id string, fn func(Credential) (Credential, error)) (Credential, error)
	// DeleteCredential removes one record; ErrNotFound if absent.
	DeleteCredential(ctx context.Context, id string) error
}

// Challenge is one pending proof: a step-up challenge, a pending login, an
// enrolment confirmation, a delivered one-time code.
type Challenge struct {
	// ID is the SHA-256 of the random id given to the client, hex: the raw
	// id never reaches the store.
	ID string
	// Kind is what the challenge is for ("stepup", "login", ...).
	Kind string
	// UserID, SessionID and Factor bind the challenge.
	UserID    string
	SessionID string
	Factor    string
	// CredentialID is the credential the challenge is for, if any.
	CredentialID string
	// Data is the owner's own encoding (code hash, encrypted tokens, ...).
	Data []byte
	// Attempts used and allowed.
	Attempts    int
	MaxAttempts int
	CreatedAt   time.Time
	ExpiresAt   time.Time
	// ConsumedAt is set once the challenge succeeded; zero while open.
	ConsumedAt time.Time
}

// Challenges stores challenges.
type Challenges interface {
	// CreateChallenge inserts c; ErrConflict if c.ID exists.
	CreateChallenge(ctx context.Context, c Challenge) error
	// GetChallenge returns the record or ErrNotFound, whatever its state.
	GetChallenge(ctx context.Context, id string) (Challenge, error)
	// UpdateChallenge is UpdateCredential for challenges.
	UpdateChallenge(ctx context.Context, id string, fn func(Challenge) (Challenge, error)) (Challenge, error)
	// DeleteChallenge removes one; ErrNotFound if absent.
	DeleteChallenge(ctx context.Context, id string) error
	// DeleteExpiredChallenges removes challenges that expired before t and
	// returns them, so their owners can clean up (a pending login's
	// Keycloak session is logged out).
	DeleteExpiredChallenges(ctx context.Context, before time.Time) ([]Challenge, error)
}

// Counters are fixed-window counters for rate limits and failure budgets,
// shared by every replica.
type Counters interface {
	// IncrementCounter adds n to key's counter in the window of length
	// window containing now, and returns the new count and when the window
	// ends. Windows are aligned to the Unix epoch.
	IncrementCounter(ctx context.Context, key string, n int64, window time.Duration, now time.Time) (count int64, resetAt time.Time, err error)
	// GetCounter returns key's count in the window containing now (0 if none).
	GetCounter(ctx context.Context, key string, window time.Duration, now time.Time) (count int64, resetAt time.Time, err error)
	// ResetCounter removes every window of key.
	ResetCounter(ctx context.Context, key string) error
}

// Leases are named, expiring locks. They serialise the read-modify-write of
// one Keycloak user across replicas; the TTL frees a lease whose holder died.
type Leases interface {
	// AcquireLease takes name for holder until now+ttl. It succeeds if the
	// lease is free, expired, or already held by holder (renewal), and
	// returns ErrLockHeld otherwise. It never blocks.
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration, now time.Time) error
	// ReleaseLease frees name if holder holds it; releasing a lease one
	// does not hold is not an error and changes nothing.
	ReleaseLease(ctx context.Context, name, holder string) error
}

// AuditEvent is one line of the append-only audit trail.
type AuditEvent struct {
	// Seq is assigned by the store, strictly increasing in append order.
	Seq  int64
	Time time.Time
	// Type: "stepup.success", "stepup.failure", "factor.enrol", "lockout",
	// "admin.reset", ...
	Type string
	// Actor is who acted (the user, or the admin for admin actions).
	Actor string
	// UserID is whose account it concerns.
	UserID    string
	Factor    string
	SessionID string
	IP        string
	// Outcome: "success", "failure", "denied", ...
	Outcome string
	// Details are extra facts (level granted, the request the client said it
	// wanted to make, the reason of a failure). Never secrets.
	Details map[string]string
}

// AuditQuery selects events; zero fields do not filter.
type AuditQuery struct {
	UserID string
	Types  []string
	From   time.Time // inclusive
	To     time.Time // exclusive
	// AfterSeq pages: only events with Seq > AfterSeq.
	AfterSeq int64
	// Limit caps the result; 0 means 100, at most 1000.
	Limit int
}

// Audit is the append-only trail: there is no update and no single delete.
type Audit interface {
	// AppendAudit stores e and returns it with Seq set.
	AppendAudit(ctx context.Context, e AuditEvent) (AuditEvent, error)
	// ListAudit returns matching events in Seq order.
	ListAudit(ctx context.Context, q AuditQuery) ([]AuditEvent, error)
	// PruneAudit deletes events older than before (retention) and returns
	// how many.
	PruneAudit(ctx context.Context, before time.Time) (int64, error)
}

// Device is one trusted-device credential: a browser or app that passed a
// second factor and asked to be trusted for a while. The bearer token the
// client holds never reaches the store: Hash is a keyed hash of it.
type Device struct {
	// ID is a random public identifier (listing, revoking); it is not
	// secret and grants nothing on its own.
	ID string
	// UserID is the Keycloak user id the device is bound to.
	UserID string
	// Label is the device's name derived from its User-Agent ("Firefox on
	// Linux"); a token presented by another kind of device does not count.
	Label string
	// Hash is the keyed hash of the token's secret part.
	Hash []byte
	// IP is the client address the device was trusted from.
	IP        string
	CreatedAt time.Time
	// ExpiresAt bounds the trust; never trusted at or after it.
	ExpiresAt time.Time
	// LastUsedAt is the last login that skipped the factor with it.
	LastUsedAt time.Time
	// RevokedAt is set once revoked; a revoked device is never trusted
	// again.
	RevokedAt time.Time
	// RevokedBy says who or what revoked it ("user", "admin", "factor_change").
	RevokedBy string
}

// Devices stores trusted-device credentials.
type Devices interface {
	// CreateDevice inserts d; ErrConflict if d.ID exists.
	CreateDevice(ctx context.Context, d Device) error
	// GetDevice returns the record or ErrNotFound, whatever its state.
	GetDevice(ctx context.Context, id string) (Device, error)
	// ListDevices returns a user's records (revoked and expired included),
	// oldest first; none is not an error.
	ListDevices(ctx context.Context, userID string) ([]Device, error)
	// UpdateDevice is UpdateCredential for devices (ID, UserID, Hash and
	// CreatedAt are kept).
	UpdateDevice(ctx context.Context, id string, fn func(Device) (Device, error)) (Device, error)
	// RevokeDevices marks every unrevoked device of userID revoked at now
	// by by, in one statement, and returns the ids it revoked.
	RevokeDevices(ctx context.Context, userID, by string, now time.Time) ([]string, error)
	// DeleteExpiredDevices removes devices that expired, or were revoked,
	// before before and returns how many.
	DeleteExpiredDevices(ctx context.Context, before time.Time) (int64, error)
}

// Notification statuses.
const (
	NotificationPending = "pending" // waiting for (another) delivery attempt
	NotificationSending = "sending" // claimed by a replica until NextAttemptAt
	NotificationSent    = "sent"
	NotificationFailed  = "failed"  // gave up after the last attempt
	NotificationSkipped = "skipped" // nothing to send (event or channel off, no address): listed only
)

// Notification is one security event told to a user (a sign-in from a new
// device, a factor added, a lockout), and the state of its delivery. The
// same rows are the user's "recent security activity" list.
type Notification struct {
	// ID is the event's deduplication key chosen by the caller ("audit:42",
	// "device.new:<hash>"): CreateNotification refuses a second row with
	// the same ID, so one event is told once, across replicas.
	ID     string
	UserID string
	// Event names the kind ("device.new", "factor.added", "lockout", ...).
	Event string
	// Details are the facts shown to the user (factor, device, IP). Never
	// secrets.
	Details   map[string]string
	CreatedAt time.Time
	// Status is one of the Notification* constants.
	Status   string
	Attempts int
	// NextAttemptAt is when a pending notification is due, or when the
	// claim of a sending one lapses.
	NextAttemptAt time.Time
	SentAt        time.Time
	// LastError is the last delivery failure, without secrets.
	LastError string
}

// Notifications stores notifications (an outbox) and serves the security
// activity list.
type Notifications interface {
	// CreateNotification inserts n; ErrConflict if n.ID exists.
	CreateNotification(ctx context.Context, n Notification) error
	// UpdateNotification is UpdateCredential for notifications (ID, UserID,
	// Event, Details and CreatedAt are kept).
	UpdateNotification(ctx context.Context, id string, fn func(Notification) (Notification, error)) (Notification, error)
	// DueNotifications returns up to limit notifications pending or
	// sending whose NextAttemptAt is at or before now, oldest first.
	DueNotifications(ctx context.Context, now time.Time, limit int) ([]Notification, error)
	// ListNotifications returns a user's notifications, newest first, at
	// most limit (0 means 50, at most 500).
	ListNotifications(ctx context.Context, userID string, limit int) ([]Notification, error)
	// PruneNotifications deletes notifications created before before and
	// returns how many.
	PruneNotifications(ctx context.Context, before time.Time) (int64, error)
}

// Store is every aggregate together, for wiring; code that needs one
// aggregate should take that interface.
type Store interface {
	Credentials
	Challenges
	Counters
	Leases
	Audit
	Devices
	Notifications
	// Ping checks the database answers (readiness).
	Ping(ctx context.Context) error
	// Close releases the database; every later call returns an error.
	Close() error
}

// Audit query limits (AuditQuery.Limit).
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
)

// AuditLimit is the number of events a query with limit n returns: 0 (or
// less) means DefaultAuditLimit, and no query returns more than
// MaxAuditLimit.
func AuditLimit(n int) int {
	switch {
	case n <= 0:
		return DefaultAuditLimit
	case n > MaxAuditLimit:
		return MaxAuditLimit
	}
	return n
}

// CleanText replaces what no backend can store as text (invalid UTF-8,
// NUL) with U+FFFD, so an audit event with odd input is kept, not lost.
func CleanText(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// CleanAuditEvent applies CleanText to every text field of e and drops an
// empty Details map (stored as NULL, returned as nil).
func CleanAuditEvent(e AuditEvent) AuditEvent {
	for _, p := range []*string{&e.Type, &e.Actor, &e.UserID, &e.Factor, &e.SessionID, &e.IP, &e.Outcome} {
		*p = CleanText(*p)
	}
	if len(e.Details) == 0 {
		e.Details = nil
		return e
	}
	d := make(map[string]string, len(e.Details))
	for k, v := range e.Details {
		d[CleanText(k)] = CleanText(v)
	}
	e.Details = d
	return e
}
