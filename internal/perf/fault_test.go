package perf_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/config"
	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/internal/app"
	"github.com/stepup-bridge/stepup-bridge/internal/keycloaktest"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
	"github.com/stepup-bridge/stepup-bridge/internal/testenv"
)

const certsPath = "/realms/" + testenv.Realm + "/protocol/openid-connect/certs"

// timed runs f and fails t if it took longer than limit.
func timed(t *testing.T, what string, limit time.Duration, f func() int) int {
	t.Helper()
	start := time.Now()
	status := f()
	if d := time.Since(start); d > limit {
		t.Errorf("%s took %s, more than %s", what, d.Round(time.Millisecond), limit)
	}
	return status
}

// TestKeycloakOutage: with Keycloak down or slow the sidecar answers 503
// within keycloak.timeout, allows nothing it cannot check, and recovers by
// itself; a step-up whose factor was verified while the write-back failed
// completes on retry.
func TestKeycloakOutage(t *testing.T) {
	const kcTimeout = time.Second
	// Generous bounds: the machine may be loaded; the point is "seconds,
	// not the 30 s of a client's patience".
	const fast, bounded = 1500 * time.Millisecond, kcTimeout + 2*time.Second
	env := testenv.Start(t, testenv.Options{Mutate: func(c *config.Config) {
		c.Keycloak.Timeout = kcTimeout
		c.Keycloak.JWKSRefreshFloor = time.Second
	}})
	old := env.PasswordTokens(t, "alice", "alice")
	enrolPIN(t, env, subject(t, old.AccessToken), "4826")
	if s := authz(t, env, old.AccessToken); s != http.StatusOK {
		t.Fatalf("authz before the outage = %d", s)
	}
	// A genuine token under a key the sidecar has not fetched yet, and a
	// forged one under a kid nobody knows.
	if err := env.KC.RotateKeys(testenv.Realm); err != nil {
		t.Fatal(err)
	}
	rotated := env.PasswordTokens(t, "alice", "alice").AccessToken
	forged := newForger(t).token(t, old.AccessToken, randomKid(t))
	time.Sleep(1100 * time.Millisecond) // past the JWKS refresh floor

	login := func() int {
		s, _, _ := do(t, env, call{method: "POST", path: "/v1/login", body: map[string]string{"username": "bob", "password": "bob"}})
		return s
	}
	readyz := func() int { s, _, _ := do(t, env, call{method: "GET", path: "/readyz"}); return s }

	env.KC.SetAvailable(false)
	var challengeID string
	t.Run("unavailable", func(t *testing.T) {
		cases := []struct {
			name string
			f    func() int
			want int
		}{
			{"authz with a genuine token under an unseen key", func() int { return authz(t, env, rotated) }, http.StatusServiceUnavailable},
			{"authz with a cached key still verifies offline", func() int { return authz(t, env, old.AccessToken) }, http.StatusOK},
			{"login", login, http.StatusServiceUnavailable},
			{"readyz", readyz, http.StatusServiceUnavailable},
		}
		for _, c := range cases {
			if got := timed(t, c.name, fast, c.f); got != c.want {
				t.Errorf("%s: %d, want %d", c.name, got, c.want)
			}
		}
		if got := timed(t, "authz with a forged kid", fast, func() int { return authz(t, env, forged) }); got == http.StatusOK {
			t.Errorf("authz allowed a forged token while Keycloak was down")
		}
		// Opening a challenge needs no Keycloak call; verifying the right
		// PIN proves the factor but the write-back fails: 503, no grant.
		id, status, m := createChallenge(t, env, old.AccessToken, factors.PIN, "")
		if id == "" {
			t.Fatalf("create challenge while Keycloak is down: %d %v", status, m)
		}
		challengeID = id
		var hdr http.Header
		status = timed(t, "verify", fast, func() int {
			s, body, h := verifyChallenge(t, env, old.AccessToken, id, "4826", "")
			m, hdr = body, h
			return s
		})
		if status != http.StatusServiceUnavailable || m["error"] != "temporarily_unavailable" || hdr.Get("Retry-After") == "" {
			t.Fatalf("verify while Keycloak is down = %d %v (Retry-After %q), want 503", status, m, hdr.Get("Retry-After"))
		}
	})
	if challengeID == "" {
		t.FailNow()
	}

	env.KC.SetAvailable(true)
	env.KC.Latency(5 * time.Second)
	time.Sleep(1100 * time.Millisecond) // past the refresh floor again
	t.Run("slow", func(t *testing.T) {
		if got := timed(t, "login", bounded, login); got != http.StatusServiceUnavailable {
			t.Errorf("login with Keycloak 5 s slow = %d, want 503", got)
		}
		if got := timed(t, "authz under an unseen key", bounded, func() int { return authz(t, env, rotated) }); got != http.StatusServiceUnavailable {
			t.Errorf("authz with Keycloak 5 s slow = %d, want 503", got)
		}
		if got := timed(t, "verify retry", bounded, func() int {
			s, _, _ := verifyChallenge(t, env, old.AccessToken, challengeID, "4826", "")
			return s
		}); got != http.StatusServiceUnavailable {
			t.Errorf("verify with Keycloak 5 s slow = %d, want 503", got)
		}
	})

	env.KC.Latency(0)
	t.Run("recovered", func(t *testing.T) {
		deadline := time.Now().Add(15 * time.Second)
		for readyz() != http.StatusOK {
			if time.Now().After(deadline) {
				t.Fatal("readyz did not recover within 15 s")
			}
			time.Sleep(200 * time.Millisecond)
		}
		for authz(t, env, rotated) != http.StatusOK {
			if time.Now().After(deadline) {
				t.Fatal("the rotated key was not fetched within 15 s of recovery")
			}
			time.Sleep(200 * time.Millisecond)
		}
		if got := login(); got != http.StatusOK {
			t.Errorf("login after recovery = %d", got)
		}
		// The verified challenge is not lost: the retry finishes the write-back.
		status, m, _ := verifyChallenge(t, env, old.AccessToken, challengeID, "4826", "")
		if status != http.StatusOK || m["acr"] != "2" {
			t.Fatalf("verify retry after recovery = %d %v", status, m)
		}
		fresh := env.Refresh(t, old.RefreshToken)
		sid, _ := testenv.Claims(t, old.AccessToken)["sid"].(string)
		raw, _ := testenv.Claims(t, fresh.AccessToken)["stepup"].([]any)
		found := false
		for _, e := range raw {
			if m, _ := e.(map[string]any); m["sid"] == sid {
				found = true
			}
		}
		if !found {
			t.Fatalf("no step-up entry for session %s after recovery: %v", sid, raw)
		}
	})
}

// TestJWKSFlood: tokens under random key ids, sent as fast as the machine
// allows, cost Keycloak at most one JWKS fetch per refresh floor, are all
// refused, and do not disturb genuine tokens.
func TestJWKSFlood(t *testing.T) {
	const floor = time.Second
	const flood = 3 * time.Second
	env := testenv.Start(t, testenv.Options{Mutate: func(c *config.Config) { c.Keycloak.JWKSRefreshFloor = floor }})
	genuine := env.PasswordTokens(t, "alice", "alice").AccessToken
	if s := authz(t, env, genuine); s != http.StatusOK {
		t.Fatalf("authz with a genuine token = %d", s)
	}
	f := newForger(t)
	forged := make([]string, 50) // cycled through: each request still carries a kid the sidecar does not know
	for i := range forged {
		forged[i] = f.token(t, genuine, randomKid(t))
	}
	time.Sleep(floor) // the first fetch must not hide the flood's
	before := env.KC.Requests(certsPath)

	var sent, allowed, refused atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), flood)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ctx.Err() == nil; i += 4 {
				req, _ := http.NewRequest("GET", env.SidecarURL+"/v1/authz", nil)
				req.Header.Set("X-Original-Method", "GET")
				req.Header.Set("X-Original-URI", "/api/orders/7")
				req.Header.Set("Authorization", "Bearer "+forged[i%len(forged)])
				resp, err := env.Client.Do(req)
				if err != nil {
					t.Errorf("flood request: %v", err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				sent.Add(1)
				switch resp.StatusCode {
				case http.StatusOK:
					allowed.Add(1)
				case http.StatusUnauthorized:
					refused.Add(1)
				}
			}
		}()
	}
	for ctx.Err() == nil {
		if s := authz(t, env, genuine); s != http.StatusOK {
			t.Errorf("genuine token during the flood = %d", s)
		}
		time.Sleep(100 * time.Millisecond)
	}
	wg.Wait()
	elapsed := time.Since(start)
	fetches := env.KC.Requests(certsPath) - before
	limit := int(elapsed/floor) + 1
	t.Logf("%d forged tokens in %s: %d refused with 401, %d JWKS fetches (limit %d)", sent.Load(), elapsed.Round(time.Millisecond), refused.Load(), fetches, limit)
	if allowed.Load() != 0 {
		t.Errorf("%d forged tokens were allowed", allowed.Load())
	}
	if refused.Load() != sent.Load() {
		t.Errorf("%d of %d forged tokens got something else than 401", sent.Load()-refused.Load(), sent.Load())
	}
	if fetches < 1 || fetches > limit {
		t.Errorf("%d JWKS fetches during a %s flood, want 1..%d (one per %s floor)", fetches, elapsed, limit, floor)
	}
	if sent.Load() < 100 {
		t.Errorf("only %d forged requests were sent: the flood did not test anything", sent.Load())
	}
}

// TestShutdownUnderLoad: cancelling the sidecar's context (what SIGTERM
// does in cmd/stepup-bridge) while requests are in flight lets them finish:
// logins waiting on a slow Keycloak complete with 200, and a client
// hammering /v1/authz sees answers or, once the listener is closed,
// refused connections, never a connection cut in the middle of a request.
func TestShutdownUnderLoad(t *testing.T) {
	ctx, cancelKC := context.WithCancel(context.Background())
	defer cancelKC()
	kc, err := keycloaktest.Start(ctx, keycloaktest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := kc.ImportRealm(keycloaktest.DevRealm()); err != nil {
		t.Fatal(err)
	}
	cfg := testenv.Config(t, kc.URL())
	cfg.Listen.ShutdownTimeout = 15 * time.Second
	if err := app.Apply(ctx, cfg, io.Discard); err != nil {
		t.Fatal(err)
	}
	rt, err := app.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	runCtx, sigterm := context.WithCancel(ctx)
	defer sigterm()
	done := make(chan error, 1)
	go func() { done <- rt.Run(runCtx) }()
	env := &testenv.Env{KC: kc, KeycloakURL: kc.URL(), SidecarURL: "http://" + rt.Addr(), Config: cfg, Runtime: rt,
		Client: &http.Client{Timeout: 30 * time.Second}}
	access := env.PasswordTokens(t, "alice", "alice").AccessToken
	if s := authz(t, env, access); s != http.StatusOK {
		t.Fatalf("authz = %d", s)
	}

	const slow = 800 * time.Millisecond
	const logins = 6
	kc.Latency(slow)
	tokenPath := "/realms/" + testenv.Realm + "/protocol/openid-connect/token"
	base := kc.Requests(tokenPath)
	loginStatus := make(chan error, logins)
	for range logins {
		go func() {
			resp, err := env.Client.Post(env.SidecarURL+"/v1/login", "application/json", strings.NewReader(`{"username":"bob","password":"bob"}`))
			if err != nil {
				loginStatus <- fmt.Errorf("login in flight at shutdown: %w", err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				loginStatus <- fmt.Errorf("login in flight at shutdown: %d %s", resp.StatusCode, body)
				return
			}
			loginStatus <- nil
		}()
	}

	var answered, refused atomic.Int64
	var mu sync.Mutex
	var broken []error
	stopHammer := make(chan struct{})
	var wg sync.WaitGroup
	hammer := &http.Client{Timeout: 30 * time.Second}
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stopHammer:
					return
				default:
				}
				req, _ := http.NewRequest("GET", env.SidecarURL+"/v1/authz", nil)
				req.Header.Set("X-Original-Method", "GET")
				req.Header.Set("X-Original-URI", "/api/orders/7")
				req.Header.Set("Authorization", "Bearer "+access)
				resp, err := hammer.Do(req)
				switch {
				case err == nil:
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					answered.Add(1)
				case errors.Is(err, syscall.ECONNREFUSED):
					refused.Add(1) // sent after the listener closed: never in flight
					time.Sleep(10 * time.Millisecond)
				default:
					mu.Lock()
					broken = append(broken, err)
					mu.Unlock()
				}
			}
		}()
	}

	deadline := time.Now().Add(15 * time.Second)
	for kc.Requests(tokenPath)-base < logins {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d logins reached Keycloak", kc.Requests(tokenPath)-base, logins)
		}
		time.Sleep(10 * time.Millisecond)
	}
	sigterm() // every login is now inside the sidecar, waiting on Keycloak
	stopped := time.Now()
	for range logins {
		if err := <-loginStatus; err != nil {
			t.Error(err)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after shutdown: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the sidecar did not stop within 20 s")
	}
	t.Logf("drained %d logins in %s", logins, time.Since(stopped).Round(time.Millisecond))
	time.Sleep(200 * time.Millisecond)
	close(stopHammer)
	wg.Wait()
	t.Logf("authz hammer: %d answered, %d refused after close", answered.Load(), refused.Load())
	for _, err := range broken {
		t.Errorf("a request failed with a connection error during shutdown: %v", err)
	}
	if answered.Load() == 0 || refused.Load() == 0 {
		t.Errorf("the hammer saw %d answers and %d refusals: it did not span the shutdown", answered.Load(), refused.Load())
	}
}

// TestBruteForce: a guessing run against one account's PIN, TOTP and
// backup codes is stopped by the PIN lockout, the per-IP rate limit and,
// when the attacker spreads over many addresses, the per-account budget
// of 100 failures an hour, after which even the right codes are refused;
// the audit trail shows each step.
func TestBruteForce(t *testing.T) {
	// Counter windows are aligned to the epoch: do not straddle the
	// minute (IP limit) or the hour (account budget) this test counts in.
	now := time.Now()
	if untilMinute := now.Truncate(time.Minute).Add(time.Minute).Sub(now); untilMinute < 10*time.Second {
		time.Sleep(untilMinute + 100*time.Millisecond)
	}
	now = time.Now()
	if untilHour := now.Truncate(time.Hour).Add(time.Hour).Sub(now); untilHour < 40*time.Second {
		time.Sleep(untilHour + 100*time.Millisecond)
	}
	env := testenv.Start(t, testenv.Options{Mutate: func(c *config.Config) {
		c.Listen.TrustedProxies = []string{"127.0.0.1/32"}
		c.RateLimits.IPRequestsPerMinute = 60
		c.RateLimits.UserFailuresPerHour = 100
		// The guesser opens a challenge per guess; the per-user challenge
		// cap (30 an hour by default) would stop it before the account's
		// failure budget, which is what this test measures.
		c.RateLimits.ChallengesPerUserPerHour = 1000
		c.Factors.PIN.MaxFailures = 5
	}})
	tok := env.PasswordTokens(t, "alice", "alice").AccessToken
	alice := subject(t, tok)
	enrolPIN(t, env, alice, "4826")
	secret := enrolTOTP(t, env, alice)
	codes := enrolBackupCodes(t, env, alice)

	reachedFactor := 0 // verify answers the account budget counts: wrong code or locked
	// guess answers one challenge of factor with code from xff and
	// returns the status and error code of the verify (or of the create,
	// when that was refused).
	var openID = map[string]string{}
	guess := func(factor, code, xff string) (int, string) {
		t.Helper()
		if openID[factor+xff] == "" {
			id, status, m := createChallenge(t, env, tok, factor, xff)
			if id == "" {
				e, _ := m["error"].(string)
				return status, e
			}
			openID[factor+xff] = id
		}
		status, m, h := verifyChallenge(t, env, tok, openID[factor+xff], code, xff)
		e, _ := m["error"].(string)
		switch e {
		case "invalid_code", "locked":
			reachedFactor++
		case "too_many_attempts":
			delete(openID, factor+xff) // the challenge is spent: open another
		}
		if (e == "locked" || e == "rate_limited") && h.Get("Retry-After") == "" {
			t.Errorf("429 %s without Retry-After", e)
		}
		return status, e
	}

	t.Run("PIN lockout and per-IP limit", func(t *testing.T) {
		const ip = "198.51.100.7"
		var answers []string
		for range 70 {
			_, e := guess(factors.PIN, "1357", ip)
			answers = append(answers, e)
		}
		first := func(e string) int {
			for i, a := range answers {
				if a == e {
					return i
				}
			}
			return -1
		}
		if i := first("locked"); i < 0 || i > 6 {
			t.Errorf("PIN not locked after 5 failures: answers %v", answers)
		}
		// Limited requests are the creates and the verifies: 60 pass.
		if i := first("rate_limited"); i < 0 {
			t.Fatalf("the per-IP limit never answered: %v", answers)
		}
		if got := strings.Count(strings.Join(answers, ","), "rate_limited"); got < 5 {
			t.Errorf("only %d of 70 requests were refused by the per-IP limit: %v", got, answers)
		}
		// The right PIN, from another address, is refused while locked.
		if status, e := guess(factors.PIN, "4826", "198.51.100.8"); status != http.StatusTooManyRequests || e != "locked" {
			t.Errorf("right PIN during the lockout = %d %s, want 429 locked", status, e)
		}
	})

	t.Run("account budget against a distributed guesser", func(t *testing.T) {
		budgetHit := false
		for i := 0; i < 400 && !budgetHit; i++ {
			xff := fmt.Sprintf("203.0.113.%d", i%250+1)
			if i >= 250 {
				xff = fmt.Sprintf("192.0.2.%d", i%250+1)
			}
			factor, code := factors.TOTP, wrongTOTP(t, secret)
			if i%2 == 1 {
				factor, code = factors.BackupCode, "ZZZZZ-ZZZZZ"
			}
			status, e := guess(factor, code, xff)
			switch {
			case status == http.StatusTooManyRequests && e == "rate_limited":
				budgetHit = true
			case e == "invalid_code", e == "too_many_attempts":
			default:
				t.Fatalf("guess %d (%s from %s) = %d %s", i, factor, xff, status, e)
			}
		}
		if !budgetHit {
			t.Fatal("400 distributed guesses and the account budget never refused")
		}
		if reachedFactor != 100 {
			t.Errorf("%d guesses reached a factor before the budget refused, want exactly 100", reachedFactor)
		}
		// Even the right codes are refused now, from a fresh address.
		for _, c := range []struct{ factor, code string }{
			{factors.BackupCode, codes[0]},
			{factors.TOTP, totpCode(t, secret, time.Now())},
		} {
			if status, e := guess(c.factor, c.code, "192.0.2.251"); status != http.StatusTooManyRequests || e != "rate_limited" {
				t.Errorf("right %s after the budget = %d %s, want 429 rate_limited", c.factor, status, e)
			}
		}
	})

	t.Run("audit trail", func(t *testing.T) {
		var events []store.AuditEvent
		q := store.AuditQuery{UserID: alice, Limit: 1000}
		for {
			page, err := env.Runtime.Store().ListAudit(context.Background(), q)
			if err != nil {
				t.Fatal(err)
			}
			events = append(events, page...)
			if len(page) < q.Limit {
				break
			}
			q.AfterSeq = page[len(page)-1].Seq
		}
		var failures, lockedDenials, budgetDenials, pinLock, budgetLock, granted int
		ips := map[string]bool{}
		for _, e := range events {
			switch {
			case e.Type == "stepup.failure" && e.Outcome == "failure":
				failures++
				ips[e.IP] = true
			case e.Type == "stepup.failure" && e.Outcome == "denied" && e.Details["reason"] == factors.OutcomeLocked:
				lockedDenials++
			case e.Type == "stepup.failure" && e.Outcome == "denied" && e.Details["reason"] == factors.OutcomeRateLimited:
				budgetDenials++
			case e.Type == factors.AuditLockout && e.Factor == factors.PIN:
				pinLock++
			case e.Type == factors.AuditLockout && e.Factor == factors.BudgetFactor:
				budgetLock++
			case e.Type == "stepup.success", e.Type == "stepup.granted":
				granted++
			}
		}
		t.Logf("audit: %d events; %d wrong codes from %d addresses; %d refused by the PIN lockout, %d by the account budget; lockout events: PIN %d, budget %d",
			len(events), failures, len(ips), lockedDenials, budgetDenials, pinLock, budgetLock)
		if granted != 0 {
			t.Errorf("%d successful step-ups on record", granted)
		}
		if pinLock < 1 || budgetLock != 1 {
			t.Errorf("lockout events: PIN %d, budget %d; want >= 1 and 1", pinLock, budgetLock)
		}
		// Every guess that reached a factor is on record, and the spread
		// over addresses shows.
		if failures+lockedDenials != reachedFactor || len(ips) < 30 {
			t.Errorf("%d wrong codes and %d lockout refusals on record for %d guesses, from %d addresses", failures, lockedDenials, reachedFactor, len(ips))
		}
		if lockedDenials < 1 || budgetDenials < 2 {
			t.Errorf("refusals on record: %d by the PIN lockout, %d by the budget; want both", lockedDenials, budgetDenials)
		}
	})
}

// wrongTOTP is a 6-digit code that is none of the codes the verifier
// would accept now.
func wrongTOTP(t *testing.T, secret string) string {
	t.Helper()
	now := time.Now()
	valid := map[string]bool{}
	for _, d := range []time.Duration{-60 * time.Second, -30 * time.Second, 0, 30 * time.Second, 60 * time.Second} {
		valid[totpCode(t, secret, now.Add(d))] = true
	}
	for _, c := range []string{"000000", "111111", "222222", "333333", "444444", "555555"} {
		if !valid[c] {
			return c
		}
	}
	t.Fatal("no wrong TOTP code found")
	return ""
}
