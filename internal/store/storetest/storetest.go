// Package storetest is the one conformance suite every store.Store backend
// runs, so that the sqlite and postgres backends keep the same contract
// (in the manner of dex's storage/conformance).
//
// A backend's test calls Run with a constructor of fresh, empty stores, and
// RunReplicas with a constructor of two stores opened independently over the
// same database, as two replicas (or two processes) would open it:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
//	}
//
// What the suite holds a backend to, beyond the store package's contract:
//
//   - Times come back in UTC, truncated to the microsecond; the zero time
//     comes back as the zero time.
//   - Data comes back byte for byte, nil as nil and an empty slice as an
//     empty non-nil slice. Audit Details come back equal; an empty map may
//     come back as nil. Invalid UTF-8 and NUL in audit text come back as
//     U+FFFD: an event is never lost to its encoding.
//   - DeleteExpiredChallenges(before) removes what AttemptChallenge would
//     call expired at before (ExpiresAt <= before), ordered by ExpiresAt.
//   - IncrementCounter and GetCounter refuse a window shorter than a
//     millisecond; AppendAudit refuses an event without Time.
//   - Update* return the updater's own error (errors.Is holds) and write
//     nothing when it fails.
//   - After Close every method fails and none panics; Close may be called
//     again (the constructors' cleanups do).
//
// The suite needs no sleeping for TTLs: it passes explicit times. Only the
// WithLease tests use the real clock, with short polls.
package storetest

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// Concurrency is how many goroutines the race tests start at once.
const Concurrency = 50

// baseUnix pins the suite's clock: at(0) is 2023-11-14T22:13:20Z.
const baseUnix = 1700000000

// at is the pinned clock moved by d.
func at(d time.Duration) time.Time { return time.Unix(baseUnix, 0).UTC().Add(d) }

// Run runs every behaviour test on stores made by newStore. newStore must
// return a fresh, empty, open store each time and register its own cleanup
// (which may call Close on a store the suite already closed).
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Helper()
	groups := []struct {
		name string
		run  func(t *testing.T, newStore func(t *testing.T) store.Store)
	}{
		{"Credentials", testCredentials},
		{"Challenges", testChallenges},
		{"Counters", testCounters},
		{"Leases", testLeases},
		{"Audit", testAudit},
		{"Devices", testDevices},
		{"Notifications", testNotifications},
		{"Closed", testClosed},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) { g.run(t, newStore) })
	}
}

// race starts n goroutines that call fn(i) all at once and returns their
// errors, indexed by i.
func race(n int, fn func(i int) error) []error {
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = fn(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// winners counts nil errors and checks that every other error is want.
func winners(t *testing.T, errs []error, want error) int {
	t.Helper()
	n := 0
	for i, err := range errs {
		switch {
		case err == nil:
			n++
		case !errors.Is(err, want):
			t.Errorf("goroutine %d: got %v, want nil or %v", i, err, want)
		}
	}
	return n
}

func mustNil(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

// stored is t as a store returns it: UTC, microseconds.
func stored(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.Truncate(time.Microsecond).UTC()
}

func checkTime(t *testing.T, field string, got, want time.Time) {
	t.Helper()
	want = stored(want)
	if want.IsZero() {
		if !got.IsZero() {
			t.Errorf("%s = %v, want the zero time", field, got)
		}
		return
	}
	if !got.Equal(want) {
		t.Errorf("%s = %v, want %v", field, got, want)
	}
	if got.Location() != time.UTC {
		t.Errorf("%s is in %v, want UTC", field, got.Location())
	}
}

func checkData(t *testing.T, field string, got, want []byte) {
	t.Helper()
	if (got == nil) != (want == nil) || !bytes.Equal(got, want) {
		t.Errorf("%s = %#v (nil %v), want %#v (nil %v)", field, short(got), got == nil, short(want), want == nil)
	}
}

func short(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}

func checkCredential(t *testing.T, got, want store.Credential) {
	t.Helper()
	if got.ID != want.ID || got.UserID != want.UserID || got.Factor != want.Factor || got.Status != want.Status ||
		got.Label != want.Label || got.Counter != want.Counter || got.Failures != want.Failures {
		t.Errorf("credential = %+v\nwant %+v", got, want)
	}
	checkData(t, "Data", got.Data, want.Data)
	checkTime(t, "LockedUntil", got.LockedUntil, want.LockedUntil)
	checkTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
	checkTime(t, "UpdatedAt", got.UpdatedAt, want.UpdatedAt)
	checkTime(t, "LastUsedAt", got.LastUsedAt, want.LastUsedAt)
}

func checkChallenge(t *testing.T, got, want store.Challenge) {
	t.Helper()
	if got.ID != want.ID || got.Kind != want.Kind || got.UserID != want.UserID || got.SessionID != want.SessionID ||
		got.Factor != want.Factor || got.CredentialID != want.CredentialID || got.Attempts != want.Attempts ||
		got.MaxAttempts != want.MaxAttempts {
		t.Errorf("challenge = %+v\nwant %+v", got, want)
	}
	checkData(t, "Data", got.Data, want.Data)
	checkTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
	checkTime(t, "ExpiresAt", got.ExpiresAt, want.ExpiresAt)
	checkTime(t, "ConsumedAt", got.ConsumedAt, want.ConsumedAt)
}

func checkEvent(t *testing.T, got, want store.AuditEvent) {
	t.Helper()
	if got.Type != want.Type || got.Actor != want.Actor || got.UserID != want.UserID || got.Factor != want.Factor ||
		got.SessionID != want.SessionID || got.IP != want.IP || got.Outcome != want.Outcome {
		t.Errorf("event = %+v\nwant %+v", got, want)
	}
	if want.Seq != 0 && got.Seq != want.Seq {
		t.Errorf("Seq = %d, want %d", got.Seq, want.Seq)
	}
	checkTime(t, "Time", got.Time, want.Time)
	if len(got.Details) != len(want.Details) {
		t.Errorf("Details = %v, want %v", got.Details, want.Details)
	}
	for k, v := range want.Details {
		if g, ok := got.Details[k]; !ok || g != v {
			t.Errorf("Details[%q] = %q (present %v), want %q", k, g, ok, v)
		}
	}
}

func credential(id, user string, created time.Time) store.Credential {
	return store.Credential{
		ID:        id,
		UserID:    user,
		Factor:    "totp",
		Status:    store.StatusPending,
		Label:     "Authenticator " + id,
		Data:      []byte("secret-of-" + id),
		CreatedAt: created,
		UpdatedAt: created,
	}
}

func challenge(id string, expires time.Time) store.Challenge {
	return store.Challenge{
		ID:           id,
		Kind:         "stepup",
		UserID:       "user-" + id,
		SessionID:    "session-" + id,
		Factor:       "pin",
		CredentialID: "cred-" + id,
		Data:         []byte("hash-of-" + id),
		MaxAttempts:  3,
		CreatedAt:    expires.Add(-2 * time.Minute),
		ExpiresAt:    expires,
	}
}
