package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// apiError is the one JSON error shape of the API: {error, error_description}.
// Error codes follow OAuth 2.0 / RFC 6750 / RFC 9470 where one fits.
type apiError struct {
	Status      int    `json:"-"`
	Code        string `json:"error"`
	Description string `json:"error_description"`
	// RetryAfter, when set, becomes a Retry-After header (429, 503).
	RetryAfter time.Duration `json:"-"`
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
// one place. Unknown errors are 500 without detail (the detail is logged).
func toAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return &apiError{Status: http.StatusRequestEntityTooLarge, Code: "invalid_request",
			Description: fmt.Sprintf("request body is larger than %d bytes", mbe.Limit)}
	case errors.Is(err, store.ErrNotFound):
		return &apiError{Status: http.StatusNotFound, Code: "not_found", Description: "no such resource"}
	case errors.Is(err, store.ErrExpired):
		return &apiError{Status: http.StatusGone, Code: "expired", Description: "the challenge has expired"}
	case errors.Is(err, store.ErrConsumed):
		return &apiError{Status: http.StatusConflict, Code: "already_used", Description: "the challenge was already used"}
	case errors.Is(err, store.ErrTooManyAttempts):
		return &apiError{Status: http.StatusTooManyRequests, Code: "too_many_attempts", Description: "the challenge has no attempts left"}
	}
	return &apiError{Status: http.StatusInternalServerError, Code: "server_error", Description: "internal error"}
}

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
	writeJSON(w, ae.Status, ae)
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
