package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// memChallenges is the least a Challenges needs to be for the helpers in
// ops.go: one record, updated under a mutex.
type memChallenges struct {
	store.Challenges // unused methods panic if called
	mu               sync.Mutex
	c                map[string]store.Challenge
}

func (m *memChallenges) UpdateChallenge(_ context.Context, id string, fn func(store.Challenge) (store.Challenge, error)) (store.Challenge, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.c[id]
	if !ok {
		return store.Challenge{}, store.ErrNotFound
	}
	next, err := fn(cur)
	if err != nil {
		return next, err
	}
	m.c[id] = next
	return next, nil
}

// pinnedNow is the tests' clock.
func pinnedNow() time.Time { return time.Unix(1700000000, 0).UTC() }

func TestAttemptAndConsumeChallenge(t *testing.T) {
	now := pinnedNow()
	open := store.Challenge{ID: "h", Attempts: 1, MaxAttempts: 3, ExpiresAt: now.Add(time.Minute)}
	consumedAndExpired := open
	consumedAndExpired.ConsumedAt = now.Add(-time.Minute)
	consumedAndExpired.ExpiresAt = now.Add(-time.Second)
	expired := open
	expired.ExpiresAt = now
	maxed := open
	maxed.Attempts = 3
	unlimited := open
	unlimited.MaxAttempts = 0
	unlimited.Attempts = 1000
	cases := []struct {
		name        string
		c           store.Challenge
		attemptErr  error
		consumeErr  error
		wantAttempt int
	}{
		{"open", open, nil, nil, 2},
		{"consumed wins over expired", consumedAndExpired, store.ErrConsumed, store.ErrConsumed, 1},
		{"expired at ExpiresAt", expired, store.ErrExpired, store.ErrExpired, 1},
		{"attempts used up; consuming still allowed", maxed, store.ErrTooManyAttempts, nil, 3},
		{"MaxAttempts 0 is unlimited", unlimited, nil, nil, 1001},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := &memChallenges{c: map[string]store.Challenge{"h": tc.c}}
			_, err := store.AttemptChallenge(t.Context(), m, "h", now)
			if !errors.Is(err, tc.attemptErr) {
				t.Fatalf("AttemptChallenge = %v, want %v", err, tc.attemptErr)
			}
			if got := m.c["h"].Attempts; got != tc.wantAttempt {
				t.Fatalf("Attempts = %d, want %d", got, tc.wantAttempt)
			}
			got, err := store.ConsumeChallenge(t.Context(), m, "h", now)
			if !errors.Is(err, tc.consumeErr) {
				t.Fatalf("ConsumeChallenge = %v, want %v", err, tc.consumeErr)
			}
			if tc.consumeErr == nil && !got.ConsumedAt.Equal(now) {
				t.Fatalf("ConsumedAt = %v, want %v", got.ConsumedAt, now)
			}
		})
	}
	m := &memChallenges{c: map[string]store.Challenge{}}
	if _, err := store.AttemptChallenge(t.Context(), m, "missing", now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("AttemptChallenge of a missing challenge = %v", err)
	}
}

// fakeLeases records calls and answers from a script.
type fakeLeases struct {
	mu       sync.Mutex
	acquire  []error // answers, in order; the last one repeats
	acquired []acquireCall
	released []releaseCall
}

type acquireCall struct {
	name, holder string
	ttl          time.Duration
	now          time.Time
}

type releaseCall struct {
	name, holder string
	ctxErr       error
}

func (f *fakeLeases) AcquireLease(_ context.Context, name, holder string, ttl time.Duration, now time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := min(len(f.acquired), len(f.acquire)-1)
	f.acquired = append(f.acquired, acquireCall{name, holder, ttl, now})
	return f.acquire[i]
}

func (f *fakeLeases) ReleaseLease(ctx context.Context, name, holder string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.released = append(f.released, releaseCall{name, holder, ctx.Err()})
	return nil
}

func TestWithLease(t *testing.T) {
	now := pinnedNow()
	errFn := errors.New("fn failed")
	errDB := errors.New("db down")
	cases := []struct {
		name        string
		acquire     []error
		opts        store.LeaseOptions
		fnErr       error
		cancelInFn  bool
		wantErr     error
		wantRan     bool
		wantTries   int
		wantTTL     time.Duration
		wantRelease bool
	}{
		{"free lease, defaults", []error{nil}, store.LeaseOptions{Now: func() time.Time { return now }},
			nil, false, nil, true, 1, 10 * time.Second, true},
		{"waits while held", []error{store.ErrLockHeld, store.ErrLockHeld, nil},
			store.LeaseOptions{TTL: time.Minute, Poll: time.Millisecond, Now: func() time.Time { return now }},
			nil, false, nil, true, 3, time.Minute, true},
		{"fn error returned, lease released", []error{nil}, store.LeaseOptions{Now: func() time.Time { return now }},
			errFn, false, errFn, true, 1, 10 * time.Second, true},
		{"released with a live context after ctx ends in fn", []error{nil}, store.LeaseOptions{Now: func() time.Time { return now }},
			nil, true, nil, true, 1, 10 * time.Second, true},
		{"store error stops at once", []error{errDB}, store.LeaseOptions{Now: func() time.Time { return now }},
			nil, false, errDB, false, 1, 10 * time.Second, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeLeases{acquire: tc.acquire}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			ran := false
			err := store.WithLease(ctx, f, "user:1", tc.opts, func(context.Context) error {
				ran = true
				if tc.cancelInFn {
					cancel()
				}
				return tc.fnErr
			})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("WithLease = %v, want %v", err, tc.wantErr)
			}
			if ran != tc.wantRan {
				t.Fatalf("fn ran = %v, want %v", ran, tc.wantRan)
			}
			if len(f.acquired) != tc.wantTries {
				t.Fatalf("%d acquire calls, want %d", len(f.acquired), tc.wantTries)
			}
			holders := map[string]bool{}
			for _, a := range f.acquired {
				if a.name != "user:1" || a.ttl != tc.wantTTL || !a.now.Equal(now) {
					t.Errorf("acquire call %+v, want name user:1, ttl %v, now %v", a, tc.wantTTL, now)
				}
				holders[a.holder] = true
			}
			if len(holders) != 1 || holders[""] {
				t.Errorf("holders %v, want one non-empty holder for every try", holders)
			}
			if !tc.wantRelease {
				if len(f.released) != 0 {
					t.Fatalf("released %v without holding the lease", f.released)
				}
				return
			}
			if len(f.released) != 1 {
				t.Fatalf("%d release calls, want 1", len(f.released))
			}
			r := f.released[0]
			if r.name != "user:1" || !holders[r.holder] || r.ctxErr != nil {
				t.Fatalf("release %+v, want the acquiring holder with a live context", r)
			}
		})
	}
}

func TestWithLeaseGivesUpWithContext(t *testing.T) {
	f := &fakeLeases{acquire: []error{store.ErrLockHeld}}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
	defer cancel()
	err := store.WithLease(ctx, f, "l", store.LeaseOptions{Poll: time.Millisecond}, func(context.Context) error {
		t.Error("fn ran without the lease")
		return nil
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WithLease = %v, want DeadlineExceeded", err)
	}
	if len(f.acquired) < 2 {
		t.Fatalf("%d tries in 30ms with a 1ms poll, want several", len(f.acquired))
	}
}

func TestWithLeaseHoldersDiffer(t *testing.T) {
	f := &fakeLeases{acquire: []error{nil}}
	for range 2 {
		if err := store.WithLease(t.Context(), f, "l", store.LeaseOptions{}, func(context.Context) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if f.acquired[0].holder == f.acquired[1].holder {
		t.Fatal("two WithLease calls used the same holder: one could renew the other's lease")
	}
}

func TestRetry(t *testing.T) {
	transient := errors.New("connection reset")
	tests := []struct {
		name      string
		failures  int   // transient failures before success
		answer    error // returned instead of success, if set
		timeout   time.Duration
		wantCalls int
		wantErr   error
	}{
		{"succeeds at once", 0, nil, time.Second, 1, nil},
		{"rides out a passing outage", 3, nil, 5 * time.Second, 4, nil},
		{"an answer is not retried", 0, store.ErrConsumed, time.Second, 1, store.ErrConsumed},
		{"gives up after the timeout", 1000, nil, 120 * time.Millisecond, -1, transient},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := store.Retry(context.Background(), tc.timeout, nil, func(context.Context) error {
				calls++
				if calls <= tc.failures {
					return transient
				}
				return tc.answer
			})
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if tc.wantCalls >= 0 && calls != tc.wantCalls {
				t.Fatalf("calls = %d, want %d", calls, tc.wantCalls)
			}
			if tc.wantCalls < 0 && calls < 2 {
				t.Fatalf("calls = %d, want retries before giving up", calls)
			}
		})
	}
	// A cancelled caller does not stop it: the work is already done.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := 0
	if err := store.Retry(ctx, time.Second, nil, func(ctx context.Context) error {
		calls++
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if calls < 2 {
			return transient
		}
		return nil
	}); err != nil || calls != 2 {
		t.Fatalf("after cancel: %v, %d calls", err, calls)
	}
}
