package bridge

import (
	"errors"
	"fmt"
	"net/http"
)

// Errors callers branch on; test with errors.Is. The HTTP layer maps them in
// one place (see the package documentation for the mapping it must use).
var (
	// ErrNotFound: Keycloak answered 404 (no such user, scope, client, role).
	ErrNotFound = errors.New("bridge: not found in Keycloak")
	// ErrConflict: Keycloak answered 409 (an object with that name exists),
	// or a write did not stick because someone else changed the object.
	ErrConflict = errors.New("bridge: conflict in Keycloak")
	// ErrUnavailable: Keycloak could not be reached, timed out or answered
	// 5xx or 429. The HTTP layer answers 503 and never allows.
	ErrUnavailable = errors.New("bridge: Keycloak unavailable")
	// ErrForbidden: the service account lacks a realm-management role
	// (Keycloak answered 403). An operator problem: the error names the call.
	ErrForbidden = errors.New("bridge: forbidden by Keycloak")
	// ErrUnauthorized: Keycloak refused the admin token even after
	// renewing it once, or refused a user's token.
	ErrUnauthorized = errors.New("bridge: unauthorized by Keycloak")
	// ErrBadRequest: Keycloak refused the request as invalid (400); the
	// *Error carries Keycloak's message.
	ErrBadRequest = errors.New("bridge: Keycloak refused the request")

	// ErrInvalidCredentials: wrong password, unknown user, or a user
	// locked by Keycloak's brute-force protection (Keycloak answers the
	// same for all three, on purpose).
	ErrInvalidCredentials = errors.New("bridge: invalid user credentials")
	// ErrAccountDisabled: the account is disabled. Keycloak reports this
	// before checking the password, so it MUST look like
	// ErrInvalidCredentials to the client.
	ErrAccountDisabled = errors.New("bridge: account disabled")
	// ErrAccountNotSetUp: the password was right but the user has pending
	// required actions (or lacks firstName/lastName/email under the
	// default user profile); they must finish them in Keycloak.
	ErrAccountNotSetUp = errors.New("bridge: account not fully set up")
	// ErrInvalidGrant: a refresh token that is expired, revoked, or whose
	// session ended; the client must log in again.
	ErrInvalidGrant = errors.New("bridge: refresh token no longer valid")
	// ErrClientConfig: Keycloak refused the sidecar's client
	// (invalid_client, unauthorized_client: wrong secret, direct access
	// grants or service account off). An operator problem.
	ErrClientConfig = errors.New("bridge: Keycloak client misconfigured")

	// ErrAttributeDropped: Keycloak accepted the write but the step-up
	// attribute did not persist, because it is not declared in the realm's
	// user profile and unmanaged attributes are off.
	ErrAttributeDropped = errors.New("bridge: step-up attribute dropped by Keycloak: it is not declared in the realm's user profile (unmanaged attributes are off); run `stepup-bridge apply` to declare it admin-only")
	// ErrNoLeases: WriteStepUp was called on a Bridge built without a lease
	// store, so writes could not be serialised across replicas.
	ErrNoLeases = errors.New("bridge: no lease store configured; step-up write-back needs one")
)

// Error is a failed Keycloak call: what was attempted, Keycloak's answer,
// and the sentinel error it maps to (Unwrap). Its message never contains
// tokens or secrets.
type Error struct {
	// Op names the bridge operation ("get user", "password grant").
	Op string
	// Status is the HTTP status; 0 if Keycloak was not reached.
	Status int
	// Code is Keycloak's OAuth "error" field, if any ("invalid_grant").
	Code string
	// Message is Keycloak's error_description or errorMessage, or the
	// transport error.
	Message string
	// Kind is the sentinel error this maps to.
	Kind error
}

// Error implements error.
func (e *Error) Error() string {
	s := fmt.Sprintf("bridge: %s", e.Op)
	if e.Status != 0 {
		s += fmt.Sprintf(": HTTP %d", e.Status)
	}
	if e.Code != "" {
		s += ": " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s + " (" + e.Kind.Error() + ")"
}

// Unwrap returns the sentinel error, so errors.Is works.
func (e *Error) Unwrap() error { return e.Kind }

// kindForStatus maps an HTTP status of an admin call to a sentinel error.
func kindForStatus(status int) error {
	switch {
	case status == 0, status >= 500, status == http.StatusTooManyRequests, status == http.StatusRequestTimeout:
		return ErrUnavailable
	case status == http.StatusNotFound:
		return ErrNotFound
	case status == http.StatusConflict:
		return ErrConflict
	case status == http.StatusForbidden:
		return ErrForbidden
	case status == http.StatusUnauthorized:
		return ErrUnauthorized
	default:
		return ErrBadRequest
	}
}

// statusOf returns the HTTP status of a bridge error, 0 if none.
func statusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}
