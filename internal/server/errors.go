package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/factors/delivery"
	"github.com/stepup-bridge/stepup-bridge/factors/delivery/challenge"
	"github.com/stepup-bridge/stepup-bridge/internal/devices"
	"github.com/stepup-bridge/stepup-bridge/internal/stepup"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
	"github.com/stepup-bridge/stepup-bridge/internal/token"
)

// bearerRealm names the sidecar in WWW-Authenticate challenges.
const bearerRealm = `Bearer realm="stepup-bridge"`

// apiError is the one JSON error shape of the API: {error, error_description}.
// Error codes follow OAuth 2.0 / RFC 6750 / RFC 9470 where one fits.
type apiError struct {
	Status      int    `json:"-"`
	Code        string `json:"error"`
	Description string `json:"error_description"`
	// RetryAfter, when set, becomes a Retry-After header (429, 503).
	RetryAfter time.Duration `json:"-"`
	// Challenge, when set, becomes the WWW-Authenticate header (401).
	Challenge string `json:"-"`
	// Extra fields merged into the body (mfa_token, factors, ...).
	Extra map[string]any `json:"-"`
}

func (e *apiError) Error() string { return e.Code + ": " + e.Description }

func errBadRequest(format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: "invalid_request", Description: fmt.Sprintf(format, args...)}
}

// errUnavailable is what every dependency failure becomes: the caller
// learns to retry, and nothing is allowed.
func errUnavailable(what string) *apiError {
	return &apiError{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable",
		Description: what + " is unavailable; try again later", RetryAfter: 5 * time.Second}
}

// toAPIError maps every error the handlers see to a status and code, in this
// one place. An error it does not know is a failure of a dependency (a
// store or Keycloak error wrapped on its way up): 503, never success.
func toAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		if ae == errNoToken {
			c := *ae
			c.Challenge = bearerRealm
			return &c
		}
		return ae
	}
	var (
		mbe     *http.MaxBytesError
		locked  *factors.LockedError
		limited *factors.RateLimitedError
		wrong   *stepup.InvalidCodeError
		input   *factors.InputError
	)
	e := func(status int, code, desc string) *apiError {
		return &apiError{Status: status, Code: code, Description: desc}
	}
	switch {
	case errors.As(err, &mbe):
		return e(http.StatusRequestEntityTooLarge, "invalid_request", fmt.Sprintf("request body is larger than %d bytes", mbe.Limit))

	// Tokens: a bad token says only that it is bad (RFC 6750 3.1).
	case errors.Is(err, token.ErrKeySetUnavailable):
		return errUnavailable("Keycloak's signing keys")
	case errors.Is(err, token.ErrMalformed), errors.Is(err, token.ErrInvalidAlgorithm), errors.Is(err, token.ErrUnknownKey),
		errors.Is(err, token.ErrInvalidSignature), errors.Is(err, token.ErrInvalidIssuer), errors.Is(err, token.ErrInvalidAudience),
		errors.Is(err, token.ErrExpired), errors.Is(err, token.ErrNotYetValid), errors.Is(err, token.ErrInvalidType):
		a := e(http.StatusUnauthorized, "invalid_token", "the access token is invalid or expired")
		a.Challenge = bearerRealm + `, error="invalid_token", error_description="the access token is invalid or expired"`
		return a

	// Flows.
	case errors.As(err, &wrong):
		a := e(http.StatusBadRequest, "invalid_code", "the code is wrong")
		if errors.Is(err, challenge.ErrNoChallenge) || errors.Is(err, challenge.ErrAttemptsSpent) {
			a.Description = "the code has expired or used up its attempts; request a new one"
		}
		a.Extra = map[string]any{"attempts_remaining": wrong.Remaining}
		return a
	case errors.Is(err, stepup.ErrNoSession):
		return e(http.StatusForbidden, "access_denied", "the token has no user session; step-up is for users")
	case errors.Is(err, stepup.ErrFactorUnavailable), errors.Is(err, factors.ErrNotEnrolled):
		return e(http.StatusBadRequest, "factor_not_available", "the factor is not enabled or not enrolled for this user")
	case errors.Is(err, stepup.ErrChallengeNotFound):
		return e(http.StatusNotFound, "not_found", "no such challenge")
	case errors.Is(err, stepup.ErrLevelUnsupported):
		return e(http.StatusBadRequest, "invalid_request", "the requested acr_values cannot be granted")
	case errors.Is(err, stepup.ErrEnrolmentRequired):
		return e(http.StatusForbidden, "enrolment_required", "a second factor is required; enrol one")
	case errors.Is(err, stepup.ErrLoginFailed):
		return e(http.StatusUnauthorized, "mfa_failed", "too many failed attempts; log in again")
	case errors.Is(err, stepup.ErrDevicesDisabled):
		return e(http.StatusBadRequest, "invalid_request", "trusted devices are not enabled")
	case errors.Is(err, devices.ErrNotFound):
		return e(http.StatusNotFound, "not_found", "no such device")

	// Factors.
	case errors.As(err, &locked):
		a := e(http.StatusTooManyRequests, "locked", "too many failed attempts; try again later")
		a.RetryAfter = time.Until(locked.Until)
		return a
	case errors.As(err, &limited):
		a := e(http.StatusTooManyRequests, "rate_limited", "too many attempts; try again later")
		a.RetryAfter = time.Duration(limited.RetryAfterSeconds()) * time.Second
		return a
	case errors.As(err, &input):
		return e(http.StatusBadRequest, "invalid_request", input.Message)
	case errors.Is(err, factors.ErrInvalidCode), errors.Is(err, factors.ErrReplay):
		return e(http.StatusBadRequest, "invalid_code", "the code is wrong")
	case errors.Is(err, factors.ErrUnknownFactor):
		return e(http.StatusBadRequest, "invalid_request", "unknown or disabled factor")
	case errors.Is(err, factors.ErrAlreadyEnrolled):
		return e(http.StatusConflict, "already_enrolled", "the factor is already enrolled; change or remove it first")
	case errors.Is(err, factors.ErrExpired):
		return e(http.StatusForbidden, "credential_expired", "the credential has expired; change it")
	case errors.Is(err, factors.ErrNotSupported):
		return e(http.StatusBadRequest, "unsupported_operation", "the factor does not support this operation")

	// Delivery providers (flash call, SMS, e-mail): the challenge stays
	// retryable; nothing is verified.
	case errors.Is(err, delivery.ErrProviderUnavailable):
		return errUnavailable("the delivery provider")
	case errors.Is(err, delivery.ErrProviderRejected):
		return e(http.StatusBadGateway, "bad_gateway", "the delivery provider refused the request; try again or choose another factor")

	// Keycloak. Disabled and wrong password look the same: no enumeration.
	case errors.Is(err, bridge.ErrInvalidCredentials), errors.Is(err, bridge.ErrAccountDisabled):
		return e(http.StatusUnauthorized, "invalid_grant", "Invalid user credentials")
	case errors.Is(err, bridge.ErrAccountNotSetUp):
		return e(http.StatusBadRequest, "invalid_grant", "Account is not fully set up; finish it in Keycloak")
	case errors.Is(err, bridge.ErrInvalidGrant):
		return e(http.StatusBadRequest, "invalid_grant", "the refresh token is no longer valid; log in again")
	case errors.Is(err, bridge.ErrUnavailable):
		return errUnavailable("Keycloak")

	// Store.
	case errors.Is(err, store.ErrNotFound):
		return e(http.StatusNotFound, "not_found", "no such resource")
	case errors.Is(err, store.ErrExpired):
		return e(http.StatusGone, "expired", "the challenge has expired")
	case errors.Is(err, store.ErrConsumed):
		return e(http.StatusConflict, "already_used", "the challenge was already used")
	case errors.Is(err, store.ErrTooManyAttempts):
		return e(http.StatusConflict, "too_many_attempts", "the challenge has no attempts left; open a new one")
	case errors.Is(err, errPanic):
		return e(http.StatusInternalServerError, "server_error", "internal error")
	}
	// Keycloak misconfiguration (ErrForbidden, ErrClientConfig,
	// ErrAttributeDropped), a store that does not answer, anything else.
	return errUnavailable("a dependency")
}

// errPanic marks a recovered panic: the one case that is 500.
var errPanic = errors.New("server: panic")

// writeError writes err as JSON and logs server-side failures with the
// request id. Client errors are logged at debug only.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ae := toAPIError(err)
	if ae.Status >= 500 {
		s.log.ErrorContext(r.Context(), "request failed", "err", err, "status", ae.Status)
	} else {
		s.log.DebugContext(r.Context(), "request refused", "err", err, "status", ae.Status)
	}
	if ae.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((ae.RetryAfter+time.Second-1)/time.Second)))
	}
	if ae.Challenge != "" {
		w.Header().Set("WWW-Authenticate", ae.Challenge)
	}
	if len(ae.Extra) == 0 {
		writeJSON(w, ae.Status, ae)
		return
	}
	body := map[string]any{"error": ae.Code, "error_description": ae.Description}
	for k, v := range ae.Extra {
		body[k] = v
	}
	writeJSON(w, ae.Status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		slog.Default().Debug("writing response", "err", err)
	}
}

// decodeJSON reads one JSON object from the (size-limited) body into v.
// Unknown fields and trailing data are refused, so a typo cannot silently
// drop a field.
func decodeJSON(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !isJSONContentType(ct) {
		return &apiError{Status: http.StatusUnsupportedMediaType, Code: "invalid_request",
			Description: "Content-Type must be application/json"}
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return errBadRequest("malformed JSON body: %v", err)
	}
	if dec.More() {
		return errBadRequest("malformed JSON body: trailing data")
	}
	return nil
}

func isJSONContentType(ct string) bool {
	for i := 0; i < len(ct); i++ {
		if ct[i] == ';' {
			ct = ct[:i]
			break
		}
	}
	return ct == "application/json"
}
