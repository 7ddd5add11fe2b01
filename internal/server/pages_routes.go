package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"net/http"

	"github.com/stepup-bridge/stepup-bridge/internal/pages"
)

// pageRoutes mounts the hosted pages when the flows and factors are wired.
func (s *Server) pageRoutes() {
	if s.stepup == nil || s.factors == nil || s.verifier == nil || !s.cfg.Pages.Enabled {
		return
	}
	pc := pages.Config{ReturnTo: s.cfg.Pages.ReturnTo}
	if s.pages != nil {
		pc = *s.pages
	}
	pc.Flows, pc.Factors, pc.Verifier = s.stepup, s.factors, s.verifier
	if pc.PublicURL == "" {
		pc.PublicURL = s.cfg.PublicURL
	}
	pc.LoginEnabled = s.cfg.Login.Enabled
	if pc.LoginTTL == 0 {
		pc.LoginTTL = s.cfg.Login.MFATokenTTL
	}
	if pc.ManagementMaxAge == 0 {
		pc.ManagementMaxAge = s.cfg.StepUp.ManagementMaxAge
	}
	if pc.CSRFKey == nil {
		pc.CSRFKey = csrfKeyFromPepper(s.cfg.PepperBytes)
	}
	pc.Explain = func(err error) (int, string) {
		ae := toAPIError(err)
		return ae.Status, ae.Description
	}
	pc.RecentStepUp = s.recentStepUp
	if s.devices != nil && pc.DeviceCookie == "" {
		pc.DeviceCookie, pc.DeviceTTL = s.cfg.Devices.CookieName, s.cfg.Devices.TTL
		pc.Devices = s.devices
	}
	if s.notifier != nil && pc.Activity == nil {
		pc.Activity = s.notifier
	}
	pc.ClientIP = func(r *http.Request) string { return ClientIP(r.Context()) }
	pc.Now = s.now
	if pc.Logger == nil {
		pc.Logger = s.log
	}
	h, err := pages.New(pc)
	if err != nil {
		// Options were checked by New's caller; a bad allow-list must not
		// take the API down: the pages stay off and say so.
		s.log.Error("hosted pages disabled", "err", err)
		return
	}
	s.mux.Handle("/pages/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			s.limitIP(h.ServeHTTP)(w, r)
			return
		}
		h.ServeHTTP(w, r)
	}))
}

// csrfKeyFromPepper derives the pages' CSRF key from the pepper, which
// every replica shares; without a pepper (tests) the pages make a random
// key.
func csrfKeyFromPepper(pepper func() ([]byte, error)) []byte {
	p, err := pepper()
	if err != nil || len(p) == 0 {
		return nil
	}
	m := hmac.New(sha256.New, p)
	m.Write([]byte("stepup-bridge pages csrf key v1"))
	return m.Sum(nil)
}
