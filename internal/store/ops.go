package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// AttemptChallenge counts one attempt on challenge id before the caller
// checks the code, so parallel guesses all count. It fails with ErrExpired,
// ErrConsumed or ErrTooManyAttempts (and counts nothing) when the challenge
// can no longer be answered.
func AttemptChallenge(ctx context.Context, s Challenges, id string, now time.Time) (Challenge, error) {
	return s.UpdateChallenge(ctx, id, func(c Challenge) (Challenge, error) {
		if err := openErr(c, now); err != nil {
			return c, err
		}
		if c.MaxAttempts > 0 && c.Attempts >= c.MaxAttempts {
			return c, ErrTooManyAttempts
		}
		c.Attempts++
		return c, nil
	})
}

// ConsumeChallenge marks challenge id used. Of concurrent callers exactly
// one succeeds; the others get ErrConsumed.
func ConsumeChallenge(ctx context.Context, s Challenges, id string, now time.Time) (Challenge, error) {
	return s.UpdateChallenge(ctx, id, func(c Challenge) (Challenge, error) {
		if err := openErr(c, now); err != nil {
			return c, err
		}
		c.ConsumedAt = now
		return c, nil
	})
}

func openErr(c Challenge, now time.Time) error {
	if !c.ConsumedAt.IsZero() {
		return ErrConsumed
	}
	if !now.Before(c.ExpiresAt) {
		return ErrExpired
	}
	return nil
}

// LeaseOptions tune WithLease. Zero values mean the documented defaults.
type LeaseOptions struct {
	// TTL of the lease. Defaults to 10 seconds.
	TTL time.Duration
	// Poll is the wait between tries. Defaults to 20 milliseconds.
	Poll time.Duration
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

// WithLease runs fn while holding lease name, waiting (until ctx is done)
// for another holder to release it. fn should finish well within the TTL.
func WithLease(ctx context.Context, l Leases, name string, opts LeaseOptions, fn func(ctx context.Context) error) error {
	if opts.TTL <= 0 {
		opts.TTL = 10 * time.Second
	}
	if opts.Poll <= 0 {
		opts.Poll = 20 * time.Millisecond
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	holder, err := randomHolder()
	if err != nil {
		return err
	}
	for {
		err := l.AcquireLease(ctx, name, holder, opts.TTL, opts.Now())
		if err == nil {
			break
		}
		if !errors.Is(err, ErrLockHeld) {
			return fmt.Errorf("store: acquiring lease %s: %w", name, err)
		}
		t := time.NewTimer(opts.Poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("store: waiting for lease %s: %w", name, ctx.Err())
		case <-t.C:
		}
	}
	defer func() {
		// Release with a fresh context: ctx may be done, and a lease left
		// behind blocks the user until its TTL.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = l.ReleaseLease(rctx, name, holder)
	}()
	return fn(ctx)
}

func randomHolder() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("store: random lease holder: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// Retry runs fn, a write that records work already done elsewhere (a code
// spent, a step-up granted), until it succeeds, fails with an answer that
// retrying cannot change, or timeout has passed; then it returns fn's last
// error. Answers are the store's sentinel errors and whatever final
// reports (final may be nil). Between tries it backs off from 50 ms to
// 1 s. The caller's cancellation does not cut it short: what it records
// has already happened, and a client that went away must not lose it.
func Retry(ctx context.Context, timeout time.Duration, final func(error) bool, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	wait := 50 * time.Millisecond
	for {
		err := fn(ctx)
		if err == nil || isAnswer(err) || (final != nil && final(err)) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		if wait *= 2; wait > time.Second {
			wait = time.Second
		}
	}
}

func isAnswer(err error) bool {
	for _, e := range []error{ErrNotFound, ErrConflict, ErrExpired, ErrConsumed, ErrTooManyAttempts, ErrLockHeld} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
