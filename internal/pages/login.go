package pages

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/stepup-bridge/stepup-bridge/internal/stepup"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// The mfa cookie holds the pending login's mfa_token and the factors it
// offers ("token|backup_code,totp"): no Keycloak token ever reaches the
// browser before the second factor. The token is a 128-bit random value
// the store keeps only hashed; the factor list is a hint for the page (the
// flow checks the factor again).

func (h *Handler) loginForm(w http.ResponseWriter, r *http.Request) {
	rt, err := h.checkReturnTo(r.URL.Query().Get("return_to"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "login", &view{Title: "Sign in", ReturnTo: rt})
}

func (h *Handler) loginSubmit(w http.ResponseWriter, r *http.Request) {
	if err := h.parsePost(r); err != nil {
		h.fail(w, r, err)
		return
	}
	rt, err := h.checkReturnTo(r.PostForm.Get("return_to"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v := &view{Title: "Sign in", ReturnTo: rt, Username: r.PostForm.Get("username")}
	user, pass := r.PostForm.Get("username"), r.PostForm.Get("password")
	if user == "" || pass == "" || len(user) > 255 || len(pass) > 1024 {
		v.Error = "Enter your username and password."
		h.render(w, r, http.StatusBadRequest, "login", v)
		return
	}
	res, err := h.cfg.Flows.Login(r.Context(), stepup.LoginRequest{Username: user, Password: pass, IP: h.cfg.ClientIP(r),
		UserAgent: r.UserAgent(), DeviceToken: h.deviceToken(r)})
	if err != nil {
		status, msg := h.explain(r, err)
		v.Error = msg
		h.render(w, r, status, "login", v)
		return
	}
	if p := res.Pending; p != nil {
		maxAge := int(p.ExpiresAt.Sub(h.cfg.Now()).Seconds())
		if maxAge <= 0 || maxAge > int(h.cfg.LoginTTL.Seconds()) {
			maxAge = int(h.cfg.LoginTTL.Seconds())
		}
		h.cookies.set(w, r, cookieMFA, p.MFAToken+"|"+strings.Join(p.Factors, ","), maxAge)
		target := "/pages/login/mfa"
		if rt != "" {
			target += "?" + url.Values{"return_to": {rt}}.Encode()
		}
		http.Redirect(w, r, target, http.StatusSeeOther)
		return
	}
	// No second factor needed. The tokens are not handed to the browser
	// (docs/pages.md): the application signs the user in with its own OIDC
	// flow, and the session they belong to is ended so nothing dangles.
	if res.Tokens != nil {
		h.cfg.Flows.Logout(r.Context(), *res.Tokens)
	}
	notice := "You are signed in."
	if res.TrustedDevice != nil {
		notice = "You are signed in on a trusted device."
	}
	if res.EnrolmentRequired {
		notice = "You are signed in. You must set up a second factor soon."
	}
	h.done(w, r, rt, notice)
}

// done ends a flow: back to the allow-listed return_to, or the success
// page. The way back is a page with a meta refresh and a link, not a 303:
// CSP form-action 'self' covers redirects that follow a form submission,
// so a 303 to the application's origin would be blocked, and widening
// form-action is not worth it. No token goes with it.
func (h *Handler) done(w http.ResponseWriter, r *http.Request, returnTo, notice string) {
	h.render(w, r, http.StatusOK, "done", &view{Title: "Done", Notice: notice, ReturnTo: returnTo})
}

// pending reads the mfa cookie.
func (h *Handler) pending(r *http.Request) (tok string, offered []string, ok bool) {
	v := h.cookies.get(r, cookieMFA)
	tok, list, found := strings.Cut(v, "|")
	if !found || tok == "" || len(v) > 512 {
		return "", nil, false
	}
	for _, f := range strings.Split(list, ",") {
		if f != "" && slices.Contains(h.cfg.Factors.Names(), f) {
			offered = append(offered, f)
		}
	}
	return tok, offered, true
}

func (h *Handler) restartLogin(w http.ResponseWriter, r *http.Request, rt, msg string) {
	h.cookies.set(w, r, cookieMFA, "", -1)
	h.render(w, r, http.StatusUnauthorized, "login", &view{Title: "Sign in", ReturnTo: rt, Error: msg})
}

func (h *Handler) mfaForm(w http.ResponseWriter, r *http.Request) {
	rt, err := h.checkReturnTo(r.URL.Query().Get("return_to"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	_, offered, ok := h.pending(r)
	if !ok {
		h.restartLogin(w, r, rt, "Your sign-in has expired. Sign in again.")
		return
	}
	h.render(w, r, http.StatusOK, "mfa", &view{Title: "Verify it's you", ReturnTo: rt, Factors: h.options(offered, ""), TrustDays: h.trustDays()})
}

func (h *Handler) mfaDeliver(w http.ResponseWriter, r *http.Request) {
	if err := h.parsePost(r); err != nil {
		h.fail(w, r, err)
		return
	}
	rt, err := h.checkReturnTo(r.PostForm.Get("return_to"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	tok, offered, ok := h.pending(r)
	if !ok {
		h.restartLogin(w, r, rt, "Your sign-in has expired. Sign in again.")
		return
	}
	factor := r.PostForm.Get("deliver")
	v := &view{Title: "Verify it's you", ReturnTo: rt, Factors: h.options(offered, factor), Factor: factor, TrustDays: h.trustDays()}
	d, err := h.cfg.Flows.LoginChallenge(r.Context(), tok, factor, h.cfg.ClientIP(r))
	if err != nil {
		if loginGone(err) {
			h.restartLogin(w, r, rt, "Your sign-in has expired. Sign in again.")
			return
		}
		status, msg := h.explain(r, err)
		v.Error = msg
		h.render(w, r, status, "mfa", v)
		return
	}
	v.Delivery = &d
	h.render(w, r, http.StatusOK, "mfa", v)
}

func (h *Handler) mfaSubmit(w http.ResponseWriter, r *http.Request) {
	if err := h.parsePost(r); err != nil {
		h.fail(w, r, err)
		return
	}
	rt, err := h.checkReturnTo(r.PostForm.Get("return_to"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	tok, offered, ok := h.pending(r)
	if !ok {
		h.restartLogin(w, r, rt, "Your sign-in has expired. Sign in again.")
		return
	}
	factor, code := r.PostForm.Get("factor"), strings.TrimSpace(r.PostForm.Get("code"))
	v := &view{Title: "Verify it's you", ReturnTo: rt, Factors: h.options(offered, factor), Factor: factor, TrustDays: h.trustDays()}
	if factor == "" || code == "" || len(code) > 64 {
		v.Error = "Choose a method and enter the code."
		h.render(w, r, http.StatusBadRequest, "mfa", v)
		return
	}
	trust := h.cfg.DeviceCookie != "" && r.PostForm.Get("trust_device") == "1"
	g, err := h.cfg.Flows.LoginMFA(r.Context(), stepup.MFARequest{MFAToken: tok, Factor: factor, Code: code, IP: h.cfg.ClientIP(r),
		TrustDevice: trust, UserAgent: r.UserAgent()})
	if err != nil {
		if loginGone(err) {
			_, msg := h.explain(r, err)
			h.restartLogin(w, r, rt, msg+" Sign in again.")
			return
		}
		status, msg := h.explain(r, err)
		v.Error = msg
		var wrong *stepup.InvalidCodeError
		if errors.As(err, &wrong) {
			v.Remaining = wrong.Remaining
		}
		h.render(w, r, status, "mfa", v)
		return
	}
	h.cookies.set(w, r, cookieMFA, "", -1)
	// The released tokens are not handed to the browser (docs/pages.md);
	// their Keycloak session is ended so nothing dangles.
	if g.Tokens != nil {
		h.cfg.Flows.Logout(r.Context(), *g.Tokens)
	}
	notice := "You are signed in."
	if g.Device != nil {
		h.setDeviceCookie(w, r, g.Device.Token, g.Device.Device.ExpiresAt)
		notice = "You are signed in. This device is trusted until " + g.Device.Device.ExpiresAt.UTC().Format("2 January 2006") + "."
	}
	h.done(w, r, rt, notice)
}

// The trusted-device cookie: Path /pages/ only (the API never reads it),
// so it cannot take the __Host- prefix; over https it takes __Secure-.

func (h *Handler) deviceCookieName(r *http.Request) string {
	if h.secure(r) {
		return "__Secure-" + h.cfg.DeviceCookie
	}
	return h.cfg.DeviceCookie
}

// deviceToken reads the trusted-device cookie; "" when off or absent.
func (h *Handler) deviceToken(r *http.Request) string {
	if h.cfg.DeviceCookie == "" {
		return ""
	}
	ck, err := r.Cookie(h.deviceCookieName(r))
	if err != nil || len(ck.Value) > 256 {
		return ""
	}
	return ck.Value
}

func (h *Handler) setDeviceCookie(w http.ResponseWriter, r *http.Request, token string, expires time.Time) {
	maxAge := int(expires.Sub(h.cfg.Now()).Seconds())
	if maxAge <= 0 {
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: h.deviceCookieName(r), Value: token, Path: "/pages/", MaxAge: maxAge,
		HttpOnly: true, Secure: h.secure(r), SameSite: http.SameSiteStrictMode,
	})
}

// trustDays is the offer shown on the second-factor form; 0 hides it.
func (h *Handler) trustDays() int {
	if h.cfg.DeviceCookie == "" {
		return 0
	}
	return max(int(h.cfg.DeviceTTL/(24*time.Hour)), 1)
}

// loginGone: the pending login no longer exists; start again.
func loginGone(err error) bool {
	return errors.Is(err, stepup.ErrLoginFailed) || errors.Is(err, stepup.ErrChallengeNotFound) ||
		errors.Is(err, store.ErrExpired) || errors.Is(err, store.ErrConsumed) || errors.Is(err, store.ErrNotFound) ||
		errors.Is(err, store.ErrTooManyAttempts)
}
