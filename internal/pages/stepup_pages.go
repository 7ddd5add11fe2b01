package pages

import (
	"errors"
	"net/http"
	"strings"

	"github.com/stepup-bridge/stepup-bridge/internal/stepup"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// The step-up pages: the application posts the user's access token and an
// allow-listed return_to to /pages/stepup; the user chooses a factor, gets
// it delivered if it delivers, enters the code, and is sent back to
// return_to. The application then refreshes its token, which carries the
// step-up claim. The token travels in the pages' forms (never in a URL or a
// cookie); the pages are no-store and run no script.

// stepUpForm reads the fields every step-up form carries.
type stepUpForm struct {
	token, returnTo, acr string
}

func (h *Handler) readStepUpForm(r *http.Request) (stepUpForm, error) {
	f := stepUpForm{token: r.PostForm.Get("access_token"), acr: r.PostForm.Get("acr_values")}
	rt, err := h.returnTo.Check(r.PostForm.Get("return_to"))
	if err != nil {
		return f, err
	}
	f.returnTo = rt
	if len(f.acr) > 64 {
		return f, ErrReturnToRefused
	}
	return f, nil
}

func (h *Handler) stepUpView(f stepUpForm) *view {
	return &view{Title: "Verify it's you", AccessToken: f.token, ReturnTo: f.returnTo, ACR: f.acr}
}

func (h *Handler) stepUpEntry(w http.ResponseWriter, r *http.Request) {
	if err := h.parseEntry(r); err != nil {
		h.fail(w, r, err)
		return
	}
	f, err := h.readStepUpForm(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.stepUpChoose(w, r, f, "", http.StatusOK, "")
}

// stepUpChoose renders the factor choice (with an error, if any).
func (h *Handler) stepUpChoose(w http.ResponseWriter, r *http.Request, f stepUpForm, chosen string, status int, msg string) {
	claims, err := h.verifyUser(r.Context(), f.token)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	active, err := h.cfg.Factors.Active(r.Context(), claims.Subject)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v := h.stepUpView(f)
	v.Error = msg
	if len(active) == 0 {
		v.Error = "You have no second factor set up yet, so you cannot verify. Set one up first."
		h.render(w, r, http.StatusForbidden, "message", v)
		return
	}
	v.Factors = h.options(active, chosen)
	h.render(w, r, status, "stepup", v)
}

func (h *Handler) stepUpChallenge(w http.ResponseWriter, r *http.Request) {
	if err := h.parsePost(r); err != nil {
		h.fail(w, r, err)
		return
	}
	f, err := h.readStepUpForm(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	factor := r.PostForm.Get("factor")
	if factor == "" {
		h.stepUpChoose(w, r, f, "", http.StatusBadRequest, "Choose a method.")
		return
	}
	c, err := h.cfg.Flows.CreateChallenge(r.Context(), stepup.ChallengeRequest{
		Request: stepup.Request{AccessToken: f.token, IP: h.cfg.ClientIP(r)}, Factor: factor,
		ACRValues: strings.Fields(f.acr), Action: stepup.Action{URI: f.returnTo},
	})
	if err != nil {
		status, msg := h.explain(r, err)
		h.stepUpChoose(w, r, f, factor, status, msg)
		return
	}
	v := h.stepUpView(f)
	v.Factor, v.ChallengeID, v.Delivery = c.Factor, c.ID, c.Delivery
	h.render(w, r, http.StatusOK, "stepup_code", v)
}

func (h *Handler) stepUpVerify(w http.ResponseWriter, r *http.Request) {
	if err := h.parsePost(r); err != nil {
		h.fail(w, r, err)
		return
	}
	f, err := h.readStepUpForm(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v := h.stepUpView(f)
	v.Factor, v.ChallengeID = r.PostForm.Get("factor"), r.PostForm.Get("challenge_id")
	code := strings.TrimSpace(r.PostForm.Get("code"))
	if code == "" || len(code) > 64 {
		v.Error = "Enter the code."
		h.render(w, r, http.StatusBadRequest, "stepup_code", v)
		return
	}
	_, err = h.cfg.Flows.VerifyChallenge(r.Context(), stepup.VerifyRequest{
		Request:     stepup.Request{AccessToken: f.token, IP: h.cfg.ClientIP(r)},
		ChallengeID: v.ChallengeID, Code: code,
	})
	if err != nil {
		status, msg := h.explain(r, err)
		var wrong *stepup.InvalidCodeError
		if errors.As(err, &wrong) && wrong.Remaining > 0 {
			v.Error, v.Remaining = msg, wrong.Remaining
			h.render(w, r, status, "stepup_code", v)
			return
		}
		if challengeGone(err) || errors.As(err, &wrong) {
			h.stepUpChoose(w, r, f, v.Factor, status, msg+" Start again.")
			return
		}
		v.Error = msg
		h.render(w, r, status, "stepup_code", v)
		return
	}
	h.done(w, r, f.returnTo, "Verified.")
}

func challengeGone(err error) bool {
	return errors.Is(err, stepup.ErrChallengeNotFound) || errors.Is(err, store.ErrExpired) ||
		errors.Is(err, store.ErrConsumed) || errors.Is(err, store.ErrTooManyAttempts)
}
