package factors_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/factors/internal/factortest"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// scripted is a factor whose Verify answers what the test says, counting
// how often it was asked. It has every capability but Changer.
type scripted struct {
	name  string
	calls atomic.Int64
	// answer is returned by Verify and ConfirmEnrolment; nil = success.
	answer func() error
	now    func() time.Time
}

func (s *scripted) Name() string { return s.name }

func (s *scripted) Verify(context.Context, string, string) (factors.Result, error) {
	s.calls.Add(1)
	if err := s.answer(); err != nil {
		return factors.Result{}, err
	}
	return factors.Result{Method: s.name, Level: "2", At: s.now(), CredentialID: "cred-" + s.name}, nil
}

func (s *scripted) Status(_ context.Context, userID string) (factors.Status, error) {
	return factors.Status{Factor: s.name, State: factors.StateActive}, nil
}

func (s *scripted) BeginEnrolment(context.Context, string, factors.EnrolRequest) (factors.Enrolment, error) {
	return factors.Enrolment{Factor: s.name, CredentialID: "cred-" + s.name, Pending: true, Secret: "SEKRET"}, nil
}

func (s *scripted) ConfirmEnrolment(ctx context.Context, userID, code string) (factors.Result, error) {
	return s.Verify(ctx, userID, code)
}

func (s *scripted) Challenge(context.Context, string, factors.ChallengeRequest) (factors.Delivery, error) {
	return factors.Delivery{Channel: "sms", Destination: "+49 *** 12", CodeLength: 6}, nil
}

func (s *scripted) Reset(context.Context, string) error { return nil }

func (s *scripted) Unlock(context.Context, string) error { return nil }

var (
	_ factors.Enroller   = (*scripted)(nil)
	_ factors.Challenger = (*scripted)(nil)
	_ factors.Resetter   = (*scripted)(nil)
	_ factors.Unlocker   = (*scripted)(nil)
)

// plain has no capability beyond Factor.
type plain struct{}

func (plain) Name() string { return "plain" }
func (plain) Verify(context.Context, string, string) (factors.Result, error) {
	return factors.Result{}, factors.ErrInvalidCode
}
func (plain) Status(context.Context, string) (factors.Status, error) {
	return factors.Status{Factor: "plain", State: factors.StateNone}, nil
}

type fixture struct {
	reg   *factors.Registry
	mem   *factortest.Mem
	clock *factortest.Clock
	prom  *prometheus.Registry
	a, b  *scripted
}

func newFixture(t *testing.T, limit int, answerA, answerB func() error) *fixture {
	t.Helper()
	fx := &fixture{mem: factortest.NewMem(), clock: factortest.NewClock(), prom: prometheus.NewRegistry()}
	fx.a = &scripted{name: "a", answer: answerA, now: fx.clock.Now}
	fx.b = &scripted{name: "b", answer: answerB, now: fx.clock.Now}
	reg, err := factors.NewRegistry(factors.RegistryConfig{
		Enabled: []string{"b", "a", "plain"}, UserFailuresPerHour: limit, ChallengesPerUserPerHour: 2,
		Counters: fx.mem, Audit: fx.mem, Registerer: fx.prom, Now: fx.clock.Now,
	}, fx.a, fx.b, plain{})
	if err != nil {
		t.Fatal(err)
	}
	fx.reg = reg
	return fx
}

func fail(err error) func() error { return func() error { return err } }

var succeed = fail(nil)

// counter reads one sample of a counter vector from the Prometheus registry.
func (fx *fixture) counter(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := fx.prom.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func (fx *fixture) events(typ string) []store.AuditEvent {
	var out []store.AuditEvent
	for _, e := range fx.mem.Events() {
		if typ == "" || e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

func TestNewRegistry(t *testing.T) {
	t.Parallel()
	mem := factortest.NewMem()
	a := &scripted{name: "a", answer: succeed, now: time.Now}
	for _, tc := range []struct {
		name    string
		cfg     factors.RegistryConfig
		wantErr error
	}{
		{"unknown enabled", factors.RegistryConfig{Enabled: []string{"a", "sms"}, Counters: mem, Audit: mem}, factors.ErrUnknownFactor},
		{"enabled twice", factors.RegistryConfig{Enabled: []string{"a", "a"}, Counters: mem, Audit: mem}, nil},
		{"no store", factors.RegistryConfig{Enabled: []string{"a"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := factors.NewRegistry(tc.cfg, a)
			if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
				t.Fatalf("NewRegistry = %v, want error %v", err, tc.wantErr)
			}
		})
	}
	reg, err := factors.NewRegistry(factors.RegistryConfig{Enabled: []string{"a"}, Counters: mem, Audit: mem}, a, plain{})
	if err != nil {
		t.Fatal(err)
	}
	if got := reg.Names(); len(got) != 1 || got[0] != "a" {
		t.Fatalf("Names = %v: a factor that is not enabled must be left out", got)
	}
	if _, err := reg.Verify(context.Background(), "plain", "u", "x", factors.Meta{}); !errors.Is(err, factors.ErrUnknownFactor) {
		t.Fatalf("Verify of a disabled factor: %v", err)
	}
	// One Registry per Registerer: a second registration is refused.
	pr := prometheus.NewRegistry()
	if _, err := factors.NewRegistry(factors.RegistryConfig{Counters: mem, Audit: mem, Registerer: pr}); err != nil {
		t.Fatal(err)
	}
	if _, err := factors.NewRegistry(factors.RegistryConfig{Counters: mem, Audit: mem, Registerer: pr}); err == nil {
		t.Fatal("second registry on one Registerer accepted")
	}
}

func TestFailureBudgetAcrossFactors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fx := newFixture(t, 5, fail(factors.ErrInvalidCode), fail(factors.ErrReplay))
	for i := range 3 {
		if _, err := fx.reg.Verify(ctx, "a", "alice", "111111", factors.Meta{}); !errors.Is(err, factors.ErrInvalidCode) {
			t.Fatalf("failure %d on a: %v", i+1, err)
		}
	}
	for i := range 2 {
		if _, err := fx.reg.Verify(ctx, "b", "alice", "222222", factors.Meta{}); !errors.Is(err, factors.ErrReplay) {
			t.Fatalf("failure %d on b: %v", i+1, err)
		}
	}
	before := fx.a.calls.Load()
	_, err := fx.reg.Verify(ctx, "a", "alice", "333333", factors.Meta{})
	var rl *factors.RateLimitedError
	if !errors.As(err, &rl) || !errors.Is(err, factors.ErrRateLimited) {
		t.Fatalf("6th failure: %v, want RateLimitedError", err)
	}
	if fx.a.calls.Load() != before {
		t.Fatal("the factor was asked although the budget was spent")
	}
	// Windows are aligned to the hour: 1700000000 is 22:13:20, the window
	// ends at 23:00:00.
	if want := 46*time.Minute + 40*time.Second; rl.RetryAfter != want || rl.RetryAfterSeconds() != 2800 {
		t.Fatalf("RetryAfter = %v, want %v", rl.RetryAfter, want)
	}
	// Another user is not affected.
	if _, err := fx.reg.Verify(ctx, "a", "bob", "111111", factors.Meta{}); !errors.Is(err, factors.ErrInvalidCode) {
		t.Fatalf("other user: %v", err)
	}
	if rem, _, _ := fx.reg.FailureBudget(ctx, "alice"); rem != 0 {
		t.Fatalf("remaining budget = %d", rem)
	}
	lock := fx.events(factors.AuditLockout)
	if len(lock) != 1 || lock[0].Factor != factors.BudgetFactor || lock[0].UserID != "alice" {
		t.Fatalf("lockout events = %+v, want one for the budget", lock)
	}
	if got := fx.counter(t, "stepup_factor_verifications_total", map[string]string{"factor": "a", "outcome": "rate_limited"}); got != 1 {
		t.Fatalf("rate_limited metric = %v", got)
	}
	if got := fx.counter(t, "stepup_factor_lockouts_total", map[string]string{"factor": "all"}); got != 1 {
		t.Fatalf("budget lockout metric = %v", got)
	}
	// The next window starts afresh.
	fx.clock.Advance(rl.RetryAfter)
	if _, err := fx.reg.Verify(ctx, "a", "alice", "111111", factors.Meta{}); !errors.Is(err, factors.ErrInvalidCode) {
		t.Fatalf("next window: %v", err)
	}
	// An admin unlock resets the budget at once.
	for range 5 {
		_, _ = fx.reg.Verify(ctx, "a", "carol", "1", factors.Meta{})
	}
	if _, err := fx.reg.Verify(ctx, "a", "carol", "1", factors.Meta{}); !errors.Is(err, factors.ErrRateLimited) {
		t.Fatalf("carol not limited: %v", err)
	}
	if err := fx.reg.Unlock(ctx, "carol", factors.Meta{Actor: "admin-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.reg.Verify(ctx, "a", "carol", "1", factors.Meta{}); !errors.Is(err, factors.ErrInvalidCode) {
		t.Fatalf("after unlock: %v", err)
	}
	if ev := fx.events(factors.AuditAdminUnlock); len(ev) != 1 || ev[0].Actor != "admin-1" {
		t.Fatalf("unlock audit = %+v", ev)
	}
}

func TestSuccessesDoNotSpendBudget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fx := newFixture(t, 3, succeed, fail(errors.New("database on fire")))
	for i := range 20 {
		if _, err := fx.reg.Verify(ctx, "a", "alice", "x", factors.Meta{}); err != nil {
			t.Fatalf("success %d: %v", i+1, err)
		}
	}
	// Machinery errors are not the user's guesses either.
	for range 10 {
		if _, err := fx.reg.Verify(ctx, "b", "alice", "x", factors.Meta{}); err == nil || errors.Is(err, factors.ErrRateLimited) {
			t.Fatalf("machinery error = %v", err)
		}
	}
	if rem, _, _ := fx.reg.FailureBudget(ctx, "alice"); rem != 3 {
		t.Fatalf("remaining budget = %d, want 3", rem)
	}
}

// TestParallelGuessesStayInBudget: the attempt is counted before the
// factor is asked, so parallel guesses cannot overrun the budget.
func TestParallelGuessesStayInBudget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fx := newFixture(t, 10, fail(factors.ErrInvalidCode), succeed)
	var wg sync.WaitGroup
	for range 60 {
		wg.Go(func() { _, _ = fx.reg.Verify(ctx, "a", "alice", "x", factors.Meta{}) })
	}
	wg.Wait()
	if n := fx.a.calls.Load(); n != 10 {
		t.Fatalf("factor asked %d times, want exactly the budget of 10", n)
	}
}

func TestAuditAndMetrics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fx := newFixture(t, 100, succeed, fail(&factors.LockedError{Until: factortest.Epoch.Add(time.Minute), Err: factors.ErrInvalidCode}))
	meta := factors.Meta{SessionID: "sid-1", IP: "192.0.2.7", Purpose: "login", Details: map[string]string{"request": "PUT /api/profile"}}
	res, err := fx.reg.Verify(ctx, "a", "alice", "code-481516", meta)
	if err != nil {
		t.Fatal(err)
	}
	if res.Method != "a" || !res.At.Equal(fx.clock.Now()) {
		t.Fatalf("Result = %+v", res)
	}
	_, err = fx.reg.Verify(ctx, "b", "alice", "code-2342", factors.Meta{})
	var le *factors.LockedError
	if !errors.As(err, &le) || !le.Started() {
		t.Fatalf("Verify b = %v", err)
	}
	ok := fx.events("login.success")
	if len(ok) != 1 {
		t.Fatalf("login.success events: %+v", fx.mem.Events())
	}
	e := ok[0]
	if e.UserID != "alice" || e.Actor != "alice" || e.Factor != "a" || e.SessionID != "sid-1" || e.IP != "192.0.2.7" ||
		e.Outcome != "success" || e.Details["level"] != "2" || e.Details["credential_id"] != "cred-a" || e.Details["request"] != "PUT /api/profile" {
		t.Fatalf("success event = %+v", e)
	}
	if f := fx.events("stepup.failure"); len(f) != 1 || f[0].Outcome != "denied" || f[0].Details["reason"] != "locked" {
		t.Fatalf("failure events = %+v", f)
	}
	if l := fx.events(factors.AuditLockout); len(l) != 1 || l[0].Factor != "b" || l[0].Details["until"] != "2023-11-14T22:14:20Z" {
		t.Fatalf("lockout events = %+v", l)
	}
	for _, e := range fx.mem.Events() {
		all := e.Type + e.Actor + e.Outcome
		for k, v := range e.Details {
			all += k + v
		}
		if strings.Contains(all, "481516") || strings.Contains(all, "2342") {
			t.Fatalf("audit event carries the code: %+v", e)
		}
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"stepup_factor_verifications_total", map[string]string{"factor": "a", "outcome": "success"}, 1},
		{"stepup_factor_verifications_total", map[string]string{"factor": "b", "outcome": "locked"}, 1},
		{"stepup_factor_lockouts_total", map[string]string{"factor": "b"}, 1},
	} {
		if got := fx.counter(t, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}

// TestAuditFailureFailsClosed: a step-up that cannot be put on record is
// not granted.
func TestAuditFailureFailsClosed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fx := newFixture(t, 100, succeed, succeed)
	audit := &brokenAudit{Audit: fx.mem}
	reg, err := factors.NewRegistry(factors.RegistryConfig{
		Enabled: []string{"a"}, Counters: fx.mem, Audit: audit, Now: fx.clock.Now, RecordTimeout: 200 * time.Millisecond,
	}, fx.a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Verify(ctx, "a", "alice", "x", factors.Meta{}); err == nil {
		t.Fatal("success granted although the audit write failed")
	}
	if n := audit.calls.Load(); n < 2 {
		t.Fatalf("the audit record of a success was tried %d times; a passing outage must be ridden out", n)
	}
	// A passing failure is ridden out: the success stands, on record.
	flaky := &brokenAudit{Audit: fx.mem, failures: 2}
	reg, err = factors.NewRegistry(factors.RegistryConfig{
		Enabled: []string{"a"}, Counters: fx.mem, Audit: flaky, Now: fx.clock.Now, RecordTimeout: 5 * time.Second,
	}, fx.a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Verify(ctx, "a", "alice", "x", factors.Meta{}); err != nil {
		t.Fatalf("success lost to a passing audit failure: %v", err)
	}
	fx.mem.SetDown(true)
	if _, err := fx.reg.Verify(ctx, "a", "alice", "x", factors.Meta{}); err == nil || errors.Is(err, factors.ErrInvalidCode) {
		t.Fatalf("store down: %v, want a machinery error", err)
	}
}

// brokenAudit fails appends: all of them, or the first failures ones.
type brokenAudit struct {
	store.Audit
	failures int64
	calls    atomic.Int64
}

func (b *brokenAudit) AppendAudit(ctx context.Context, e store.AuditEvent) (store.AuditEvent, error) {
	if n := b.calls.Add(1); b.failures == 0 || n <= b.failures {
		return store.AuditEvent{}, errors.New("disk full")
	}
	return b.Audit.AppendAudit(ctx, e)
}

func TestCapabilities(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fx := newFixture(t, 100, succeed, succeed)
	enr, err := fx.reg.Enrol(ctx, "a", "alice", factors.EnrolRequest{}, factors.Meta{})
	if err != nil || !enr.Pending {
		t.Fatalf("Enrol = %+v, %v", enr, err)
	}
	if _, err := fx.reg.Confirm(ctx, "a", "alice", "1", factors.Meta{}); err != nil {
		t.Fatal(err)
	}
	d, err := fx.reg.Challenge(ctx, "a", "alice", factors.ChallengeRequest{}, factors.Meta{})
	if err != nil || d.Channel != "sms" {
		t.Fatalf("Challenge = %+v, %v", d, err)
	}
	_, _ = fx.reg.Challenge(ctx, "a", "alice", factors.ChallengeRequest{}, factors.Meta{})
	if _, err := fx.reg.Challenge(ctx, "a", "alice", factors.ChallengeRequest{}, factors.Meta{}); !errors.Is(err, factors.ErrRateLimited) {
		t.Fatalf("3rd challenge with a budget of 2: %v", err)
	}
	if err := fx.reg.Reset(ctx, "a", "alice", factors.Meta{Actor: "admin-1"}); err != nil {
		t.Fatal(err)
	}
	for _, call := range []func() error{
		func() error {
			_, err := fx.reg.Enrol(ctx, "plain", "alice", factors.EnrolRequest{}, factors.Meta{})
			return err
		},
		func() error { _, err := fx.reg.Confirm(ctx, "plain", "alice", "1", factors.Meta{}); return err },
		func() error {
			_, err := fx.reg.Change(ctx, "a", "alice", "1", factors.EnrolRequest{}, factors.Meta{})
			return err
		},
		func() error {
			_, err := fx.reg.Challenge(ctx, "plain", "alice", factors.ChallengeRequest{}, factors.Meta{})
			return err
		},
		func() error { return fx.reg.Reset(ctx, "plain", "alice", factors.Meta{}) },
		func() error { _, err := fx.reg.PendingEnrolment(ctx, "a", "alice"); return err },
	} {
		if err := call(); !errors.Is(err, factors.ErrNotSupported) {
			t.Fatalf("missing capability: %v, want ErrNotSupported", err)
		}
	}
	types := map[string]int{}
	for _, e := range fx.mem.Events() {
		types[e.Type]++
		if e.Details["secret"] != "" || strings.Contains(e.Details["pending"], "SEKRET") {
			t.Fatalf("audit carries enrolment secret: %+v", e)
		}
	}
	if types[factors.AuditEnrol] != 1 || types[factors.AuditConfirm] != 1 || types[factors.AuditChallenge] != 3 || types[factors.AuditAdminReset] != 1 {
		t.Fatalf("audit types = %v", types)
	}
	st, err := fx.reg.Status(ctx, "alice")
	if err != nil || len(st) != 3 || st[0].Factor != "b" || st[1].Factor != "a" {
		t.Fatalf("Status = %+v, %v (configured order b, a, plain)", st, err)
	}
	active, _ := fx.reg.Active(ctx, "alice")
	if strings.Join(active, ",") != "b,a" {
		t.Fatalf("Active = %v", active)
	}
}

func TestEmptyUserRefused(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, 100, succeed, succeed)
	if _, err := fx.reg.Verify(context.Background(), "a", "", "x", factors.Meta{}); err == nil {
		t.Fatal("Verify accepted an empty user id")
	}
	if fx.a.calls.Load() != 0 {
		t.Fatal("factor asked for an empty user id")
	}
}
