package perf_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/config"
	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
	"github.com/stepup-bridge/stepup-bridge/internal/testenv"
)

// attempt is one verification of one backup code on one challenge.
type attempt struct {
	user, code, challenge, token string
	status                       int
	errCode                      string
}

// TestPostgresRestartMidLoad restarts the sidecar's PostgreSQL (a private
// cluster, killed and recovered from its WAL) while three users step up
// with backup codes from two sessions each, both sessions racing to spend
// the same codes. Requests that hit the restart answer 503 and are retried
// once the store is back. Checked: no code is accepted twice, a spent code
// is refused afterwards, no grant is on the audit trail that was not
// answered, no code is spent without a grant, and every grant is on the
// audit trail (TestBackupCodeSurvivesAFailedConsume and
// TestGrantAfterAFailedAuditIsOnRecord show the same deterministically).
func TestPostgresRestartMidLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping in -short mode: starts, loads and restarts a private PostgreSQL cluster (about 10 s)")
	}
	cluster := startCluster(t)
	env := testenv.Start(t, testenv.Options{Mutate: func(c *config.Config) {
		c.Store.Type = "postgres"
		c.Store.Postgres.DSN = config.Secret(cluster.DSN())
		c.Store.Postgres.MaxConns = 6
	}})
	ctx := context.Background()

	type session struct{ user, token string }
	var sessions []session
	codes := map[string][]string{}
	ids := map[string]string{}
	for _, u := range []string{"alice", "bob", "carol"} {
		a := env.PasswordTokens(t, u, u).AccessToken
		b := env.PasswordTokens(t, u, u).AccessToken
		sessions = append(sessions, session{u, a}, session{u, b})
		ids[u] = subject(t, a)
		codes[u] = enrolBackupCodes(t, env, ids[u])
	}

	var (
		mu        sync.Mutex
		attempts  []*attempt
		verifies  atomic.Int64
		saw503    atomic.Int64
		restarted = make(chan error, 1)
	)
	go func() {
		for verifies.Load() < 10 {
			time.Sleep(5 * time.Millisecond)
		}
		start := time.Now()
		err := cluster.ctl("restart")
		t.Logf("PostgreSQL restarted (immediate) after %d verifications, back in %s", verifies.Load(), time.Since(start).Round(time.Millisecond))
		restarted <- err
	}()

	deadline := time.Now().Add(60 * time.Second)
	var wg sync.WaitGroup
	for _, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, code := range codes[s.user] {
				var id string
				for id == "" && time.Now().Before(deadline) {
					var status int
					var m map[string]any
					id, status, m = createChallenge(t, env, s.token, factors.BackupCode, "")
					if id == "" {
						if m["error"] == "factor_not_available" {
							return // the other session spent the last code
						}
						if status != http.StatusServiceUnavailable {
							t.Errorf("create for %s = %d %v", s.user, status, m)
							return
						}
						saw503.Add(1)
						time.Sleep(50 * time.Millisecond)
					}
				}
				status, m, _ := verifyChallenge(t, env, s.token, id, code, "")
				verifies.Add(1)
				if status == http.StatusServiceUnavailable {
					saw503.Add(1)
				}
				e, _ := m["error"].(string)
				mu.Lock()
				attempts = append(attempts, &attempt{user: s.user, code: code, challenge: id, token: s.token, status: status, errCode: e})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := <-restarted; err != nil {
		t.Fatal(err)
	}
	for {
		if s, _, _ := do(t, env, call{method: "GET", path: "/readyz"}); s == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sidecar did not become ready after the restart")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The clients retry what answered 503, on the same challenge.
	retried := 0
	for _, a := range attempts {
		for a.status == http.StatusServiceUnavailable && time.Now().Before(deadline) {
			retried++
			var m map[string]any
			a.status, m, _ = verifyChallenge(t, env, a.token, a.challenge, a.code, "")
			a.errCode, _ = m["error"].(string)
		}
	}

	accepted := map[string]int{}
	grants := map[string]int{}
	outcomes := map[string]int{}
	for _, a := range attempts {
		outcomes[fmt.Sprintf("%d %s", a.status, a.errCode)]++
		switch a.status {
		case http.StatusOK:
			accepted[a.user+" "+a.code]++
			grants[a.user]++
		case http.StatusBadRequest, http.StatusConflict:
		default:
			t.Errorf("%s's code ended with %d %s", a.user, a.status, a.errCode)
		}
	}
	t.Logf("%d verifications, %d answers 503 during the restart, %d retried; final outcomes %v", len(attempts), saw503.Load(), retried, outcomes)
	if saw503.Load() == 0 {
		t.Error("no request answered 503: the restart did not hit the load")
	}
	for k, n := range accepted {
		if n > 1 {
			t.Errorf("code %s accepted %d times", k, n)
		}
	}

	for _, u := range []string{"alice", "bob", "carol"} {
		// Every grant is on record.
		events, err := env.Runtime.Store().ListAudit(ctx, store.AuditQuery{UserID: ids[u], Types: []string{"stepup.granted"}, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case len(events) > grants[u]:
			t.Errorf("%s: %d grants answered, %d stepup.granted events on record", u, grants[u], len(events))
		case len(events) < grants[u]:
			msg := fmt.Sprintf("%s: %d grants answered, only %d stepup.granted events on record", u, grants[u], len(events))
			t.Error(msg)
		}
		// Spent codes are spent, and no code was spent without a grant.
		st, err := env.Runtime.Factors().Status(ctx, ids[u])
		if err != nil {
			t.Fatal(err)
		}
		spent := -1
		for _, s := range st {
			if s.Factor == factors.BackupCode && s.Remaining != nil {
				spent = len(codes[u]) - *s.Remaining
			}
		}
		distinct := 0
		for _, c := range codes[u] {
			if accepted[u+" "+c] > 0 {
				distinct++
				tok := sessions[0].token
				for _, s := range sessions {
					if s.user == u {
						tok = s.token
					}
				}
				// With every code spent the factor is no longer offered:
				// that refusal is a refusal too.
				if id, status, m := createChallenge(t, env, tok, factors.BackupCode, ""); id == "" {
					if m["error"] != "factor_not_available" {
						t.Errorf("create = %d %v", status, m)
					}
				} else if status, m, _ := verifyChallenge(t, env, tok, id, c, ""); status == http.StatusOK {
					t.Errorf("%s's spent code accepted again: %v", u, m)
				}
			}
		}
		if spent != distinct {
			msg := fmt.Sprintf("%s: %d backup codes spent, %d step-ups granted with them: %d lost to the restart", u, spent, distinct, spent-distinct)
			t.Error(msg)
		}
	}
}
