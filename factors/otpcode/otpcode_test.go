package otpcode

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/factors/delivery"
	"github.com/stepup-bridge/stepup-bridge/factors/delivery/challenge"
	"github.com/stepup-bridge/stepup-bridge/factors/delivery/smtp"
	"github.com/stepup-bridge/stepup-bridge/factors/delivery/webhook"
	"github.com/stepup-bridge/stepup-bridge/factors/internal/factortest"
	"github.com/stepup-bridge/stepup-bridge/internal/keyring"
	"github.com/stepup-bridge/stepup-bridge/internal/store/sqlite"
)

var codeRe = regexp.MustCompile(`\b\d{6}\b`)

// inbox collects message texts, from an SMS gateway or an SMTP server.
type inbox struct {
	mu    sync.Mutex
	texts []string
}

func (b *inbox) add(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.texts = append(b.texts, s)
}

func (b *inbox) lastCode(t *testing.T) string {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.texts) == 0 {
		t.Fatal("nothing delivered")
	}
	c := codeRe.FindString(b.texts[len(b.texts)-1])
	if c == "" {
		t.Fatalf("no code in %q", b.texts[len(b.texts)-1])
	}
	return c
}

func (b *inbox) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.texts)
}

func smsGateway(t *testing.T) (*inbox, delivery.MessageSender) {
	t.Helper()
	in := &inbox{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req webhook.Request
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.Type != webhook.TypeSMS || req.To != "+491701234567" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		in.add(req.Text)
	}))
	t.Cleanup(srv.Close)
	p, err := webhook.New(webhook.Config{URL: srv.URL, Secret: "0123456789abcdef", Client: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return in, p
}

type smtpBackend struct{ in *inbox }

type smtpSession struct{ in *inbox }

func (b smtpBackend) NewSession(*gosmtp.Conn) (gosmtp.Session, error) { return smtpSession(b), nil }
func (smtpSession) Mail(string, *gosmtp.MailOptions) error            { return nil }
func (smtpSession) Rcpt(string, *gosmtp.RcptOptions) error            { return nil }
func (smtpSession) Reset()                                            {}
func (smtpSession) Logout() error                                     { return nil }
func (s smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	s.in.add(string(b))
	return err
}

func mailServer(t *testing.T) (*inbox, delivery.MessageSender) {
	t.Helper()
	in := &inbox{}
	s := gosmtp.NewServer(smtpBackend{in})
	s.Domain = "localhost"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	snd, err := smtp.New(smtp.Config{Host: "127.0.0.1", Port: l.Addr().(*net.TCPAddr).Port, TLS: smtp.TLSNone,
		From: "no-reply@example.com", Policy: delivery.Policy{Timeout: 5 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return in, snd
}

type env struct {
	f     *Factor
	st    *sqlite.Store
	clock *factortest.Clock
}

func newEnv(t *testing.T, factor string, snd delivery.MessageSender, others []string, mod func(*Config)) *env {
	t.Helper()
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "s.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kr, _ := keyring.New([]keyring.Key{{ID: "k1", Key: bytes.Repeat([]byte{7}, 32)}}, keyring.Options{})
	pep, _ := keyring.NewPepper(bytes.Repeat([]byte{9}, 32))
	clock := factortest.NewClock()
	cfg := Config{Factor: factor, Sender: snd, Credentials: st, Counters: st, Keyring: kr, Pepper: pep, Now: clock.Now,
		Issuer: "Example", Others: challenge.ActiveFunc(func(context.Context, string) ([]string, error) { return others, nil })}
	if mod != nil {
		mod(&cfg)
	}
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{f: f, st: st, clock: clock}
}

func TestSMSAndEmailPaths(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, factor, dest, masked string
		setup                      func(*testing.T) (*inbox, delivery.MessageSender)
	}{
		{"sms via webhook", factors.SMS, "+49 170 1234567", "+49 *** *** 67", smsGateway},
		{"email via smtp", factors.Email, "ann@Example.ORG", "a***@example.org", mailServer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in, snd := tt.setup(t)
			e := newEnv(t, tt.factor, snd, []string{factors.PIN}, nil)
			ctx := context.Background()
			if _, err := e.f.BeginEnrolment(ctx, "u", factors.EnrolRequest{Destination: tt.dest}); err != nil {
				t.Fatal(err)
			}
			d, err := e.f.Challenge(ctx, "u", factors.ChallengeRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if d.Destination != tt.masked || d.CodeLength != 6 || !d.ExpiresAt.Equal(e.clock.Now().Add(5*time.Minute)) {
				t.Fatalf("delivery = %+v", d)
			}
			if _, err := e.f.ConfirmEnrolment(ctx, "u", in.lastCode(t)); err != nil {
				t.Fatalf("confirm: %v", err)
			}
			e.clock.Advance(time.Minute)
			if _, err := e.f.Challenge(ctx, "u", factors.ChallengeRequest{}); err != nil {
				t.Fatal(err)
			}
			code := in.lastCode(t)
			if _, err := e.f.Verify(ctx, "u", "000000"+"0"); !errors.Is(err, factors.ErrInvalidInput) {
				t.Fatalf("7 digits: %v", err)
			}
			res, err := e.f.Verify(ctx, "u", code)
			if err != nil || res.Method != tt.factor {
				t.Fatalf("Verify = %+v, %v", res, err)
			}
			if _, err := e.f.Verify(ctx, "u", code); !errors.Is(err, factors.ErrInvalidCode) {
				t.Fatalf("reuse: %v", err)
			}
			if in.count() != 2 {
				t.Fatalf("%d messages sent, want 2", in.count())
			}
		})
	}
}

func TestResendSameChallengeWithinTTL(t *testing.T) {
	t.Parallel()
	in, snd := smsGateway(t)
	e := newEnv(t, factors.SMS, snd, []string{factors.TOTP}, nil)
	ctx := context.Background()
	e.f.BeginEnrolment(ctx, "u", factors.EnrolRequest{Destination: "+491701234567"})
	d1, _ := e.f.Challenge(ctx, "u", factors.ChallengeRequest{})
	first := in.lastCode(t)
	e.clock.Advance(5 * time.Second)
	d2, _ := e.f.Challenge(ctx, "u", factors.ChallengeRequest{})
	if d1 != d2 || in.count() != 1 {
		t.Fatalf("refresh sent again: %d messages", in.count())
	}
	e.clock.Advance(30 * time.Second)
	if _, err := e.f.Challenge(ctx, "u", factors.ChallengeRequest{}); err != nil || in.count() != 2 {
		t.Fatalf("resend after cool-down: %v, %d messages", err, in.count())
	}
	// Both codes work until they expire; the first one is used here.
	if _, err := e.f.ConfirmEnrolment(ctx, "u", first); err != nil {
		t.Fatalf("first code after resend: %v", err)
	}
}

func TestSMSNeverFirstEmailMayBe(t *testing.T) {
	t.Parallel()
	_, sms := smsGateway(t)
	e := newEnv(t, factors.SMS, sms, []string{factors.FlashCall}, nil)
	if _, err := e.f.BeginEnrolment(context.Background(), "u", factors.EnrolRequest{Destination: "+491701234567"}); !errors.Is(err, challenge.ErrNeedsOtherFactor) {
		t.Fatalf("SMS as only factor: %v", err)
	}
	in, mail := mailServer(t)
	e = newEnv(t, factors.Email, mail, nil, func(c *Config) { c.Others = nil })
	ctx := context.Background()
	if _, err := e.f.BeginEnrolment(ctx, "u", factors.EnrolRequest{Destination: "a@example.org"}); err != nil {
		t.Fatalf("e-mail as first factor: %v", err)
	}
	if _, err := e.f.Challenge(ctx, "u", factors.ChallengeRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.f.ConfirmEnrolment(ctx, "u", in.lastCode(t)); err != nil {
		t.Fatal(err)
	}
}

// TestWrongCodesCountInRegistryBudget runs verification through the
// Registry, which owns the per-account failure budget.
func TestWrongCodesCountInRegistryBudget(t *testing.T) {
	t.Parallel()
	in, snd := mailServer(t)
	e := newEnv(t, factors.Email, snd, nil, func(c *Config) { c.MaxAttempts = 5 })
	reg, err := factors.NewRegistry(factors.RegistryConfig{Enabled: []string{factors.Email}, UserFailuresPerHour: 3,
		Counters: e.st, Audit: e.st, Now: e.clock.Now}, e.f)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := reg.Enrol(ctx, factors.Email, "u", factors.EnrolRequest{Destination: "a@example.org"}, factors.Meta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Challenge(ctx, factors.Email, "u", factors.ChallengeRequest{}, factors.Meta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Confirm(ctx, factors.Email, "u", in.lastCode(t), factors.Meta{}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	if _, err := reg.Challenge(ctx, factors.Email, "u", factors.ChallengeRequest{}, factors.Meta{}); err != nil {
		t.Fatal(err)
	}
	code := in.lastCode(t)
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	for range 3 {
		if _, err := reg.Verify(ctx, factors.Email, "u", wrong, factors.Meta{}); !errors.Is(err, factors.ErrInvalidCode) {
			t.Fatalf("wrong code: %v", err)
		}
	}
	if _, err := reg.Verify(ctx, factors.Email, "u", code, factors.Meta{}); !errors.Is(err, factors.ErrRateLimited) {
		t.Fatalf("right code after the budget is spent: %v, want rate limited", err)
	}
}

func TestTemplates(t *testing.T) {
	t.Parallel()
	_, snd := mailServer(t)
	for name, mod := range map[string]func(*Config){
		"parse error":    func(c *Config) { c.Template = "{{.Code" },
		"unknown field":  func(c *Config) { c.Template = "{{.Code}} {{.Nope}}" },
		"no code":        func(c *Config) { c.Template = "hello" },
		"bad subject":    func(c *Config) { c.Subject = "{{" },
		"ttl too long":   func(c *Config) { c.TTL = 6 * time.Minute },
		"unknown factor": func(c *Config) { c.Factor = "fax" },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			kr, _ := keyring.New([]keyring.Key{{ID: "k", Key: make([]byte, 32)}}, keyring.Options{})
			pep, _ := keyring.NewPepper(make([]byte, 32))
			cfg := Config{Factor: factors.Email, Sender: snd, Credentials: factortest.NewMem(), Counters: factortest.NewMem(), Keyring: kr, Pepper: pep}
			mod(&cfg)
			if _, err := New(cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	d := &deliverer{channel: delivery.ChannelEmail, data: messageData{Minutes: 5, Issuer: "Ex"}}
	var err error
	if d.body, err = parseTemplate("Code {{.Code}}, {{.Minutes}} min, {{.Issuer}}"); err != nil {
		t.Fatal(err)
	}
	if d.subject, err = parseTemplate("Your\r\nBcc: x@evil.test code"); err != nil {
		t.Fatal(err)
	}
	m, err := d.render("123456")
	if err != nil || m.Body != "Code 123456, 5 min, Ex" || m.Subject != "Your Bcc: x@evil.test code" {
		t.Fatalf("render = %+v, %v", m, err)
	}
}

func TestNewCodeUniformAndSixDigits(t *testing.T) {
	t.Parallel()
	counts := make([]int, 10)
	for range 20000 {
		c, err := NewCode(nil2rand())
		if err != nil || len(c) != 6 {
			t.Fatalf("code %q, %v", c, err)
		}
		for _, r := range c {
			counts[r-'0']++
		}
	}
	for d, n := range counts {
		if n < 10000 || n > 14000 { // 12000 expected per digit
			t.Fatalf("digit %d appeared %d times of 120000", d, n)
		}
	}
}

func TestEmailNormalizeMask(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"Ann@Example.ORG": "Ann@example.org", "a.b+c@x.io": "a.b+c@x.io"} {
		if got, err := NormalizeEmail(in); err != nil || got != want {
			t.Errorf("NormalizeEmail(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"Ann <a@x.io>", "a@x.io\r\nBcc: b@y", "nobody", "ä@x.io", ""} {
		if _, err := NormalizeEmail(in); err == nil {
			t.Errorf("NormalizeEmail(%q) accepted", in)
		}
	}
	if got := MaskEmail("ann@example.org"); got != "a***@example.org" {
		t.Fatal(got)
	}
}

// FuzzParseCode: accepted codes are exactly six ASCII digits taken from
// the input in order.
func FuzzParseCode(f *testing.F) {
	for _, s := range []string{"123456", "123 456", "12-34-56", "١٢٣٤٥٦", "12345", "abcdef"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := challenge.ParseCode(s, CodeLength)
		if err != nil {
			if !errors.Is(err, factors.ErrInvalidInput) {
				t.Fatalf("error %v is not ErrInvalidInput", err)
			}
			return
		}
		if len(c) != CodeLength {
			t.Fatalf("ParseCode(%q) = %q", s, c)
		}
		var digits strings.Builder
		for _, r := range s {
			if r >= '0' && r <= '9' {
				digits.WriteRune(r)
			}
		}
		if digits.String() != c {
			t.Fatalf("ParseCode(%q) = %q, digits %q", s, c, digits.String())
		}
	})
}
