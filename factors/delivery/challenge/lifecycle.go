package challenge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/internal/keyring"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// BeginEnrolment records req.Destination (the phone number or e-mail
// address, normalised) as userID's pending destination. Nothing is sent:
// the caller then starts a Challenge and confirms with its code
// (ConfirmEnrolment). A pending destination is replaced; an active one
// gives factors.ErrAlreadyEnrolled (reset it first).
func (e *Engine) BeginEnrolment(ctx context.Context, userID string, req factors.EnrolRequest) (factors.Enrolment, error) {
	dest, err := e.cfg.Normalize(strings.TrimSpace(req.Destination))
	if err != nil {
		return factors.Enrolment{}, factors.InvalidInput("%v", err)
	}
	if err := e.requireOthers(ctx, userID); err != nil {
		return factors.Enrolment{}, err
	}
	label := strings.TrimSpace(req.Label)
	if label == "" {
		label = e.cfg.Mask(dest)
	}
	now := e.cfg.Now()
	data, err := e.encode(userID, record{Dest: dest})
	if err != nil {
		return factors.Enrolment{}, err
	}
	id := e.credID(userID)
	err = e.cfg.Credentials.CreateCredential(ctx, store.Credential{
		ID: id, UserID: userID, Factor: e.cfg.Factor, Status: store.StatusPending, Label: label,
		Data: data, CreatedAt: now, UpdatedAt: now,
	})
	replaced := false
	if errors.Is(err, store.ErrConflict) {
		_, err = e.cfg.Credentials.UpdateCredential(ctx, id, func(c store.Credential) (store.Credential, error) {
			if c.Status == store.StatusActive {
				return c, fmt.Errorf("challenge: %s of %s: %w", e.cfg.Factor, userID, factors.ErrAlreadyEnrolled)
			}
			c.Label, c.Data, c.UpdatedAt, c.Failures, c.LockedUntil = label, data, now, 0, time.Time{}
			return c, nil
		})
		replaced = err == nil
	}
	if err != nil {
		if errors.Is(err, factors.ErrAlreadyEnrolled) {
			return factors.Enrolment{}, err
		}
		return factors.Enrolment{}, fmt.Errorf("challenge: %s: enrolling %s: %w", e.cfg.Factor, userID, err)
	}
	return factors.Enrolment{Factor: e.cfg.Factor, CredentialID: id, Pending: true, Replaced: replaced}, nil
}

// Challenge delivers a code to userID's destination (pending or active).
// See the package documentation for cool-down, budgets and reuse. Budget
// exhaustion is a *factors.RateLimitedError; provider failures are
// *delivery.ProviderError and leave the challenge as it was.
func (e *Engine) Challenge(ctx context.Context, userID string, req factors.ChallengeRequest) (factors.Delivery, error) {
	if err := e.requireOthers(ctx, userID); err != nil {
		return factors.Delivery{}, err
	}
	now := e.cfg.Now()
	slot, err := e.randomID()
	if err != nil {
		return factors.Delivery{}, err
	}
	newID, err := e.randomID()
	if err != nil {
		return factors.Delivery{}, err
	}
	// Phase 1: decide and reserve, in one transaction, so two concurrent
	// requests cannot both send.
	var (
		reuse    bool
		dest     string
		before   *open // the challenge as it was, for rollback
		expires  time.Time
		openID   string
		errReuse = errors.New("reuse")
	)
	_, err = e.update(ctx, userID, func(c *store.Credential, r *record) error {
		dest = r.Dest
		o := r.Open
		if o.usable(now, e.cfg.MaxAttempts) {
			if now.Before(o.LastSend.Add(e.cfg.Cooldown)) {
				reuse, expires = true, o.ExpiresAt
				return errReuse // nothing to write
			}
			cp := *o
			before = &cp
		} else {
			o = &open{ID: newID, Session: req.SessionID, CreatedAt: now}
		}
		o.LastSend, o.Sending = now, slot
		o.ExpiresAt = later(o.ExpiresAt, now.Add(e.cfg.TTL))
		r.Open, openID, expires = o, o.ID, o.ExpiresAt
		return nil
	})
	if reuse {
		e.cfg.Metrics.Suppressed(e.cfg.Deliverer.Provider(), e.cfg.Channel)
		return e.delivery(dest, expires), nil
	}
	if err != nil {
		return factors.Delivery{}, err
	}
	rollback := func() {
		// The request may be cancelled; the rollback must still happen.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, _ = e.update(rctx, userID, func(_ *store.Credential, r *record) error {
			if r.Open == nil || r.Open.ID != openID || r.Open.Sending != slot {
				return errReuse // changed meanwhile: leave it
			}
			r.Open = before
			return nil
		})
	}

	if err := e.spendBudgets(ctx, userID, dest, now); err != nil {
		rollback()
		return factors.Delivery{}, err
	}

	start := time.Now()
	sent, err := e.cfg.Deliverer.Deliver(ctx, dest)
	e.cfg.Metrics.Sent(e.cfg.Deliverer.Provider(), e.cfg.Channel, err)
	e.cfg.Metrics.Observe(e.cfg.Deliverer.Provider(), "deliver", start, time.Now())
	if err != nil {
		rollback()
		return factors.Delivery{}, fmt.Errorf("challenge: %s: delivering to %s: %w", e.cfg.Factor, e.cfg.Mask(dest), err)
	}
	cd := code{CallID: sent.CallID, CLIFilter: sent.CLIFilter, ExpiresAt: now.Add(e.cfg.TTL)}
	if sent.Code != "" {
		cd.Salt = make([]byte, 16)
		if _, err := io.ReadFull(e.cfg.Rand, cd.Salt); err != nil {
			rollback()
			return factors.Delivery{}, fmt.Errorf("challenge: random salt: %w", err)
		}
		cd.MAC = e.mac(cd.Salt, sent.Code)
	} else if sent.CallID == "" || sent.CLIFilter == "" {
		rollback()
		return factors.Delivery{}, fmt.Errorf("challenge: %s: deliverer returned neither a code nor a call to check", e.cfg.Factor)
	}
	// Phase 2: remember what was sent. Store it even when the reservation
	// was overtaken (the challenge was answered meanwhile): then it is no
	// longer needed, and dropping it is right.
	_, err = e.update(context.WithoutCancel(ctx), userID, func(_ *store.Credential, r *record) error {
		if r.Open == nil || r.Open.ID != openID {
			return errReuse
		}
		r.Open.Codes = append(pruneExpired(r.Open.Codes, now), cd)
		if r.Open.Sending == slot {
			r.Open.Sending = ""
		}
		return nil
	})
	if err != nil && !errors.Is(err, errReuse) {
		return factors.Delivery{}, fmt.Errorf("challenge: %s: recording the delivery: %w", e.cfg.Factor, err)
	}
	return e.delivery(dest, expires), nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func pruneExpired(cs []code, now time.Time) []code {
	out := cs[:0:0]
	for _, c := range cs {
		if now.Before(c.ExpiresAt) {
			out = append(out, c)
		}
	}
	return out
}

func (e *Engine) delivery(dest string, expires time.Time) factors.Delivery {
	return factors.Delivery{Channel: e.cfg.Channel, Destination: e.cfg.Mask(dest), CodeLength: e.cfg.CodeLength, ExpiresAt: expires}
}

// Budget counter keys. The destination is keyed by its peppered hash, so
// the counters table holds no phone numbers or addresses.
func (e *Engine) budgetKeys(userID, dest string) (user, destination string) {
	h := e.cfg.Pepper.MAC([]byte("delivery-destination\x00" + dest))
	return "delivery:" + e.cfg.Factor + ":user:" + userID,
		"delivery:" + e.cfg.Factor + ":dest:" + fmt.Sprintf("%x", h[:16])
}

const budgetWindow = time.Hour

func (e *Engine) spendBudgets(ctx context.Context, userID, dest string, now time.Time) error {
	uk, dk := e.budgetKeys(userID, dest)
	for _, b := range []struct {
		key   string
		limit int
	}{{uk, e.cfg.SendsPerUserPerHour}, {dk, e.cfg.SendsPerDestinationPerHour}} {
		n, resetAt, err := e.cfg.Counters.IncrementCounter(ctx, b.key, 1, budgetWindow, now)
		if err != nil {
			return fmt.Errorf("challenge: %s: counting sends: %w", e.cfg.Factor, err)
		}
		if n > int64(b.limit) {
			return &factors.RateLimitedError{RetryAfter: resetAt.Sub(now), Until: resetAt}
		}
	}
	return nil
}

// Verify checks code against userID's open challenge and consumes it on
// success. The credential must be active.
func (e *Engine) Verify(ctx context.Context, userID, code string) (factors.Result, error) {
	return e.check(ctx, userID, code, false)
}

// ConfirmEnrolment checks code against the challenge sent to a pending
// destination and activates it on success.
func (e *Engine) ConfirmEnrolment(ctx context.Context, userID, code string) (factors.Result, error) {
	return e.check(ctx, userID, code, true)
}

// ParseCode strips spaces and dashes from what the user typed and checks
// it is exactly n ASCII digits.
func ParseCode(s string, n int) (string, error) {
	if len(s) > 64 {
		return "", factors.InvalidInput("the code has %d digits", n)
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '\t':
		default:
			return "", factors.InvalidInput("the code has %d digits", n)
		}
	}
	if b.Len() != n {
		return "", factors.InvalidInput("the code has %d digits", n)
	}
	return b.String(), nil
}

func (e *Engine) check(ctx context.Context, userID, raw string, confirm bool) (factors.Result, error) {
	typed, err := ParseCode(raw, e.cfg.CodeLength)
	if err != nil {
		return factors.Result{}, err
	}
	if err := e.requireOthers(ctx, userID); err != nil {
		return factors.Result{}, err
	}
	now := e.cfg.Now()
	var (
		matched bool
		remote  []Remote
		dest    string
		openID  string
	)
	activate := func(c *store.Credential) {
		c.LastUsedAt = now
		if confirm {
			c.Status = store.StatusActive
		}
	}
	cred, err := e.update(ctx, userID, func(c *store.Credential, r *record) error {
		if err := e.stateErr(c, confirm, userID); err != nil {
			return err
		}
		o := r.Open
		if o == nil || !now.Before(o.ExpiresAt) {
			return fmt.Errorf("%w: %w", factors.ErrInvalidCode, ErrNoChallenge)
		}
		if o.Attempts >= e.cfg.MaxAttempts {
			return fmt.Errorf("%w: %w", factors.ErrInvalidCode, ErrAttemptsSpent)
		}
		o.Attempts++
		dest, openID = r.Dest, o.ID
		found := false
		for _, cd := range o.Codes {
			if !now.Before(cd.ExpiresAt) {
				continue
			}
			if cd.MAC != nil {
				// Every live code is compared, in constant time each.
				if keyring.Equal(e.mac(cd.Salt, typed), cd.MAC) {
					found = true
				}
			} else {
				remote = append(remote, Remote{CallID: cd.CallID, CLIFilter: cd.CLIFilter})
			}
		}
		if found {
			matched = true
			r.Open = nil
			activate(c)
		}
		return nil
	})
	if err != nil {
		return factors.Result{}, err
	}
	if matched {
		return e.result(cred, now), nil
	}
	for _, rm := range remote {
		ok, err := e.cfg.Deliverer.CheckRemote(ctx, rm, dest, typed)
		if err != nil {
			// Nothing was decided: give the attempt back.
			_, _ = e.update(context.WithoutCancel(ctx), userID, func(_ *store.Credential, r *record) error {
				if r.Open != nil && r.Open.ID == openID && r.Open.Attempts > 0 {
					r.Open.Attempts--
				}
				return nil
			})
			return factors.Result{}, fmt.Errorf("challenge: %s: checking the code: %w", e.cfg.Factor, err)
		}
		if !ok {
			continue
		}
		cred, err = e.update(context.WithoutCancel(ctx), userID, func(c *store.Credential, r *record) error {
			if r.Open == nil || r.Open.ID != openID {
				return fmt.Errorf("challenge: %s: %w", e.cfg.Factor, factors.ErrReplay)
			}
			if err := e.stateErr(c, confirm, userID); err != nil {
				return err
			}
			r.Open = nil
			activate(c)
			return nil
		})
		if err != nil {
			return factors.Result{}, err
		}
		return e.result(cred, now), nil
	}
	return factors.Result{}, fmt.Errorf("challenge: %s: %w", e.cfg.Factor, factors.ErrInvalidCode)
}

func (e *Engine) stateErr(c *store.Credential, confirm bool, userID string) error {
	switch {
	case confirm && c.Status == store.StatusActive:
		return fmt.Errorf("challenge: %s of %s: %w", e.cfg.Factor, userID, factors.ErrAlreadyEnrolled)
	case !confirm && c.Status != store.StatusActive:
		return fmt.Errorf("challenge: %s of %s is pending: %w", e.cfg.Factor, userID, factors.ErrNotEnrolled)
	}
	return nil
}

func (e *Engine) result(c store.Credential, now time.Time) factors.Result {
	return factors.Result{Method: e.cfg.Factor, Level: e.cfg.Level, At: now, CredentialID: c.ID}
}

// Status reports userID's credential; the destination appears only masked,
// in the Label when the user gave none.
func (e *Engine) Status(ctx context.Context, userID string) (factors.Status, error) {
	c, err := e.cfg.Credentials.GetCredential(ctx, e.credID(userID))
	if errors.Is(err, store.ErrNotFound) {
		return factors.Status{Factor: e.cfg.Factor, State: factors.StateNone}, nil
	}
	if err != nil {
		return factors.Status{}, fmt.Errorf("challenge: %s: reading credential of %s: %w", e.cfg.Factor, userID, err)
	}
	state := factors.StatePending
	if c.Status == store.StatusActive {
		state = factors.StateActive
	}
	return factors.Status{Factor: e.cfg.Factor, State: state, CredentialID: c.ID, Label: c.Label,
		CreatedAt: c.CreatedAt, LastUsedAt: c.LastUsedAt}, nil
}

// Reset removes userID's destination (pending or active) and any open
// challenge with it.
func (e *Engine) Reset(ctx context.Context, userID string) error {
	err := e.cfg.Credentials.DeleteCredential(ctx, e.credID(userID))
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("challenge: %s of %s: %w", e.cfg.Factor, userID, factors.ErrNotEnrolled)
	}
	if err != nil {
		return fmt.Errorf("challenge: %s: removing credential of %s: %w", e.cfg.Factor, userID, err)
	}
	return nil
}
