package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

func testClosed(t *testing.T, newStore func(t *testing.T) store.Store) {
	s := newStore(t)
	ctx := t.Context()
	// Records to act on: on an open store every call below would succeed.
	mustNil(t, "CreateCredential", s.CreateCredential(ctx, credential("c1", "u1", at(0))))
	mustNil(t, "CreateChallenge", s.CreateChallenge(ctx, challenge("h1", at(time.Minute))))
	mustNil(t, "Ping before Close", s.Ping(ctx))
	mustNil(t, "Close", s.Close())

	ranUpdater := false
	calls := []struct {
		name string
		call func() error
	}{
		{"Ping", func() error { return s.Ping(ctx) }},
		{"CreateCredential", func() error { return s.CreateCredential(ctx, credential("c2", "u1", at(0))) }},
		{"GetCredential", func() error { _, err := s.GetCredential(ctx, "c1"); return err }},
		{"ListCredentials", func() error { _, err := s.ListCredentials(ctx, "u1"); return err }},
		{"UpdateCredential", func() error {
			_, err := s.UpdateCredential(ctx, "c1", func(c store.Credential) (store.Credential, error) {
				ranUpdater = true
				return c, nil
			})
			return err
		}},
		{"DeleteCredential", func() error { return s.DeleteCredential(ctx, "c1") }},
		{"CreateChallenge", func() error { return s.CreateChallenge(ctx, challenge("h2", at(time.Minute))) }},
		{"GetChallenge", func() error { _, err := s.GetChallenge(ctx, "h1"); return err }},
		{"UpdateChallenge", func() error {
			_, err := s.UpdateChallenge(ctx, "h1", func(c store.Challenge) (store.Challenge, error) {
				ranUpdater = true
				return c, nil
			})
			return err
		}},
		{"AttemptChallenge", func() error { _, err := store.AttemptChallenge(ctx, s, "h1", at(0)); return err }},
		{"ConsumeChallenge", func() error { _, err := store.ConsumeChallenge(ctx, s, "h1", at(0)); return err }},
		{"DeleteChallenge", func() error { return s.DeleteChallenge(ctx, "h1") }},
		{"DeleteExpiredChallenges", func() error { _, err := s.DeleteExpiredChallenges(ctx, at(time.Hour)); return err }},
		{"IncrementCounter", func() error { _, _, err := s.IncrementCounter(ctx, "k", 1, time.Minute, at(0)); return err }},
		{"GetCounter", func() error { _, _, err := s.GetCounter(ctx, "k", time.Minute, at(0)); return err }},
		{"ResetCounter", func() error { return s.ResetCounter(ctx, "k") }},
		{"AcquireLease", func() error { return s.AcquireLease(ctx, "l", "a", time.Minute, at(0)) }},
		{"ReleaseLease", func() error { return s.ReleaseLease(ctx, "l", "a") }},
		{"WithLease", func() error {
			return store.WithLease(ctx, s, "l", store.LeaseOptions{}, func(context.Context) error {
				ranUpdater = true
				return nil
			})
		}},
		{"AppendAudit", func() error { _, err := s.AppendAudit(ctx, event("x", "u1", at(0))); return err }},
		{"ListAudit", func() error { _, err := s.ListAudit(ctx, store.AuditQuery{}); return err }},
		{"PruneAudit", func() error { _, err := s.PruneAudit(ctx, at(time.Hour)); return err }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			if err := noPanic(c.call); err == nil {
				t.Fatalf("%s on a closed store succeeded", c.name)
			}
		})
	}
	if ranUpdater {
		t.Error("a closed store ran an updater or a critical section")
	}
	t.Run("CloseAgain", func(t *testing.T) {
		_ = noPanic(s.Close)
	})
}

// noPanic runs f, turning a panic into an error so the suite reports it
// instead of dying.
func noPanic(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panicked: %v", r)
		}
	}()
	return f()
}
