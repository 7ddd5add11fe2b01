package perf_test

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"testing"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/internal/keyring"
	"github.com/stepup-bridge/stepup-bridge/internal/stepup"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
	"github.com/stepup-bridge/stepup-bridge/internal/testenv"
)

// errInjected stands for the database connection dying mid-request.
var errInjected = errors.New("injected: connection reset by peer")

// consumeFault passes every call through to the store, except that, once
// armed, it fails the next challenge update that consumes a challenge:
// the moment a PostgreSQL restart or a network cut would hit, after the
// factor's own transaction (a backup code marked used) has committed.
type consumeFault struct {
	stepup.Store
	armed atomic.Bool
}

func (f *consumeFault) UpdateChallenge(ctx context.Context, id string, fn func(store.Challenge) (store.Challenge, error)) (store.Challenge, error) {
	return f.Store.UpdateChallenge(ctx, id, func(cur store.Challenge) (store.Challenge, error) {
		next, err := fn(cur)
		if err == nil && cur.ConsumedAt.IsZero() && !next.ConsumedAt.IsZero() && f.armed.CompareAndSwap(true, false) {
			return cur, errInjected
		}
		return next, err
	})
}

// TestBackupCodeSurvivesAFailedConsume is the PostgreSQL-restart case made
// deterministic: the backup code's transaction commits, then the store
// fails before the challenge is marked verified. The request answers 503,
// and the user retries. Today the retry is refused as a replay: the code
// is spent and no step-up was granted, the "verified challenge lost" the
// restart test looks for. It runs with STEPUP_KNOWN_BUGS=1 until
// stepup.Service.VerifyChallenge (or the registry) makes spending the code
// and recording the proof on the challenge one step.
func TestBackupCodeSurvivesAFailedConsume(t *testing.T) {
	if os.Getenv("STEPUP_KNOWN_BUGS") == "" {
		t.Skip("known bug, reported in docs/performance.md (a backup code spent when the store fails between the code's and the challenge's transactions is lost); run with STEPUP_KNOWN_BUGS=1")
	}
	env := testenv.Start(t, testenv.Options{})
	ctx := context.Background()
	br, err := bridge.FromConfig(env.Config, env.Runtime.Store())
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	kr, err := keyring.FromConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	faulty := &consumeFault{Store: env.Runtime.Store()}
	svc, err := stepup.New(stepup.Config{Keycloak: br, Verifier: br.Verifier(), Factors: env.Runtime.Factors(), Store: faulty, Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	tok := env.PasswordTokens(t, "alice", "alice").AccessToken
	codes := enrolBackupCodes(t, env, subject(t, tok))

	ch, err := svc.CreateChallenge(ctx, stepup.ChallengeRequest{Request: stepup.Request{AccessToken: tok}, Factor: factors.BackupCode})
	if err != nil {
		t.Fatal(err)
	}
	faulty.armed.Store(true)
	verify := func() error {
		_, err := svc.VerifyChallenge(ctx, stepup.VerifyRequest{Request: stepup.Request{AccessToken: tok}, ChallengeID: ch.ID, Code: codes[0]})
		return err
	}
	if err := verify(); !errors.Is(err, errInjected) {
		t.Fatalf("first verify = %v, want the injected store failure", err)
	}
	if err := verify(); err != nil {
		t.Fatalf("retry of the same challenge with the same code after a store failure = %v; the code is spent and no step-up was granted", err)
	}
}

// grantAuditFault fails the first append of a stepup.granted event once
// armed: the store dying after the challenge was marked verified.
type grantAuditFault struct {
	stepup.Store
	armed atomic.Bool
}

func (f *grantAuditFault) AppendAudit(ctx context.Context, e store.AuditEvent) (store.AuditEvent, error) {
	if e.Type == stepup.AuditStepUpGranted && f.armed.CompareAndSwap(true, false) {
		return store.AuditEvent{}, errInjected
	}
	return f.Store.AppendAudit(ctx, e)
}

// TestGrantAfterAFailedAuditIsOnRecord: the challenge is marked verified,
// then the stepup.granted audit event cannot be written (503). The retry
// is granted, because the challenge carries the proof, but it skips the
// audit write that failed: a step-up is granted with no stepup.granted
// event (only the registry's factor-level stepup.success). verifyFactor's
// comment promises "a retry writes the record and the claim"; it does
// not. Runs with STEPUP_KNOWN_BUGS=1 until fixed.
func TestGrantAfterAFailedAuditIsOnRecord(t *testing.T) {
	if os.Getenv("STEPUP_KNOWN_BUGS") == "" {
		t.Skip("known bug, reported in docs/performance.md (a step-up granted on retry after the audit write failed has no stepup.granted event); run with STEPUP_KNOWN_BUGS=1")
	}
	env := testenv.Start(t, testenv.Options{})
	ctx := context.Background()
	br, err := bridge.FromConfig(env.Config, env.Runtime.Store())
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	kr, err := keyring.FromConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	faulty := &grantAuditFault{Store: env.Runtime.Store()}
	svc, err := stepup.New(stepup.Config{Keycloak: br, Verifier: br.Verifier(), Factors: env.Runtime.Factors(), Store: faulty, Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	tok := env.PasswordTokens(t, "alice", "alice").AccessToken
	alice := subject(t, tok)
	enrolPIN(t, env, alice, "4826")
	ch, err := svc.CreateChallenge(ctx, stepup.ChallengeRequest{Request: stepup.Request{AccessToken: tok}, Factor: factors.PIN})
	if err != nil {
		t.Fatal(err)
	}
	faulty.armed.Store(true)
	verify := func() error {
		_, err := svc.VerifyChallenge(ctx, stepup.VerifyRequest{Request: stepup.Request{AccessToken: tok}, ChallengeID: ch.ID, Code: "4826"})
		return err
	}
	if err := verify(); !errors.Is(err, errInjected) {
		t.Fatalf("first verify = %v, want the injected audit failure", err)
	}
	if err := verify(); err != nil {
		t.Fatalf("retry = %v", err)
	}
	events, err := env.Runtime.Store().ListAudit(ctx, store.AuditQuery{UserID: alice, Types: []string{stepup.AuditStepUpGranted}})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 {
		t.Fatalf("%d stepup.granted events after a granted retry, want 1", len(events))
	}
}
