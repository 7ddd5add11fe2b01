package pages

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/internal/devices"
	"github.com/stepup-bridge/stepup-bridge/internal/notify"
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

type fakeDevices struct {
	list    []devices.Device
	revoked []string
}

func (f *fakeDevices) List(_ context.Context, userID string) ([]devices.Device, error) {
	if userID != "u" {
		return nil, nil
	}
	var out []devices.Device
	for _, d := range f.list {
		if !slices.Contains(f.revoked, d.ID) {
			out = append(out, d)
		}
	}
	return out, nil
}

func (f *fakeDevices) Revoke(_ context.Context, userID, id, by string, _ devices.Meta) error {
	if userID != "u" || by != devices.RevokedByUser || !slices.ContainsFunc(f.list, func(d devices.Device) bool { return d.ID == id }) {
		return devices.ErrNotFound
	}
	f.revoked = append(f.revoked, id)
	return nil
}

type fakeActivity struct{}

func (fakeActivity) Activity(_ context.Context, userID string, _ int) ([]notify.Activity, error) {
	return []notify.Activity{{Event: notify.EventNewDevice, Title: "new sign-in to your account", Time: time.Unix(1700000000, 0),
		Details: map[string]string{"device": "Firefox on Linux", "ip": "192.0.2.1"}}}, nil
}

// TestFactorsPageDevicesAndActivity: the factors page lists the user's
// trusted devices and recent security activity, and revokes a device with
// a CSRF-checked form and no step-up.
func TestFactorsPageDevicesAndActivity(t *testing.T) {
	fd := &fakeDevices{list: []devices.Device{{ID: "dev-1", Label: "Firefox on Linux", ExpiresAt: time.Now().Add(time.Hour)}}}
	h, err := New(Config{Flows: &fakeFlows{}, Factors: fakeFactors{}, Verifier: fakeVerifier{}, PublicURL: "https://id.example.com",
		CSRFKey: []byte(strings.Repeat("k", 32)), Devices: fd, Activity: fakeActivity{}, Explain: func(error) (int, string) { return 404, "no such device" }})
	if err != nil {
		t.Fatal(err)
	}
	entry := httptest.NewRequest("POST", "https://id.example.com/pages/factors", strings.NewReader(url.Values{"access_token": {"good-token"}}.Encode()))
	entry.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	entry.Header.Set("Origin", "https://id.example.com")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, entry)
	body := rec.Body.String()
	if rec.Code != 200 || !strings.Contains(body, "Trusted devices") || !strings.Contains(body, `value="dev-1"`) ||
		!strings.Contains(body, "Recent security activity") || !strings.Contains(body, "192.0.2.1") {
		t.Fatalf("factors page = %d\n%s", rec.Code, body)
	}
	csrfCk := rec.Result().Cookies()[0]
	tok := csrfRE.FindStringSubmatch(body)[1]
	revoke := func(id, csrf string) *httptest.ResponseRecorder {
		form := url.Values{"access_token": {"good-token"}, "device": {id}, "csrf_token": {csrf}}
		req := httptest.NewRequest("POST", "https://id.example.com/pages/factors/devices/revoke", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(csrfCk)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	if rec := revoke("dev-1", "forged"); rec.Code != http.StatusForbidden || len(fd.revoked) != 0 {
		t.Fatalf("revoke without the CSRF token = %d, revoked %v", rec.Code, fd.revoked)
	}
	rec = revoke("dev-1", tok)
	if rec.Code != 200 || !slices.Equal(fd.revoked, []string{"dev-1"}) || strings.Contains(rec.Body.String(), `value="dev-1"`) {
		t.Fatalf("revoke = %d, revoked %v\n%s", rec.Code, fd.revoked, rec.Body)
	}
	if rec := revoke("someone-elses", tok); rec.Code != 404 {
		t.Fatalf("revoking an unknown device = %d", rec.Code)
	}
}
