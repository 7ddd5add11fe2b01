package perf_test

import (
	"context"
	"errors"
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
// fails once before the challenge records the proof. The service retries
// that write (stepup.Config.PersistTimeout), so the spent code still grants
// the step-up, exactly once, and the grant is on record.
func TestBackupCodeSurvivesAFailedConsume(t *testing.T) {
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
	if err := verify(); err != nil {
		t.Fatalf("verify through a passing store failure = %v; the code is spent and no step-up was granted", err)
	}
	if faulty.armed.Load() {
		t.Fatal("the fault was never injected: the test proves nothing")
	}
	if err := verify(); !errors.Is(err, store.ErrConsumed) {
		t.Fatalf("second verify of the completed challenge = %v, want ErrConsumed", err)
	}
	events, err := env.Runtime.Store().ListAudit(ctx, store.AuditQuery{UserID: subject(t, tok), Types: []string{stepup.AuditStepUpGranted}})
	if err != nil || len(events) != 1 {
		t.Fatalf("stepup.granted events = %d (%v), want 1", len(events), err)
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
// then the stepup.granted audit event cannot be written at once. No grant
// goes without its record: the append is retried, and whether the first
// call or a retry of the client completes the grant, exactly one
// stepup.granted event is written.
func TestGrantAfterAFailedAuditIsOnRecord(t *testing.T) {
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
	if err := verify(); err != nil {
		t.Fatalf("verify through a passing audit failure = %v", err)
	}
	if faulty.armed.Load() {
		t.Fatal("the fault was never injected: the test proves nothing")
	}
	events, err := env.Runtime.Store().ListAudit(ctx, store.AuditQuery{UserID: alice, Types: []string{stepup.AuditStepUpGranted}})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 {
		t.Fatalf("%d stepup.granted events after a granted retry, want 1", len(events))
	}
}
