package delivery

import (
	"errors"
	"fmt"
)

// Errors callers branch on (errors.Is); every provider failure matches
// exactly one of them. See the package documentation for the HTTP mapping.
var (
	// ErrProviderUnavailable: the provider could not be reached, timed out
	// or answered 429/5xx. Temporary: answer 503 with Retry-After.
	ErrProviderUnavailable = errors.New("delivery: provider unavailable")
	// ErrProviderRejected: the provider answered but refused the request
	// (4xx: bad credentials, a destination it will not serve) or answered
	// something unusable. Answer 502; an operator must look.
	ErrProviderRejected = errors.New("delivery: provider rejected the request")
	// ErrDevOnly: a log provider was built outside dev mode.
	ErrDevOnly = errors.New("delivery: the log provider prints codes and is allowed only in dev mode")
)

// ProviderError is one failed provider operation. Its fields are safe to
// log: they never hold a code, a secret or a full destination.
type ProviderError struct {
	// Provider names the provider ("sinch", "webhook", "smtp").
	Provider string
	// Op names the operation ("start call", "report call", "send").
	Op string
	// Kind is ErrProviderUnavailable or ErrProviderRejected.
	Kind error
	// Status is the HTTP status or SMTP reply code, 0 if none came.
	Status int
	// Code and Message are the provider's own error code and text, if it
	// gave any (truncated).
	Code    string
	Message string
	// NotSent is true when the request provably never reached the
	// provider (the connection could not be opened), so repeating it cannot
	// start anything twice.
	NotSent bool
	// Err is the underlying cause, if any.
	Err error
}

func (e *ProviderError) Error() string {
	s := fmt.Sprintf("delivery: %s %s: %v", e.Provider, e.Op, e.Kind)
	if e.Status != 0 {
		s += fmt.Sprintf(" (status %d)", e.Status)
	}
	if e.Code != "" {
		s += " code " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is makes errors.Is(err, e.Kind) true.
func (e *ProviderError) Is(target error) bool { return target == e.Kind }

// Unwrap returns the underlying cause.
func (e *ProviderError) Unwrap() error { return e.Err }

// Unavailable builds an ErrProviderUnavailable error.
func Unavailable(provider, op string, status int, err error) *ProviderError {
	return &ProviderError{Provider: provider, Op: op, Kind: ErrProviderUnavailable, Status: status, Err: err}
}

// Rejected builds an ErrProviderRejected error.
func Rejected(provider, op string, status int, code, message string) *ProviderError {
	return &ProviderError{Provider: provider, Op: op, Kind: ErrProviderRejected, Status: status,
		Code: truncate(code, 64), Message: truncate(message, 200)}
}

// Malformed builds the ErrProviderRejected error of a reply that could not
// be understood.
func Malformed(provider, op string, status int, err error) *ProviderError {
	return &ProviderError{Provider: provider, Op: op, Kind: ErrProviderRejected, Status: status,
		Message: "malformed reply", Err: err}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
