package pages

import (
	"context"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/internal/devices"
	"github.com/stepup-bridge/stepup-bridge/internal/token"
)

// The enrolment pages: the application posts the user's access token to
// /pages/factors (and may give an allow-listed return_to for a "back"
// link). Once any factor is active, enrolling another needs a step-up of
// this session at most ManagementMaxAge old, as the JSON API demands.

// enrollable are the factors the pages can enrol, in the order shown.
var enrollable = []string{factors.TOTP, factors.HOTP, factors.BackupCode, factors.PIN, factors.FlashCall, factors.SMS, factors.Email}

// delivering are the factors enrolled with a destination (a phone number
// or an e-mail address) and confirmed with a first delivered code.
func delivering(name string) bool {
	return name == factors.FlashCall || name == factors.SMS || name == factors.Email
}

// factorsSession is a verified user of the enrolment pages.
type factorsSession struct {
	claims   *token.Claims
	token    string
	returnTo string
}

func (h *Handler) factorsSession(r *http.Request) (factorsSession, error) {
	s := factorsSession{token: r.PostForm.Get("access_token")}
	rt, err := h.checkReturnTo(r.PostForm.Get("return_to"))
	if err != nil {
		return s, err
	}
	s.returnTo = rt
	s.claims, err = h.verifyUser(r.Context(), s.token)
	return s, err
}

func (h *Handler) meta(r *http.Request, s factorsSession) factors.Meta {
	return factors.Meta{SessionID: s.claims.SessionID, IP: h.cfg.ClientIP(r), Purpose: "pages"}
}

// mayManage: no active factor yet, or a recent step-up of this session.
func (h *Handler) mayManage(ctx context.Context, s factorsSession) (bool, []factors.Status, error) {
	st, err := h.cfg.Factors.Status(ctx, s.claims.Subject)
	if err != nil {
		return false, nil, err
	}
	anyActive := slices.ContainsFunc(st, func(x factors.Status) bool { return x.State == factors.StateActive })
	if !anyActive {
		return true, st, nil
	}
	if h.cfg.RecentStepUp != nil {
		return h.cfg.RecentStepUp(s.claims), st, nil
	}
	now := h.cfg.Now()
	for _, e := range s.claims.StepUp {
		if e.SID == s.claims.SessionID && !e.Expired(now) && now.Sub(timeUnix(e.IAT)) <= h.cfg.ManagementMaxAge {
			return true, st, nil
		}
	}
	return false, st, nil
}

// manage renders the factor overview.
func (h *Handler) manage(w http.ResponseWriter, r *http.Request, s factorsSession, status int, errMsg, notice string) {
	ok, st, err := h.mayManage(r.Context(), s)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v := &view{Title: "Your second factors", AccessToken: s.token, ReturnTo: s.returnTo, Statuses: st,
		CanManage: ok, Error: errMsg, Notice: notice}
	for _, n := range enrollable {
		if _, on := h.cfg.Factors.Factor(n); on {
			v.Enrollable = append(v.Enrollable, n)
		}
	}
	if !ok && errMsg == "" {
		v.Notice = strings.TrimSpace(notice + " To add or replace a factor, verify it's you first (a step-up), then open this page again from your application.")
	}
	if h.cfg.Devices != nil {
		if v.Devices, err = h.cfg.Devices.List(r.Context(), s.claims.Subject); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	if h.cfg.Activity != nil {
		if v.Activity, err = h.cfg.Activity.Activity(r.Context(), s.claims.Subject, 20); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	h.render(w, r, status, "factors", v)
}

func (h *Handler) factorsEntry(w http.ResponseWriter, r *http.Request) {
	if err := h.parseEntry(r); err != nil {
		h.fail(w, r, err)
		return
	}
	s, err := h.factorsSession(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.manage(w, r, s, http.StatusOK, "", "")
}

// changeSession starts every POST that changes a factor: the form, the
// user's session, and the management rule. On false it has answered.
func (h *Handler) changeSession(w http.ResponseWriter, r *http.Request) (factorsSession, bool) {
	if err := h.parsePost(r); err != nil {
		h.fail(w, r, err)
		return factorsSession{}, false
	}
	s, err := h.factorsSession(r)
	if err != nil {
		h.fail(w, r, err)
		return factorsSession{}, false
	}
	ok, _, err := h.mayManage(r.Context(), s)
	if err != nil {
		h.fail(w, r, err)
		return factorsSession{}, false
	}
	if !ok {
		h.manage(w, r, s, http.StatusForbidden, "Verify it's you first: a recent step-up is needed to change your factors.", "")
		return factorsSession{}, false
	}
	return s, true
}

func (h *Handler) factorsEnrol(w http.ResponseWriter, r *http.Request) {
	s, ok := h.changeSession(w, r)
	if !ok {
		return
	}
	name := r.PostForm.Get("factor")
	if !slices.Contains(enrollable, name) {
		h.manage(w, r, s, http.StatusBadRequest, "Choose a factor to set up.", "")
		return
	}
	account := s.claims.PreferredUsername
	if account == "" {
		account = s.claims.Email
	}
	req := factors.EnrolRequest{AccountName: account, Secret: r.PostForm.Get("pin"), Confirmation: r.PostForm.Get("pin_confirmation")}
	if delivering(name) {
		req.Destination = strings.TrimSpace(r.PostForm.Get("destination"))
		if req.Destination == "" || len(req.Destination) > 128 {
			h.manage(w, r, s, http.StatusBadRequest, "Enter the phone number or e-mail address to use.", "")
			return
		}
	}
	enr, err := h.cfg.Factors.Enrol(r.Context(), name, s.claims.Subject, req, h.meta(r, s))
	if err != nil {
		status, msg := h.explain(r, err)
		h.manage(w, r, s, status, msg, "")
		return
	}
	v := &view{Title: "Set up " + factorLabel(name), AccessToken: s.token, ReturnTo: s.returnTo, Factor: name}
	if delivering(name) {
		// The first call or message proves the destination.
		h.sendEnrolmentCode(w, r, s, v)
		return
	}
	switch {
	case enr.Pending:
		// An authenticator: show the QR code and the secret once, then ask
		// for a first code.
		if len(enr.QRPNG) > 0 {
			v.QR = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(enr.QRPNG))
		}
		v.Secret = enr.Secret
		h.render(w, r, http.StatusOK, "enrol_otp", v)
	case len(enr.Codes) > 0:
		v.Codes = enr.Codes
		h.render(w, r, http.StatusOK, "backup_codes", v)
	default:
		h.manage(w, r, s, http.StatusOK, "", factorLabel(name)+" is set up.")
	}
}

func (h *Handler) factorsConfirm(w http.ResponseWriter, r *http.Request) {
	s, ok := h.changeSession(w, r)
	if !ok {
		return
	}
	name, code := r.PostForm.Get("factor"), strings.TrimSpace(r.PostForm.Get("code"))
	v := &view{Title: "Set up " + factorLabel(name), AccessToken: s.token, ReturnTo: s.returnTo, Factor: name}
	if !slices.Contains(enrollable, name) || code == "" || len(code) > 64 {
		v.Error = "Enter the code you received."
		h.render(w, r, http.StatusBadRequest, "enrol_otp", v)
		return
	}
	if _, err := h.cfg.Factors.Confirm(r.Context(), name, s.claims.Subject, code, h.meta(r, s)); err != nil {
		status, msg := h.explain(r, err)
		v.Error = msg
		h.render(w, r, status, "enrol_otp", v)
		return
	}
	h.manage(w, r, s, http.StatusOK, "", factorLabel(name)+" is set up.")
}

// factorsSend delivers the confirmation code of a pending phone or e-mail
// enrolment again ("Send again"); within the cool-down nothing new is sent
// and the code already sent stays valid.
func (h *Handler) factorsSend(w http.ResponseWriter, r *http.Request) {
	s, ok := h.changeSession(w, r)
	if !ok {
		return
	}
	name := r.PostForm.Get("factor")
	if !delivering(name) {
		h.manage(w, r, s, http.StatusBadRequest, "Choose a factor to set up.", "")
		return
	}
	h.sendEnrolmentCode(w, r, s, &view{Title: "Set up " + factorLabel(name), AccessToken: s.token, ReturnTo: s.returnTo, Factor: name})
}

// sendEnrolmentCode delivers the code of v.Factor's pending enrolment and
// shows the form to enter it.
func (h *Handler) sendEnrolmentCode(w http.ResponseWriter, r *http.Request, s factorsSession, v *view) {
	meta := h.meta(r, s)
	meta.Purpose = "enrol"
	d, err := h.cfg.Factors.Challenge(r.Context(), v.Factor, s.claims.Subject, factors.ChallengeRequest{SessionID: s.claims.SessionID}, meta)
	if err != nil {
		status, msg := h.explain(r, err)
		v.Error = msg
		h.render(w, r, status, "enrol_otp", v)
		return
	}
	v.Delivery = &d
	h.render(w, r, http.StatusOK, "enrol_otp", v)
}

// backupCodeRE is what a displayed backup code looks like; the download
// echoes only such strings, so it cannot be used to serve arbitrary text.
var backupCodeRE = regexp.MustCompile(`^[A-Za-z0-9-]{4,40}$`)

// backupCodesDownload returns the codes just shown as a text file. The
// codes are not stored in the clear anywhere, so the page posts them back;
// the response is an attachment, never rendered.
func (h *Handler) backupCodesDownload(w http.ResponseWriter, r *http.Request) {
	if err := h.parsePost(r); err != nil {
		h.fail(w, r, err)
		return
	}
	codes := r.PostForm["code"]
	if len(codes) == 0 || len(codes) > 50 {
		h.fail(w, r, fmt.Errorf("%w: no codes", errBadForm))
		return
	}
	var b strings.Builder
	b.WriteString("stepup-bridge backup codes\r\nEach code works once. Keep this file somewhere safe.\r\n\r\n")
	for _, c := range codes {
		if !backupCodeRE.MatchString(c) {
			h.fail(w, r, fmt.Errorf("%w: malformed code", errBadForm))
			return
		}
		b.WriteString(c + "\r\n")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="backup-codes.txt"`)
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(b.String()))
}

// deviceRevoke revokes one of the user's trusted devices. Taking trust
// away needs no step-up: it only ever asks for more.
func (h *Handler) deviceRevoke(w http.ResponseWriter, r *http.Request) {
	if err := h.parsePost(r); err != nil {
		h.fail(w, r, err)
		return
	}
	s, err := h.factorsSession(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	id := r.PostForm.Get("device")
	if id == "" || len(id) > 64 {
		h.manage(w, r, s, http.StatusBadRequest, "Choose a device.", "")
		return
	}
	meta := devices.Meta{SessionID: s.claims.SessionID, IP: h.cfg.ClientIP(r)}
	if err := h.cfg.Devices.Revoke(r.Context(), s.claims.Subject, id, devices.RevokedByUser, meta); err != nil {
		status, msg := h.explain(r, err)
		h.manage(w, r, s, status, msg, "")
		return
	}
	h.manage(w, r, s, http.StatusOK, "", "The device is no longer trusted: signing in there asks for a second factor again.")
}
