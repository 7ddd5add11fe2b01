package notify_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/factors/delivery"
	"github.com/stepup-bridge/stepup-bridge/internal/notify"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
	"github.com/stepup-bridge/stepup-bridge/internal/store/sqlite"
)

// sender records messages; failFirst makes the first n sends fail.
type sender struct {
	mu        sync.Mutex
	sent      []delivery.Message
	failFirst int
}

func (s *sender) Provider() string { return "test" }
func (s *sender) Send(_ context.Context, m delivery.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failFirst > 0 {
		s.failFirst--
		return &delivery.ProviderError{Provider: "test", Op: "send", Kind: delivery.ErrProviderUnavailable, Status: 503}
	}
	s.sent = append(s.sent, m)
	return nil
}

func (s *sender) messages() []delivery.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]delivery.Message(nil), s.sent...)
}

type recipients map[string]string

func (r recipients) Recipient(_ context.Context, userID, _ string) (string, error) {
	if a, ok := r[userID]; ok {
		return a, nil
	}
	return "", notify.ErrNoRecipient
}

type fixture struct {
	st     *sqlite.Store
	sender *sender
	n      *notify.Notifier
	now    time.Time
	left   int
}

func newFixture(t *testing.T, mutate func(*notify.Config)) *fixture {
	t.Helper()
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "n.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	f := &fixture{st: st, sender: &sender{}, now: time.Unix(1700000000, 0).UTC(), left: 10}
	cfg := notify.Config{Store: st, Audit: st, Sender: f.sender, Recipients: recipients{"alice": "alice@example.test"},
		LowWatermark: 3, Now: func() time.Time { return f.now },
		BackupCodesRemaining: func(context.Context, string) (int, error) { return f.left, nil }}
	if mutate != nil {
		mutate(&cfg)
	}
	f.n, err = notify.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// appendAudit writes e through the decorator, as the Registry does.
func (f *fixture) appendAudit(t *testing.T, e store.AuditEvent) {
	t.Helper()
	e.Time = f.now
	if e.UserID == "" {
		e.UserID = "alice"
	}
	if _, err := (notify.Audit{Audit: f.st, N: f.n}).AppendAudit(context.Background(), e); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) events(t *testing.T) []string {
	t.Helper()
	act, err := f.n.Activity(context.Background(), "alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(act) - 1; i >= 0; i-- {
		out = append(out, act[i].Event)
	}
	return out
}

func TestClassifyAuditEvents(t *testing.T) {
	enrol := func(factor, pending string) store.AuditEvent {
		return store.AuditEvent{Type: factors.AuditEnrol, Factor: factor, Outcome: "success", Details: map[string]string{"pending": pending}}
	}
	tests := []struct {
		name   string
		events []store.AuditEvent
		left   int
		want   []string
	}{
		{"pin enrolled", []store.AuditEvent{enrol("pin", "false")}, 10, []string{notify.EventFactorAdded}},
		{"totp pending then confirmed", []store.AuditEvent{enrol("totp", "true"),
			{Type: factors.AuditConfirm, Factor: "totp", Outcome: "success"}}, 10, []string{notify.EventFactorAdded}},
		{"failed confirmation", []store.AuditEvent{{Type: factors.AuditConfirm, Factor: "totp", Outcome: "failure"}}, 10, nil},
		{"first backup codes, then a new set", []store.AuditEvent{enrol("backup_code", "false"), enrol("backup_code", "false")}, 10,
			[]string{notify.EventFactorAdded, notify.EventBackupCodesRegenerated}},
		{"backup codes after a reset are added again", []store.AuditEvent{enrol("backup_code", "false"),
			{Type: factors.AuditAdminReset, Factor: "backup_code", Outcome: "success"}, enrol("backup_code", "false")}, 10,
			[]string{notify.EventFactorAdded, notify.EventFactorRemoved, notify.EventFactorAdded}},
		{"pin changed", []store.AuditEvent{{Type: factors.AuditChange, Factor: "pin", Outcome: "success"}}, 10, []string{notify.EventFactorChanged}},
		{"lockout", []store.AuditEvent{{Type: factors.AuditLockout, Factor: "pin", Outcome: "locked"}}, 10, []string{notify.EventLockout}},
		{"backup code spent down to the watermark", []store.AuditEvent{{Type: "login.success", Factor: "backup_code", Outcome: "success"}}, 3,
			[]string{notify.EventBackupCodesLow}},
		{"backup code spent above the watermark", []store.AuditEvent{{Type: "stepup.success", Factor: "backup_code", Outcome: "success"}}, 4, nil},
		{"a TOTP code used again", []store.AuditEvent{{Type: "stepup.failure", Factor: "totp", Outcome: "failure",
			Details: map[string]string{"reason": factors.OutcomeReplay}}}, 10, []string{notify.EventCodeReused}},
		{"other events", []store.AuditEvent{{Type: "stepup.failure", Factor: "pin", Outcome: "failure"},
			{Type: "stepup.granted", Outcome: "success"}}, 10, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			f.left = tt.left
			for _, e := range tt.events {
				f.appendAudit(t, e)
				f.now = f.now.Add(time.Second)
			}
			if got := f.events(t); strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("events = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDeliveredExactlyOnce(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	f := newFixture(t, func(c *notify.Config) { c.Registerer = reg })
	for range 2 {
		if err := f.n.NewSignIn(ctx, "alice", "Firefox on Linux", "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
	}
	// Two replicas deliver at once.
	other, err := notify.New(notify.Config{Store: f.st, Sender: f.sender, Recipients: recipients{"alice": "alice@example.test"},
		Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, n := range []*notify.Notifier{f.n, other, f.n, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := n.Deliver(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	msgs := f.sender.messages()
	if len(msgs) != 1 {
		t.Fatalf("sent %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if m.To != "alice@example.test" || m.Channel != "email" || m.ID == "" ||
		!strings.Contains(m.Subject, "new sign-in") || !strings.Contains(m.Body, "Firefox on Linux") || !strings.Contains(m.Body, "192.0.2.1") {
		t.Fatalf("message = %+v", m)
	}
	// Another address is another event.
	if err := f.n.NewSignIn(ctx, "alice", "Firefox on Linux", "198.51.100.7"); err != nil {
		t.Fatal(err)
	}
	if n, _ := f.n.Deliver(ctx); n != 1 {
		t.Fatalf("second address: sent %d", n)
	}
	act, _ := f.n.Activity(ctx, "alice", 0)
	if len(act) != 2 || act[0].Notified != "sent" || act[0].Details["ip"] != "198.51.100.7" {
		t.Fatalf("activity = %+v", act)
	}
	// The second replica registers no metrics; the first counted what it sent.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	recorded := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "stepup_notification_events_total" {
			for _, m := range mf.GetMetric() {
				recorded += m.GetCounter().GetValue()
			}
		}
	}
	if recorded != 2 {
		t.Fatalf("events recorded per the metrics = %v, want 2 (duplicates not counted)", recorded)
	}
}

func TestRetriesThenGivesUp(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, func(c *notify.Config) { c.MaxAttempts = 3 })
	f.sender.failFirst = 1
	if _, err := f.n.Record(ctx, notify.Event{Key: "k1", UserID: "alice", Name: notify.EventLockout}); err != nil {
		t.Fatal(err)
	}
	if n, err := f.n.Deliver(ctx); n != 0 || err != nil {
		t.Fatalf("first attempt: %d, %v", n, err)
	}
	if n, _ := f.n.Deliver(ctx); n != 0 {
		t.Fatal("retried before its backoff")
	}
	f.now = f.now.Add(31 * time.Second)
	if n, _ := f.n.Deliver(ctx); n != 1 {
		t.Fatal("not retried after the backoff")
	}

	f.sender.failFirst = 100
	if _, err := f.n.Record(ctx, notify.Event{Key: "k2", UserID: "alice", Name: notify.EventLockout}); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		_, _ = f.n.Deliver(ctx)
		f.now = f.now.Add(time.Hour)
	}
	act, _ := f.n.Activity(ctx, "alice", 0)
	if act[0].Notified != "failed" || act[1].Notified != "sent" {
		t.Fatalf("activity = %+v", act)
	}
}

func TestSkippedEventsAreListedNotSent(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, func(c *notify.Config) { c.Events = []string{notify.EventLockout} })
	if _, err := f.n.Record(ctx, notify.Event{Key: "a", UserID: "alice", Name: notify.EventFactorAdded}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.n.Record(ctx, notify.Event{Key: "b", UserID: "nobody", Name: notify.EventLockout}); err != nil {
		t.Fatal(err)
	}
	if n, err := f.n.Deliver(ctx); n != 0 || err != nil {
		t.Fatalf("Deliver = %d, %v", n, err)
	}
	if len(f.sender.messages()) != 0 {
		t.Fatal("sent a disabled event or to a user without address")
	}
	for _, u := range []string{"alice", "nobody"} {
		act, _ := f.n.Activity(ctx, u, 0)
		if len(act) != 1 || act[0].Notified != "not_sent" {
			t.Fatalf("activity of %s = %+v", u, act)
		}
	}
	if _, err := f.n.Record(ctx, notify.Event{Key: "c", UserID: "alice", Name: "coffee"}); err == nil {
		t.Fatal("unknown event recorded")
	}
}

func TestTemplates(t *testing.T) {
	f := newFixture(t, func(c *notify.Config) {
		c.Templates = map[string]string{notify.EventLockout: "Blocked ({{.Factor}}) until {{.Until}}"}
		c.Subject = "[{{.Issuer}}] {{.Title}}"
		c.Issuer = "Acme"
	})
	subj, body, err := f.n.Render(notify.EventLockout, map[string]string{"factor": "pin", "until": "noon"}, f.now)
	if err != nil || subj != "[Acme] sign-in attempts were blocked" || body != "Blocked (PIN) until noon" {
		t.Fatalf("Render = %q %q %v", subj, body, err)
	}
	for _, ev := range notify.Events() {
		if _, body, err := f.n.Render(ev, map[string]string{"ip": "192.0.2.1"}, f.now); err != nil || body == "" {
			t.Fatalf("built-in %s: %q %v", ev, body, err)
		}
	}
	if _, err := notify.New(notify.Config{Store: f.st, Templates: map[string]string{"coffee": "x"}}); err == nil {
		t.Fatal("template for an unknown event accepted")
	}
	if _, err := notify.New(notify.Config{Store: f.st, Templates: map[string]string{notify.EventLockout: "{{"}}); err == nil {
		t.Fatal("broken template accepted")
	}
	if _, err := notify.New(notify.Config{Store: f.st, Sender: &sender{}}); err == nil {
		t.Fatal("a sender without recipients accepted")
	}
}
