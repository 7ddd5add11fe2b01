package pages

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/internal/devices"
	"github.com/stepup-bridge/stepup-bridge/internal/stepup"
)

// deviceFlows is fakeFlows with a trusted device: LoginMFA issues
// "device-token" when asked, Login skips the factor when it comes back.
type deviceFlows struct {
	fakeFlows
	lastLogin stepup.LoginRequest
	lastMFA   stepup.MFARequest
}

func (f *deviceFlows) Login(ctx context.Context, req stepup.LoginRequest) (stepup.LoginResult, error) {
	f.lastLogin = req
	if req.DeviceToken == "device-token" {
		return stepup.LoginResult{Tokens: &bridge.Tokens{AccessToken: "a", RefreshToken: "r"}, TrustedDevice: &devices.Device{ID: "d1"}}, nil
	}
	return f.fakeFlows.Login(ctx, req)
}

func (f *deviceFlows) LoginMFA(_ context.Context, req stepup.MFARequest) (stepup.Grant, error) {
	f.lastMFA = req
	g := stepup.Grant{Tokens: &bridge.Tokens{AccessToken: "a", RefreshToken: "r"}}
	if req.TrustDevice {
		g.Device = &devices.Issued{Token: "device-token", Device: devices.Device{ID: "d1", ExpiresAt: time.Now().Add(7 * 24 * time.Hour)}}
	}
	return g, nil
}

const testUA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"

func TestTrustThisDevice(t *testing.T) {
	for _, enabled := range []bool{true, false} {
		t.Run(map[bool]string{true: "devices on", false: "devices off"}[enabled], func(t *testing.T) {
			ff := &deviceFlows{}
			cfg := Config{Flows: ff, Factors: fakeFactors{}, Verifier: fakeVerifier{}, PublicURL: "https://id.example.com",
				LoginEnabled: true, CSRFKey: []byte(strings.Repeat("k", 32))}
			if enabled {
				cfg.DeviceCookie, cfg.DeviceTTL = "stepup_device", 7*24*time.Hour
			}
			h, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			post := func(path string, form url.Values, cookies ...*http.Cookie) *httptest.ResponseRecorder {
				csrfCk, tok := getForm(t, h, "https://id.example.com/pages/login")
				form.Set("csrf_token", tok)
				req := httptest.NewRequest("POST", "https://id.example.com"+path, strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("User-Agent", testUA)
				req.AddCookie(csrfCk)
				for _, c := range cookies {
					req.AddCookie(c)
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				return rec
			}

			// The login asks for the factor and sets the mfa cookie.
			rec := post("/pages/login", url.Values{"username": {"alice"}, "password": {"alice"}})
			var mfa *http.Cookie
			for _, c := range rec.Result().Cookies() {
				if c.Name == "__Host-stepup-mfa" {
					mfa = c
				}
			}
			if rec.Code != http.StatusSeeOther || mfa == nil {
				t.Fatalf("login = %d, cookies %v", rec.Code, rec.Result().Cookies())
			}
			if ff.lastLogin.UserAgent != testUA || ff.lastLogin.DeviceToken != "" {
				t.Fatalf("login request = %+v", ff.lastLogin)
			}
			// The form offers the trust only when devices are on.
			form := httptest.NewRequest("GET", "https://id.example.com/pages/login/mfa", nil)
			form.AddCookie(mfa)
			page := httptest.NewRecorder()
			h.ServeHTTP(page, form)
			if offered := strings.Contains(page.Body.String(), `name="trust_device"`); offered != enabled {
				t.Fatalf("trust offered = %v, want %v", offered, enabled)
			}

			rec = post("/pages/login/mfa", url.Values{"factor": {"pin"}, "code": {"4826"}, "trust_device": {"1"}}, mfa)
			if rec.Code != http.StatusOK || ff.lastMFA.TrustDevice != enabled || ff.lastMFA.UserAgent != testUA {
				t.Fatalf("mfa = %d, request %+v", rec.Code, ff.lastMFA)
			}
			var dev *http.Cookie
			for _, c := range rec.Result().Cookies() {
				if strings.Contains(c.Name, "stepup_device") {
					dev = c
				}
			}
			if !enabled {
				if dev != nil {
					t.Fatalf("device cookie set with devices off: %+v", dev)
				}
				return
			}
			if dev == nil || dev.Name != "__Secure-stepup_device" || dev.Value != "device-token" || !dev.HttpOnly || !dev.Secure ||
				dev.SameSite != http.SameSiteStrictMode || dev.Path != "/pages/" || dev.MaxAge < 7*24*3600-5 || dev.MaxAge > 7*24*3600 {
				t.Fatalf("device cookie = %+v", dev)
			}
			if ff.logouts.Load() != 1 {
				t.Fatal("released tokens were not logged out")
			}

			// The next login carries the cookie and skips the factor.
			rec = post("/pages/login", url.Values{"username": {"alice"}, "password": {"alice"}}, dev)
			if rec.Code != http.StatusOK || ff.lastLogin.DeviceToken != "device-token" || !strings.Contains(rec.Body.String(), "trusted device") {
				t.Fatalf("login on the trusted device = %d, request %+v", rec.Code, ff.lastLogin)
			}
			if ff.logouts.Load() != 2 {
				t.Fatal("the trusted-device login's tokens were not logged out")
			}
		})
	}
}
