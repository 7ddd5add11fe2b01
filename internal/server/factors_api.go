package server

import (
	"bytes"
	"cmp"
	"crypto/subtle"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/internal/token"
	"github.com/stepup-bridge/stepup-bridge/policies"
)

// Enrolment and management of a user's own factors (docs/api.md).
//
// Who may change what: a user with no active factor may enrol the first
// one with nothing but a valid access token (there is nothing to step up
// with). Once any factor is active, every change (enrol, regenerate,
// confirm, show a pending secret again, change, remove) needs a recent
// step-up of the token's own session (stepup.management_max_age);
// without it the answer is RFC 9470's 401 and the client steps up through
// /v1/stepup/challenges and retries. Confirming is included because a
// pending enrolment begun while the user had no factor must not become
// active, after another factor was added, without proof of that factor.
//
// Nothing shown once (codes, secrets, QR codes, PINs) is logged: errors
// carry no secrets, and the access log holds paths only.

// Field limits, in characters.
const (
	maxLabelLen   = 64
	maxAccountLen = 128
	maxPINInput   = 64
)

func (s *Server) factorRoutes() {
	if s.factors == nil {
		return
	}
	s.mux.HandleFunc("GET /v1/factors", s.requireUser(s.handleListFactors))
	s.mux.HandleFunc("POST /v1/factors/{factor}", s.limitIP(s.requireUser(s.handleEnrolFactor)))
	s.mux.HandleFunc("POST /v1/factors/{factor}/regenerate", s.limitIP(s.requireUser(s.handleRegenerateFactor)))
	s.mux.HandleFunc("GET /v1/factors/{factor}/qr.png", s.requireUser(s.handleFactorQR))
	s.mux.HandleFunc("POST /v1/factors/{factor}/confirm", s.limitIP(s.requireUser(s.handleConfirmFactor)))
	s.mux.HandleFunc("POST /v1/factors/{factor}/send", s.limitIP(s.requireUser(s.handleSendFactor)))
	s.mux.HandleFunc("PUT /v1/factors/{factor}", s.limitIP(s.requireUser(s.handleChangeFactor)))
	s.mux.HandleFunc("DELETE /v1/factors/{factor}", s.limitIP(s.requireUser(s.handleResetFactor)))
}

// factorsJSON is the answer of GET /v1/factors.
type factorsJSON struct {
	Factors []factors.Status `json:"factors"`
	// Active names the factors the user can step up with now.
	Active []string `json:"active"`
	// StepUpRequired tells whether a change made with this token would be
	// refused for want of a recent step-up.
	StepUpRequired bool `json:"stepup_required"`
}

func (s *Server) handleListFactors(w http.ResponseWriter, r *http.Request) {
	claims := claimsFrom(r.Context())
	st, err := s.factors.Status(r.Context(), claims.Subject)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	active := activeOf(st)
	writeJSON(w, http.StatusOK, factorsJSON{
		Factors:        st,
		Active:         active,
		StepUpRequired: len(active) > 0 && !s.recentStepUp(claims),
	})
}

// enrolJSON is the body of POST /v1/factors/{factor}; every field is
// optional, and pin and confirmation belong to the pin factor only.
type enrolJSON struct {
	Label       string `json:"label"`
	AccountName string `json:"account_name"`
	// Destination is the phone number (flash_call, sms) or e-mail address
	// (email) to enrol; those factors require it and the others refuse it.
	Destination  string `json:"destination"`
	PIN          string `json:"pin"`
	Confirmation string `json:"confirmation"`
}

// enrolmentJSON is what an enrolment shows the user, once.
type enrolmentJSON struct {
	Factor       string `json:"factor"`
	CredentialID string `json:"credential_id"`
	// State is "pending" (confirm with a first code) or "active".
	State    string   `json:"state"`
	Replaced bool     `json:"replaced,omitempty"`
	Codes    []string `json:"codes,omitempty"`
	URI      string   `json:"otpauth_uri,omitempty"`
	Secret   string   `json:"secret,omitempty"`
	// QRPNG is base64 in JSON (encoding/json's []byte).
	QRPNG      []byte `json:"qr_png,omitempty"`
	QRURL      string `json:"qr_png_url,omitempty"`
	ConfirmURL string `json:"confirm_url,omitempty"`
}

func (s *Server) handleEnrolFactor(w http.ResponseWriter, r *http.Request) {
	s.enrol(w, r, r.PathValue("factor"))
}

// handleRegenerateFactor is POST /v1/factors/backup_code/regenerate: the
// same as enrolling backup codes again (the new set replaces the old one
// atomically); other factors cannot be regenerated.
func (s *Server) handleRegenerateFactor(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("factor")
	if _, err := s.factor(name); err != nil {
		s.writeError(w, r, err)
		return
	}
	if name != factors.BackupCode {
		s.writeError(w, r, errBadRequest("only backup codes can be regenerated; reset %s and enrol it again", name))
		return
	}
	s.enrol(w, r, name)
}

func (s *Server) enrol(w http.ResponseWriter, r *http.Request, name string) {
	ctx := r.Context()
	claims := claimsFrom(ctx)
	if _, err := s.factor(name); err != nil {
		s.writeError(w, r, err)
		return
	}
	var body enrolJSON
	if err := decodeOptionalJSON(r, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	req, err := enrolRequest(name, body, claims)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	meta, _, err := s.authoriseChange(r, claims, name, false)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	enr, err := s.factors.Enrol(ctx, name, claims.Subject, req, meta)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := enrolmentJSON{
		Factor: enr.Factor, CredentialID: enr.CredentialID, State: factors.StateActive, Replaced: enr.Replaced,
		Codes: enr.Codes, URI: enr.URI, Secret: enr.Secret, QRPNG: enr.QRPNG,
	}
	if enr.Pending {
		out.State = factors.StatePending
		out.ConfirmURL = "/v1/factors/" + name + "/confirm"
		if len(enr.QRPNG) > 0 {
			out.QRURL = "/v1/factors/" + name + "/qr.png"
		}
	}
	w.Header().Set("Location", "/v1/factors/"+name)
	writeJSON(w, http.StatusCreated, out)
}

// enrolRequest checks the body's form (the factor checks its own rules)
// and fills the defaults: an authenticator entry is named after the
// user's username rather than their opaque id.
func enrolRequest(name string, b enrolJSON, c *token.Claims) (factors.EnrolRequest, error) {
	if err := checkText("label", b.Label, maxLabelLen); err != nil {
		return factors.EnrolRequest{}, err
	}
	if err := checkText("account_name", b.AccountName, maxAccountLen); err != nil {
		return factors.EnrolRequest{}, err
	}
	req := factors.EnrolRequest{Label: b.Label, AccountName: b.AccountName}
	switch name {
	case factors.FlashCall, factors.SMS, factors.Email:
		if b.Destination == "" {
			return factors.EnrolRequest{}, errBadRequest("destination is required for %s", name)
		}
		if err := checkText("destination", b.Destination, maxAccountLen); err != nil {
			return factors.EnrolRequest{}, err
		}
		req.Destination = b.Destination
	default:
		if b.Destination != "" {
			return factors.EnrolRequest{}, errBadRequest("destination belongs to flash_call, sms and email only")
		}
	}
	switch name {
	case factors.PIN:
		if b.PIN == "" || b.Confirmation == "" {
			return factors.EnrolRequest{}, errBadRequest("pin and confirmation are required")
		}
		if err := checkPIN("pin", b.PIN); err != nil {
			return factors.EnrolRequest{}, err
		}
		if subtle.ConstantTimeCompare([]byte(b.PIN), []byte(b.Confirmation)) != 1 {
			return factors.EnrolRequest{}, errBadRequest("pin and confirmation do not match")
		}
		req.Secret, req.Confirmation = b.PIN, b.Confirmation
	default:
		if b.PIN != "" || b.Confirmation != "" {
			return factors.EnrolRequest{}, errBadRequest("pin and confirmation belong to the pin factor only")
		}
	}
	if name == factors.TOTP || name == factors.HOTP {
		if strings.Contains(req.AccountName, ":") {
			// otpauth labels are issuer:account; apps split on the colon.
			return factors.EnrolRequest{}, errBadRequest("account_name must not contain ':'")
		}
		if req.AccountName == "" {
			req.AccountName = cmp.Or(c.PreferredUsername, c.Email, c.Subject)
		}
	}
	return req, nil
}

func (s *Server) handleFactorQR(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	claims := claimsFrom(ctx)
	name := r.PathValue("factor")
	if _, err := s.factor(name); err != nil {
		s.writeError(w, r, err)
		return
	}
	// Showing a pending secret again is part of enrolling: same rule.
	if _, _, err := s.authoriseChange(r, claims, name, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	enr, err := s.factors.PendingEnrolment(ctx, name, claims.Subject)
	switch {
	case errors.Is(err, factors.ErrNotEnrolled), errors.Is(err, factors.ErrAlreadyEnrolled), errors.Is(err, factors.ErrNotSupported):
		s.writeError(w, r, &apiError{Status: http.StatusNotFound, Code: "not_found",
			Description: "no pending " + name + " enrolment with a QR code"})
		return
	case err != nil:
		s.writeError(w, r, err)
		return
	case len(enr.QRPNG) == 0:
		s.writeError(w, r, &apiError{Status: http.StatusNotFound, Code: "not_found",
			Description: "no pending " + name + " enrolment with a QR code"})
		return
	}
	h := w.Header()
	h.Set("Content-Type", "image/png")
	h.Set("Content-Length", strconv.Itoa(len(enr.QRPNG)))
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("Content-Disposition", `inline; filename="`+name+`.png"`)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(enr.QRPNG)
}

type confirmJSON struct {
	Code string `json:"code"`
}

// confirmedJSON answers a confirmation: the credential is active.
type confirmedJSON struct {
	Factor       string    `json:"factor"`
	CredentialID string    `json:"credential_id"`
	State        string    `json:"state"`
	ConfirmedAt  time.Time `json:"confirmed_at"`
}

func (s *Server) handleConfirmFactor(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	claims := claimsFrom(ctx)
	name := r.PathValue("factor")
	if _, err := s.factor(name); err != nil {
		s.writeError(w, r, err)
		return
	}
	var body confirmJSON
	if err := decodeJSON(r, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := checkConfirmCode(name, body.Code); err != nil {
		s.writeError(w, r, err)
		return
	}
	meta, st, err := s.authoriseChange(r, claims, name, false)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// Nothing pending: answer without spending an attempt of the
	// failure budget (the factor re-checks under its own lock).
	switch stateOf(st, name) {
	case factors.StateNone:
		s.writeError(w, r, factors.ErrNotEnrolled)
		return
	case factors.StateActive, factors.StateExhausted:
		s.writeError(w, r, factors.ErrAlreadyEnrolled)
		return
	}
	res, err := s.factors.Confirm(ctx, name, claims.Subject, body.Code, meta)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, confirmedJSON{Factor: name, CredentialID: res.CredentialID, State: factors.StateActive, ConfirmedAt: res.At.UTC()})
}

// handleSendFactor delivers the confirmation code of a pending flash call,
// SMS or e-mail enrolment (the first call or message proves the
// destination). Sending again within the cool-down sends nothing new; the
// code already sent stays valid. It needs what confirming needs.
func (s *Server) handleSendFactor(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	claims := claimsFrom(ctx)
	name := r.PathValue("factor")
	f, err := s.factor(name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if _, ok := f.(factors.Challenger); !ok {
		s.writeError(w, r, errBadRequest("%s delivers nothing to send", name))
		return
	}
	meta, st, err := s.authoriseChange(r, claims, name, false)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if stateOf(st, name) != factors.StatePending {
		s.writeError(w, r, errBadRequest("no pending %s enrolment to send a code for; enrol first", name))
		return
	}
	meta.Purpose = "enrol"
	d, err := s.factors.Challenge(ctx, name, claims.Subject, factors.ChallengeRequest{SessionID: claims.SessionID}, meta)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"delivery": d})
}

// checkConfirmCode refuses codes the factor could never accept, before
// the attempt is counted: one-time codes are 6 or 8 digits (white space
// allowed, as apps show "123 456").
func checkConfirmCode(name, code string) error {
	if err := checkCode(code); err != nil {
		return err
	}
	if name != factors.TOTP && name != factors.HOTP {
		return nil
	}
	n := 0
	for _, c := range code {
		switch {
		case c >= '0' && c <= '9':
			n++
		case c == ' ':
		default:
			return errBadRequest("code must contain digits only")
		}
	}
	if n != 6 && n != 8 {
		return errBadRequest("code must have 6 or 8 digits")
	}
	return nil
}

// changeJSON is the body of PUT /v1/factors/pin.
type changeJSON struct {
	Current      string `json:"current"`
	PIN          string `json:"pin"`
	Confirmation string `json:"confirmation"`
}

func (s *Server) handleChangeFactor(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	claims := claimsFrom(ctx)
	name := r.PathValue("factor")
	f, err := s.factor(name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if _, ok := f.(factors.Changer); !ok {
		s.writeError(w, r, factors.ErrNotSupported)
		return
	}
	var body changeJSON
	if err := decodeJSON(r, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	if body.Current == "" || body.PIN == "" || body.Confirmation == "" {
		s.writeError(w, r, errBadRequest("current, pin and confirmation are required"))
		return
	}
	for _, v := range []struct{ field, value string }{{"current", body.Current}, {"pin", body.PIN}} {
		if err := checkPIN(v.field, v.value); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	if subtle.ConstantTimeCompare([]byte(body.PIN), []byte(body.Confirmation)) != 1 {
		s.writeError(w, r, errBadRequest("pin and confirmation do not match"))
		return
	}
	meta, _, err := s.authoriseChange(r, claims, name, true)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := s.factors.Change(ctx, name, claims.Subject, body.Current,
		factors.EnrolRequest{Secret: body.PIN, Confirmation: body.Confirmation}, meta)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"factor": name, "credential_id": res.CredentialID, "changed_at": res.At.UTC()})
}

func (s *Server) handleResetFactor(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	claims := claimsFrom(ctx)
	name := r.PathValue("factor")
	if _, err := s.factor(name); err != nil {
		s.writeError(w, r, err)
		return
	}
	meta, _, err := s.authoriseChange(r, claims, name, false)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.factors.Reset(ctx, name, claims.Subject, meta); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// factor returns the enabled factor called name.
func (s *Server) factor(name string) (factors.Factor, error) {
	f, ok := s.factors.Factor(name)
	if !ok {
		return nil, factors.ErrUnknownFactor
	}
	return f, nil
}

// authoriseChange applies the management rule for the caller and returns
// the audit Meta, which records why the change was allowed, and the
// user's factors as read for the decision. changingPIN
// marks PUT /v1/factors/pin: a user whose only active factor is an
// expired PIN cannot step up (the PIN verifies no more until changed), so
// the current PIN that Change checks is the proof instead.
func (s *Server) authoriseChange(r *http.Request, claims *token.Claims, name string, changingPIN bool) (factors.Meta, []factors.Status, error) {
	meta := factors.Meta{SessionID: claims.SessionID, IP: ClientIP(r.Context())}
	st, err := s.factors.Status(r.Context(), claims.Subject)
	if err != nil {
		return meta, nil, err
	}
	active := activeOf(st)
	switch {
	case len(active) == 0:
		meta.Details = map[string]string{"authorised_by": "first_factor"}
	case s.recentStepUp(claims):
		meta.Details = map[string]string{"authorised_by": "stepup"}
	case changingPIN && name == factors.PIN && s.onlyExpiredPIN(st):
		meta.Details = map[string]string{"authorised_by": "current_pin"}
	default:
		return meta, st, s.errStepUpRequired(active)
	}
	return meta, st, nil
}

// stateOf is the state of factor name among st.
func stateOf(st []factors.Status, name string) string {
	for _, f := range st {
		if f.Factor == name {
			return f.State
		}
	}
	return factors.StateNone
}

// onlyExpiredPIN reports whether the PIN is past its lifetime and no other
// factor is active.
func (s *Server) onlyExpiredPIN(st []factors.Status) bool {
	expired := false
	for _, f := range st {
		if f.State != factors.StateActive {
			continue
		}
		if f.Factor != factors.PIN {
			return false
		}
		expired = !f.ExpiresAt.IsZero() && !s.now().Before(f.ExpiresAt)
	}
	return expired
}

// recentStepUp reports whether the token proves a second factor recent
// enough to manage factors: a step-up entry of the token's own session,
// not from a trusted-device login, unexpired, at the step-up level or
// above, issued within
// stepup.management_max_age; or Keycloak's own acr at that level with an
// auth_time that recent. Clock skew: an iat in the future counts as now,
// as policies does.
func (s *Server) recentStepUp(c *token.Claims) bool {
	now := s.now()
	level, maxAge := s.cfg.StepUp.Level, s.cfg.StepUp.ManagementMaxAge
	if c.SessionID != "" {
		for _, e := range c.StepUp {
			if e.SID != c.SessionID || e.Expired(now) {
				continue
			}
			// A login that skipped the factor on a trusted device proves
			// no factor: managing factors needs a fresh one.
			if slices.Contains(e.AMR, policies.AMRTrustedDevice) {
				continue
			}
			if now.Sub(time.Unix(e.IAT, 0)) > maxAge || !levelAtLeast(e.ACR, level) {
				continue
			}
			return true
		}
	}
	return c.ACR != "" && levelAtLeast(c.ACR, level) && !c.AuthTime.IsZero() && now.Sub(c.AuthTime) <= maxAge
}

// levelAtLeast compares acr values: numerically when both are integers
// (Keycloak's level-of-authentication numbers), otherwise only an exact
// match counts.
func levelAtLeast(have, want string) bool {
	h, herr := strconv.Atoi(have)
	w, werr := strconv.Atoi(want)
	if herr == nil && werr == nil {
		return h >= w
	}
	return have == want
}

// errStepUpRequired is RFC 9470's answer: the client steps up through
// POST /v1/stepup/challenges with one of the active factors and retries
// with the refreshed token.
func (s *Server) errStepUpRequired(active []string) *apiError {
	maxAge := max(int64(s.cfg.StepUp.ManagementMaxAge/time.Second), 1)
	desc := "managing second factors requires a step-up within the last " + strconv.FormatInt(maxAge, 10) + " seconds"
	return &apiError{
		Status: http.StatusUnauthorized, Code: policies.ErrorInsufficientUserAuthentication, Description: desc,
		Challenge: policies.Challenge{
			Error: policies.ErrorInsufficientUserAuthentication, ErrorDescription: desc,
			ACRValues: []string{s.cfg.StepUp.Level}, MaxAge: maxAge,
		}.String(),
		Extra: map[string]any{"acr_values": s.cfg.StepUp.Level, "max_age": maxAge, "factors": active},
	}
}

func activeOf(st []factors.Status) []string {
	out := []string{}
	for _, f := range st {
		if f.State == factors.StateActive {
			out = append(out, f.Factor)
		}
	}
	return out
}

// decodeOptionalJSON is decodeJSON for bodies that may be left out: no
// body, or one of white space only (also when sent chunked), leaves v as
// it is.
func decodeOptionalJSON(r *http.Request, v any) error {
	if r.Body == nil || r.ContentLength == 0 {
		return nil
	}
	raw, err := io.ReadAll(r.Body) // bounded by the middleware's MaxBytesReader
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return errBadRequest("reading the request body: %v", err)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))
	return decodeJSON(r, v)
}

// checkText refuses over-long values and control characters (they would
// reach authenticator apps, audit details and admin screens).
func checkText(field, v string, maxLen int) error {
	if !utf8.ValidString(v) || utf8.RuneCountInString(v) > maxLen {
		return errBadRequest("%s must be valid UTF-8 of at most %d characters", field, maxLen)
	}
	if strings.IndexFunc(v, unicode.IsControl) >= 0 {
		return errBadRequest("%s must not contain control characters", field)
	}
	return nil
}

// checkPIN refuses what can never be a PIN before anything is counted or
// hashed; the length and triviality rules are the factor's.
func checkPIN(field, v string) error {
	if len(v) > maxPINInput {
		return errBadRequest("%s is too long", field)
	}
	if v == "" || strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return errBadRequest("%s must contain digits only", field)
	}
	return nil
}
