package perf_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/internal/server"
	"github.com/stepup-bridge/stepup-bridge/internal/testenv"
	"github.com/stepup-bridge/stepup-bridge/policies"
)

// BenchmarkAuthz compares one forward-auth decision with the bare
// verification of the token it carries, in-process (no sockets): the
// verifier the sidecar builds (RS256, keys cached), the ForwardAuth
// handler on it with the default policy, and the whole server handler
// (request id, client address, metrics, access log) around it, with the
// access log discarded and with it written as JSON.
func BenchmarkAuthz(b *testing.B) {
	env := testenv.Start(b, testenv.Options{})
	ctx := context.Background()
	access := env.PasswordTokens(b, "alice", "alice").AccessToken
	br, err := bridge.FromConfig(env.Config, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	v := br.Verifier()
	if _, err := v.Verify(ctx, access); err != nil { // fetches the JWKS once
		b.Fatal(err)
	}
	discard := slog.New(slog.DiscardHandler)
	a, err := policies.NewAuthorizer(ctx, policies.Config{Verifier: v, Realm: testenv.Realm, Logger: discard})
	if err != nil {
		b.Fatal(err)
	}
	fa := a.ForwardAuth(policies.ForwardAuthOptions{PathPrefix: "/v1/authz"})
	newServer := func(log *slog.Logger) http.Handler {
		srv, err := server.New(server.Options{Config: env.Config, Store: env.Runtime.Store(), Logger: log, Verifier: v, Authz: fa})
		if err != nil {
			b.Fatal(err)
		}
		return srv.Handler()
	}
	req := httptest.NewRequest("GET", "/v1/authz", nil)
	req.RemoteAddr = "127.0.0.1:40000"
	req.Header.Set("Authorization", "Bearer "+access)
	req.Header.Set("X-Original-Method", "GET")
	req.Header.Set("X-Original-URI", "/api/orders/7")

	b.Run("verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(ctx, access); err != nil {
				b.Fatal(err)
			}
		}
	})
	handlers := []struct {
		name string
		h    http.Handler
	}{
		{"forward-auth-handler", fa},
		{"server-handler", newServer(discard)},
		{"server-handler-json-log", newServer(slog.New(slog.NewJSONHandler(io.Discard, nil)))},
	}
	for _, hc := range handlers {
		b.Run(hc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				hc.h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
		})
	}
}

// BenchmarkStepUp is one step-up through the HTTP API on loopback, SQLite
// store, production argon2 parameters: POST /v1/stepup/challenges, then
// POST .../verify with the right code, which checks the factor, consumes
// the challenge, writes the audit trail and writes the step-up entry back
// into the Keycloak-compatible server (lease, GET and PUT of the user).
// ns/op covers both requests; verify-ms is the verify request alone.
func BenchmarkStepUp(b *testing.B) {
	env := testenv.Start(b, testenv.Options{Mutate: func(c *config.Config) {
		c.Factors.PIN.Argon2 = config.Default().Factors.PIN.Argon2
	}})
	alice := env.PasswordTokens(b, "alice", "alice").AccessToken
	aliceID := subject(b, alice)
	enrolPIN(b, env, aliceID, "4826")

	run := func(b *testing.B, next func(i int) (access, code string)) {
		var verifyTotal time.Duration
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			access, code := next(i)
			b.StartTimer()
			id, status, m := createChallenge(b, env, access, factorOf(b), "")
			if id == "" {
				b.Fatalf("create: %d %v", status, m)
			}
			start := time.Now()
			status, m, _ = verifyChallenge(b, env, access, id, code, "")
			verifyTotal += time.Since(start)
			if status != http.StatusOK {
				b.Fatalf("verify: %d %v", status, m)
			}
		}
		b.ReportMetric(float64(verifyTotal.Microseconds())/1000/float64(b.N), "verify-ms")
	}

	b.Run(factors.BackupCode, func(b *testing.B) {
		var codes []string
		run(b, func(i int) (string, string) {
			if len(codes) == 0 {
				codes = enrolBackupCodes(b, env, aliceID)
			}
			c := codes[0]
			codes = codes[1:]
			return alice, c
		})
	})
	b.Run(factors.PIN, func(b *testing.B) {
		run(b, func(int) (string, string) { return alice, "4826" })
	})
	b.Run(factors.TOTP, func(b *testing.B) {
		// A TOTP code is accepted once per time step and user: every
		// iteration gets a user of its own.
		admin := adminToken(b, env)
		round := strconv.FormatInt(time.Now().UnixNano(), 36)
		run(b, func(i int) (string, string) {
			name := "load-" + round + "-" + strconv.Itoa(i)
			createUser(b, env, admin, name)
			access := env.PasswordTokens(b, name, name).AccessToken
			secret := enrolTOTP(b, env, subject(b, access))
			return access, totpCode(b, secret, time.Now())
		})
	})
}

// factorOf is the factor a BenchmarkStepUp sub-benchmark measures.
func factorOf(b *testing.B) string {
	name := b.Name()
	return name[strings.LastIndex(name, "/")+1:]
}

// BenchmarkLogin compares a login through the sidecar (POST /v1/login for
// a user without a second factor: password grant, factor lookup, audit)
// with the same password grant sent to the Keycloak-compatible server
// directly. Each iteration opens a Keycloak session.
func BenchmarkLogin(b *testing.B) {
	env := testenv.Start(b, testenv.Options{})
	b.Run("direct-password-grant", func(b *testing.B) {
		form := url.Values{"grant_type": {"password"}, "client_id": {testenv.LoginClient},
			"client_secret": {testenv.LoginSecret}, "username": {"bob"}, "password": {"bob"}, "scope": {"openid"}}.Encode()
		tokenURL := env.KeycloakURL + "/realms/" + testenv.Realm + "/protocol/openid-connect/token"
		for b.Loop() {
			resp, err := env.Client.Post(tokenURL, "application/x-www-form-urlencoded", strings.NewReader(form))
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("password grant: %d", resp.StatusCode)
			}
		}
	})
	b.Run("sidecar-login", func(b *testing.B) {
		for b.Loop() {
			status, m, _ := do(b, env, call{method: "POST", path: "/v1/login", body: map[string]string{"username": "bob", "password": "bob"}})
			if status != http.StatusOK {
				b.Fatalf("login: %d %v", status, m)
			}
		}
	})
}
