package factors

import (
	"errors"
	"fmt"
	"time"
)

// Errors callers branch on (errors.Is). The HTTP layer maps them to status
// codes in one place; the messages are safe to log but only InputError's
// Message is meant for the user.
var (
	// ErrInvalidCode: the code, PIN or answer is wrong (or malformed).
	ErrInvalidCode = errors.New("factors: invalid code")
	// ErrNotEnrolled: the user has no active credential of the factor.
	ErrNotEnrolled = errors.New("factors: not enrolled")
	// ErrAlreadyEnrolled: the user already has an active credential that
	// this call cannot replace (reset or change it instead).
	ErrAlreadyEnrolled = errors.New("factors: already enrolled")
	// ErrReplay: the code was right but has been used before (a TOTP step
	// at or below the last accepted one, a used backup code). Worth
	// notifying the user (ASVS 2.8.5).
	ErrReplay = errors.New("factors: code already used")
	// ErrInvalidInput: what the user supplied breaks a rule; the wrapping
	// *InputError carries a message that can be shown.
	ErrInvalidInput = errors.New("factors: invalid input")
	// ErrExpired: the secret was right but has outlived its lifetime (PIN):
	// the user must change it (Changer) before it verifies again.
	ErrExpired = errors.New("factors: credential expired, change it")
	// ErrLocked: the factor refuses verification for a while; the error is
	// a *LockedError telling until when.
	ErrLocked = errors.New("factors: locked")
	// ErrRateLimited: the account used up its failure budget; the error is
	// a *RateLimitedError telling when to retry.
	ErrRateLimited = errors.New("factors: too many failed attempts")
	// ErrUnknownFactor: no such factor, or it is not enabled.
	ErrUnknownFactor = errors.New("factors: unknown or disabled factor")
	// ErrNotSupported: the factor lacks the capability asked for (no
	// enrolment step, nothing to deliver, cannot be changed).
	ErrNotSupported = errors.New("factors: not supported by this factor")
)

// InputError is an ErrInvalidInput whose Message may be shown to the user
// ("PIN must have 4 to 8 digits").
type InputError struct {
	Message string
}

// InvalidInput returns an *InputError with a formatted message.
func InvalidInput(format string, args ...any) error {
	return &InputError{Message: fmt.Sprintf(format, args...)}
}

// Error implements error; show Message, not this, to the user.
func (e *InputError) Error() string { return "factors: invalid input: " + e.Message }

// Is makes errors.Is(err, ErrInvalidInput) true.
func (e *InputError) Is(target error) bool { return target == ErrInvalidInput }

// LockedError refuses verification until Until. When the failure that
// started the lockout is the one being reported, Err is ErrInvalidCode (so
// errors.Is(err, ErrInvalidCode) is true as well); a verification refused
// because the factor was already locked has Err nil and was not checked.
type LockedError struct {
	Until time.Time
	Err   error
}

// Error implements error.
func (e *LockedError) Error() string {
	s := "factors: locked until " + e.Until.UTC().Format(time.RFC3339)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the failure that started the lockout, if any.
func (e *LockedError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// Started reports whether this error reports the failure that began the
// lockout (as opposed to an attempt refused while locked).
func (e *LockedError) Started() bool { return errors.Is(e.Err, ErrInvalidCode) }

// RateLimitedError refuses an attempt because the account's failure budget
// is spent. RetryAfter is for the Retry-After header (whole seconds,
// rounded up, at least 1).
type RateLimitedError struct {
	RetryAfter time.Duration
	Until      time.Time
}

// Error implements error.
func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("factors: too many failed attempts, retry after %s", e.RetryAfter)
}

// Is makes errors.Is(err, ErrRateLimited) true.
func (e *RateLimitedError) Is(target error) bool { return target == ErrRateLimited }

// RetryAfterSeconds is RetryAfter in whole seconds, rounded up, at least 1.
func (e *RateLimitedError) RetryAfterSeconds() int {
	s := int((e.RetryAfter + time.Second - 1) / time.Second)
	return max(s, 1)
}
