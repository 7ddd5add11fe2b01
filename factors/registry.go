package factors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// Audit event types the Registry writes (store.AuditEvent.Type). A
// verification's type is its Meta.Purpose plus ".success" or ".failure".
const (
	AuditEnrol     = "factor.enrol"
	AuditConfirm   = "factor.confirm"
	AuditChange    = "factor.change"
	AuditChallenge = "factor.challenge"
	AuditReset     = "factor.reset"
	AuditLockout   = "lockout"
	// AuditAdminReset and AuditAdminUnlock are written when Meta.Actor is
	// someone other than the user.
	AuditAdminReset  = "admin.reset"
	AuditAdminUnlock = "admin.unlock"
	// BudgetFactor is the Factor of audit events and the factor label of
	// lockout metrics about the per-account failure budget.
	BudgetFactor = "all"
)

const budgetWindow = time.Hour

// Meta is who asks and from where, for the audit trail. Nothing in it is
// secret; it never holds the code.
type Meta struct {
	// Actor is who acts; empty means the user themself. An admin action
	// sets the admin's id.
	Actor string
	// SessionID is the Keycloak session, if any.
	SessionID string
	// IP is the client address as the server derived it.
	IP string
	// Purpose names why a code is verified ("stepup", "login"); it becomes
	// the audit type prefix. Defaults to "stepup".
	Purpose string
	// Details are extra facts for the audit event (the request the client
	// wants to make). Never secrets.
	Details map[string]string
}

// RegistryConfig configures NewRegistry. Counters and Audit are required.
type RegistryConfig struct {
	// Enabled names the factors offered, in the order offered (config
	// factors.enabled). Every name must be among the factors given to
	// NewRegistry; the others are left out.
	Enabled []string
	// UserFailuresPerHour caps failed attempts of one account, all factors
	// together, in fixed one-hour windows (ASVS 2.2.1). Defaults to 100.
	UserFailuresPerHour int
	// ChallengesPerUserPerHour caps Challenge calls of one account.
	// Defaults to 30.
	ChallengesPerUserPerHour int
	// Counters hold the budgets, shared by every replica.
	Counters store.Counters
	// Audit receives every enrolment, verification, lockout and reset.
	Audit store.Audit
	// Registerer receives the metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Logger reports audit writes that failed on an already failing
	// attempt. Defaults to discarding.
	Logger *slog.Logger
	// RecordTimeout bounds the retries of the audit record of a success
	// (the code is spent by then). Defaults to 10 seconds.
	RecordTimeout time.Duration
}

// Registry maps factor names to the enabled factors and is the single
// choke point of verification. It is safe for concurrent use.
type Registry struct {
	order    []string
	byName   map[string]Factor
	cfg      RegistryConfig
	counters store.Counters
	audit    store.Audit
	now      func() time.Time
	log      *slog.Logger
	m        *metrics
}

// NewRegistry keeps the factors named in cfg.Enabled. A name that is not
// among available (unknown, or not built in this binary) is an error, as is
// a name given twice.
func NewRegistry(cfg RegistryConfig, available ...Factor) (*Registry, error) {
	if cfg.Counters == nil || cfg.Audit == nil {
		return nil, errors.New("factors: registry needs Counters and Audit")
	}
	if cfg.UserFailuresPerHour <= 0 {
		cfg.UserFailuresPerHour = 100
	}
	if cfg.ChallengesPerUserPerHour <= 0 {
		cfg.ChallengesPerUserPerHour = 30
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RecordTimeout <= 0 {
		cfg.RecordTimeout = 10 * time.Second
	}
	avail := make(map[string]Factor, len(available))
	for _, f := range available {
		if f == nil {
			return nil, errors.New("factors: nil factor")
		}
		if _, dup := avail[f.Name()]; dup {
			return nil, fmt.Errorf("factors: two factors named %q", f.Name())
		}
		avail[f.Name()] = f
	}
	r := &Registry{byName: map[string]Factor{}, cfg: cfg, counters: cfg.Counters, audit: cfg.Audit, now: cfg.Now, log: cfg.Logger}
	for _, name := range cfg.Enabled {
		f, ok := avail[name]
		if !ok {
			return nil, fmt.Errorf("factors: enabled factor %q is unknown (available: %v): %w", name, slices.Sorted(maps.Keys(avail)), ErrUnknownFactor)
		}
		if _, dup := r.byName[name]; dup {
			return nil, fmt.Errorf("factors: factor %q enabled twice", name)
		}
		r.byName[name] = f
		r.order = append(r.order, name)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	r.m = m
	return r, nil
}

// Names returns the enabled factor names in the configured order. The
// caller owns the slice.
func (r *Registry) Names() []string { return slices.Clone(r.order) }

// Factor returns the enabled factor called name.
func (r *Registry) Factor(name string) (Factor, bool) {
	f, ok := r.byName[name]
	return f, ok
}

// errNoUser guards against a caller that lost the user: every count and
// record would otherwise be shared by all such requests.
var errNoUser = errors.New("factors: empty user id")

func (r *Registry) lookup(name, userID string) (Factor, error) {
	if userID == "" {
		return nil, errNoUser
	}
	f, ok := r.byName[name]
	if !ok {
		return nil, fmt.Errorf("factors: %q: %w", name, ErrUnknownFactor)
	}
	return f, nil
}

// Verify checks code with factor name for userID: the single choke point.
// It refuses with a *RateLimitedError once the account's failure budget
// for the hour is spent (without asking the factor), records the attempt in
// the audit trail and the metrics, and returns the factor's Result or
// error. An error that matches none of the package's sentinels means the
// machinery failed: answer 503, never success.
func (r *Registry) Verify(ctx context.Context, name, userID, code string, meta Meta) (Result, error) {
	f, err := r.lookup(name, userID)
	if err != nil {
		return Result{}, err
	}
	purpose := meta.Purpose
	if purpose == "" {
		purpose = "stepup"
	}
	return r.guard(ctx, f.Name(), userID, meta, purpose+".success", purpose+".failure", func() (Result, error) {
		return f.Verify(ctx, userID, code)
	})
}

// Confirm confirms a pending enrolment with a first code (Enroller). It
// draws on the same failure budget as Verify.
func (r *Registry) Confirm(ctx context.Context, name, userID, code string, meta Meta) (Result, error) {
	f, err := r.lookup(name, userID)
	if err != nil {
		return Result{}, err
	}
	e, ok := f.(Enroller)
	if !ok {
		return Result{}, fmt.Errorf("factors: %s has no enrolment: %w", name, ErrNotSupported)
	}
	return r.guard(ctx, name, userID, meta, AuditConfirm, AuditConfirm, func() (Result, error) {
		return e.ConfirmEnrolment(ctx, userID, code)
	})
}

// Change replaces the user's secret after checking the current one
// (Changer). It draws on the same failure budget as Verify.
func (r *Registry) Change(ctx context.Context, name, userID, current string, req EnrolRequest, meta Meta) (Result, error) {
	f, err := r.lookup(name, userID)
	if err != nil {
		return Result{}, err
	}
	c, ok := f.(Changer)
	if !ok {
		return Result{}, fmt.Errorf("factors: %s cannot be changed: %w", name, ErrNotSupported)
	}
	return r.guard(ctx, name, userID, meta, AuditChange, AuditChange, func() (Result, error) {
		return c.Change(ctx, userID, current, req)
	})
}

// Enrol begins an enrolment (Enroller). The returned Enrolment holds
// secrets to show once; the audit trail gets only the fact.
func (r *Registry) Enrol(ctx context.Context, name, userID string, req EnrolRequest, meta Meta) (Enrolment, error) {
	f, err := r.lookup(name, userID)
	if err != nil {
		return Enrolment{}, err
	}
	e, ok := f.(Enroller)
	if !ok {
		return Enrolment{}, fmt.Errorf("factors: %s has no enrolment: %w", name, ErrNotSupported)
	}
	enr, err := e.BeginEnrolment(ctx, userID, req)
	outcome := outcomeOf(err)
	details := map[string]string{}
	if err == nil {
		details["pending"] = strconv.FormatBool(enr.Pending)
		details["credential_id"] = enr.CredentialID
		if enr.Replaced {
			outcome = "replaced"
		}
	} else {
		details["reason"] = outcomeOf(err)
	}
	r.m.enrolments.WithLabelValues(name, outcome).Inc()
	if aerr := r.record(ctx, AuditEnrol, name, userID, meta, auditOutcome(err), details); aerr != nil {
		if err == nil {
			return Enrolment{}, aerr
		}
		r.logAuditFailure(aerr)
	}
	return enr, err
}

// PendingEnrolment shows a pending enrolment again (Reshower), e.g. for a
// QR image endpoint. It writes no audit event: nothing changes.
func (r *Registry) PendingEnrolment(ctx context.Context, name, userID string) (Enrolment, error) {
	f, err := r.lookup(name, userID)
	if err != nil {
		return Enrolment{}, err
	}
	rs, ok := f.(Reshower)
	if !ok {
		return Enrolment{}, fmt.Errorf("factors: %s cannot show an enrolment again: %w", name, ErrNotSupported)
	}
	return rs.PendingEnrolment(ctx, userID)
}

// Challenge starts a challenge of a Challenger factor, within the
// account's challenge budget (ChallengesPerUserPerHour).
func (r *Registry) Challenge(ctx context.Context, name, userID string, req ChallengeRequest, meta Meta) (Delivery, error) {
	f, err := r.lookup(name, userID)
	if err != nil {
		return Delivery{}, err
	}
	c, ok := f.(Challenger)
	if !ok {
		return Delivery{}, fmt.Errorf("factors: %s delivers nothing: %w", name, ErrNotSupported)
	}
	now := r.now()
	n, resetAt, err := r.counters.IncrementCounter(ctx, "factors:challenges:"+userID, 1, budgetWindow, now)
	if err != nil {
		r.m.challenges.WithLabelValues(name, OutcomeError).Inc()
		return Delivery{}, fmt.Errorf("factors: counting challenges of %s: %w", userID, err)
	}
	var d Delivery
	if n > int64(r.cfg.ChallengesPerUserPerHour) {
		err = &RateLimitedError{RetryAfter: resetAt.Sub(now), Until: resetAt}
	} else {
		d, err = c.Challenge(ctx, userID, req)
	}
	r.m.challenges.WithLabelValues(name, outcomeOf(err)).Inc()
	details := map[string]string{}
	if err == nil {
		details["channel"] = d.Channel
		details["destination"] = d.Destination
	} else {
		details["reason"] = outcomeOf(err)
	}
	if aerr := r.record(ctx, AuditChallenge, name, userID, meta, auditOutcome(err), details); aerr != nil {
		if err == nil {
			return Delivery{}, aerr
		}
		r.logAuditFailure(aerr)
	}
	return d, err
}

// Reset removes userID's credential of factor name (Resetter). Whether the
// caller may do so (admin, or the user after a recent step-up with another
// factor) is the caller's decision; Meta.Actor says who did it.
func (r *Registry) Reset(ctx context.Context, name, userID string, meta Meta) error {
	f, err := r.lookup(name, userID)
	if err != nil {
		return err
	}
	rs, ok := f.(Resetter)
	if !ok {
		return fmt.Errorf("factors: %s cannot be reset: %w", name, ErrNotSupported)
	}
	err = rs.Reset(ctx, userID)
	r.m.resets.WithLabelValues(name, outcomeOf(err)).Inc()
	typ := AuditReset
	if meta.Actor != "" && meta.Actor != userID {
		typ = AuditAdminReset
	}
	details := map[string]string{}
	if err != nil {
		details["reason"] = outcomeOf(err)
	}
	if aerr := r.record(ctx, typ, name, userID, meta, auditOutcome(err), details); aerr != nil {
		if err == nil {
			return aerr
		}
		r.logAuditFailure(aerr)
	}
	return err
}

// Unlock lifts every lockout of userID: the per-account failure budget and
// each factor's own lockout (Unlocker). An admin action.
func (r *Registry) Unlock(ctx context.Context, userID string, meta Meta) error {
	var errs []error
	for _, key := range budgetKeys(userID) {
		if err := r.counters.ResetCounter(ctx, key); err != nil {
			errs = append(errs, fmt.Errorf("factors: resetting failure budget of %s: %w", userID, err))
		}
	}
	for _, name := range r.order {
		if u, ok := r.byName[name].(Unlocker); ok {
			if err := u.Unlock(ctx, userID); err != nil && !errors.Is(err, ErrNotEnrolled) {
				errs = append(errs, err)
			}
		}
	}
	err := errors.Join(errs...)
	typ := AuditAdminUnlock
	if meta.Actor == "" || meta.Actor == userID {
		typ = "factor.unlock"
	}
	if aerr := r.record(ctx, typ, BudgetFactor, userID, meta, auditOutcome(err), nil); aerr != nil {
		return errors.Join(err, aerr)
	}
	return err
}

// Status reports every enabled factor of userID, in the configured order.
func (r *Registry) Status(ctx context.Context, userID string) ([]Status, error) {
	out := make([]Status, 0, len(r.order))
	for _, name := range r.order {
		s, err := r.byName[name].Status(ctx, userID)
		if err != nil {
			return nil, fmt.Errorf("factors: status of %s: %w", name, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// Active returns the names of the enabled factors userID can verify with
// now (active credential), in the configured order.
func (r *Registry) Active(ctx context.Context, userID string) ([]string, error) {
	st, err := r.Status(ctx, userID)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range st {
		if s.State == StateActive {
			out = append(out, s.Factor)
		}
	}
	return out, nil
}

// FailureBudget returns how many failed attempts userID has left in the
// current window and when the window ends.
func (r *Registry) FailureBudget(ctx context.Context, userID string) (remaining int, resetAt time.Time, err error) {
	failures, resetAt, err := r.failures(ctx, userID, r.now())
	if err != nil {
		return 0, time.Time{}, err
	}
	return max(r.cfg.UserFailuresPerHour-int(failures), 0), resetAt, nil
}

func budgetKeys(userID string) [2]string {
	return [2]string{"factors:attempts:" + userID, "factors:successes:" + userID}
}

func (r *Registry) failures(ctx context.Context, userID string, now time.Time) (int64, time.Time, error) {
	keys := budgetKeys(userID)
	attempts, resetAt, err := r.counters.GetCounter(ctx, keys[0], budgetWindow, now)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("factors: reading failure budget of %s: %w", userID, err)
	}
	ok, _, err := r.counters.GetCounter(ctx, keys[1], budgetWindow, now)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("factors: reading failure budget of %s: %w", userID, err)
	}
	return attempts - ok, resetAt, nil
}

// guard runs one check of a secret inside the failure budget.
//
// The budget counts attempts and successes in two monotonic counters of
// the same window; failures = attempts - successes. Each attempt is counted
// BEFORE the factor looks at the code, so N parallel guesses cannot all
// slip under the limit; a success (and an attempt that failed for reasons
// that are no guess: machinery error, invalid new secret, expired secret)
// is then counted as a success, giving the attempt back.
func (r *Registry) guard(ctx context.Context, factor, userID string, meta Meta, okType, failType string, check func() (Result, error)) (Result, error) {
	start := time.Now()
	defer func() { r.m.duration.WithLabelValues(factor).Observe(time.Since(start).Seconds()) }()
	now := r.now()
	keys := budgetKeys(userID)
	attempts, resetAt, err := r.counters.IncrementCounter(ctx, keys[0], 1, budgetWindow, now)
	if err != nil {
		r.m.verifications.WithLabelValues(factor, OutcomeError).Inc()
		return Result{}, fmt.Errorf("factors: counting attempt of %s: %w", userID, err)
	}
	successes, _, err := r.counters.GetCounter(ctx, keys[1], budgetWindow, now)
	if err != nil {
		r.m.verifications.WithLabelValues(factor, OutcomeError).Inc()
		return Result{}, fmt.Errorf("factors: reading failure budget of %s: %w", userID, err)
	}
	limit := int64(r.cfg.UserFailuresPerHour)
	if attempts-successes > limit {
		rl := &RateLimitedError{RetryAfter: resetAt.Sub(now), Until: resetAt}
		r.m.verifications.WithLabelValues(factor, OutcomeRateLimited).Inc()
		r.recordOrLog(ctx, failType, factor, userID, meta, "denied", map[string]string{"reason": OutcomeRateLimited})
		return Result{}, rl
	}

	res, cerr := check()
	outcome := outcomeOf(cerr)
	r.m.verifications.WithLabelValues(factor, outcome).Inc()

	giveBack := cerr == nil
	switch outcome {
	case OutcomeError, OutcomeExpired, OutcomeInvalidInput, OutcomeNotSupported, OutcomeAlready:
		giveBack = true
	}
	if giveBack {
		if _, _, err := r.counters.IncrementCounter(ctx, keys[1], 1, budgetWindow, now); err != nil {
			if cerr == nil {
				// The user proved the factor; a miscounted budget only
				// costs them one attempt, so do not fail the request.
				r.log.WarnContext(ctx, "factors: counting success", "factor", factor, "err", err)
			}
		}
	}

	if cerr == nil {
		// Non-repudiation: a step-up that is not on record does not
		// happen. The factor has already spent the code, so a passing
		// store outage is ridden out rather than losing it.
		if err := store.Retry(ctx, r.cfg.RecordTimeout, nil, func(ctx context.Context) error {
			return r.record(ctx, okType, factor, userID, meta, OutcomeSuccess, map[string]string{
				"credential_id": res.CredentialID, "level": res.Level,
			})
		}); err != nil {
			return Result{}, err
		}
		return res, nil
	}

	details := map[string]string{"reason": outcome}
	r.recordOrLog(ctx, failType, factor, userID, meta, auditOutcome(cerr), details)
	var le *LockedError
	if errors.As(cerr, &le) && le.Started() {
		r.m.lockouts.WithLabelValues(factor).Inc()
		r.recordOrLog(ctx, AuditLockout, factor, userID, meta, "locked", map[string]string{
			"until": le.Until.UTC().Format(time.RFC3339),
		})
	}
	if !giveBack && attempts-successes == limit {
		// This failure spent the last of the budget.
		r.m.lockouts.WithLabelValues(BudgetFactor).Inc()
		r.recordOrLog(ctx, AuditLockout, BudgetFactor, userID, meta, "locked", map[string]string{
			"reason": "failure budget", "until": resetAt.UTC().Format(time.RFC3339),
			"limit": strconv.FormatInt(limit, 10),
		})
	}
	return Result{}, cerr
}

func auditOutcome(err error) string {
	switch {
	case err == nil:
		return OutcomeSuccess
	case errors.Is(err, ErrRateLimited), errors.Is(err, ErrLocked):
		return "denied"
	case outcomeOf(err) == OutcomeError:
		return OutcomeError
	default:
		return "failure"
	}
}

func (r *Registry) record(ctx context.Context, typ, factor, userID string, meta Meta, outcome string, details map[string]string) error {
	actor := meta.Actor
	if actor == "" {
		actor = userID
	}
	d := make(map[string]string, len(meta.Details)+len(details))
	maps.Copy(d, meta.Details)
	maps.Copy(d, details)
	if len(d) == 0 {
		d = nil
	}
	// The audit write must happen even when the request's ctx was just
	// cancelled: the attempt did happen.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, err := r.audit.AppendAudit(actx, store.AuditEvent{
		Time: r.now(), Type: typ, Actor: actor, UserID: userID, Factor: factor,
		SessionID: meta.SessionID, IP: meta.IP, Outcome: outcome, Details: d,
	})
	if err != nil {
		return fmt.Errorf("factors: writing audit event %s for %s: %w", typ, userID, err)
	}
	return nil
}

func (r *Registry) recordOrLog(ctx context.Context, typ, factor, userID string, meta Meta, outcome string, details map[string]string) {
	if err := r.record(ctx, typ, factor, userID, meta, outcome, details); err != nil {
		r.logAuditFailure(err)
	}
}

func (r *Registry) logAuditFailure(err error) {
	r.log.Error("factors: audit write failed", "err", err)
}
