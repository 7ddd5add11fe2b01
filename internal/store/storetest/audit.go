package storetest

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

func event(typ, user string, when time.Time) store.AuditEvent {
	return store.AuditEvent{
		Time:      when,
		Type:      typ,
		Actor:     user,
		UserID:    user,
		Factor:    "pin",
		SessionID: "sid-" + user,
		IP:        "192.0.2.1",
		Outcome:   "success",
	}
}

func appendAll(t *testing.T, s store.Store, evs []store.AuditEvent) []store.AuditEvent {
	t.Helper()
	out := make([]store.AuditEvent, len(evs))
	for i, e := range evs {
		got, err := s.AppendAudit(t.Context(), e)
		mustNil(t, "AppendAudit", err)
		out[i] = got
	}
	return out
}

func seqs(evs []store.AuditEvent) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.Seq
	}
	return out
}

func testAudit(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("AppendRoundTrip", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		e := event("stepup.success", "u1", at(1234567*time.Nanosecond).In(time.FixedZone("Y", -7*3600)))
		e.Details = map[string]string{"acr": "2", "request": "POST /api/profile \"x\"", "empty": "", "\u00e9": "\u4e2d"}
		got, err := s.AppendAudit(ctx, e)
		mustNil(t, "AppendAudit", err)
		if got.Seq <= 0 {
			t.Fatalf("Seq = %d, want > 0", got.Seq)
		}
		checkEvent(t, got, e)
		listed, err := s.ListAudit(ctx, store.AuditQuery{})
		mustNil(t, "ListAudit", err)
		if len(listed) != 1 {
			t.Fatalf("ListAudit returned %d events, want 1", len(listed))
		}
		e.Seq = got.Seq
		checkEvent(t, listed[0], e)

		bare, err := s.AppendAudit(ctx, event("lockout", "u1", at(time.Second)))
		mustNil(t, "AppendAudit without details", err)
		if len(bare.Details) != 0 {
			t.Errorf("Details = %v, want none", bare.Details)
		}
		if bare.Seq <= got.Seq {
			t.Errorf("second Seq %d is not above first %d", bare.Seq, got.Seq)
		}
	})

	t.Run("KeepsEventsWithUnstorableText", func(t *testing.T) {
		s := newStore(t)
		e := event("stepup.failure", "u\x00ser", at(0))
		e.Actor = "bad \xff utf8"
		e.Details = map[string]string{"user-agent": "curl\x00/8", "k\xfe": "v"}
		got, err := s.AppendAudit(t.Context(), e)
		mustNil(t, "AppendAudit with NUL and invalid UTF-8", err)
		want := e
		want.UserID, want.SessionID, want.Actor = "u\uFFFDser", "sid-u\uFFFDser", "bad \uFFFD utf8"
		want.Details = map[string]string{"user-agent": "curl\uFFFD/8", "k\uFFFD": "v"}
		checkEvent(t, got, want)
		listed, err := s.ListAudit(t.Context(), store.AuditQuery{})
		mustNil(t, "ListAudit", err)
		if len(listed) != 1 {
			t.Fatalf("ListAudit returned %d events, want 1", len(listed))
		}
		checkEvent(t, listed[0], want)
	})

	t.Run("RefusesEventWithoutTime", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.AppendAudit(t.Context(), event("x", "u1", time.Time{})); err == nil {
			t.Fatal("AppendAudit of an event without Time succeeded")
		}
	})

	t.Run("Filters", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		evs := appendAll(t, s, []store.AuditEvent{
			event("stepup.success", "u1", at(0)),             // 0
			event("stepup.failure", "u1", at(time.Minute)),   // 1
			event("stepup.success", "u2", at(2*time.Minute)), // 2
			event("lockout", "u1", at(3*time.Minute)),        // 3
			event("admin.reset", "u2", at(4*time.Minute)),    // 4
			event("stepup.success", "u1", at(5*time.Minute)), // 5
		})
		for i := 1; i < len(evs); i++ {
			if evs[i].Seq <= evs[i-1].Seq {
				t.Fatalf("Seq not strictly increasing: %v", seqs(evs))
			}
		}
		pick := func(idx ...int) []int64 {
			var out []int64
			for _, i := range idx {
				out = append(out, evs[i].Seq)
			}
			return out
		}
		cases := []struct {
			name string
			q    store.AuditQuery
			want []int64
		}{
			{"everything", store.AuditQuery{}, pick(0, 1, 2, 3, 4, 5)},
			{"user", store.AuditQuery{UserID: "u2"}, pick(2, 4)},
			{"one type", store.AuditQuery{Types: []string{"stepup.success"}}, pick(0, 2, 5)},
			{"two types", store.AuditQuery{Types: []string{"lockout", "stepup.failure"}}, pick(1, 3)},
			{"user and type", store.AuditQuery{UserID: "u1", Types: []string{"stepup.success"}}, pick(0, 5)},
			{"from is inclusive", store.AuditQuery{From: at(3 * time.Minute)}, pick(3, 4, 5)},
			{"to is exclusive", store.AuditQuery{To: at(2 * time.Minute)}, pick(0, 1)},
			{"from and to", store.AuditQuery{From: at(time.Minute), To: at(4 * time.Minute)}, pick(1, 2, 3)},
			{"after seq", store.AuditQuery{AfterSeq: evs[3].Seq}, pick(4, 5)},
			{"after the last", store.AuditQuery{AfterSeq: evs[5].Seq}, nil},
			{"limit", store.AuditQuery{Limit: 2}, pick(0, 1)},
			{"limit after seq", store.AuditQuery{AfterSeq: evs[1].Seq, Limit: 2}, pick(2, 3)},
			{"everything at once", store.AuditQuery{UserID: "u1", Types: []string{"stepup.success", "lockout"},
				From: at(time.Second), To: at(time.Hour), AfterSeq: evs[0].Seq, Limit: 1}, pick(3)},
			{"no match", store.AuditQuery{UserID: "nobody"}, nil},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.ListAudit(ctx, tc.q)
				mustNil(t, "ListAudit", err)
				if !slices.Equal(seqs(got), tc.want) {
					t.Fatalf("ListAudit(%+v) = seqs %v, want %v", tc.q, seqs(got), tc.want)
				}
			})
		}
		got, err := s.ListAudit(ctx, store.AuditQuery{AfterSeq: evs[4].Seq})
		mustNil(t, "ListAudit", err)
		checkEvent(t, got[0], evs[5])
	})

	t.Run("LimitDefaultsAndCap", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		const n = 1001
		for i := range n {
			_, err := s.AppendAudit(ctx, event("stepup.success", "u1", at(time.Duration(i)*time.Second)))
			mustNil(t, "AppendAudit", err)
		}
		for _, tc := range []struct{ limit, want int }{{0, 100}, {-1, 100}, {7, 7}, {1000, 1000}, {5000, 1000}} {
			got, err := s.ListAudit(ctx, store.AuditQuery{Limit: tc.limit})
			mustNil(t, "ListAudit", err)
			if len(got) != tc.want {
				t.Errorf("Limit %d returned %d events, want %d", tc.limit, len(got), tc.want)
			}
		}
		// Paging with AfterSeq visits every event once, in order.
		var all []int64
		after := int64(0)
		for {
			page, err := s.ListAudit(ctx, store.AuditQuery{AfterSeq: after, Limit: 300})
			mustNil(t, "ListAudit page", err)
			if len(page) == 0 {
				break
			}
			all = append(all, seqs(page)...)
			after = page[len(page)-1].Seq
		}
		if len(all) != n || !slices.IsSorted(all) || len(slices.Compact(slices.Clone(all))) != n {
			t.Fatalf("paging visited %d events (sorted %v), want %d distinct in order", len(all), slices.IsSorted(all), n)
		}
	})

	t.Run("Prune", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		var evs []store.AuditEvent
		for i := range 10 {
			evs = append(evs, event("stepup.success", "u1", at(time.Duration(i)*time.Minute)))
		}
		evs = appendAll(t, s, evs)
		n, err := s.PruneAudit(ctx, at(5*time.Minute))
		mustNil(t, "PruneAudit", err)
		if n != 5 {
			t.Fatalf("PruneAudit removed %d, want 5", n)
		}
		left, err := s.ListAudit(ctx, store.AuditQuery{})
		mustNil(t, "ListAudit", err)
		if !slices.Equal(seqs(left), seqs(evs[5:])) {
			t.Fatalf("after pruning seqs = %v, want %v", seqs(left), seqs(evs[5:]))
		}
		n, err = s.PruneAudit(ctx, at(time.Hour))
		mustNil(t, "PruneAudit of everything", err)
		if n != 5 {
			t.Fatalf("PruneAudit removed %d, want 5", n)
		}
		// Numbers are never reused, or a reader paging with AfterSeq
		// would skip the new event.
		next, err := s.AppendAudit(ctx, event("stepup.success", "u1", at(2*time.Hour)))
		mustNil(t, "AppendAudit after pruning", err)
		if next.Seq <= evs[9].Seq {
			t.Fatalf("Seq after pruning = %d, not above the pruned %d", next.Seq, evs[9].Seq)
		}
	})

	t.Run("ConcurrentAppendsInCommitOrder", func(t *testing.T) {
		s := newStore(t)
		concurrentAudit(t, func(int) store.Store { return s })
	})
}

// concurrentAudit has Concurrency goroutines, spread over the stores that
// pick returns, append events while a reader pages through the trail with
// AfterSeq, as an exporter would. The reader must see every event exactly
// once: an event that became visible with a Seq below one already read
// would be missed for good.
func concurrentAudit(t *testing.T, pick func(i int) store.Store) {
	t.Helper()
	ctx := t.Context()
	reader := pick(Concurrency)
	var (
		stop      atomic.Bool
		seen      []int64
		readerErr error
		wg        sync.WaitGroup
	)
	read := func() (int, error) {
		after := int64(0)
		if len(seen) > 0 {
			after = seen[len(seen)-1]
		}
		page, err := reader.ListAudit(ctx, store.AuditQuery{UserID: "concurrent", AfterSeq: after, Limit: 1000})
		if err != nil {
			return 0, err
		}
		for _, e := range page {
			if len(seen) > 0 && e.Seq <= seen[len(seen)-1] {
				return 0, fmt.Errorf("page not in Seq order: %d after %d", e.Seq, seen[len(seen)-1])
			}
			seen = append(seen, e.Seq)
		}
		return len(page), nil
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			if _, err := read(); err != nil {
				readerErr = err
				return
			}
		}
	}()
	appended := make([]int64, Concurrency)
	errs := race(Concurrency, func(i int) error {
		e, err := pick(i).AppendAudit(ctx, event("stepup.success", "concurrent", at(time.Duration(i)*time.Millisecond)))
		appended[i] = e.Seq
		return err
	})
	stop.Store(true)
	wg.Wait()
	if readerErr != nil {
		t.Fatalf("reader: %v", readerErr)
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("goroutine %d: AppendAudit: %v", i, err)
		}
	}
	// Drain what the reader had not reached yet.
	for {
		n, err := read()
		mustNil(t, "ListAudit", err)
		if n == 0 {
			break
		}
	}
	slices.Sort(appended)
	if len(slices.Compact(slices.Clone(appended))) != Concurrency {
		t.Fatalf("AppendAudit returned duplicate Seq: %v", appended)
	}
	if !slices.Equal(seen, appended) {
		t.Fatalf("reader paging with AfterSeq saw %d events %v,\nappended %d %v", len(seen), seen, len(appended), appended)
	}
}
