package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stepup-bridge/stepup-bridge/config"
	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/factors/builtin"
	"github.com/stepup-bridge/stepup-bridge/internal/server"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
	"github.com/stepup-bridge/stepup-bridge/internal/store/sqlite"
	"github.com/stepup-bridge/stepup-bridge/internal/token"
)

// adminTokens is a verifier over a table of raw token -> claims, so tests
// choose exactly which roles a token carries.
type adminTokens struct {
	mu sync.Mutex
	m  map[string]token.Claims
}

func (v *adminTokens) Verify(_ context.Context, raw string) (*token.Claims, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	c, ok := v.m[raw]
	if !ok {
		return nil, token.ErrInvalidSignature
	}
	return &c, nil
}

type adminEnv struct {
	t   *testing.T
	h   http.Handler
	st  *sqlite.Store
	reg *factors.Registry
	now time.Time
}

const (
	tokAdmin   = "tok-admin"
	tokUser    = "tok-user"
	tokService = "tok-service-admin"
)

func newAdminEnv(t *testing.T) *adminEnv {
	t.Helper()
	cfg := config.Default()
	cfg.Secrets.EncryptionKeys = []config.Secret{config.Secret("k1:" + base64.StdEncoding.EncodeToString([]byte("abcdefghijklmnopqrstuvwxyz012345")))}
	cfg.Secrets.Pepper = config.Secret(base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")))
	cfg.Factors.Enabled = []string{"backup_code", "pin", "totp"}
	cfg.Factors.PIN.Argon2 = config.Argon2{Time: 1, MemoryKiB: 8192, Threads: 1}
	cfg.Factors.PIN.MaxFailures = 3
	cfg.RateLimits.IPRequestsPerMinute = 100000
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "s.db")})
	if err != nil {
		t.Fatalf("opening sqlite: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	now := time.Unix(1700000000, 0).UTC()
	clock := func() time.Time { return now }
	reg, err := builtin.NewRegistry(cfg, builtin.Deps{Store: st, Now: clock, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ver := &adminTokens{m: map[string]token.Claims{
		tokAdmin:   {Subject: "carol-id", SessionID: "sid-carol", RealmRoles: []string{"default-roles", "stepup-admin"}},
		tokUser:    {Subject: "alice-id", SessionID: "sid-alice", RealmRoles: []string{"default-roles"}},
		tokService: {Subject: "svc-id", RealmRoles: []string{"stepup-admin"}},
	}}
	s, err := server.New(server.Options{Config: cfg, Store: st, Now: clock, Verifier: ver, Factors: reg,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return &adminEnv{t: t, h: s.Handler(), st: st, reg: reg, now: now}
}

func (e *adminEnv) do(method, path, tok string) *httptest.ResponseRecorder {
	e.t.Helper()
	req := httptest.NewRequest(method, path, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec
}

func wantStatus(t *testing.T, rec *httptest.ResponseRecorder, want int) {
	t.Helper()
	if rec.Code != want {
		t.Fatalf("status = %d, want %d; body %s", rec.Code, want, rec.Body)
	}
}

func wantJSONError(t *testing.T, rec *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	wantStatus(t, rec, status)
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json", ct)
	}
	var body struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, rec.Body)
	}
	if body.Error != code || body.Description == "" {
		t.Fatalf("error = %q (%q), want %q", body.Error, body.Description, code)
	}
}

func (e *adminEnv) audit(q store.AuditQuery) []store.AuditEvent {
	e.t.Helper()
	evs, err := e.st.ListAudit(context.Background(), q)
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

func TestAdminEndpointsNeedTheRole(t *testing.T) {
	e := newAdminEnv(t)
	routes := []struct{ method, path string }{
		{"GET", "/v1/admin/users/alice-id/factors"},
		{"DELETE", "/v1/admin/users/alice-id/factors/pin"},
		{"POST", "/v1/admin/users/alice-id/unlock"},
		{"POST", "/v1/admin/users/alice-id/reenrol"},
		{"GET", "/v1/admin/audit"},
		{"GET", "/v1/admin/audit/export"},
	}
	for _, rt := range routes {
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			rec := e.do(rt.method, rt.path, "")
			wantJSONError(t, rec, http.StatusUnauthorized, "invalid_request")
			if !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("no Bearer challenge on 401: %q", rec.Header().Get("WWW-Authenticate"))
			}
			wantJSONError(t, e.do(rt.method, rt.path, "forged"), http.StatusUnauthorized, "invalid_token")
			wantJSONError(t, e.do(rt.method, rt.path, tokUser), http.StatusForbidden, "access_denied")
			// The admin gets past the role check (the DELETE then finds
			// nothing enrolled: 400, not 401/403).
			if rec := e.do(rt.method, rt.path, tokAdmin); rec.Code == http.StatusUnauthorized || rec.Code == http.StatusForbidden || rec.Code >= 500 {
				t.Fatalf("admin refused: %d %s", rec.Code, rec.Body)
			}
		})
	}
	// Refusals change nothing: no admin event was written by the user's attempts.
	for _, ev := range e.audit(store.AuditQuery{Limit: 1000}) {
		if ev.Actor == "alice-id" {
			t.Fatalf("a refused request left an audit event: %+v", ev)
		}
	}
}

func TestAdminRoleFromConfig(t *testing.T) {
	// A renamed admin role: the default name no longer works.
	cfg := config.Default()
	cfg.Admin.Role = "auditors"
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "s.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	ver := &adminTokens{m: map[string]token.Claims{
		"old": {Subject: "a", RealmRoles: []string{"stepup-admin"}},
		"new": {Subject: "b", RealmRoles: []string{"auditors"}},
	}}
	s, err := server.New(server.Options{Config: cfg, Store: st, Verifier: ver, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	e := &adminEnv{t: t, h: s.Handler()}
	wantJSONError(t, e.do("GET", "/v1/admin/audit", "old"), http.StatusForbidden, "access_denied")
	wantStatus(t, e.do("GET", "/v1/admin/audit", "new"), http.StatusOK)
}

func TestAdminResetUnlockReenrol(t *testing.T) {
	e := newAdminEnv(t)
	ctx := context.Background()
	user := "alice-id"
	if _, err := e.reg.Enrol(ctx, factors.PIN, user, factors.EnrolRequest{Secret: "4711", Confirmation: "4711"}, factors.Meta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.Enrol(ctx, factors.BackupCode, user, factors.EnrolRequest{}, factors.Meta{}); err != nil {
		t.Fatal(err)
	}
	// Lock the PIN: three wrong PINs.
	for range 3 {
		_, _ = e.reg.Verify(ctx, factors.PIN, user, "9999", factors.Meta{})
	}
	if _, err := e.reg.Verify(ctx, factors.PIN, user, "4711", factors.Meta{}); !errors.Is(err, factors.ErrLocked) {
		t.Fatalf("PIN not locked after 3 failures: %v", err)
	}

	t.Run("list", func(t *testing.T) {
		rec := e.do("GET", "/v1/admin/users/"+user+"/factors", tokAdmin)
		wantStatus(t, rec, http.StatusOK)
		var body struct {
			UserID  string           `json:"user_id"`
			Factors []factors.Status `json:"factors"`
			Budget  struct {
				Remaining int `json:"remaining"`
			} `json:"failure_budget"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		states := map[string]factors.Status{}
		for _, s := range body.Factors {
			states[s.Factor] = s
		}
		if body.UserID != user || states["pin"].State != "active" || states["backup_code"].State != "active" || states["totp"].State != "none" {
			t.Fatalf("statuses = %+v", body)
		}
		if states["pin"].LockedUntil.IsZero() {
			t.Fatal("the PIN lockout is not shown")
		}
		// Three wrong PINs and one refused while locked.
		if body.Budget.Remaining != 100-4 {
			t.Fatalf("failure budget remaining = %d, want 96", body.Budget.Remaining)
		}
		if strings.Contains(rec.Body.String(), "4711") {
			t.Fatal("the listing leaks the PIN")
		}
	})

	t.Run("unlock", func(t *testing.T) {
		rec := e.do("POST", "/v1/admin/users/"+user+"/unlock", tokAdmin)
		wantStatus(t, rec, http.StatusOK)
		if _, err := e.reg.Verify(ctx, factors.PIN, user, "4711", factors.Meta{}); err != nil {
			t.Fatalf("PIN still refused after unlock: %v", err)
		}
		rem, _, err := e.reg.FailureBudget(ctx, user)
		if err != nil || rem != 100 {
			t.Fatalf("failure budget after unlock = %d, %v; want 100", rem, err)
		}
		evs := e.audit(store.AuditQuery{UserID: user, Types: []string{factors.AuditAdminUnlock}})
		if len(evs) != 1 || evs[0].Actor != "carol-id" || evs[0].Outcome != "success" {
			t.Fatalf("unlock audit = %+v", evs)
		}
	})

	t.Run("reset one", func(t *testing.T) {
		wantStatus(t, e.do("DELETE", "/v1/admin/users/"+user+"/factors/pin", tokAdmin), http.StatusNoContent)
		st, _ := e.reg.Status(ctx, user)
		for _, s := range st {
			if s.Factor == "pin" && s.State != factors.StateNone {
				t.Fatalf("PIN still %s after reset", s.State)
			}
		}
		evs := e.audit(store.AuditQuery{UserID: user, Types: []string{factors.AuditAdminReset}})
		if len(evs) != 1 || evs[0].Actor != "carol-id" || evs[0].Factor != "pin" {
			t.Fatalf("reset audit = %+v", evs)
		}
		// Again: nothing to reset.
		wantJSONError(t, e.do("DELETE", "/v1/admin/users/"+user+"/factors/pin", tokAdmin), http.StatusBadRequest, "factor_not_available")
		wantJSONError(t, e.do("DELETE", "/v1/admin/users/"+user+"/factors/nonsense", tokAdmin), http.StatusBadRequest, "invalid_request")
	})

	t.Run("reenrol", func(t *testing.T) {
		rec := e.do("POST", "/v1/admin/users/"+user+"/reenrol", tokService)
		wantStatus(t, rec, http.StatusOK)
		var body struct {
			Reset []string `json:"reset"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		if len(body.Reset) != 1 || body.Reset[0] != "backup_code" {
			t.Fatalf("reset = %v, want [backup_code]", body.Reset)
		}
		active, _ := e.reg.Active(ctx, user)
		if len(active) != 0 {
			t.Fatalf("still active after reenrol: %v", active)
		}
		evs := e.audit(store.AuditQuery{UserID: user, Types: []string{factors.AuditAdminReset}, AfterSeq: 0})
		last := evs[len(evs)-1]
		if last.Actor != "svc-id" || last.Factor != "backup_code" || last.Details["reason"] != "reenrol" {
			t.Fatalf("reenrol audit = %+v", last)
		}
	})
}
