package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	pqhotp "github.com/pquerna/otp/hotp"
	pqtotp "github.com/pquerna/otp/totp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stepup-bridge/stepup-bridge/config"
	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/factors/builtin"
	"github.com/stepup-bridge/stepup-bridge/internal/server"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
	"github.com/stepup-bridge/stepup-bridge/internal/store/sqlite"
	"github.com/stepup-bridge/stepup-bridge/internal/testenv"
	"github.com/stepup-bridge/stepup-bridge/internal/token"
)

// Handler-level tests of the factor endpoints, black box through
// Server.Handler: the real factors and registry on a real SQLite store;
// only token verification is replaced (tokens are names for claims the
// test chooses). TestFactorsAuthenticatorAppEndToEnd does the same
// through Keycloak-issued tokens and real HTTP.

// The answers' shapes, as documented in docs/api.md.
type factorListJSON struct {
	Factors        []factors.Status `json:"factors"`
	Active         []string         `json:"active"`
	StepUpRequired bool             `json:"stepup_required"`
}

type factorEnrolmentJSON struct {
	Factor       string   `json:"factor"`
	CredentialID string   `json:"credential_id"`
	State        string   `json:"state"`
	Replaced     bool     `json:"replaced"`
	Codes        []string `json:"codes"`
	URI          string   `json:"otpauth_uri"`
	Secret       string   `json:"secret"`
	QRPNG        []byte   `json:"qr_png"`
	QRURL        string   `json:"qr_png_url"`
	ConfirmURL   string   `json:"confirm_url"`
}

type factorConfirmedJSON struct {
	Factor       string    `json:"factor"`
	CredentialID string    `json:"credential_id"`
	State        string    `json:"state"`
	ConfirmedAt  time.Time `json:"confirmed_at"`
}

type factorErrorJSON struct {
	Code        string `json:"error"`
	Description string `json:"error_description"`
}

func factorError(t *testing.T, body io.Reader) factorErrorJSON {
	t.Helper()
	var e factorErrorJSON
	if err := json.NewDecoder(body).Decode(&e); err != nil {
		t.Fatalf("error body is not JSON: %v", err)
	}
	if e.Code == "" || e.Description == "" {
		t.Fatalf("error body lacks error or error_description: %+v", e)
	}
	return e
}

type factorClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *factorClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *factorClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// factorTokens accepts the tokens the test registered.
type factorTokens struct {
	mu sync.Mutex
	m  map[string]token.Claims
}

func (v *factorTokens) Verify(_ context.Context, raw string) (*token.Claims, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	c, ok := v.m[raw]
	if !ok {
		return nil, fmt.Errorf("test verifier: %w", token.ErrInvalidSignature)
	}
	return &c, nil
}

type factorLogs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *factorLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *factorLogs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type factorEnv struct {
	t     *testing.T
	h     http.Handler
	st    *sqlite.Store
	reg   *factors.Registry
	clock *factorClock
	ver   *factorTokens
	logs  *factorLogs
	n     int
}

func factorTestConfig() config.Config {
	cfg := config.Default()
	cfg.Secrets.EncryptionKeys = []config.Secret{config.Secret("k1:" + base64.StdEncoding.EncodeToString([]byte("abcdefghijklmnopqrstuvwxyz012345")))}
	cfg.Secrets.Pepper = config.Secret(base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")))
	cfg.Factors.Enabled = []string{"totp", "hotp", "pin", "backup_code"}
	cfg.Factors.PIN.Argon2 = config.Argon2{Time: 1, MemoryKiB: 8192, Threads: 1}
	cfg.Listen.MaxBodyBytes = 1024
	cfg.RateLimits.IPRequestsPerMinute = 10000
	return cfg
}

func newFactorEnv(t *testing.T, mutate func(*config.Config)) *factorEnv {
	t.Helper()
	cfg := factorTestConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "s.db")})
	if err != nil {
		t.Fatalf("opening sqlite: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	clock := &factorClock{t: time.Unix(1700000000, 0).UTC()}
	logs := &factorLogs{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg, err := builtin.NewRegistry(cfg, builtin.Deps{Store: st, Now: clock.Now, Registerer: prometheus.NewRegistry(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ver := &factorTokens{m: map[string]token.Claims{}}
	s, err := server.New(server.Options{Config: cfg, Store: st, Logger: log, Now: clock.Now, Verifier: ver, Factors: reg})
	if err != nil {
		t.Fatal(err)
	}
	return &factorEnv{t: t, h: s.Handler(), st: st, reg: reg, clock: clock, ver: ver, logs: logs}
}

// userClaims are what a password grant gives: acr 1, an hour old.
func (e *factorEnv) userClaims(user string) token.Claims {
	now := e.clock.Now()
	return token.Claims{
		Subject: user, SessionID: "sid-" + user, PreferredUsername: user, ACR: "1",
		AuthTime: now.Add(-time.Hour), IssuedAt: now, ExpiresAt: now.Add(5 * time.Minute), Type: "Bearer",
	}
}

// stepUp is a step-up entry of c's session, age old.
func (e *factorEnv) stepUp(c token.Claims, age time.Duration) token.StepUpEntry {
	iat := e.clock.Now().Add(-age)
	return token.StepUpEntry{SID: c.SessionID, ACR: "2", AMR: []string{"pin"}, IAT: iat.Unix(), EXP: iat.Add(time.Hour).Unix()}
}

// token registers c and returns a bearer token standing for it.
func (e *factorEnv) token(c token.Claims) string {
	e.ver.mu.Lock()
	defer e.ver.mu.Unlock()
	e.n++
	raw := fmt.Sprintf("tok-%d", e.n)
	e.ver.m[raw] = c
	return raw
}

// plain is a token without any step-up; fresh one stepped up just now.
func (e *factorEnv) plain(user string) string { return e.token(e.userClaims(user)) }

func (e *factorEnv) fresh(user string) string {
	c := e.userClaims(user)
	c.StepUp = []token.StepUpEntry{e.stepUp(c, 0)}
	return e.token(c)
}

type factorReq struct {
	contentType string
}

// do sends one request; body nil sends none, a string is sent as is,
// anything else as JSON.
func (e *factorEnv) do(method, path, tok string, body any, opts ...factorReq) *httptest.ResponseRecorder {
	e.t.Helper()
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case string:
		rd, ctype = strings.NewReader(b), "application/json"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd, ctype = bytes.NewReader(j), "application/json"
	}
	for _, o := range opts {
		ctype = o.contentType
	}
	req := httptest.NewRequest(method, path, rd)
	req.RemoteAddr = "192.0.2.10:4000"
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec
}

func (e *factorEnv) mustStatus(rec *httptest.ResponseRecorder, want int) {
	e.t.Helper()
	if rec.Code != want {
		e.t.Fatalf("status %d, want %d: %s", rec.Code, want, rec.Body)
	}
}

// list is GET /v1/factors.
func (e *factorEnv) list(tok string) factorListJSON {
	e.t.Helper()
	rec := e.do("GET", "/v1/factors", tok, nil)
	e.mustStatus(rec, http.StatusOK)
	var out factorListJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *factorEnv) state(user, factor string) factors.Status {
	e.t.Helper()
	st, err := e.reg.Status(context.Background(), user)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, s := range st {
		if s.Factor == factor {
			return s
		}
	}
	e.t.Fatalf("no status of %s", factor)
	return factors.Status{}
}

func (e *factorEnv) enrol(tok, factor string, body any) factorEnrolmentJSON {
	e.t.Helper()
	rec := e.do("POST", "/v1/factors/"+factor, tok, body)
	e.mustStatus(rec, http.StatusCreated)
	var out factorEnrolmentJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func factorTOTP(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := pqtotp.GenerateCodeCustom(secret, at, pqtotp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *factorEnv) audit(user string) []store.AuditEvent {
	e.t.Helper()
	evs, err := e.st.ListAudit(context.Background(), store.AuditQuery{UserID: user, Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

// checkFactorStepUp asserts RFC 9470's answer.
func checkFactorStepUp(t *testing.T, rec *httptest.ResponseRecorder, maxAge int) {
	t.Helper()
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401: %s", rec.Code, rec.Body)
	}
	h := rec.Header().Get("WWW-Authenticate")
	want := fmt.Sprintf(`Bearer error="insufficient_user_authentication", error_description="managing second factors requires a step-up within the last %d seconds", acr_values="2", max_age=%d`, maxAge, maxAge)
	if h != want {
		t.Fatalf("WWW-Authenticate = %s\nwant             %s", h, want)
	}
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if body["error"] != "insufficient_user_authentication" || body["acr_values"] != "2" || body["max_age"] != float64(maxAge) {
		t.Fatalf("body = %v", body)
	}
	if fs, _ := body["factors"].([]any); len(fs) == 0 {
		t.Fatalf("body names no factor to step up with: %v", body)
	}
}

func TestFactorsFirstEnrolmentNeedsNoStepUp(t *testing.T) {
	t.Parallel()
	e := newFactorEnv(t, nil)
	tok := e.plain("alice")

	l := e.list(tok)
	if len(l.Factors) != 4 || len(l.Active) != 0 || l.StepUpRequired {
		t.Fatalf("fresh user: %+v", l)
	}
	for _, f := range l.Factors {
		if f.State != factors.StateNone {
			t.Fatalf("fresh user has %s in state %s", f.Factor, f.State)
		}
	}

	// An empty body sent chunked is as good as none.
	req := httptest.NewRequest("POST", "/v1/factors/hotp", io.MultiReader(strings.NewReader(" \n")))
	req.Header.Set("Authorization", "Bearer "+tok)
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	e.mustStatus(rec, http.StatusCreated)
	e.mustStatus(e.do("DELETE", "/v1/factors/hotp", tok, nil), http.StatusNoContent)

	// No body at all is fine for backup codes.
	enr := e.enrol(tok, "backup_code", nil)
	if enr.State != "active" || len(enr.Codes) != 10 || enr.Replaced || enr.Secret != "" || enr.QRURL != "" {
		t.Fatalf("backup codes: %+v", enr)
	}
	l = e.list(tok)
	bc := l.Factors[slices.IndexFunc(l.Factors, func(s factors.Status) bool { return s.Factor == "backup_code" })]
	if bc.State != "active" || bc.Remaining == nil || *bc.Remaining != 10 || bc.Low {
		t.Fatalf("backup code status: %+v", bc)
	}
	if !slices.Equal(l.Active, []string{"backup_code"}) || !l.StepUpRequired {
		t.Fatalf("after first factor: active %v, stepup_required %v", l.Active, l.StepUpRequired)
	}

	// The second one needs a step-up; the same token is now refused.
	checkFactorStepUp(t, e.do("POST", "/v1/factors/pin", tok, map[string]string{"pin": "5831", "confirmation": "5831"}), 300)
	if s := e.state("alice", "pin"); s.State != factors.StateNone {
		t.Fatalf("refused enrolment changed the PIN: %+v", s)
	}
	enr = e.enrol(e.fresh("alice"), "pin", map[string]string{"pin": "5831", "confirmation": "5831", "label": "Desk"})
	if enr.State != "active" || enr.CredentialID == "" {
		t.Fatalf("pin: %+v", enr)
	}
	if s := e.state("alice", "pin"); s.State != factors.StateActive || s.Label != "Desk" {
		t.Fatalf("pin status: %+v", s)
	}
	if _, err := e.reg.Verify(context.Background(), "pin", "alice", "5831", factors.Meta{}); err != nil {
		t.Fatalf("enrolled PIN does not verify: %v", err)
	}
}

// TestFactorsStepUpRule: which tokens count as a recent step-up for a user
// who has an active factor.
func TestFactorsStepUpRule(t *testing.T) {
	t.Parallel()
	e := newFactorEnv(t, func(c *config.Config) { c.StepUp.ManagementMaxAge = 2 * time.Minute })
	e.enrol(e.plain("alice"), "backup_code", nil)
	now := e.clock.Now()

	tests := []struct {
		name   string
		claims func(c token.Claims) token.Claims
		ok     bool
	}{
		{"no step-up", func(c token.Claims) token.Claims { return c }, false},
		{"fresh step-up", func(c token.Claims) token.Claims {
			c.StepUp = []token.StepUpEntry{e.stepUp(c, 0)}
			return c
		}, true},
		{"step-up at the limit", func(c token.Claims) token.Claims {
			c.StepUp = []token.StepUpEntry{e.stepUp(c, 2*time.Minute)}
			return c
		}, true},
		{"step-up too old", func(c token.Claims) token.Claims {
			c.StepUp = []token.StepUpEntry{e.stepUp(c, 2*time.Minute+time.Second)}
			return c
		}, false},
		{"step-up of another session", func(c token.Claims) token.Claims {
			s := e.stepUp(c, 0)
			s.SID = "another-session"
			c.StepUp = []token.StepUpEntry{s}
			return c
		}, false},
		{"step-up expired", func(c token.Claims) token.Claims {
			s := e.stepUp(c, 0)
			s.EXP = now.Unix()
			c.StepUp = []token.StepUpEntry{s}
			return c
		}, false},
		{"step-up below the level", func(c token.Claims) token.Claims {
			s := e.stepUp(c, 0)
			s.ACR = "1"
			c.StepUp = []token.StepUpEntry{s}
			return c
		}, false},
		{"step-up above the level", func(c token.Claims) token.Claims {
			s := e.stepUp(c, 0)
			s.ACR = "3"
			c.StepUp = []token.StepUpEntry{s}
			return c
		}, true},
		{"one good entry among bad ones", func(c token.Claims) token.Claims {
			old := e.stepUp(c, time.Hour)
			other := e.stepUp(c, 0)
			other.SID = "x"
			c.StepUp = []token.StepUpEntry{old, other, e.stepUp(c, time.Minute)}
			return c
		}, true},
		{"keycloak acr 2, recent auth_time", func(c token.Claims) token.Claims {
			c.ACR, c.AuthTime = "2", now.Add(-time.Minute)
			return c
		}, true},
		{"keycloak acr 2, old auth_time", func(c token.Claims) token.Claims {
			c.ACR, c.AuthTime = "2", now.Add(-10*time.Minute)
			return c
		}, false},
		{"keycloak acr 2, no auth_time", func(c token.Claims) token.Claims {
			c.ACR, c.AuthTime = "2", time.Time{}
			return c
		}, false},
		{"keycloak acr 1, recent auth_time", func(c token.Claims) token.Claims {
			c.ACR, c.AuthTime = "1", now
			return c
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok := e.token(tc.claims(e.userClaims("alice")))
			l := e.list(tok)
			if l.StepUpRequired == tc.ok {
				t.Fatalf("stepup_required = %v, want %v", l.StepUpRequired, !tc.ok)
			}
			rec := e.do("POST", "/v1/factors/backup_code/regenerate", tok, nil)
			if !tc.ok {
				checkFactorStepUp(t, rec, 120)
				return
			}
			if rec.Code != http.StatusCreated {
				t.Fatalf("status %d, want 201: %s", rec.Code, rec.Body)
			}
		})
	}
}

// TestFactorsStepUpLevels: acr values compare as numbers when both are
// integers (Keycloak's levels of authentication), otherwise only exactly.
func TestFactorsStepUpLevels(t *testing.T) {
	t.Parallel()
	tests := []struct {
		level, have string
		ok          bool
	}{
		{"2", "2", true}, {"2", "3", true}, {"2", "10", true}, {"2", "1", false}, {"2", "0", false},
		{"2", "gold", false}, {"gold", "gold", true}, {"gold", "2", false}, {"gold", "golden", false},
	}
	for _, tc := range tests {
		t.Run("level "+tc.level+" have "+tc.have, func(t *testing.T) {
			t.Parallel()
			e := newFactorEnv(t, func(c *config.Config) { c.StepUp.Level = tc.level })
			e.enrol(e.plain("alice"), "backup_code", nil)
			c := e.userClaims("alice")
			su := e.stepUp(c, 0)
			su.ACR = tc.have
			c.StepUp = []token.StepUpEntry{su}
			if l := e.list(e.token(c)); l.StepUpRequired == tc.ok {
				t.Fatalf("stepup_required = %v, want %v", l.StepUpRequired, !tc.ok)
			}
		})
	}
}

// TestFactorsBadInput: every refusal is a 4xx JSON error and leaves the
// user's factors as they were.
func TestFactorsBadInput(t *testing.T) {
	t.Parallel()
	e := newFactorEnv(t, nil)
	plain := e.plain("alice")
	e.enrol(plain, "pin", map[string]string{"pin": "5831", "confirmation": "5831"})
	fresh := e.fresh("alice")
	e.enrol(fresh, "totp", nil) // pending
	service := e.userClaims("svc")
	service.SessionID = ""
	serviceTok := e.token(service)

	long := strings.Repeat("x", 2000)
	tests := []struct {
		name, method, path string
		tok                string
		body               any
		ctype              string
		status             int
		code               string
		// reachesFactor: the factor itself refuses (and audits the try).
		reachesFactor bool
	}{
		{"unknown factor enrol", "POST", "/v1/factors/sms", fresh, nil, "", 400, "invalid_request", false},
		{"unknown factor delete", "DELETE", "/v1/factors/nope", fresh, nil, "", 400, "invalid_request", false},
		{"unknown factor confirm", "POST", "/v1/factors/nope/confirm", fresh, map[string]string{"code": "123456"}, "", 400, "invalid_request", false},
		{"unknown factor qr", "GET", "/v1/factors/nope/qr.png", fresh, nil, "", 400, "invalid_request", false},
		{"unknown factor change", "PUT", "/v1/factors/nope", fresh, map[string]string{}, "", 400, "invalid_request", false},
		{"unknown field", "POST", "/v1/factors/backup_code", fresh, `{"label":"x","admin":true}`, "", 400, "invalid_request", false},
		{"malformed json", "POST", "/v1/factors/hotp", fresh, `{"label":`, "", 400, "invalid_request", false},
		{"oversized body", "POST", "/v1/factors/hotp", fresh, `{"label":"` + long + `"}`, "", 413, "invalid_request", false},
		{"wrong content type", "POST", "/v1/factors/hotp", fresh, `{"label":"x"}`, "text/plain", 415, "invalid_request", false},
		{"label too long", "POST", "/v1/factors/hotp", fresh, map[string]string{"label": strings.Repeat("é", 65)}, "", 400, "invalid_request", false},
		{"label with control characters", "POST", "/v1/factors/hotp", fresh, map[string]string{"label": "a\nb"}, "", 400, "invalid_request", false},
		{"account name with colon", "POST", "/v1/factors/hotp", fresh, map[string]string{"account_name": "evil:alice"}, "", 400, "invalid_request", false},
		{"pin fields on totp", "POST", "/v1/factors/hotp", fresh, map[string]string{"pin": "5831", "confirmation": "5831"}, "", 400, "invalid_request", false},
		{"pin without confirmation", "POST", "/v1/factors/pin", fresh, map[string]string{"pin": "4711"}, "", 400, "invalid_request", false},
		{"pin with letters", "POST", "/v1/factors/pin", fresh, map[string]string{"pin": "47a1", "confirmation": "47a1"}, "", 400, "invalid_request", false},
		{"pin mismatch", "POST", "/v1/factors/pin", fresh, map[string]string{"pin": "4711", "confirmation": "4712"}, "", 400, "invalid_request", false},
		{"pin too short", "POST", "/v1/factors/pin", fresh, map[string]string{"pin": "47", "confirmation": "47"}, "", 400, "invalid_request", true},
		{"pin trivial", "POST", "/v1/factors/pin", fresh, map[string]string{"pin": "1234", "confirmation": "1234"}, "", 400, "invalid_request", true},
		{"pin already set", "POST", "/v1/factors/pin", fresh, map[string]string{"pin": "4711", "confirmation": "4711"}, "", 409, "already_enrolled", true},
		{"regenerate a pin", "POST", "/v1/factors/pin/regenerate", fresh, nil, "", 400, "invalid_request", false},
		{"confirm without body", "POST", "/v1/factors/totp/confirm", fresh, nil, "", 400, "invalid_request", false},
		{"confirm without code", "POST", "/v1/factors/totp/confirm", fresh, map[string]string{}, "", 400, "invalid_request", false},
		{"confirm code too short", "POST", "/v1/factors/totp/confirm", fresh, map[string]string{"code": "12345"}, "", 400, "invalid_request", false},
		{"confirm code 7 digits", "POST", "/v1/factors/totp/confirm", fresh, map[string]string{"code": "1234567"}, "", 400, "invalid_request", false},
		{"confirm code with letters", "POST", "/v1/factors/totp/confirm", fresh, map[string]string{"code": "12a456"}, "", 400, "invalid_request", false},
		{"confirm code far too long", "POST", "/v1/factors/totp/confirm", fresh, map[string]string{"code": strings.Repeat("1", 65)}, "", 400, "invalid_request", false},
		{"confirm a pin", "POST", "/v1/factors/pin/confirm", fresh, map[string]string{"code": "5831"}, "", 409, "already_enrolled", false},
		{"confirm nothing pending", "POST", "/v1/factors/hotp/confirm", fresh, map[string]string{"code": "123456"}, "", 400, "factor_not_available", false},
		{"change totp", "PUT", "/v1/factors/totp", fresh, map[string]string{"current": "1", "pin": "2", "confirmation": "2"}, "", 400, "unsupported_operation", false},
		{"change without current", "PUT", "/v1/factors/pin", fresh, map[string]string{"pin": "4711", "confirmation": "4711"}, "", 400, "invalid_request", false},
		{"change current with letters", "PUT", "/v1/factors/pin", fresh, map[string]string{"current": "58x1", "pin": "4711", "confirmation": "4711"}, "", 400, "invalid_request", false},
		{"change mismatch", "PUT", "/v1/factors/pin", fresh, map[string]string{"current": "5831", "pin": "4711", "confirmation": "4712"}, "", 400, "invalid_request", false},
		{"change to a trivial pin", "PUT", "/v1/factors/pin", fresh, map[string]string{"current": "5831", "pin": "0000", "confirmation": "0000"}, "", 400, "invalid_request", true},
		{"change to the same pin", "PUT", "/v1/factors/pin", fresh, map[string]string{"current": "5831", "pin": "5831", "confirmation": "5831"}, "", 400, "invalid_request", true},
		{"delete nothing enrolled", "DELETE", "/v1/factors/hotp", fresh, nil, "", 400, "factor_not_available", true},
		{"no token", "POST", "/v1/factors/backup_code", "", nil, "", 401, "invalid_request", false},
		{"bad token", "DELETE", "/v1/factors/pin", "forged", nil, "", 401, "invalid_token", false},
		{"service account", "DELETE", "/v1/factors/pin", serviceTok, nil, "", 403, "access_denied", false},
		{"no step-up", "DELETE", "/v1/factors/pin", plain, nil, "", 401, "insufficient_user_authentication", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := e.reg.Status(context.Background(), "alice")
			audited := len(e.audit("alice"))
			var opts []factorReq
			if tc.ctype != "" {
				opts = append(opts, factorReq{contentType: tc.ctype})
			}
			rec := e.do(tc.method, tc.path, tc.tok, tc.body, opts...)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
			if got := factorError(t, rec.Body); got.Code != tc.code {
				t.Fatalf("error %q (%s), want %q", got.Code, got.Description, tc.code)
			}
			after, _ := e.reg.Status(context.Background(), "alice")
			if !slices.EqualFunc(before, after, func(a, b factors.Status) bool {
				ja, _ := json.Marshal(a)
				jb, _ := json.Marshal(b)
				return bytes.Equal(ja, jb)
			}) {
				t.Fatalf("refused request changed the factors:\nbefore %+v\nafter  %+v", before, after)
			}
			n := len(e.audit("alice"))
			switch {
			case tc.reachesFactor && n == audited:
				t.Fatal("the factor's refusal was not audited")
			case !tc.reachesFactor && n != audited:
				t.Fatalf("a request refused before the factor wrote %d audit events", n-audited)
			}
		})
	}
	if s := e.state("alice", "pin"); s.LockedUntil != (time.Time{}) {
		t.Fatalf("bad input counted as PIN failures: %+v", s)
	}
	if left, _, _ := e.reg.FailureBudget(context.Background(), "alice"); left != 100 {
		t.Fatalf("bad input spent the failure budget: %d left", left)
	}
}

func TestFactorsTOTPEnrolment(t *testing.T) {
	t.Parallel()
	e := newFactorEnv(t, nil)
	tok := e.plain("alice")

	rec := e.do("GET", "/v1/factors/totp/qr.png", tok, nil)
	e.mustStatus(rec, http.StatusNotFound)

	enr := e.enrol(tok, "totp", map[string]string{"label": "Phone"})
	if enr.State != "pending" || enr.Secret == "" || len(enr.QRPNG) == 0 ||
		enr.QRURL != "/v1/factors/totp/qr.png" || enr.ConfirmURL != "/v1/factors/totp/confirm" {
		t.Fatalf("enrolment: %+v", enr)
	}
	u, err := url.Parse(enr.URI)
	if err != nil || u.Scheme != "otpauth" || u.Host != "totp" || u.Query().Get("secret") != enr.Secret {
		t.Fatalf("otpauth URI %q: %v", enr.URI, err)
	}
	if !strings.Contains(u.Path, "alice") {
		t.Fatalf("the app entry is not named after the username: %q", u.Path)
	}
	if _, err := png.Decode(bytes.NewReader(enr.QRPNG)); err != nil {
		t.Fatalf("qr_png is not a PNG: %v", err)
	}
	if s := e.state("alice", "totp"); s.State != factors.StatePending || s.Label != "Phone" {
		t.Fatalf("status after enrolment: %+v", s)
	}

	rec = e.do("GET", enr.QRURL, tok, nil)
	e.mustStatus(rec, http.StatusOK)
	if rec.Header().Get("Content-Type") != "image/png" || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("qr.png headers: %v", rec.Header())
	}
	if !bytes.Equal(rec.Body.Bytes(), enr.QRPNG) {
		t.Fatal("qr.png differs from the enrolment's QR code")
	}
	for _, other := range []string{"hotp", "pin", "backup_code"} {
		if rec := e.do("GET", "/v1/factors/"+other+"/qr.png", tok, nil); rec.Code != http.StatusNotFound {
			t.Fatalf("qr.png of %s: %d", other, rec.Code)
		}
	}

	now := e.clock.Now()
	wrong := factorTOTP(t, enr.Secret, now.Add(-10*time.Minute))
	rec = e.do("POST", enr.ConfirmURL, tok, map[string]string{"code": wrong})
	e.mustStatus(rec, http.StatusBadRequest)
	if got := factorError(t, rec.Body); got.Code != "invalid_code" {
		t.Fatalf("wrong code: %+v", got)
	}
	if s := e.state("alice", "totp"); s.State != factors.StatePending {
		t.Fatalf("wrong code changed the state: %+v", s)
	}
	code := factorTOTP(t, enr.Secret, now)
	rec = e.do("POST", enr.ConfirmURL, tok, map[string]string{"code": code[:3] + " " + code[3:]})
	e.mustStatus(rec, http.StatusOK)
	var conf factorConfirmedJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &conf); err != nil || conf.State != "active" || conf.CredentialID != enr.CredentialID {
		t.Fatalf("confirmation: %s (%v)", rec.Body, err)
	}
	if s := e.state("alice", "totp"); s.State != factors.StateActive {
		t.Fatalf("after confirmation: %+v", s)
	}
	// The secret in use is never shown again.
	if rec := e.do("GET", enr.QRURL, e.fresh("alice"), nil); rec.Code != http.StatusNotFound {
		t.Fatalf("qr.png of an active authenticator: %d", rec.Code)
	}
	// The confirming code was used: a replay as a step-up fails.
	if _, err := e.reg.Verify(context.Background(), "totp", "alice", code, factors.Meta{}); !errors.Is(err, factors.ErrReplay) {
		t.Fatalf("confirming code verified again: %v", err)
	}
	// Enrolling again over the active one: 409, after the step-up check.
	checkFactorStepUp(t, e.do("POST", "/v1/factors/totp", tok, nil), 300)
	rec = e.do("POST", "/v1/factors/totp", e.fresh("alice"), nil)
	e.mustStatus(rec, http.StatusConflict)
}

// TestFactorsPendingNeedsStepUpOnceActive: a pending enrolment begun while
// the user had no factor cannot be confirmed (nor its secret shown) after
// another factor became active, without a step-up.
func TestFactorsPendingNeedsStepUpOnceActive(t *testing.T) {
	t.Parallel()
	e := newFactorEnv(t, nil)
	tok := e.plain("alice")
	enr := e.enrol(tok, "hotp", nil)
	if enr.State != "pending" || !strings.Contains(enr.URI, "counter=0") {
		t.Fatalf("hotp enrolment: %+v", enr)
	}
	rec := e.do("GET", "/v1/factors/hotp/qr.png", tok, nil)
	e.mustStatus(rec, http.StatusOK)

	e.enrol(tok, "pin", map[string]string{"pin": "5831", "confirmation": "5831"}) // still the first active one

	checkFactorStepUp(t, e.do("GET", "/v1/factors/hotp/qr.png", tok, nil), 300)
	code, err := factorHOTP(enr.Secret, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkFactorStepUp(t, e.do("POST", "/v1/factors/hotp/confirm", tok, map[string]string{"code": code}), 300)
	if s := e.state("alice", "hotp"); s.State != factors.StatePending {
		t.Fatalf("hotp after refused confirmation: %+v", s)
	}
	fresh := e.fresh("alice")
	e.mustStatus(e.do("POST", "/v1/factors/hotp/confirm", fresh, map[string]string{"code": code}), http.StatusOK)
	// Cancel = remove; with the step-up.
	e.mustStatus(e.do("DELETE", "/v1/factors/hotp", fresh, nil), http.StatusNoContent)
	if s := e.state("alice", "hotp"); s.State != factors.StateNone {
		t.Fatalf("hotp after removal: %+v", s)
	}
}

func factorHOTP(secret string, counter uint64) (string, error) {
	return pqhotp.GenerateCodeCustom(secret, counter, pqhotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
}

func TestFactorsBackupCodes(t *testing.T) {
	t.Parallel()
	e := newFactorEnv(t, func(c *config.Config) { c.Factors.BackupCodes.Count = 5; c.Factors.BackupCodes.LowWatermark = 2 })
	tok := e.plain("alice")
	first := e.enrol(tok, "backup_code", map[string]string{})
	if len(first.Codes) != 5 {
		t.Fatalf("codes: %v", first.Codes)
	}
	for i := range 3 {
		if _, err := e.reg.Verify(context.Background(), "backup_code", "alice", first.Codes[i], factors.Meta{}); err != nil {
			t.Fatal(err)
		}
	}
	st := e.state("alice", "backup_code")
	if st.Remaining == nil || *st.Remaining != 2 || !st.Low {
		t.Fatalf("after 3 of 5 used: %+v", st)
	}
	var listed factorListJSON
	rec := e.do("GET", "/v1/factors", tok, nil)
	if err := json.Unmarshal(rec.Body.Bytes(), &listed); err != nil || !strings.Contains(rec.Body.String(), `"remaining":2,"low":true`) {
		t.Fatalf("list does not show remaining and low: %s", rec.Body)
	}

	for _, path := range []string{"/v1/factors/backup_code", "/v1/factors/backup_code/regenerate"} {
		checkFactorStepUp(t, e.do("POST", path, tok, nil), 300)
		again := e.enrol2(e.fresh("alice"), path)
		if !again.Replaced || len(again.Codes) != 5 || slices.Equal(again.Codes, first.Codes) {
			t.Fatalf("regenerated: %+v", again)
		}
		if _, err := e.reg.Verify(context.Background(), "backup_code", "alice", first.Codes[4], factors.Meta{}); !errors.Is(err, factors.ErrInvalidCode) {
			t.Fatalf("an old code still works after regenerating: %v", err)
		}
		if s := e.state("alice", "backup_code"); *s.Remaining != 5 || s.Low {
			t.Fatalf("after regenerating: %+v", s)
		}
		first = again
	}
}

func (e *factorEnv) enrol2(tok, path string) factorEnrolmentJSON {
	e.t.Helper()
	rec := e.do("POST", path, tok, nil)
	e.mustStatus(rec, http.StatusCreated)
	var out factorEnrolmentJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func TestFactorsChangePIN(t *testing.T) {
	t.Parallel()
	e := newFactorEnv(t, nil)
	plain := e.plain("alice")
	e.enrol(plain, "pin", map[string]string{"pin": "5831", "confirmation": "5831"})
	change := func(tok, current, pin string) *httptest.ResponseRecorder {
		return e.do("PUT", "/v1/factors/pin", tok, map[string]string{"current": current, "pin": pin, "confirmation": pin})
	}
	checkFactorStepUp(t, change(plain, "5831", "4711"), 300)

	fresh := e.fresh("alice")
	rec := change(fresh, "9999", "4711")
	e.mustStatus(rec, http.StatusBadRequest)
	if got := factorError(t, rec.Body); got.Code != "invalid_code" {
		t.Fatalf("wrong current PIN: %+v", got)
	}
	e.mustStatus(change(fresh, "5831", "4711"), http.StatusOK)
	ctx := context.Background()
	if _, err := e.reg.Verify(ctx, "pin", "alice", "5831", factors.Meta{}); !errors.Is(err, factors.ErrInvalidCode) {
		t.Fatalf("old PIN after change: %v", err)
	}
	if _, err := e.reg.Verify(ctx, "pin", "alice", "4711", factors.Meta{}); err != nil {
		t.Fatalf("new PIN after change: %v", err)
	}

	// Wrong current PINs lock the PIN (5 failures by default): 429.
	var last *httptest.ResponseRecorder
	for range 5 {
		last = change(fresh, "9990", "3852")
	}
	e.mustStatus(last, http.StatusTooManyRequests)
	if got := factorError(t, last.Body); got.Code != "locked" {
		t.Fatalf("lockout: %+v", got)
	}
	if s := e.state("alice", "pin"); s.LockedUntil.IsZero() {
		t.Fatalf("PIN not locked: %+v", s)
	}
	rec = change(fresh, "4711", "3852")
	e.mustStatus(rec, http.StatusTooManyRequests)
}

// TestFactorsExpiredPIN: a user whose only factor is an expired PIN
// changes it with the current PIN alone (there is nothing to step up
// with); with another active factor the step-up is required again.
func TestFactorsExpiredPIN(t *testing.T) {
	t.Parallel()
	e := newFactorEnv(t, func(c *config.Config) { c.Factors.PIN.Lifetime = 24 * time.Hour })
	e.enrol(e.plain("alice"), "pin", map[string]string{"pin": "5831", "confirmation": "5831"})
	body := map[string]string{"current": "5831", "pin": "4711", "confirmation": "4711"}
	checkFactorStepUp(t, e.do("PUT", "/v1/factors/pin", e.plain("alice"), body), 300)

	e.clock.Advance(25 * time.Hour)
	if _, err := e.reg.Verify(context.Background(), "pin", "alice", "5831", factors.Meta{}); !errors.Is(err, factors.ErrExpired) {
		t.Fatalf("PIN should have expired: %v", err)
	}
	// Expired PIN, but other requests still need a step-up.
	checkFactorStepUp(t, e.do("DELETE", "/v1/factors/pin", e.plain("alice"), nil), 300)
	rec := e.do("PUT", "/v1/factors/pin", e.plain("alice"), map[string]string{"current": "1470", "pin": "4711", "confirmation": "4711"})
	e.mustStatus(rec, http.StatusBadRequest) // wrong current PIN: still checked
	e.mustStatus(e.do("PUT", "/v1/factors/pin", e.plain("alice"), body), http.StatusOK)
	evs := e.audit("alice")
	lastChange := evs[slices.IndexFunc(evs, func(ev store.AuditEvent) bool {
		return ev.Type == factors.AuditChange && ev.Outcome == factors.OutcomeSuccess
	})]
	if lastChange.Details["authorised_by"] != "current_pin" {
		t.Fatalf("change audited as %+v", lastChange)
	}

	// Bob has backup codes too: no exception for him.
	e.enrol(e.plain("bob"), "pin", map[string]string{"pin": "5831", "confirmation": "5831"})
	e.enrol(e.fresh("bob"), "backup_code", nil)
	e.clock.Advance(25 * time.Hour)
	checkFactorStepUp(t, e.do("PUT", "/v1/factors/pin", e.plain("bob"), body), 300)
}

func TestFactorsReset(t *testing.T) {
	t.Parallel()
	e := newFactorEnv(t, nil)
	plain := e.plain("alice")
	e.enrol(plain, "backup_code", nil)
	e.enrol(e.fresh("alice"), "pin", map[string]string{"pin": "5831", "confirmation": "5831"})

	checkFactorStepUp(t, e.do("DELETE", "/v1/factors/pin", plain, nil), 300)
	fresh := e.fresh("alice")
	rec := e.do("DELETE", "/v1/factors/pin", fresh, nil)
	e.mustStatus(rec, http.StatusNoContent)
	if rec.Body.Len() != 0 {
		t.Fatalf("204 with a body: %s", rec.Body)
	}
	if s := e.state("alice", "pin"); s.State != factors.StateNone {
		t.Fatalf("pin after removal: %+v", s)
	}
	e.mustStatus(e.do("DELETE", "/v1/factors/backup_code", fresh, nil), http.StatusNoContent)
	// Nothing active any more: the next enrolment is a first one again.
	if l := e.list(plain); len(l.Active) != 0 || l.StepUpRequired {
		t.Fatalf("after removing everything: %+v", l)
	}
	e.enrol(plain, "pin", map[string]string{"pin": "4711", "confirmation": "4711"})
}

// TestFactorsAuditTrail: enrolments, confirmations, changes, failures,
// lockouts and removals made through the API are on record, with the
// session, the client address and why the change was allowed, and
// without any secret.
func TestFactorsAuditTrail(t *testing.T) {
	t.Parallel()
	e := newFactorEnv(t, nil)
	plain := e.plain("alice")
	totpEnr := e.enrol(plain, "totp", nil)
	code := factorTOTP(t, totpEnr.Secret, e.clock.Now())
	e.mustStatus(e.do("POST", "/v1/factors/totp/confirm", plain, map[string]string{"code": "000000"}), http.StatusBadRequest)
	e.mustStatus(e.do("POST", "/v1/factors/totp/confirm", plain, map[string]string{"code": code}), http.StatusOK)
	fresh := e.fresh("alice")
	codes := e.enrol(fresh, "backup_code", nil)
	e.enrol(fresh, "pin", map[string]string{"pin": "5831", "confirmation": "5831"})
	e.mustStatus(e.do("PUT", "/v1/factors/pin", fresh, map[string]string{"current": "5831", "pin": "4711", "confirmation": "4711"}), http.StatusOK)
	for range 5 {
		e.do("PUT", "/v1/factors/pin", fresh, map[string]string{"current": "1470", "pin": "3852", "confirmation": "3852"})
	}
	e.mustStatus(e.do("DELETE", "/v1/factors/backup_code", fresh, nil), http.StatusNoContent)

	type key struct{ typ, factor, outcome string }
	got := map[key]int{}
	for _, ev := range e.audit("alice") {
		got[key{ev.Type, ev.Factor, ev.Outcome}]++
		if ev.SessionID != "sid-alice" || ev.IP != "192.0.2.10" || ev.Actor != "alice" {
			t.Errorf("event without session, address or actor: %+v", ev)
		}
		for _, v := range ev.Details {
			for _, secret := range append([]string{code, totpEnr.Secret, "5831", "4711", "3852", "1470"}, codes.Codes...) {
				if strings.Contains(v, secret) {
					t.Fatalf("audit event holds a secret: %+v", ev)
				}
			}
		}
		if ev.Type == factors.AuditEnrol || ev.Type == factors.AuditReset {
			want := "stepup"
			if ev.Factor == "totp" {
				want = "first_factor"
			}
			if ev.Details["authorised_by"] != want {
				t.Errorf("%s of %s authorised_by %q, want %q", ev.Type, ev.Factor, ev.Details["authorised_by"], want)
			}
		}
	}
	want := map[key]int{
		{factors.AuditEnrol, "totp", "success"}:        1,
		{factors.AuditConfirm, "totp", "failure"}:      1,
		{factors.AuditConfirm, "totp", "success"}:      1,
		{factors.AuditEnrol, "backup_code", "success"}: 1,
		{factors.AuditEnrol, "pin", "success"}:         1,
		{factors.AuditChange, "pin", "success"}:        1,
		{factors.AuditChange, "pin", "failure"}:        4,
		{factors.AuditChange, "pin", "denied"}:         1,
		{factors.AuditLockout, "pin", "locked"}:        1,
		{factors.AuditReset, "backup_code", "success"}: 1,
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%d events %v, want %d", got[k], k, n)
		}
	}
	if t.Failed() {
		t.Logf("all events: %v", got)
	}
}

// TestFactorsSecretsNotLogged: nothing shown once reaches the logs, even
// at debug level and on refusals.
func TestFactorsSecretsNotLogged(t *testing.T) {
	t.Parallel()
	e := newFactorEnv(t, nil)
	plain := e.plain("alice")
	totpEnr := e.enrol(plain, "totp", map[string]string{"account_name": "alice@example.com"})
	e.do("GET", "/v1/factors/totp/qr.png", plain, nil)
	e.do("POST", "/v1/factors/totp/confirm", plain, map[string]string{"code": "000000"})
	code := factorTOTP(t, totpEnr.Secret, e.clock.Now())
	e.mustStatus(e.do("POST", "/v1/factors/totp/confirm", plain, map[string]string{"code": code}), http.StatusOK)
	fresh := e.fresh("alice")
	hotpEnr := e.enrol(fresh, "hotp", nil)
	codes := e.enrol(fresh, "backup_code", nil)
	e.enrol(fresh, "pin", map[string]string{"pin": "5831", "confirmation": "5831"})
	e.do("POST", "/v1/factors/pin", fresh, map[string]string{"pin": "2580", "confirmation": "2580"})
	e.do("PUT", "/v1/factors/pin", fresh, map[string]string{"current": "1470", "pin": "3852", "confirmation": "3852"})
	e.do("PUT", "/v1/factors/pin", fresh, map[string]string{"current": "5831", "pin": "3852", "confirmation": "3853"})

	logs := e.logs.String()
	if !strings.Contains(logs, "/v1/factors/pin") {
		t.Fatalf("the requests were not logged at all:\n%s", logs)
	}
	secrets := append([]string{totpEnr.Secret, hotpEnr.Secret, code, "5831", "2580", "1470", "3852",
		base64.StdEncoding.EncodeToString(totpEnr.QRPNG)[:40]}, codes.Codes...)
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Fatalf("logs hold %q:\n%s", s, logs)
		}
	}
}

// factorTool finds an external program the end-to-end test drives; missing,
// it fails under CI and skips elsewhere, naming the Debian package.
func factorTool(t *testing.T, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required in CI: install the Debian package %s", name, debianPackage)
	}
	t.Skipf("skipping: %s not found; install the Debian package %s to run this test", name, debianPackage)
	return ""
}

// TestFactorsAuthenticatorAppEndToEnd enrols an authenticator app exactly
// as a user would, through HTTP with Keycloak-issued tokens: the QR code
// is decoded by zbarimg and the codes computed by oathtool from the
// secret in the decoded otpauth URI. Then the confirming code is refused
// as a replay, and a second factor needs a step-up that the app's next
// code provides.
func TestFactorsAuthenticatorAppEndToEnd(t *testing.T) {
	zbarimg := factorTool(t, "zbarimg", "zbar-tools")
	oathtool := factorTool(t, "oathtool", "oathtool")
	t.Parallel()
	env := testenv.Start(t, testenv.Options{})
	tokens := env.PasswordTokens(t, "alice", "alice")
	access := tokens.AccessToken

	// Enrol: 201, pending, with the URL of the QR image.
	resp, body := env.Do(t, "POST", "/v1/factors/totp", access, map[string]string{"label": "Phone"})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("enrol totp: %d %s", resp.StatusCode, body)
	}
	var enr factorEnrolmentJSON
	if err := json.Unmarshal(body, &enr); err != nil {
		t.Fatal(err)
	}
	if enr.State != "pending" || enr.QRURL == "" {
		t.Fatalf("enrolment: %s", body)
	}

	// The QR image, as an app scans it.
	resp, img := env.Do(t, "GET", enr.QRURL, access, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/png" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("qr.png: %d %v", resp.StatusCode, resp.Header)
	}
	file := filepath.Join(t.TempDir(), "qr.png")
	if err := os.WriteFile(file, img, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(zbarimg, "-q", "--raw", file).Output()
	if err != nil {
		t.Fatalf("zbarimg could not decode the QR code: %v", err)
	}
	scanned := strings.TrimSpace(string(out))
	u, err := url.Parse(scanned)
	if err != nil || u.Scheme != "otpauth" || u.Host != "totp" {
		t.Fatalf("scanned %q: %v", scanned, err)
	}
	q := u.Query()
	if q.Get("issuer") == "" || !strings.Contains(u.Path, "alice") {
		t.Fatalf("app entry %q lacks issuer or account", scanned)
	}
	for k, want := range map[string]string{"digits": "6", "period": "30", "algorithm": "SHA1"} {
		if v := q.Get(k); v != "" && v != want {
			t.Fatalf("%s=%s in %q: oathtool's defaults would compute other codes", k, v, scanned)
		}
	}
	secret := q.Get("secret")
	if secret == "" || secret != enr.Secret {
		t.Fatalf("scanned secret %q, enrolment showed %q", secret, enr.Secret)
	}
	code := func(at time.Time) string {
		t.Helper()
		out, err := exec.Command(oathtool, "--totp", "-b", secret, "-N", "@"+strconv.FormatInt(at.Unix(), 10)).Output()
		if err != nil {
			t.Fatalf("oathtool: %v", err)
		}
		return strings.TrimSpace(string(out))
	}

	// Confirm with the app's current code.
	first := code(time.Now())
	resp, body = env.Do(t, "POST", "/v1/factors/totp/confirm", access, map[string]string{"code": first})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("confirm: %d %s", resp.StatusCode, body)
	}
	// Showing the secret again is part of enrolling: with a factor active
	// it needs a step-up (and once confirmed there is nothing to show).
	if resp, _ = env.Do(t, "GET", enr.QRURL, access, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("qr.png after confirmation without step-up: %d", resp.StatusCode)
	}

	// The same code again, as a step-up: refused as a replay.
	challenge := func(tok string) string {
		t.Helper()
		resp, body := env.Do(t, "POST", "/v1/stepup/challenges", tok, map[string]string{"factor": "totp"})
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("challenge: %d %s", resp.StatusCode, body)
		}
		id, _ := testenv.DecodeJSON(t, body)["challenge_id"].(string)
		return id
	}
	resp, body = env.Do(t, "POST", "/v1/stepup/challenges/"+challenge(access)+"/verify", access, map[string]string{"code": first})
	if resp.StatusCode != http.StatusBadRequest || testenv.DecodeJSON(t, body)["error"] != "invalid_code" {
		t.Fatalf("replayed code: %d %s", resp.StatusCode, body)
	}
	sub, _ := testenv.Claims(t, access)["sub"].(string)
	evs, err := env.Runtime.Store().ListAudit(context.Background(), store.AuditQuery{UserID: sub, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(evs, func(ev store.AuditEvent) bool {
		return ev.Type == "stepup.failure" && ev.Factor == "totp" && ev.Details["reason"] == factors.OutcomeReplay
	}) {
		t.Fatalf("the replay is not on the audit trail: %+v", evs)
	}

	// A second factor needs a step-up now: RFC 9470's 401.
	resp, body = env.Do(t, "POST", "/v1/factors/backup_code", access, nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("second factor without step-up: %d %s", resp.StatusCode, body)
	}
	maxAge := int(env.Config.StepUp.ManagementMaxAge / time.Second)
	wantHeader := fmt.Sprintf(`Bearer error="insufficient_user_authentication", error_description="managing second factors requires a step-up within the last %d seconds", acr_values="2", max_age=%d`, maxAge, maxAge)
	if h := resp.Header.Get("WWW-Authenticate"); h != wantHeader {
		t.Fatalf("WWW-Authenticate = %s", h)
	}
	if m := testenv.DecodeJSON(t, body); m["error"] != "insufficient_user_authentication" || m["acr_values"] != "2" {
		t.Fatalf("401 body: %s", body)
	}

	// Step up with the app's next code (the current step was used by the
	// confirmation; the next one is within the accepted skew), asking for
	// refreshed tokens that carry the claim.
	next := code(time.Now().Add(30 * time.Second))
	resp, body = env.Do(t, "POST", "/v1/stepup/challenges/"+challenge(access)+"/verify", access,
		map[string]string{"code": next, "refresh_token": tokens.RefreshToken})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("step-up with the next code: %d %s", resp.StatusCode, body)
	}
	var grant struct {
		ACR    string `json:"acr"`
		Tokens struct {
			AccessToken string `json:"access_token"`
		} `json:"tokens"`
	}
	if err := json.Unmarshal(body, &grant); err != nil || grant.ACR != "2" || grant.Tokens.AccessToken == "" {
		t.Fatalf("grant: %s (%v)", body, err)
	}
	if _, ok := testenv.Claims(t, grant.Tokens.AccessToken)["stepup"]; !ok {
		t.Fatal("refreshed token carries no step-up claim")
	}

	if resp, _ = env.Do(t, "GET", enr.QRURL, grant.Tokens.AccessToken, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("qr.png of a confirmed authenticator: %d", resp.StatusCode)
	}
	resp, body = env.Do(t, "POST", "/v1/factors/backup_code", grant.Tokens.AccessToken, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("second factor after step-up: %d %s", resp.StatusCode, body)
	}
	var codes factorEnrolmentJSON
	if err := json.Unmarshal(body, &codes); err != nil || len(codes.Codes) != env.Config.Factors.BackupCodes.Count {
		t.Fatalf("backup codes: %s (%v)", body, err)
	}
	resp, body = env.Do(t, "GET", "/v1/factors", grant.Tokens.AccessToken, nil)
	var l factorListJSON
	if err := json.Unmarshal(body, &l); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("list: %d %s", resp.StatusCode, body)
	}
	slices.Sort(l.Active)
	if !slices.Equal(l.Active, []string{"backup_code", "totp"}) || l.StepUpRequired {
		t.Fatalf("after both enrolments: %s", body)
	}
}
