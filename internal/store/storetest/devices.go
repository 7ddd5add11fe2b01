package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

func device(id, user string, created time.Time) store.Device {
	return store.Device{
		ID: id, UserID: user, Label: "Firefox on Linux", Hash: []byte("hash-of-" + id), IP: "192.0.2.1",
		CreatedAt: created, ExpiresAt: created.Add(30 * 24 * time.Hour),
	}
}

func checkDevice(t *testing.T, got, want store.Device) {
	t.Helper()
	if got.ID != want.ID || got.UserID != want.UserID || got.Label != want.Label || got.IP != want.IP || got.RevokedBy != want.RevokedBy {
		t.Errorf("device = %+v\nwant %+v", got, want)
	}
	checkData(t, "Hash", got.Hash, want.Hash)
	checkTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
	checkTime(t, "ExpiresAt", got.ExpiresAt, want.ExpiresAt)
	checkTime(t, "LastUsedAt", got.LastUsedAt, want.LastUsedAt)
	checkTime(t, "RevokedAt", got.RevokedAt, want.RevokedAt)
}

func testDevices(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("CreateGetRoundTrip", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		d := device("d1", "u1", at(1500*time.Nanosecond))
		mustNil(t, "CreateDevice", s.CreateDevice(ctx, d))
		got, err := s.GetDevice(ctx, "d1")
		mustNil(t, "GetDevice", err)
		checkDevice(t, got, d)
		wantErr(t, "second CreateDevice", s.CreateDevice(ctx, device("d1", "u2", at(time.Hour))), store.ErrConflict)
		got, err = s.GetDevice(ctx, "d1")
		mustNil(t, "GetDevice", err)
		checkDevice(t, got, d)
	})

	t.Run("MissingIsNotFound", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		_, err := s.GetDevice(ctx, "nope")
		wantErr(t, "GetDevice", err, store.ErrNotFound)
		_, err = s.UpdateDevice(ctx, "nope", func(d store.Device) (store.Device, error) { return d, nil })
		wantErr(t, "UpdateDevice", err, store.ErrNotFound)
		list, err := s.ListDevices(ctx, "nobody")
		mustNil(t, "ListDevices", err)
		if len(list) != 0 {
			t.Fatalf("ListDevices of nobody = %v", list)
		}
	})

	t.Run("ListIsPerUserOldestFirst", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		for _, d := range []store.Device{device("b", "u1", at(2*time.Second)), device("a", "u1", at(time.Second)),
			device("c", "u2", at(0)), device("0", "u1", at(2*time.Second))} {
			mustNil(t, "CreateDevice", s.CreateDevice(ctx, d))
		}
		list, err := s.ListDevices(ctx, "u1")
		mustNil(t, "ListDevices", err)
		var ids []string
		for _, d := range list {
			ids = append(ids, d.ID)
		}
		if !slices.Equal(ids, []string{"a", "0", "b"}) {
			t.Fatalf("ListDevices(u1) = %v, want [a 0 b]", ids)
		}
	})

	t.Run("UpdateKeepsIdentityAndHash", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		orig := device("d1", "u1", at(0))
		mustNil(t, "CreateDevice", s.CreateDevice(ctx, orig))
		want := orig
		want.LastUsedAt = at(time.Minute)
		want.ExpiresAt = at(time.Hour)
		got, err := s.UpdateDevice(ctx, "d1", func(d store.Device) (store.Device, error) {
			next := want
			next.ID, next.UserID, next.Hash, next.CreatedAt = "other", "attacker", []byte("forged"), at(time.Hour)
			return next, nil
		})
		mustNil(t, "UpdateDevice", err)
		checkDevice(t, got, want)
		stored, err := s.GetDevice(ctx, "d1")
		mustNil(t, "GetDevice", err)
		checkDevice(t, stored, want)

		boom := errors.New("updater refuses")
		_, err = s.UpdateDevice(ctx, "d1", func(d store.Device) (store.Device, error) {
			d.RevokedAt = at(time.Hour)
			return d, boom
		})
		wantErr(t, "failing updater", err, boom)
		stored, err = s.GetDevice(ctx, "d1")
		mustNil(t, "GetDevice", err)
		checkDevice(t, stored, want)
	})

	t.Run("RevokeDevicesOfOneUser", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		old := device("old", "u1", at(0))
		old.RevokedAt, old.RevokedBy = at(time.Second), "user"
		for _, d := range []store.Device{device("a", "u1", at(0)), device("b", "u1", at(time.Second)), old, device("c", "u2", at(0))} {
			mustNil(t, "CreateDevice", s.CreateDevice(ctx, d))
		}
		ids, err := s.RevokeDevices(ctx, "u1", "factor_change", at(time.Minute))
		mustNil(t, "RevokeDevices", err)
		slices.Sort(ids)
		if !slices.Equal(ids, []string{"a", "b"}) {
			t.Fatalf("RevokeDevices = %v, want [a b]", ids)
		}
		for id, want := range map[string]struct {
			at time.Time
			by string
		}{"a": {at(time.Minute), "factor_change"}, "b": {at(time.Minute), "factor_change"}, "old": {at(time.Second), "user"}, "c": {}} {
			d, err := s.GetDevice(ctx, id)
			mustNil(t, "GetDevice", err)
			checkTime(t, id+".RevokedAt", d.RevokedAt, want.at)
			if d.RevokedBy != want.by {
				t.Errorf("%s.RevokedBy = %q, want %q", id, d.RevokedBy, want.by)
			}
		}
		ids, err = s.RevokeDevices(ctx, "u1", "admin", at(time.Hour))
		mustNil(t, "second RevokeDevices", err)
		if len(ids) != 0 {
			t.Fatalf("second RevokeDevices revoked %v again", ids)
		}
	})

	t.Run("DeleteExpiredDevices", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		expired := device("expired", "u1", at(0))
		expired.ExpiresAt = at(time.Minute)
		revoked := device("revoked", "u1", at(0))
		revoked.RevokedAt = at(time.Second)
		live := device("live", "u1", at(0))
		for _, d := range []store.Device{expired, revoked, live} {
			mustNil(t, "CreateDevice", s.CreateDevice(ctx, d))
		}
		n, err := s.DeleteExpiredDevices(ctx, at(time.Minute))
		mustNil(t, "DeleteExpiredDevices", err)
		if n != 2 {
			t.Fatalf("DeleteExpiredDevices = %d, want 2", n)
		}
		_, err = s.GetDevice(ctx, "live")
		mustNil(t, "GetDevice live", err)
		_, err = s.GetDevice(ctx, "expired")
		wantErr(t, "GetDevice expired", err, store.ErrNotFound)
	})

	t.Run("ConcurrentFirstUseHasOneWinner", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		mustNil(t, "CreateDevice", s.CreateDevice(ctx, device("d1", "u1", at(0))))
		errUsed := errors.New("already used")
		errs := race(Concurrency, func(i int) error {
			_, err := s.UpdateDevice(ctx, "d1", func(d store.Device) (store.Device, error) {
				if !d.LastUsedAt.IsZero() {
					return d, errUsed
				}
				d.LastUsedAt = at(time.Duration(i+1) * time.Second)
				return d, nil
			})
			return err
		})
		if n := winners(t, errs, errUsed); n != 1 {
			t.Fatalf("%d updaters saw the device unused, want exactly 1", n)
		}
	})
}
