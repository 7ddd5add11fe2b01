package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

func notification(id, user string, created time.Time) store.Notification {
	return store.Notification{
		ID: id, UserID: user, Event: "factor.added", Details: map[string]string{"factor": "pin", "ip": "192.0.2.1"},
		CreatedAt: created, Status: store.NotificationPending, NextAttemptAt: created,
	}
}

func checkNotification(t *testing.T, got, want store.Notification) {
	t.Helper()
	if got.ID != want.ID || got.UserID != want.UserID || got.Event != want.Event || got.Status != want.Status ||
		got.Attempts != want.Attempts || got.LastError != want.LastError {
		t.Errorf("notification = %+v\nwant %+v", got, want)
	}
	if len(got.Details) != len(want.Details) {
		t.Errorf("Details = %v, want %v", got.Details, want.Details)
	}
	for k, v := range want.Details {
		if got.Details[k] != v {
			t.Errorf("Details[%q] = %q, want %q", k, got.Details[k], v)
		}
	}
	checkTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
	checkTime(t, "NextAttemptAt", got.NextAttemptAt, want.NextAttemptAt)
	checkTime(t, "SentAt", got.SentAt, want.SentAt)
}

func ids(ns []store.Notification) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.ID)
	}
	return out
}

func testNotifications(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("CreateOnceRoundTrip", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		n := notification("audit:1", "u1", at(1500*time.Nanosecond))
		n.Details["bad"] = "a\x00b"
		mustNil(t, "CreateNotification", s.CreateNotification(ctx, n))
		wantErr(t, "second CreateNotification", s.CreateNotification(ctx, notification("audit:1", "u2", at(time.Hour))), store.ErrConflict)
		list, err := s.ListNotifications(ctx, "u1", 0)
		mustNil(t, "ListNotifications", err)
		if len(list) != 1 {
			t.Fatalf("ListNotifications = %v", list)
		}
		want := n
		want.Details = map[string]string{"factor": "pin", "ip": "192.0.2.1", "bad": "a\uFFFDb"}
		checkNotification(t, list[0], want)
		if other, _ := s.ListNotifications(ctx, "u2", 0); len(other) != 0 {
			t.Fatalf("the duplicate reached u2: %v", other)
		}
	})

	t.Run("CreatedAtIsRequired", func(t *testing.T) {
		s := newStore(t)
		n := notification("x", "u1", at(0))
		n.CreatedAt = time.Time{}
		if err := s.CreateNotification(t.Context(), n); err == nil {
			t.Fatal("a notification without CreatedAt was stored")
		}
	})

	t.Run("ListNewestFirstWithLimit", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		for i := range 5 {
			mustNil(t, "CreateNotification", s.CreateNotification(ctx, notification(fmt.Sprintf("n%d", i), "u1", at(time.Duration(i)*time.Second))))
		}
		mustNil(t, "CreateNotification", s.CreateNotification(ctx, notification("other", "u2", at(time.Hour))))
		list, err := s.ListNotifications(ctx, "u1", 3)
		mustNil(t, "ListNotifications", err)
		if got := ids(list); !slices.Equal(got, []string{"n4", "n3", "n2"}) {
			t.Fatalf("ListNotifications(u1, 3) = %v", got)
		}
	})

	t.Run("DueSelectsPendingAndLapsedClaims", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		later := notification("later", "u1", at(0))
		later.NextAttemptAt = at(time.Hour)
		sending := notification("lapsed", "u1", at(time.Second))
		sending.Status, sending.NextAttemptAt = store.NotificationSending, at(time.Minute)
		claimed := notification("claimed", "u1", at(2*time.Second))
		claimed.Status, claimed.NextAttemptAt = store.NotificationSending, at(time.Hour)
		sent := notification("sent", "u1", at(0))
		sent.Status, sent.SentAt = store.NotificationSent, at(time.Second)
		skipped := notification("skipped", "u1", at(0))
		skipped.Status = store.NotificationSkipped
		for _, n := range []store.Notification{notification("due", "u1", at(0)), later, sending, claimed, sent, skipped} {
			mustNil(t, "CreateNotification", s.CreateNotification(ctx, n))
		}
		due, err := s.DueNotifications(ctx, at(time.Minute), 10)
		mustNil(t, "DueNotifications", err)
		if got := ids(due); !slices.Equal(got, []string{"due", "lapsed"}) {
			t.Fatalf("DueNotifications = %v, want [due lapsed]", got)
		}
		due, err = s.DueNotifications(ctx, at(time.Minute), 1)
		mustNil(t, "DueNotifications", err)
		if got := ids(due); !slices.Equal(got, []string{"due"}) {
			t.Fatalf("DueNotifications limit 1 = %v", got)
		}
	})

	t.Run("UpdateKeepsTheEvent", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		orig := notification("n1", "u1", at(0))
		mustNil(t, "CreateNotification", s.CreateNotification(ctx, orig))
		want := orig
		want.Status, want.Attempts, want.SentAt, want.LastError = store.NotificationSent, 2, at(time.Minute), "earlier: timeout"
		got, err := s.UpdateNotification(ctx, "n1", func(n store.Notification) (store.Notification, error) {
			next := want
			next.UserID, next.Event, next.Details = "attacker", "forged", map[string]string{"x": "y"}
			return next, nil
		})
		mustNil(t, "UpdateNotification", err)
		checkNotification(t, got, want)
		boom := errors.New("no")
		_, err = s.UpdateNotification(ctx, "n1", func(n store.Notification) (store.Notification, error) {
			n.Status = store.NotificationFailed
			return n, boom
		})
		wantErr(t, "failing updater", err, boom)
		list, err := s.ListNotifications(ctx, "u1", 0)
		mustNil(t, "ListNotifications", err)
		checkNotification(t, list[0], want)
		_, err = s.UpdateNotification(ctx, "missing", func(n store.Notification) (store.Notification, error) { return n, nil })
		wantErr(t, "UpdateNotification missing", err, store.ErrNotFound)
	})

	t.Run("ConcurrentClaimHasOneWinner", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		mustNil(t, "CreateNotification", s.CreateNotification(ctx, notification("n1", "u1", at(0))))
		errClaimed := errors.New("claimed by another")
		errs := race(Concurrency, func(i int) error {
			_, err := s.UpdateNotification(ctx, "n1", func(n store.Notification) (store.Notification, error) {
				if n.Status != store.NotificationPending {
					return n, errClaimed
				}
				n.Status, n.Attempts, n.NextAttemptAt = store.NotificationSending, n.Attempts+1, at(time.Minute)
				return n, nil
			})
			return err
		})
		if n := winners(t, errs, errClaimed); n != 1 {
			t.Fatalf("%d replicas claimed one notification, want exactly 1", n)
		}
	})

	t.Run("Prune", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		mustNil(t, "CreateNotification", s.CreateNotification(ctx, notification("old", "u1", at(0))))
		mustNil(t, "CreateNotification", s.CreateNotification(ctx, notification("new", "u1", at(time.Hour))))
		n, err := s.PruneNotifications(ctx, at(time.Hour))
		mustNil(t, "PruneNotifications", err)
		if n != 1 {
			t.Fatalf("PruneNotifications = %d, want 1", n)
		}
		list, _ := s.ListNotifications(ctx, "u1", 0)
		if got := ids(list); !slices.Equal(got, []string{"new"}) {
			t.Fatalf("after prune = %v", got)
		}
	})
}
