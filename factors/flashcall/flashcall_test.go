package flashcall

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/factors/delivery"
	"github.com/stepup-bridge/stepup-bridge/factors/delivery/challenge"
	"github.com/stepup-bridge/stepup-bridge/factors/delivery/sinch"
	"github.com/stepup-bridge/stepup-bridge/factors/delivery/webhook"
	"github.com/stepup-bridge/stepup-bridge/factors/internal/factortest"
	"github.com/stepup-bridge/stepup-bridge/internal/keyring"
	"github.com/stepup-bridge/stepup-bridge/internal/store/sqlite"
)

const user = "user-1"

// gateway is a flash-call webhook receiver handing out calling numbers
// +4930555000<n>; fail makes it answer 503.
type gateway struct {
	mu   sync.Mutex
	clis []string
	fail bool
}

func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fail {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var req webhook.Request
	_ = json.NewDecoder(r.Body).Decode(&req)
	cli := fmt.Sprintf("+4930555%04d", 1000+len(g.clis)*7)
	g.clis = append(g.clis, cli)
	fmt.Fprintf(w, `{"cli":%q}`, cli)
}

func (g *gateway) last(t *testing.T, digits int) string {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.clis) == 0 {
		t.Fatal("no call placed")
	}
	c := g.clis[len(g.clis)-1]
	return c[len(c)-digits:]
}

func (g *gateway) calls() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.clis)
}

type env struct {
	f      *Factor
	st     *sqlite.Store
	clock  *factortest.Clock
	others *[]string
}

func newEnv(t *testing.T, p delivery.CallStarter, mod func(*Config)) *env {
	t.Helper()
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "s.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kr, err := keyring.New([]keyring.Key{{ID: "k1", Key: make([]byte, 32)}}, keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pep, err := keyring.NewPepper([]byte(strings.Repeat("p", 32)))
	if err != nil {
		t.Fatal(err)
	}
	others := &[]string{factors.TOTP, factors.FlashCall}
	clock := factortest.NewClock()
	cfg := Config{Provider: p, Credentials: st, Counters: st, Keyring: kr, Pepper: pep, Now: clock.Now,
		Others: challenge.ActiveFunc(func(context.Context, string) ([]string, error) { return *others, nil })}
	if mod != nil {
		mod(&cfg)
	}
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{f: f, st: st, clock: clock, others: others}
}

func webhookProvider(t *testing.T) (*gateway, delivery.CallStarter) {
	t.Helper()
	g := &gateway{}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	p, err := webhook.New(webhook.Config{URL: srv.URL, Secret: "0123456789abcdef", Client: srv.Client(),
		Policy: delivery.Policy{Timeout: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return g, p
}

func (e *env) enrol(t *testing.T, g *gateway) {
	t.Helper()
	ctx := context.Background()
	enr, err := e.f.BeginEnrolment(ctx, user, factors.EnrolRequest{Destination: "+49 (170) 123-4567"})
	if err != nil || !enr.Pending {
		t.Fatalf("BeginEnrolment = %+v, %v", enr, err)
	}
	if _, err := e.f.Verify(ctx, user, "0000"); !errors.Is(err, factors.ErrNotEnrolled) {
		t.Fatalf("Verify while pending: %v, want ErrNotEnrolled", err)
	}
	d, err := e.f.Challenge(ctx, user, factors.ChallengeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Channel != "call" || d.Destination != "+49 *** *** 67" || d.CodeLength != 4 || !d.ExpiresAt.Equal(e.clock.Now().Add(2*time.Minute)) {
		t.Fatalf("delivery = %+v", d)
	}
	if _, err := e.f.ConfirmEnrolment(ctx, user, g.last(t, 4)); err != nil {
		t.Fatalf("ConfirmEnrolment: %v", err)
	}
	if s, _ := e.f.Status(ctx, user); s.State != factors.StateActive || s.Label != "+49 *** *** 67" {
		t.Fatalf("status = %+v", s)
	}
}

func TestWebhookChallengeVerify(t *testing.T) {
	t.Parallel()
	g, p := webhookProvider(t)
	e := newEnv(t, p, nil)
	ctx := context.Background()
	e.enrol(t, g)
	if _, err := e.f.ConfirmEnrolment(ctx, user, "0000"); !errors.Is(err, factors.ErrAlreadyEnrolled) {
		t.Fatalf("second confirm: %v", err)
	}
	e.clock.Advance(time.Minute)
	if _, err := e.f.Challenge(ctx, user, factors.ChallengeRequest{SessionID: "s1"}); err != nil {
		t.Fatal(err)
	}
	code := g.last(t, 4)
	res, err := e.f.Verify(ctx, user, code[:2]+" "+code[2:])
	if err != nil || res.Method != factors.FlashCall || res.Level != "2" || !res.At.Equal(e.clock.Now()) {
		t.Fatalf("Verify = %+v, %v", res, err)
	}
	if _, err := e.f.Verify(ctx, user, code); !errors.Is(err, challenge.ErrNoChallenge) || !errors.Is(err, factors.ErrInvalidCode) {
		t.Fatalf("second use: %v, want ErrNoChallenge and ErrInvalidCode", err)
	}
	// The code is not stored in clear, nor the number.
	c, err := e.st.GetCredential(ctx, factors.CredentialID(factors.FlashCall, user))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(c.Data), "1701234567") || strings.Contains(string(c.Data), code) {
		t.Fatal("credential data holds the number or the code in clear")
	}
}

func TestCooldownReusesAndResendKeepsFirstCode(t *testing.T) {
	t.Parallel()
	g, p := webhookProvider(t)
	e := newEnv(t, p, nil)
	ctx := context.Background()
	e.enrol(t, g)
	e.clock.Advance(time.Minute)
	d1, err := e.f.Challenge(ctx, user, factors.ChallengeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	first := g.last(t, 4)
	calls := g.calls()
	e.clock.Advance(10 * time.Second)
	d2, err := e.f.Challenge(ctx, user, factors.ChallengeRequest{}) // a page refresh
	if err != nil || d2 != d1 || g.calls() != calls {
		t.Fatalf("refresh within cool-down: %+v (%v), calls %d -> %d; want the same delivery, no call", d2, err, calls, g.calls())
	}
	e.clock.Advance(25 * time.Second)
	d3, err := e.f.Challenge(ctx, user, factors.ChallengeRequest{})
	if err != nil || g.calls() != calls+1 {
		t.Fatalf("after cool-down: %v, calls %d", err, g.calls())
	}
	if !d3.ExpiresAt.After(d1.ExpiresAt) {
		t.Fatalf("resend did not extend the challenge: %v <= %v", d3.ExpiresAt, d1.ExpiresAt)
	}
	if _, err := e.f.Verify(ctx, user, first); err != nil {
		t.Fatalf("the first call's code must stay valid after a resend: %v", err)
	}
}

func TestAttemptsAndTTL(t *testing.T) {
	t.Parallel()
	g, p := webhookProvider(t)
	e := newEnv(t, p, nil)
	ctx := context.Background()
	e.enrol(t, g)
	e.clock.Advance(time.Minute)
	if _, err := e.f.Challenge(ctx, user, factors.ChallengeRequest{}); err != nil {
		t.Fatal(err)
	}
	code := g.last(t, 4)
	wrong := fmt.Sprintf("%04d", (int(code[3]-'0')+1)%10+int(code[0]-'0')*1000+int(code[1]-'0')*100+int(code[2]-'0')*10)
	for i := range 3 {
		if _, err := e.f.Verify(ctx, user, wrong); !errors.Is(err, factors.ErrInvalidCode) || errors.Is(err, challenge.ErrAttemptsSpent) {
			t.Fatalf("wrong code %d: %v", i, err)
		}
	}
	if _, err := e.f.Verify(ctx, user, code); !errors.Is(err, challenge.ErrAttemptsSpent) {
		t.Fatalf("right code after 3 wrong: %v, want ErrAttemptsSpent", err)
	}
	if _, err := e.f.Verify(ctx, user, "12a4"); !errors.Is(err, factors.ErrInvalidInput) {
		t.Fatalf("malformed: %v", err)
	}
	// A new challenge starts fresh, and dies with its TTL.
	if _, err := e.f.Challenge(ctx, user, factors.ChallengeRequest{}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2*time.Minute + time.Second)
	if _, err := e.f.Verify(ctx, user, g.last(t, 4)); !errors.Is(err, challenge.ErrNoChallenge) {
		t.Fatalf("after TTL: %v, want ErrNoChallenge", err)
	}
}

func TestSendBudgets(t *testing.T) {
	t.Parallel()
	g, p := webhookProvider(t)
	e := newEnv(t, p, func(c *Config) {
		c.ResendCooldown = time.Second
		c.SendsPerUserPerHour = 3
		c.SendsPerDestinationPerHour = 10
	})
	ctx := context.Background()
	e.clock.Set(time.Unix(1700000000/3600*3600, 0)) // the start of an hour window
	e.enrol(t, g)                                   // send 1
	for i := 2; i <= 3; i++ {
		e.clock.Advance(2 * time.Second)
		if _, err := e.f.Challenge(ctx, user, factors.ChallengeRequest{}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	e.clock.Advance(2 * time.Second)
	_, err := e.f.Challenge(ctx, user, factors.ChallengeRequest{})
	var rl *factors.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter <= 0 || rl.RetryAfter > time.Hour {
		t.Fatalf("4th send: %v, want RateLimitedError", err)
	}
	if g.calls() != 3 {
		t.Fatalf("calls = %d, want 3", g.calls())
	}
	e.clock.Advance(time.Hour)
	if _, err := e.f.Challenge(ctx, user, factors.ChallengeRequest{}); err != nil {
		t.Fatalf("next hour: %v", err)
	}
}

func TestDestinationBudgetAcrossUsers(t *testing.T) {
	t.Parallel()
	g, p := webhookProvider(t)
	e := newEnv(t, p, func(c *Config) { c.SendsPerDestinationPerHour = 2 })
	ctx := context.Background()
	e.clock.Set(time.Unix(1700000000/3600*3600, 0))
	for i, u := range []string{"a", "b", "c"} {
		if _, err := e.f.BeginEnrolment(ctx, u, factors.EnrolRequest{Destination: "+491701234567"}); err != nil {
			t.Fatal(err)
		}
		_, err := e.f.Challenge(ctx, u, factors.ChallengeRequest{})
		if i < 2 && err != nil {
			t.Fatalf("user %s: %v", u, err)
		}
		if i == 2 && !errors.Is(err, factors.ErrRateLimited) {
			t.Fatalf("third user calling the same number: %v, want rate limited", err)
		}
	}
	if g.calls() != 2 {
		t.Fatalf("calls = %d", g.calls())
	}
}

func TestNeverOfferedFirst(t *testing.T) {
	t.Parallel()
	g, p := webhookProvider(t)
	e := newEnv(t, p, nil)
	ctx := context.Background()
	*e.others = []string{factors.FlashCall, factors.SMS}
	_, err := e.f.BeginEnrolment(ctx, user, factors.EnrolRequest{Destination: "+491701234567"})
	var ie *factors.InputError
	if !errors.Is(err, challenge.ErrNeedsOtherFactor) || !errors.As(err, &ie) {
		t.Fatalf("enrol as only factor: %v", err)
	}
	*e.others = []string{factors.PIN}
	e.enrol(t, g)
	*e.others = []string{factors.FlashCall}
	calls := g.calls()
	if _, err := e.f.Challenge(ctx, user, factors.ChallengeRequest{}); !errors.Is(err, challenge.ErrNeedsOtherFactor) || g.calls() != calls {
		t.Fatalf("challenge as only factor: %v (calls %d -> %d)", err, calls, g.calls())
	}
}

func TestProviderFailureLeavesChallengeRetryable(t *testing.T) {
	t.Parallel()
	g, p := webhookProvider(t)
	e := newEnv(t, p, nil)
	ctx := context.Background()
	e.enrol(t, g)
	e.clock.Advance(time.Minute)
	g.mu.Lock()
	g.fail = true
	g.mu.Unlock()
	if _, err := e.f.Challenge(ctx, user, factors.ChallengeRequest{}); !errors.Is(err, delivery.ErrProviderUnavailable) {
		t.Fatalf("err = %v, want ErrProviderUnavailable", err)
	}
	g.mu.Lock()
	g.fail = false
	g.mu.Unlock()
	// No cool-down applies to a send that failed.
	if _, err := e.f.Challenge(ctx, user, factors.ChallengeRequest{}); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if _, err := e.f.Verify(ctx, user, g.last(t, 4)); err != nil {
		t.Fatal(err)
	}
}

func TestReset(t *testing.T) {
	t.Parallel()
	g, p := webhookProvider(t)
	e := newEnv(t, p, nil)
	ctx := context.Background()
	e.enrol(t, g)
	if _, err := e.f.BeginEnrolment(ctx, user, factors.EnrolRequest{Destination: "+491709999999"}); !errors.Is(err, factors.ErrAlreadyEnrolled) {
		t.Fatalf("enrol over active: %v", err)
	}
	if err := e.f.Reset(ctx, user); err != nil {
		t.Fatal(err)
	}
	if err := e.f.Reset(ctx, user); !errors.Is(err, factors.ErrNotEnrolled) {
		t.Fatalf("second reset: %v", err)
	}
	if _, err := e.f.Challenge(ctx, user, factors.ChallengeRequest{}); !errors.Is(err, factors.ErrNotEnrolled) {
		t.Fatalf("challenge after reset: %v", err)
	}
}

// fakeSinch hands out calls from +46 70123 xxxx with the cliFilter Sinch
// documents, and answers reports SUCCESSFUL only for the full number.
type fakeSinch struct {
	mu      sync.Mutex
	calls   map[string]string
	reports []string
}

func (f *fakeSinch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.Method {
	case http.MethodPost:
		id := fmt.Sprintf("v%d", len(f.calls)+1)
		f.calls[id] = fmt.Sprintf("+4670123%04d", 4000+len(f.calls)*11)
		fmt.Fprintf(w, `{"id":%q,"flashCall":{"cliFilter":"(.*)70123(.*)","interceptionTimeout":45}}`, id)
	case http.MethodPut:
		id := strings.TrimPrefix(r.URL.Path, "/verification/v1/verifications/id/")
		var rep struct{ FlashCall struct{ CLI string } }
		_ = json.Unmarshal(body, &rep)
		f.reports = append(f.reports, rep.FlashCall.CLI)
		status := "FAIL"
		if f.calls[id] == rep.FlashCall.CLI {
			status = "SUCCESSFUL"
		}
		fmt.Fprintf(w, `{"id":%q,"status":%q}`, id, status)
	}
}

func TestSinchChallengeVerify(t *testing.T) {
	t.Parallel()
	fs := &fakeSinch{calls: map[string]string{}}
	srv := httptest.NewServer(fs)
	t.Cleanup(srv.Close)
	p, err := sinch.New(sinch.Config{BaseURL: srv.URL, AppKey: "key", AppSecret: "c2VjcmV0", Client: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, p, nil)
	ctx := context.Background()
	if _, err := e.f.BeginEnrolment(ctx, user, factors.EnrolRequest{Destination: "+46 70 111 11 11"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.f.Challenge(ctx, user, factors.ChallengeRequest{}); err != nil {
		t.Fatal(err)
	}
	full := fs.calls["v1"]
	if _, err := e.f.ConfirmEnrolment(ctx, user, "9999"); !errors.Is(err, factors.ErrInvalidCode) {
		t.Fatalf("wrong digits: %v", err)
	}
	if _, err := e.f.ConfirmEnrolment(ctx, user, full[len(full)-4:]); err != nil {
		t.Fatalf("right digits: %v", err)
	}
	if got := fs.reports; len(got) != 2 || got[0] != "+46701239999" || got[1] != full {
		t.Fatalf("reports = %v, want the reconstructed full numbers", got)
	}
}

func TestCompleteFilter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		filter, dest, digits, want string
		wantErr                    error
	}{
		{"(.*)70123(.*)", "+46701111111", "4567", "+46701234567", nil},
		{"^(.*)70123(.*)$", "+46701111111", "4567", "+46701234567", nil},
		{"^\\+4670123\\d{4}$", "+491701234567", "4567", "+46701234567", nil},
		{"+4670123", "+491701234567", "4567", "+46701234567", nil},
		{"4670123(\\d+)", "+491701234567", "4567", "+46701234567", nil},
		{"^\\+4670123\\d{3}$", "+491701234567", "4567", "", ErrUnsupportedFilter},
		{"(.*)", "+46701111111", "4567", "", ErrUnsupportedFilter},
		{"(.*)70123[a-z]+", "+46701111111", "4567", "", ErrUnsupportedFilter},
		{"(.*)1(.*)", "+46701111111", "234", "", errNoMatch}, // too short for E.164
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			t.Parallel()
			p, err := parseFilter(tt.filter)
			var got string
			if err == nil {
				got, err = p.complete(tt.dest, tt.digits)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %q, %v; want %v", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// FuzzCompleteFilter: whatever the filter and digits, completion never
// panics, and anything it returns is E.164 ending in the typed digits.
func FuzzCompleteFilter(f *testing.F) {
	f.Add("(.*)70123(.*)", "4567")
	f.Add("^\\+4670123\\d{4}$", "0000")
	f.Add("+1555", "123456")
	f.Fuzz(func(t *testing.T, filter, digits string) {
		p, err := parseFilter(filter)
		if err != nil {
			return
		}
		full, err := p.complete("+46701111111", digits)
		if err != nil {
			return
		}
		if !strings.HasSuffix(full, digits) || full[0] != '+' {
			t.Fatalf("complete(%q, %q) = %q", filter, digits, full)
		}
	})
}
