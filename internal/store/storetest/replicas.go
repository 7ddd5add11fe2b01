package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// RunReplicas runs the cross-replica tests. open must return two stores
// opened independently (own connections, own pools, as two processes or
// two replicas would) over one fresh, empty database, and register their
// cleanup. Every race is split between a and b.
func RunReplicas(t *testing.T, open func(t *testing.T) (a, b store.Store)) {
	t.Helper()
	spread := func(a, b store.Store) func(i int) store.Store {
		return func(i int) store.Store {
			if i%2 == 0 {
				return a
			}
			return b
		}
	}
	t.Run("WritesAreVisibleToTheOther", func(t *testing.T) {
		a, b := open(t)
		ctx := t.Context()
		c := credential("c1", "u1", at(0))
		mustNil(t, "CreateCredential on a", a.CreateCredential(ctx, c))
		got, err := b.GetCredential(ctx, "c1")
		mustNil(t, "GetCredential on b", err)
		checkCredential(t, got, c)
		wantErr(t, "CreateCredential of the same ID on b", b.CreateCredential(ctx, c), store.ErrConflict)
		_, err = store.ConsumeChallenge(ctx, a, "missing", at(0))
		wantErr(t, "ConsumeChallenge of a missing challenge", err, store.ErrNotFound)
		mustNil(t, "CreateChallenge on b", b.CreateChallenge(ctx, challenge("h1", at(time.Minute))))
		_, err = store.ConsumeChallenge(ctx, a, "h1", at(0))
		mustNil(t, "ConsumeChallenge on a", err)
		_, err = store.ConsumeChallenge(ctx, b, "h1", at(time.Second))
		wantErr(t, "ConsumeChallenge on b after a", err, store.ErrConsumed)
	})
	t.Run("ConsumeHasOneWinner", func(t *testing.T) {
		a, b := open(t)
		singleUseChallenge(t, spread(a, b))
	})
	t.Run("SingleUseCodeHasOneWinner", func(t *testing.T) {
		a, b := open(t)
		singleUseCode(t, spread(a, b))
	})
	t.Run("UpdatesLoseNothing", func(t *testing.T) {
		a, b := open(t)
		noLostUpdates(t, spread(a, b))
	})
	t.Run("IncrementsAllCount", func(t *testing.T) {
		a, b := open(t)
		concurrentIncrements(t, spread(a, b))
	})
	t.Run("LeaseExcludesTheOther", func(t *testing.T) {
		a, b := open(t)
		ctx := t.Context()
		mustNil(t, "AcquireLease on a", a.AcquireLease(ctx, "l", "replica-a", time.Minute, at(0)))
		err := b.AcquireLease(ctx, "l", "replica-b", time.Minute, at(time.Second))
		if !errors.Is(err, store.ErrLockHeld) {
			t.Fatalf("AcquireLease on b while a holds it = %v, want ErrLockHeld", err)
		}
		mustNil(t, "ReleaseLease on a", a.ReleaseLease(ctx, "l", "replica-a"))
		mustNil(t, "AcquireLease on b after release", b.AcquireLease(ctx, "l", "replica-b", time.Minute, at(2*time.Second)))
	})
	t.Run("ConcurrentAcquireHasOneWinner", func(t *testing.T) {
		a, b := open(t)
		concurrentAcquire(t, spread(a, b))
	})
	t.Run("WithLeaseExcludes", func(t *testing.T) {
		a, b := open(t)
		leaseExclusion(t, spread(a, b))
	})
	t.Run("AuditInCommitOrder", func(t *testing.T) {
		a, b := open(t)
		concurrentAudit(t, spread(a, b))
	})
}
