package storetest

import (
	"strconv"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// Benchmark measures the hot paths of a step-up on s, an open and empty
// store: creating a challenge, consuming one (an immediate or FOR UPDATE
// transaction), counting a failure in a rate-limit window, and appending an
// audit event (serialised by design). Each reports ops/s.
func Benchmark(b *testing.B, s store.Store) {
	ctx := b.Context()
	expires := time.Now().Add(time.Hour)
	// The testing package calls each sub-benchmark more than once (b.N=1
	// first): every call needs IDs of its own.
	round := 0
	prefix := func(what string) string {
		round++
		return what + "-" + strconv.Itoa(round) + "-"
	}
	b.Run("CreateChallenge", func(b *testing.B) {
		p := prefix("create")
		for i := 0; i < b.N; i++ {
			if err := s.CreateChallenge(ctx, challenge(p+strconv.Itoa(i), expires)); err != nil {
				b.Fatal(err)
			}
		}
		reportOps(b)
	})
	b.Run("ConsumeChallenge", func(b *testing.B) {
		b.StopTimer()
		p := prefix("consume")
		for i := 0; i < b.N; i++ {
			if err := s.CreateChallenge(ctx, challenge(p+strconv.Itoa(i), expires)); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		now := time.Now()
		for i := 0; i < b.N; i++ {
			if _, err := store.ConsumeChallenge(ctx, s, p+strconv.Itoa(i), now); err != nil {
				b.Fatal(err)
			}
		}
		reportOps(b)
	})
	b.Run("IncrementCounter", func(b *testing.B) {
		now := time.Now()
		for i := 0; i < b.N; i++ {
			if _, _, err := s.IncrementCounter(ctx, "user:"+strconv.Itoa(i%16), 1, time.Hour, now); err != nil {
				b.Fatal(err)
			}
		}
		reportOps(b)
	})
	b.Run("AppendAudit", func(b *testing.B) {
		e := event("stepup.success", "u1", time.Now())
		e.Details = map[string]string{"acr": "2"}
		for i := 0; i < b.N; i++ {
			if _, err := s.AppendAudit(ctx, e); err != nil {
				b.Fatal(err)
			}
		}
		reportOps(b)
	})
}

func reportOps(b *testing.B) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "ops/s")
	}
}
