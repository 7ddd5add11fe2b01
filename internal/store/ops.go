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
