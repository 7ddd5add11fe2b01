package pages

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/internal/stepup"
	"github.com/stepup-bridge/stepup-bridge/internal/token"
)

// fakeFlows records that a flow was reached; CSRF tests need to know the
// refusal came before any work.
type fakeFlows struct {
	logins  atomic.Int32
	logouts atomic.Int32
}

func (f *fakeFlows) Logout(context.Context, bridge.Tokens) { f.logouts.Add(1) }

func (f *fakeFlows) Login(_ context.Context, req stepup.LoginRequest) (stepup.LoginResult, error) {
	f.logins.Add(1)
	if req.Username == "no-mfa" {
		return stepup.LoginResult{Tokens: &bridge.Tokens{AccessToken: "a", RefreshToken: "r"}}, nil
	}
	return stepup.LoginResult{Pending: &stepup.PendingLogin{MFAToken: "mfa-token-value", Factors: []string{"pin"}, ExpiresAt: time.Now().Add(time.Minute)}}, nil
}
func (f *fakeFlows) LoginMFA(context.Context, stepup.MFARequest) (stepup.Grant, error) {
	return stepup.Grant{}, nil
}
func (f *fakeFlows) LoginChallenge(context.Context, string, string, string) (factors.Delivery, error) {
	return factors.Delivery{}, nil
}
func (f *fakeFlows) CreateChallenge(context.Context, stepup.ChallengeRequest) (stepup.Challenge, error) {
	return stepup.Challenge{ID: "c", Factor: "pin"}, nil
}
func (f *fakeFlows) VerifyChallenge(context.Context, stepup.VerifyRequest) (stepup.Grant, error) {
	return stepup.Grant{}, nil
}

type fakeFactors struct{}

func (fakeFactors) Names() []string { return []string{"pin"} }
func (fakeFactors) Challenge(context.Context, string, string, factors.ChallengeRequest, factors.Meta) (factors.Delivery, error) {
	return factors.Delivery{Channel: "sms", Destination: "+49 *** *** 67", CodeLength: 6}, nil
}
func (fakeFactors) Factor(string) (factors.Factor, bool) { return nil, false }
func (fakeFactors) Status(context.Context, string) ([]factors.Status, error) {
	return []factors.Status{{Factor: "pin", State: "active"}}, nil
}
func (fakeFactors) Active(context.Context, string) ([]string, error) { return []string{"pin"}, nil }
func (fakeFactors) Enrol(context.Context, string, string, factors.EnrolRequest, factors.Meta) (factors.Enrolment, error) {
	return factors.Enrolment{}, nil
}
func (fakeFactors) Confirm(context.Context, string, string, string, factors.Meta) (factors.Result, error) {
	return factors.Result{}, nil
}

type fakeVerifier struct{}

func (fakeVerifier) Verify(_ context.Context, raw string) (*token.Claims, error) {
	if raw != "good-token" {
		return nil, token.ErrInvalidSignature
	}
	return &token.Claims{Subject: "u", SessionID: "s"}, nil
}

func newTestPages(t *testing.T, publicURL string) (*Handler, *fakeFlows) {
	t.Helper()
	ff := &fakeFlows{}
	h, err := New(Config{Flows: ff, Factors: fakeFactors{}, Verifier: fakeVerifier{}, PublicURL: publicURL,
		ReturnTo: []string{"https://app.example.com/after/"}, LoginEnabled: true, CSRFKey: []byte(strings.Repeat("k", 32))})
	if err != nil {
		t.Fatal(err)
	}
	return h, ff
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// getForm loads the login page and returns its CSRF cookie and token.
func getForm(t *testing.T, h http.Handler, target string) (*http.Cookie, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", target, nil))
	if rec.Code != 200 {
		t.Fatalf("GET %s = %d", target, rec.Code)
	}
	m := csrfRE.FindStringSubmatch(rec.Body.String())
	cookies := rec.Result().Cookies()
	if m == nil || len(cookies) != 1 {
		t.Fatalf("no CSRF token or cookie: %v", cookies)
	}
	return cookies[0], m[1]
}

func TestCSRFRefusals(t *testing.T) {
	h, ff := newTestPages(t, "https://id.example.com")
	ck, tok := getForm(t, h, "https://id.example.com/pages/login")
	if ck.Name != "__Host-stepup-csrf" || !ck.HttpOnly || !ck.Secure || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" {
		t.Fatalf("CSRF cookie flags: %+v", ck)
	}
	_, otherTok := getForm(t, h, "https://id.example.com/pages/login")
	form := func(token string) string {
		v := url.Values{"username": {"alice"}, "password": {"alice"}}
		if token != "" {
			v.Set("csrf_token", token)
		}
		return v.Encode()
	}
	cases := []struct {
		name    string
		body    string
		cookie  bool
		headers map[string]string
		want    int
	}{
		{"valid", form(tok), true, map[string]string{"Origin": "https://id.example.com", "Sec-Fetch-Site": "same-origin"}, http.StatusSeeOther},
		{"valid without Origin (old client)", form(tok), true, nil, http.StatusSeeOther},
		{"missing token", form(""), true, nil, http.StatusForbidden},
		{"missing cookie", form(tok), false, nil, http.StatusForbidden},
		{"token of another cookie", form(otherTok), true, nil, http.StatusForbidden},
		{"garbage token", form("AAAA"), true, nil, http.StatusForbidden},
		{"cross-site Origin", form(tok), true, map[string]string{"Origin": "https://evil.example.com"}, http.StatusForbidden},
		{"allow-listed app origin is not enough for the login form", form(tok), true, map[string]string{"Origin": "https://app.example.com"}, http.StatusForbidden},
		{"null Origin", form(tok), true, map[string]string{"Origin": "null"}, http.StatusForbidden},
		{"null Origin from another site", form(tok), true, map[string]string{"Origin": "null", "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"null Origin of the same origin (no-referrer policy)", form(tok), true, map[string]string{"Origin": "null", "Sec-Fetch-Site": "same-origin"}, http.StatusSeeOther},
		{"cross-site fetch without Origin", form(tok), true, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"same-site fetch without Origin", form(tok), true, map[string]string{"Sec-Fetch-Site": "same-site"}, http.StatusForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := ff.logins.Load()
			req := httptest.NewRequest("POST", "https://id.example.com/pages/login", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tc.cookie {
				req.AddCookie(ck)
			}
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("status = %d, want %d: %s", rec.Code, tc.want, rec.Body)
			}
			reached := ff.logins.Load() > before
			if reached != (tc.want == http.StatusSeeOther) {
				t.Fatalf("login flow reached = %v", reached)
			}
			if tc.want == http.StatusForbidden && !strings.Contains(rec.Body.String(), `role="alert"`) {
				t.Fatal("refusal not announced with role=alert")
			}
			if tc.want == http.StatusSeeOther {
				var mfa *http.Cookie
				for _, c := range rec.Result().Cookies() {
					if c.Name == "__Host-stepup-mfa" {
						mfa = c
					}
				}
				if mfa == nil || !mfa.HttpOnly || !mfa.Secure || mfa.SameSite != http.SameSiteStrictMode || mfa.MaxAge <= 0 || mfa.MaxAge > 300 {
					t.Fatalf("mfa cookie: %+v", mfa)
				}
				if !strings.HasPrefix(mfa.Value, "mfa-token-value|") {
					t.Fatalf("mfa cookie holds %q", mfa.Value)
				}
			}
		})
	}
}

func TestEntryFormsOrigin(t *testing.T) {
	h, _ := newTestPages(t, "https://id.example.com")
	body := url.Values{"access_token": {"good-token"}, "return_to": {"https://app.example.com/after/x"}}.Encode()
	for _, tc := range []struct {
		origin string
		want   int
	}{
		{"https://app.example.com", 200},
		{"https://id.example.com", 200},
		{"https://evil.example.com", 403},
		{"http://app.example.com", 403},
	} {
		t.Run(tc.origin, func(t *testing.T) {
			req := httptest.NewRequest("POST", "https://id.example.com/pages/stepup", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", tc.origin)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("status = %d, want %d: %s", rec.Code, tc.want, rec.Body)
			}
		})
	}
	t.Run("return_to off the list", func(t *testing.T) {
		for _, rt := range []string{"https://evil.example.com/after/", "//evil.example.com", "javascript:alert(1)", "https://app.example.com@evil.example.com/after/"} {
			b := url.Values{"access_token": {"good-token"}, "return_to": {rt}}.Encode()
			req := httptest.NewRequest("POST", "https://id.example.com/pages/stepup", strings.NewReader(b))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", "https://app.example.com")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusBadRequest || strings.Contains(rec.Body.String(), "evil") {
				t.Fatalf("return_to %q: status %d", rt, rec.Code)
			}
		}
	})
	t.Run("bad token", func(t *testing.T) {
		b := url.Values{"access_token": {"forged"}, "return_to": {"https://app.example.com/after/"}}.Encode()
		req := httptest.NewRequest("POST", "https://id.example.com/pages/stepup", strings.NewReader(b))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code < 400 {
			t.Fatalf("forged token accepted: %d", rec.Code)
		}
	})
}

func TestSecurityHeaders(t *testing.T) {
	h, _ := newTestPages(t, "")
	for _, p := range []string{"/pages/login", "/pages/static/style.css", "/pages/nothing"} {
		t.Run(p, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "http://127.0.0.1:8080"+p, nil))
			hd := rec.Header()
			if hd.Get("Content-Security-Policy") != ContentSecurityPolicy || hd.Get("X-Frame-Options") != "DENY" ||
				hd.Get("X-Content-Type-Options") != "nosniff" || hd.Get("Referrer-Policy") != "same-origin" {
				t.Fatalf("headers: %v", hd)
			}
		})
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "http://127.0.0.1:8080/pages/login", nil))
	body := rec.Body.String()
	for _, want := range []string{`<html lang="en">`, `<label for="username">`, `<label for="password">`, `autocomplete="current-password"`} {
		if !strings.Contains(body, want) {
			t.Fatalf("login page lacks %s", want)
		}
	}
	if strings.Contains(body, "<script") || strings.Contains(body, " style=") || strings.Contains(body, "http://") || strings.Contains(body, "https://") {
		t.Fatal("the page has script, inline style or an external reference")
	}
	if rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatal("page may be cached")
	}
	// Plain http on loopback is dev mode: cookies without Secure and without the __Host- prefix.
	ck := rec.Result().Cookies()
	if len(ck) != 1 || ck[0].Secure || ck[0].Name != "stepup-csrf" || !ck[0].HttpOnly {
		t.Fatalf("dev cookie: %+v", ck)
	}
	// Plain http on a real host (TLS ends at a proxy): Secure.
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "http://id.example.com/pages/login", nil))
	if ck := rec.Result().Cookies(); len(ck) != 1 || !ck[0].Secure {
		t.Fatalf("cookie on a non-loopback host: %+v", ck)
	}
}

// TestDroppedTokensEndTheirSession: the pages never give the browser
// Keycloak tokens, so a login that released some ends their session.
func TestDroppedTokensEndTheirSession(t *testing.T) {
	h, ff := newTestPages(t, "https://id.example.com")
	ck, tok := getForm(t, h, "https://id.example.com/pages/login")
	body := url.Values{"username": {"no-mfa"}, "password": {"pw"}, "csrf_token": {tok}}.Encode()
	req := httptest.NewRequest("POST", "https://id.example.com/pages/login", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(ck)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("login without MFA = %d: %s", rec.Code, rec.Body)
	}
	if got := ff.logouts.Load(); got != 1 {
		t.Fatalf("logouts = %d, want 1", got)
	}
	if strings.Contains(rec.Body.String(), `"a"`) || rec.Header().Get("Set-Cookie") != "" && strings.Contains(rec.Header().Get("Set-Cookie"), "=a") {
		t.Fatal("a token reached the browser")
	}
}
