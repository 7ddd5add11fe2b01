package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

func testChallenges(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("CreateGetRoundTrip", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		c := challenge("h1", at(2*time.Minute+1500*time.Nanosecond))
		c.Attempts = 1
		mustNil(t, "CreateChallenge", s.CreateChallenge(ctx, c))
		got, err := s.GetChallenge(ctx, "h1")
		mustNil(t, "GetChallenge", err)
		checkChallenge(t, got, c)
		wantErr(t, "second CreateChallenge", s.CreateChallenge(ctx, challenge("h1", at(time.Hour))), store.ErrConflict)
		got, err = s.GetChallenge(ctx, "h1")
		mustNil(t, "GetChallenge", err)
		checkChallenge(t, got, c)
	})

	t.Run("MissingIsNotFound", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		_, err := s.GetChallenge(ctx, "nope")
		wantErr(t, "GetChallenge", err, store.ErrNotFound)
		_, err = store.AttemptChallenge(ctx, s, "nope", at(0))
		wantErr(t, "AttemptChallenge", err, store.ErrNotFound)
		_, err = store.ConsumeChallenge(ctx, s, "nope", at(0))
		wantErr(t, "ConsumeChallenge", err, store.ErrNotFound)
		wantErr(t, "DeleteChallenge", s.DeleteChallenge(ctx, "nope"), store.ErrNotFound)
	})

	t.Run("UpdateKeepsIdentity", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		orig := challenge("h1", at(time.Minute))
		mustNil(t, "CreateChallenge", s.CreateChallenge(ctx, orig))
		want := orig
		want.Data = nil
		want.Attempts = 2
		want.ConsumedAt = at(time.Second)
		got, err := s.UpdateChallenge(ctx, "h1", func(c store.Challenge) (store.Challenge, error) {
			next := want
			next.ID, next.UserID, next.CreatedAt = "other", "attacker", at(time.Hour)
			return next, nil
		})
		mustNil(t, "UpdateChallenge", err)
		checkChallenge(t, got, want)
		stored, err := s.GetChallenge(ctx, "h1")
		mustNil(t, "GetChallenge", err)
		checkChallenge(t, stored, want)

		errBoom := errors.New("boom")
		_, err = s.UpdateChallenge(ctx, "h1", func(c store.Challenge) (store.Challenge, error) {
			c.Attempts = 100
			return c, errBoom
		})
		wantErr(t, "UpdateChallenge with a failing updater", err, errBoom)
		stored, err = s.GetChallenge(ctx, "h1")
		mustNil(t, "GetChallenge", err)
		checkChallenge(t, stored, want)
	})

	t.Run("Expiry", func(t *testing.T) {
		expires := at(2 * time.Minute)
		cases := []struct {
			name string
			now  time.Time
			want error
		}{
			{"long before", at(0), nil},
			{"1ms before", expires.Add(-time.Millisecond), nil},
			{"at ExpiresAt", expires, store.ErrExpired},
			{"1ms after", expires.Add(time.Millisecond), store.ErrExpired},
			{"long after", expires.Add(time.Hour), store.ErrExpired},
		}
		s := newStore(t)
		ctx := t.Context()
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				id := fmt.Sprintf("ttl-%d", i)
				orig := challenge(id, expires)
				mustNil(t, "CreateChallenge", s.CreateChallenge(ctx, orig))

				got, err := store.AttemptChallenge(ctx, s, id, tc.now)
				if !errors.Is(err, tc.want) {
					t.Fatalf("AttemptChallenge at %v: got %v, want %v", tc.now, err, tc.want)
				}
				wantAttempts := 1
				if tc.want != nil {
					wantAttempts = 0
				} else if got.Attempts != 1 {
					t.Errorf("AttemptChallenge returned Attempts = %d, want 1", got.Attempts)
				}

				_, err = store.ConsumeChallenge(ctx, s, id, tc.now)
				if !errors.Is(err, tc.want) {
					t.Fatalf("ConsumeChallenge at %v: got %v, want %v", tc.now, err, tc.want)
				}
				stored, err := s.GetChallenge(ctx, id)
				mustNil(t, "GetChallenge", err)
				if stored.Attempts != wantAttempts {
					t.Errorf("stored Attempts = %d, want %d", stored.Attempts, wantAttempts)
				}
				wantConsumed := time.Time{}
				if tc.want == nil {
					wantConsumed = tc.now
				}
				checkTime(t, "ConsumedAt", stored.ConsumedAt, wantConsumed)
			})
		}
	})

	t.Run("AttemptLimit", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		c := challenge("h1", at(time.Minute))
		c.MaxAttempts = 3
		mustNil(t, "CreateChallenge", s.CreateChallenge(ctx, c))
		for i := 1; i <= 3; i++ {
			got, err := store.AttemptChallenge(ctx, s, "h1", at(time.Duration(i)*time.Second))
			mustNil(t, fmt.Sprintf("attempt %d", i), err)
			if got.Attempts != i {
				t.Fatalf("attempt %d returned Attempts = %d", i, got.Attempts)
			}
		}
		_, err := store.AttemptChallenge(ctx, s, "h1", at(4*time.Second))
		wantErr(t, "attempt 4", err, store.ErrTooManyAttempts)
		got, err := s.GetChallenge(ctx, "h1")
		mustNil(t, "GetChallenge", err)
		if got.Attempts != 3 {
			t.Fatalf("Attempts = %d after a refused attempt, want 3", got.Attempts)
		}
		// The last allowed attempt may still succeed and consume.
		_, err = store.ConsumeChallenge(ctx, s, "h1", at(5*time.Second))
		mustNil(t, "ConsumeChallenge after the last allowed attempt", err)
		_, err = store.AttemptChallenge(ctx, s, "h1", at(6*time.Second))
		wantErr(t, "AttemptChallenge after consumption", err, store.ErrConsumed)
	})

	t.Run("NoAttemptLimit", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		c := challenge("h1", at(time.Minute))
		c.MaxAttempts = 0
		mustNil(t, "CreateChallenge", s.CreateChallenge(ctx, c))
		for i := 1; i <= 10; i++ {
			_, err := store.AttemptChallenge(ctx, s, "h1", at(0))
			mustNil(t, fmt.Sprintf("attempt %d with MaxAttempts 0", i), err)
		}
	})

	t.Run("ConcurrentAttemptsRespectLimit", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		c := challenge("h1", at(time.Minute))
		c.MaxAttempts = 5
		mustNil(t, "CreateChallenge", s.CreateChallenge(ctx, c))
		errs := race(Concurrency, func(int) error {
			_, err := store.AttemptChallenge(ctx, s, "h1", at(0))
			return err
		})
		if n := winners(t, errs, store.ErrTooManyAttempts); n != 5 {
			t.Fatalf("%d concurrent attempts counted, want exactly 5", n)
		}
		got, err := s.GetChallenge(ctx, "h1")
		mustNil(t, "GetChallenge", err)
		if got.Attempts != 5 {
			t.Fatalf("Attempts = %d, want 5", got.Attempts)
		}
	})

	t.Run("ConsumeOnce", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		mustNil(t, "CreateChallenge", s.CreateChallenge(ctx, challenge("h1", at(time.Minute))))
		got, err := store.ConsumeChallenge(ctx, s, "h1", at(time.Second))
		mustNil(t, "first ConsumeChallenge", err)
		checkTime(t, "ConsumedAt", got.ConsumedAt, at(time.Second))
		_, err = store.ConsumeChallenge(ctx, s, "h1", at(2*time.Second))
		wantErr(t, "second ConsumeChallenge", err, store.ErrConsumed)
		stored, err := s.GetChallenge(ctx, "h1")
		mustNil(t, "GetChallenge of a consumed challenge", err)
		checkTime(t, "stored ConsumedAt", stored.ConsumedAt, at(time.Second))
	})

	t.Run("ConcurrentConsumeHasOneWinner", func(t *testing.T) {
		s := newStore(t)
		singleUseChallenge(t, func(int) store.Store { return s })
	})

	t.Run("DeleteChallenge", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		mustNil(t, "CreateChallenge", s.CreateChallenge(ctx, challenge("h1", at(time.Minute))))
		mustNil(t, "DeleteChallenge", s.DeleteChallenge(ctx, "h1"))
		_, err := s.GetChallenge(ctx, "h1")
		wantErr(t, "GetChallenge after delete", err, store.ErrNotFound)
		wantErr(t, "second DeleteChallenge", s.DeleteChallenge(ctx, "h1"), store.ErrNotFound)
	})

	t.Run("DeleteExpiredReturnsWhatItDeleted", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		now := at(time.Hour)
		consumed := challenge("consumed-open", now.Add(time.Minute))
		consumed.ConsumedAt = now.Add(-time.Second)
		all := []store.Challenge{
			challenge("at-now", now),
			challenge("later", now.Add(time.Minute)),
			challenge("long-ago", now.Add(-time.Hour)),
			challenge("just-after", now.Add(time.Millisecond)),
			challenge("just-before", now.Add(-time.Millisecond)),
			consumed,
		}
		all[0].Data = nil
		all[2].Attempts = 3
		for _, c := range all {
			mustNil(t, "CreateChallenge "+c.ID, s.CreateChallenge(ctx, c))
		}
		got, err := s.DeleteExpiredChallenges(ctx, now)
		mustNil(t, "DeleteExpiredChallenges", err)
		want := []store.Challenge{all[2], all[4], all[0]} // by ExpiresAt
		if len(got) != len(want) {
			var ids []string
			for _, c := range got {
				ids = append(ids, c.ID)
			}
			t.Fatalf("DeleteExpiredChallenges returned %v, want long-ago, just-before, at-now", ids)
		}
		for i := range want {
			checkChallenge(t, got[i], want[i])
			_, err := s.GetChallenge(ctx, want[i].ID)
			wantErr(t, "GetChallenge of a deleted challenge", err, store.ErrNotFound)
		}
		for _, id := range []string{"later", "just-after", "consumed-open"} {
			if _, err := s.GetChallenge(ctx, id); err != nil {
				t.Errorf("challenge %s, not expired, is gone: %v", id, err)
			}
		}
		again, err := s.DeleteExpiredChallenges(ctx, now)
		mustNil(t, "second DeleteExpiredChallenges", err)
		if len(again) != 0 {
			t.Fatalf("second DeleteExpiredChallenges returned %d challenges, want 0", len(again))
		}
	})
}

// singleUseChallenge has Concurrency goroutines, spread over the stores that
// pick returns, consume one challenge: exactly one may win.
func singleUseChallenge(t *testing.T, pick func(i int) store.Store) {
	t.Helper()
	ctx := t.Context()
	mustNil(t, "CreateChallenge", pick(0).CreateChallenge(ctx, challenge("race", at(time.Minute))))
	consumedAt := make([]time.Time, Concurrency)
	errs := race(Concurrency, func(i int) error {
		c, err := store.ConsumeChallenge(ctx, pick(i), "race", at(time.Duration(i+1)*time.Millisecond))
		consumedAt[i] = c.ConsumedAt
		return err
	})
	if n := winners(t, errs, store.ErrConsumed); n != 1 {
		t.Fatalf("%d goroutines consumed the same challenge, want exactly 1", n)
	}
	winner := slices.IndexFunc(errs, func(err error) bool { return err == nil })
	got, err := pick(1).GetChallenge(ctx, "race")
	mustNil(t, "GetChallenge", err)
	checkTime(t, "ConsumedAt of the winner", got.ConsumedAt, consumedAt[winner])
	checkTime(t, "ConsumedAt", got.ConsumedAt, at(time.Duration(winner+1)*time.Millisecond))
}
