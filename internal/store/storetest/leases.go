package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

func testLeases(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("ExclusionExpiryRenewal", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		const ttl = 10 * time.Second
		steps := []struct {
			name   string
			holder string
			now    time.Time
			want   error
		}{
			{"a takes the free lease", "a", at(0), nil},
			{"b is refused while a holds it", "b", at(time.Second), store.ErrLockHeld},
			{"a renews until 15s", "a", at(5 * time.Second), nil},
			{"b is refused after the first TTL, thanks to the renewal", "b", at(12 * time.Second), store.ErrLockHeld},
			{"b is refused 1ms before expiry", "b", at(15*time.Second - time.Millisecond), store.ErrLockHeld},
			{"b takes it at expiry", "b", at(15 * time.Second), nil},
			{"a, expired, is refused", "a", at(16 * time.Second), store.ErrLockHeld},
		}
		for _, st := range steps {
			err := s.AcquireLease(ctx, "user:1", st.holder, ttl, st.now)
			if !errors.Is(err, st.want) {
				t.Fatalf("%s: AcquireLease = %v, want %v", st.name, err, st.want)
			}
		}
		mustNil(t, "AcquireLease of another name", s.AcquireLease(ctx, "user:2", "a", ttl, at(16*time.Second)))
	})

	t.Run("ReleaseOnlyByHolder", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		mustNil(t, "AcquireLease", s.AcquireLease(ctx, "l", "a", time.Minute, at(0)))
		mustNil(t, "ReleaseLease by a non-holder", s.ReleaseLease(ctx, "l", "b"))
		wantErr(t, "AcquireLease after a non-holder's release", s.AcquireLease(ctx, "l", "c", time.Minute, at(time.Second)), store.ErrLockHeld)
		mustNil(t, "ReleaseLease by the holder", s.ReleaseLease(ctx, "l", "a"))
		mustNil(t, "AcquireLease after the holder's release", s.AcquireLease(ctx, "l", "c", time.Minute, at(2*time.Second)))
		mustNil(t, "ReleaseLease of an unknown lease", s.ReleaseLease(ctx, "unknown", "a"))
	})

	t.Run("ConcurrentAcquireHasOneWinner", func(t *testing.T) {
		s := newStore(t)
		concurrentAcquire(t, func(int) store.Store { return s })
	})

	t.Run("WithLeaseExcludes", func(t *testing.T) {
		s := newStore(t)
		leaseExclusion(t, func(int) store.Store { return s })
	})

	t.Run("WithLeaseWaitsForContext", func(t *testing.T) {
		s := newStore(t)
		mustNil(t, "AcquireLease", s.AcquireLease(t.Context(), "l", "other", time.Hour, time.Now()))
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		ran := false
		err := store.WithLease(ctx, s, "l", store.LeaseOptions{Poll: 5 * time.Millisecond}, func(context.Context) error {
			ran = true
			return nil
		})
		wantErr(t, "WithLease on a held lease", err, context.DeadlineExceeded)
		if ran {
			t.Fatal("WithLease ran fn without the lease")
		}
	})

	t.Run("WithLeaseReleases", func(t *testing.T) {
		s := newStore(t)
		errFn := errors.New("fn failed")
		err := store.WithLease(t.Context(), s, "l", store.LeaseOptions{}, func(context.Context) error { return errFn })
		wantErr(t, "WithLease", err, errFn)
		mustNil(t, "AcquireLease after WithLease returned", s.AcquireLease(t.Context(), "l", "next", time.Minute, time.Now()))
	})
}

// concurrentAcquire has Concurrency holders, spread over the stores that
// pick returns, try to take one lease at the same instant.
func concurrentAcquire(t *testing.T, pick func(i int) store.Store) {
	t.Helper()
	ctx := t.Context()
	errs := race(Concurrency, func(i int) error {
		return pick(i).AcquireLease(ctx, "contended", fmt.Sprintf("holder-%d", i), time.Minute, at(0))
	})
	if n := winners(t, errs, store.ErrLockHeld); n != 1 {
		t.Fatalf("%d holders acquired the same lease, want exactly 1", n)
	}
}

// leaseExclusion runs critical sections under WithLease from several
// goroutines, spread over the stores that pick returns, and checks that no
// two ever overlap.
func leaseExclusion(t *testing.T, pick func(i int) store.Store) {
	t.Helper()
	const workers, rounds = 8, 5
	var inside, overlaps, done atomic.Int64
	opts := store.LeaseOptions{TTL: 30 * time.Second, Poll: 2 * time.Millisecond}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	errs := race(workers, func(i int) error {
		for range rounds {
			err := store.WithLease(ctx, pick(i), "critical", opts, func(context.Context) error {
				if inside.Add(1) != 1 {
					overlaps.Add(1)
				}
				time.Sleep(3 * time.Millisecond)
				inside.Add(-1)
				done.Add(1)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("worker %d: WithLease: %v", i, err)
		}
	}
	if n := overlaps.Load(); n != 0 {
		t.Fatalf("critical sections overlapped %d times", n)
	}
	if n := done.Load(); n != workers*rounds {
		t.Fatalf("%d critical sections ran, want %d", n, workers*rounds)
	}
}
