package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

func testCounters(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("WindowsAlignedToEpoch", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		// 1700000000 is 800s into its hour, so the hour ends at 1700002800.
		now := time.Unix(1700000000, 0)
		hourEnd := time.Unix(1700002800, 0).UTC()
		cases := []struct {
			name      string
			n         int64
			now       time.Time
			wantCount int64
			wantReset time.Time
		}{
			{"first", 1, now, 1, hourEnd},
			{"same window adds", 4, now.Add(10 * time.Minute), 5, hourEnd},
			{"last nanosecond of the window", 1, hourEnd.Add(-time.Nanosecond), 6, hourEnd},
			{"next window starts at the reset time", 2, hourEnd, 2, hourEnd.Add(time.Hour)},
			{"a window later", 1, hourEnd.Add(time.Hour + time.Second), 1, hourEnd.Add(2 * time.Hour)},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				count, reset, err := s.IncrementCounter(ctx, "k", tc.n, time.Hour, tc.now)
				mustNil(t, "IncrementCounter", err)
				if count != tc.wantCount {
					t.Errorf("count = %d, want %d", count, tc.wantCount)
				}
				checkTime(t, "resetAt", reset, tc.wantReset)
				count, reset, err = s.GetCounter(ctx, "k", time.Hour, tc.now)
				mustNil(t, "GetCounter", err)
				if count != tc.wantCount {
					t.Errorf("GetCounter = %d, want %d", count, tc.wantCount)
				}
				checkTime(t, "GetCounter resetAt", reset, tc.wantReset)
			})
		}
	})

	t.Run("MissingIsZero", func(t *testing.T) {
		s := newStore(t)
		count, reset, err := s.GetCounter(t.Context(), "never", time.Minute, at(30*time.Second))
		mustNil(t, "GetCounter", err)
		if count != 0 {
			t.Errorf("count = %d, want 0", count)
		}
		// baseUnix is 20s into its minute.
		checkTime(t, "resetAt", reset, at(time.Minute-20*time.Second))
	})

	t.Run("KeysAndWindowLengthsAreIndependent", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		incr := func(key string, window time.Duration, n int64) int64 {
			t.Helper()
			c, _, err := s.IncrementCounter(ctx, key, n, window, at(0))
			mustNil(t, "IncrementCounter "+key, err)
			return c
		}
		incr("user:a", time.Hour, 3)
		incr("user:b", time.Hour, 1)
		incr("user:a", time.Minute, 10)
		if c := incr("user:a", time.Hour, 1); c != 4 {
			t.Errorf("user:a hourly = %d, want 4", c)
		}
		if c := incr("user:b", time.Hour, 1); c != 2 {
			t.Errorf("user:b hourly = %d, want 2", c)
		}
		if c := incr("user:a", time.Minute, 1); c != 11 {
			t.Errorf("user:a per minute = %d, want 11", c)
		}
	})

	t.Run("Reset", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		for _, w := range []time.Duration{time.Minute, time.Hour} {
			_, _, err := s.IncrementCounter(ctx, "k", 5, w, at(0))
			mustNil(t, "IncrementCounter", err)
		}
		_, _, err := s.IncrementCounter(ctx, "other", 5, time.Hour, at(0))
		mustNil(t, "IncrementCounter", err)
		mustNil(t, "ResetCounter", s.ResetCounter(ctx, "k"))
		for _, w := range []time.Duration{time.Minute, time.Hour} {
			c, _, err := s.GetCounter(ctx, "k", w, at(0))
			mustNil(t, "GetCounter", err)
			if c != 0 {
				t.Errorf("window %v after reset = %d, want 0", w, c)
			}
		}
		if c, _, err := s.GetCounter(ctx, "other", time.Hour, at(0)); err != nil || c != 5 {
			t.Errorf("other key after resetting k = %d, %v; want 5", c, err)
		}
		if c, _, err := s.IncrementCounter(ctx, "k", 1, time.Hour, at(0)); err != nil || c != 1 {
			t.Errorf("IncrementCounter after reset = %d, %v; want 1", c, err)
		}
		mustNil(t, "ResetCounter of an unknown key", s.ResetCounter(ctx, "unknown"))
	})

	t.Run("RefusesSubMillisecondWindow", func(t *testing.T) {
		s := newStore(t)
		for _, w := range []time.Duration{0, -time.Second, time.Microsecond} {
			if _, _, err := s.IncrementCounter(t.Context(), "k", 1, w, at(0)); err == nil {
				t.Errorf("IncrementCounter with window %v succeeded", w)
			}
			if _, _, err := s.GetCounter(t.Context(), "k", w, at(0)); err == nil {
				t.Errorf("GetCounter with window %v succeeded", w)
			}
		}
	})

	t.Run("ConcurrentIncrementsAllCount", func(t *testing.T) {
		s := newStore(t)
		concurrentIncrements(t, func(int) store.Store { return s })
	})
}

// concurrentIncrements has Concurrency goroutines, spread over the stores
// that pick returns, increment one counter by 1: every increment counts and
// each sees a different count.
func concurrentIncrements(t *testing.T, pick func(i int) store.Store) {
	t.Helper()
	ctx := t.Context()
	counts := make([]int64, Concurrency)
	errs := race(Concurrency, func(i int) error {
		c, _, err := pick(i).IncrementCounter(ctx, "rate:user", 1, time.Hour, at(time.Duration(i)*time.Millisecond))
		counts[i] = c
		return err
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("goroutine %d: IncrementCounter: %v", i, err)
		}
	}
	slices.Sort(counts)
	for i, c := range counts {
		if c != int64(i+1) {
			t.Fatalf("increments returned %v, want each of 1..%d once", counts, Concurrency)
		}
	}
	got, _, err := pick(1).GetCounter(ctx, "rate:user", time.Hour, at(time.Second))
	mustNil(t, "GetCounter", err)
	if got != Concurrency {
		t.Fatalf("count = %d after %d increments", got, Concurrency)
	}
}
