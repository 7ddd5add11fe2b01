package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

func testCredentials(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("CreateGetRoundTrip", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		c := store.Credential{
			ID:          "c1",
			UserID:      "u1",
			Factor:      "backup_code",
			Status:      store.StatusActive,
			Label:       "Codes \u00e9\u4e2d \"quoted\" 'x'",
			Data:        []byte{0, 1, 2, 0xff},
			Counter:     1<<40 + 7,
			Failures:    3,
			LockedUntil: at(time.Hour + 123456789*time.Nanosecond).In(time.FixedZone("X", 5*3600)),
			CreatedAt:   at(time.Millisecond),
			UpdatedAt:   at(2 * time.Millisecond),
			LastUsedAt:  at(3*time.Millisecond + 999*time.Nanosecond),
		}
		mustNil(t, "CreateCredential", s.CreateCredential(ctx, c))
		got, err := s.GetCredential(ctx, "c1")
		mustNil(t, "GetCredential", err)
		checkCredential(t, got, c)
	})

	t.Run("ZeroTimesStayZero", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		c := store.Credential{ID: "c1", UserID: "u1", Factor: "pin", Status: store.StatusPending}
		mustNil(t, "CreateCredential", s.CreateCredential(ctx, c))
		got, err := s.GetCredential(ctx, "c1")
		mustNil(t, "GetCredential", err)
		checkCredential(t, got, c)
	})

	t.Run("DataRoundTrip", func(t *testing.T) {
		all := make([]byte, 256)
		for i := range all {
			all[i] = byte(i)
		}
		big := make([]byte, 64<<10)
		for i := range big {
			big[i] = byte(i * 7)
		}
		cases := []struct {
			name string
			data []byte
		}{
			{"nil", nil},
			{"empty", []byte{}},
			{"text", []byte("hello")},
			{"every byte value", all},
			{"64KiB", big},
		}
		s := newStore(t)
		ctx := t.Context()
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				id := fmt.Sprintf("data-%d", i)
				c := credential(id, "u1", at(0))
				c.Data = tc.data
				mustNil(t, "CreateCredential", s.CreateCredential(ctx, c))
				got, err := s.GetCredential(ctx, id)
				mustNil(t, "GetCredential", err)
				checkData(t, "Data after create", got.Data, tc.data)

				ch := challenge(id, at(time.Minute))
				ch.Data = tc.data
				mustNil(t, "CreateChallenge", s.CreateChallenge(ctx, ch))
				gotCh, err := s.GetChallenge(ctx, id)
				mustNil(t, "GetChallenge", err)
				checkData(t, "challenge Data after create", gotCh.Data, tc.data)

				// Through an update too, from a different value.
				mustNil(t, "UpdateCredential", updateData(ctx, s, id, []byte("other")))
				mustNil(t, "UpdateCredential", updateData(ctx, s, id, tc.data))
				got, err = s.GetCredential(ctx, id)
				mustNil(t, "GetCredential", err)
				checkData(t, "Data after update", got.Data, tc.data)
			})
		}
	})

	t.Run("CreateDuplicateConflicts", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		orig := credential("c1", "u1", at(0))
		mustNil(t, "CreateCredential", s.CreateCredential(ctx, orig))
		dup := credential("c1", "u2", at(time.Hour))
		wantErr(t, "second CreateCredential", s.CreateCredential(ctx, dup), store.ErrConflict)
		got, err := s.GetCredential(ctx, "c1")
		mustNil(t, "GetCredential", err)
		checkCredential(t, got, orig)
	})

	t.Run("MissingIsNotFound", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		_, err := s.GetCredential(ctx, "nope")
		wantErr(t, "GetCredential", err, store.ErrNotFound)
		called := false
		_, err = s.UpdateCredential(ctx, "nope", func(c store.Credential) (store.Credential, error) {
			called = true
			return c, nil
		})
		wantErr(t, "UpdateCredential", err, store.ErrNotFound)
		if called {
			t.Error("UpdateCredential called the updater for a missing record")
		}
		wantErr(t, "DeleteCredential", s.DeleteCredential(ctx, "nope"), store.ErrNotFound)
	})

	t.Run("ListOrderOldestFirst", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		// Inserted out of order; b and a share a CreatedAt (ties by ID).
		in := []store.Credential{
			credential("d", "u1", at(3*time.Second)),
			credential("b", "u1", at(time.Second)),
			credential("other", "u2", at(0)),
			credential("c", "u1", at(2*time.Second)),
			credential("a", "u1", at(time.Second)),
			credential("e", "u1", at(time.Millisecond)),
		}
		for _, c := range in {
			mustNil(t, "CreateCredential "+c.ID, s.CreateCredential(ctx, c))
		}
		got, err := s.ListCredentials(ctx, "u1")
		mustNil(t, "ListCredentials", err)
		var ids []string
		for _, c := range got {
			ids = append(ids, c.ID)
		}
		if want := []string{"e", "a", "b", "c", "d"}; !slices.Equal(ids, want) {
			t.Fatalf("ListCredentials order = %v, want %v", ids, want)
		}
		checkCredential(t, got[3], in[3])

		none, err := s.ListCredentials(ctx, "nobody")
		mustNil(t, "ListCredentials of a user without records", err)
		if len(none) != 0 {
			t.Fatalf("ListCredentials of a user without records = %v", none)
		}
	})

	t.Run("UpdateStoresResultKeepingIdentity", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		orig := credential("c1", "u1", at(0))
		mustNil(t, "CreateCredential", s.CreateCredential(ctx, orig))
		want := orig
		want.Status = store.StatusActive
		want.Label = "renamed"
		want.Data = []byte("new")
		want.Counter = 42
		want.Failures = 2
		want.LockedUntil = at(time.Hour)
		want.UpdatedAt = at(time.Minute)
		want.LastUsedAt = at(time.Minute)
		var seen store.Credential
		got, err := s.UpdateCredential(ctx, "c1", func(c store.Credential) (store.Credential, error) {
			seen = c
			next := want
			next.ID, next.UserID, next.CreatedAt = "hijack", "attacker", at(99*time.Hour)
			return next, nil
		})
		mustNil(t, "UpdateCredential", err)
		checkCredential(t, seen, orig)
		checkCredential(t, got, want)
		stored, err := s.GetCredential(ctx, "c1")
		mustNil(t, "GetCredential", err)
		checkCredential(t, stored, want)
		_, err = s.GetCredential(ctx, "hijack")
		wantErr(t, "GetCredential of the ID the updater tried to set", err, store.ErrNotFound)
	})

	t.Run("UpdaterErrorWritesNothing", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		orig := credential("c1", "u1", at(0))
		mustNil(t, "CreateCredential", s.CreateCredential(ctx, orig))
		errBoom := errors.New("boom")
		_, err := s.UpdateCredential(ctx, "c1", func(c store.Credential) (store.Credential, error) {
			c.Status = store.StatusActive
			c.Data = []byte("changed")
			c.Counter = 99
			c.Failures = 5
			return c, fmt.Errorf("updater: %w", errBoom)
		})
		wantErr(t, "UpdateCredential", err, errBoom)
		got, err := s.GetCredential(ctx, "c1")
		mustNil(t, "GetCredential", err)
		checkCredential(t, got, orig)
	})

	t.Run("CancelledContextWritesNothing", func(t *testing.T) {
		s := newStore(t)
		orig := credential("c1", "u1", at(0))
		mustNil(t, "CreateCredential", s.CreateCredential(t.Context(), orig))
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		called := false
		_, err := s.UpdateCredential(ctx, "c1", func(c store.Credential) (store.Credential, error) {
			called = true
			c.Counter = 7
			return c, nil
		})
		if err == nil {
			t.Fatal("UpdateCredential with a cancelled context succeeded")
		}
		if called {
			t.Error("UpdateCredential with a cancelled context ran the updater")
		}
		got, err := s.GetCredential(t.Context(), "c1")
		mustNil(t, "GetCredential", err)
		checkCredential(t, got, orig)
	})

	t.Run("Delete", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		mustNil(t, "CreateCredential", s.CreateCredential(ctx, credential("c1", "u1", at(0))))
		mustNil(t, "CreateCredential", s.CreateCredential(ctx, credential("c2", "u1", at(1))))
		mustNil(t, "DeleteCredential", s.DeleteCredential(ctx, "c1"))
		_, err := s.GetCredential(ctx, "c1")
		wantErr(t, "GetCredential after delete", err, store.ErrNotFound)
		wantErr(t, "second DeleteCredential", s.DeleteCredential(ctx, "c1"), store.ErrNotFound)
		if _, err := s.GetCredential(ctx, "c2"); err != nil {
			t.Fatalf("deleting c1 touched c2: %v", err)
		}
	})

	t.Run("SingleUseCodeHasOneWinner", func(t *testing.T) {
		s := newStore(t)
		singleUseCode(t, func(int) store.Store { return s })
	})

	t.Run("ConcurrentUpdatesLoseNothing", func(t *testing.T) {
		s := newStore(t)
		noLostUpdates(t, func(int) store.Store { return s })
	})
}

func updateData(ctx context.Context, s store.Store, id string, data []byte) error {
	_, err := s.UpdateCredential(ctx, id, func(c store.Credential) (store.Credential, error) {
		c.Data = data
		return c, nil
	})
	return err
}

var errCodeUsed = errors.New("storetest: code already used")

// singleUseCode has Concurrency goroutines, spread over the stores that
// pick returns, redeem the same backup code of one credential through
// UpdateCredential: exactly one may succeed.
func singleUseCode(t *testing.T, pick func(i int) store.Store) {
	t.Helper()
	ctx := t.Context()
	c := credential("codes", "u1", at(0))
	c.Factor = "backup_code"
	c.Data = []byte("aaaa,bbbb,cccc")
	mustNil(t, "CreateCredential", pick(0).CreateCredential(ctx, c))
	errs := race(Concurrency, func(i int) error {
		_, err := pick(i).UpdateCredential(ctx, "codes", func(c store.Credential) (store.Credential, error) {
			codes := strings.Split(string(c.Data), ",")
			j := slices.Index(codes, "bbbb")
			if j < 0 {
				return c, errCodeUsed
			}
			c.Data = []byte(strings.Join(slices.Delete(codes, j, j+1), ","))
			c.Counter++
			c.LastUsedAt = at(time.Duration(i) * time.Millisecond)
			return c, nil
		})
		return err
	})
	if n := winners(t, errs, errCodeUsed); n != 1 {
		t.Fatalf("%d goroutines redeemed the same code, want exactly 1", n)
	}
	got, err := pick(1).GetCredential(ctx, "codes")
	mustNil(t, "GetCredential", err)
	if string(got.Data) != "aaaa,cccc" || got.Counter != 1 {
		t.Fatalf("after the race Data = %q, Counter = %d; want \"aaaa,cccc\", 1", got.Data, got.Counter)
	}
}

// noLostUpdates has Concurrency goroutines increment one credential's
// Counter through UpdateCredential: each must see the one before.
func noLostUpdates(t *testing.T, pick func(i int) store.Store) {
	t.Helper()
	ctx := t.Context()
	mustNil(t, "CreateCredential", pick(0).CreateCredential(ctx, credential("ctr", "u1", at(0))))
	seen := make([]int64, Concurrency)
	errs := race(Concurrency, func(i int) error {
		c, err := pick(i).UpdateCredential(ctx, "ctr", func(c store.Credential) (store.Credential, error) {
			c.Counter++
			return c, nil
		})
		seen[i] = c.Counter
		return err
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("goroutine %d: UpdateCredential: %v", i, err)
		}
	}
	slices.Sort(seen)
	for i, v := range seen {
		if v != int64(i+1) {
			t.Fatalf("updaters returned counters %v, want each of 1..%d once", seen, Concurrency)
		}
	}
	got, err := pick(1).GetCredential(ctx, "ctr")
	mustNil(t, "GetCredential", err)
	if got.Counter != Concurrency {
		t.Fatalf("Counter = %d after %d increments", got.Counter, Concurrency)
	}
}
