package builtin

import (
	"context"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stepup-bridge/stepup-bridge/config"
	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/factors/internal/factortest"
	"github.com/stepup-bridge/stepup-bridge/factors/internal/otpcore"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

func testConfig() config.Config {
	cfg := config.Default()
	cfg.Secrets.EncryptionKeys = []config.Secret{config.Secret("k1:" + base64.StdEncoding.EncodeToString([]byte("abcdefghijklmnopqrstuvwxyz012345")))}
	cfg.Secrets.Pepper = config.Secret(base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")))
	cfg.Factors.Enabled = []string{"totp", "pin", "backup_code", "hotp"}
	cfg.Factors.PIN.Argon2 = config.Argon2{Time: 1, MemoryKiB: 8192, Threads: 1}
	cfg.RateLimits.UserFailuresPerHour = 7
	return cfg
}

func TestUnknownFactor(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Factors.Enabled = []string{"pin", "carrier_pigeon"}
	_, err := NewRegistry(cfg, Deps{Store: factortest.NewMem()})
	if !errors.Is(err, factors.ErrUnknownFactor) || !strings.Contains(err.Error(), `"carrier_pigeon"`) {
		t.Fatalf("NewRegistry with carrier_pigeon = %v, want ErrUnknownFactor naming it", err)
	}
}

// TestDeliveringFactors: flash call, SMS and e-mail are built from config;
// their log providers exist only in dev mode.
func TestDeliveringFactors(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Factors.Enabled = []string{"pin", "flash_call", "sms", "email"}
	if _, err := NewRegistry(cfg, Deps{Store: factortest.NewMem()}); err == nil || !strings.Contains(err.Error(), "dev mode") {
		t.Fatalf("log providers outside dev mode: %v", err)
	}
	cfg.DevMode = true
	reg, err := NewRegistry(cfg, Deps{Store: factortest.NewMem(), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"flash_call", "sms", "email"} {
		f, ok := reg.Factor(name)
		if !ok {
			t.Fatalf("%s not built", name)
		}
		if _, ok := f.(factors.Challenger); !ok {
			t.Fatalf("%s is not a Challenger", name)
		}
	}
	// PSTN is never the first factor: a flash call for a user with
	// nothing else active is refused.
	if _, err := reg.Enrol(context.Background(), "flash_call", "alice", factors.EnrolRequest{Destination: "+4915112345678"}, factors.Meta{}); err == nil {
		t.Fatal("flash call enrolled as the only factor")
	}
}

func TestExtraFactors(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Factors.Enabled = []string{"pin", "sms"}
	reg, err := NewRegistry(cfg, Deps{Store: factortest.NewMem(), Extra: []factors.Factor{smsFactor{}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Verify(context.Background(), "sms", "alice", "123456", factors.Meta{}); !errors.Is(err, factors.ErrInvalidCode) {
		t.Fatalf("verify through an extra factor: %v", err)
	}
}

type smsFactor struct{}

func (smsFactor) Name() string { return "sms" }
func (smsFactor) Verify(context.Context, string, string) (factors.Result, error) {
	return factors.Result{}, factors.ErrInvalidCode
}
func (smsFactor) Status(context.Context, string) (factors.Status, error) {
	return factors.Status{Factor: "sms", State: factors.StateNone}, nil
}

func TestOnlyEnabledFactors(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Factors.Enabled = []string{"pin"}
	cfg.Secrets.EncryptionKeys = nil // not needed without totp/hotp
	reg, err := NewRegistry(cfg, Deps{Store: factortest.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	if got := reg.Names(); len(got) != 1 || got[0] != "pin" {
		t.Fatalf("Names = %v", got)
	}
	if _, err := reg.Verify(context.Background(), "totp", "alice", "123456", factors.Meta{}); !errors.Is(err, factors.ErrUnknownFactor) {
		t.Fatalf("verify of a disabled factor: %v", err)
	}
}

// TestEndToEnd wires every built-in factor to the SQLite store from the
// configuration and walks a user through enrolment, verification and the
// shared failure budget.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := factortest.NewClock()
	st := factortest.SQLite(t)
	reg, err := NewRegistry(testConfig(), Deps{Store: st, Now: clock.Now, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	meta := factors.Meta{SessionID: "s1", IP: "192.0.2.1"}
	if _, err := reg.Enrol(ctx, "pin", "alice", factors.EnrolRequest{Secret: "1234", Confirmation: "1234"}, meta); !errors.Is(err, factors.ErrInvalidInput) {
		t.Fatalf("trivial PIN: %v", err)
	}
	if _, err := reg.Enrol(ctx, "pin", "alice", factors.EnrolRequest{Secret: "5831", Confirmation: "5831"}, meta); err != nil {
		t.Fatal(err)
	}
	codes, err := reg.Enrol(ctx, "backup_code", "alice", factors.EnrolRequest{}, meta)
	if err != nil || len(codes.Codes) != 10 {
		t.Fatalf("backup codes: %+v, %v", codes, err)
	}
	totpEnr, err := reg.Enrol(ctx, "totp", "alice", factors.EnrolRequest{AccountName: "alice@example.com"}, meta)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(totpEnr.Secret)
	code, _ := otpcore.Code(otpcore.Secret{Key: key, Algorithm: "SHA1", Digits: 6, Period: 30}, uint64(clock.Now().Unix())/30)
	if _, err := reg.Confirm(ctx, "totp", "alice", code, meta); err != nil {
		t.Fatal(err)
	}
	active, err := reg.Active(ctx, "alice")
	if err != nil || strings.Join(active, ",") != "totp,pin,backup_code" {
		t.Fatalf("Active = %v, %v", active, err)
	}
	for _, v := range []struct{ factor, code string }{{"pin", "5831"}, {"backup_code", codes.Codes[0]}} {
		res, err := reg.Verify(ctx, v.factor, "alice", v.code, meta)
		if err != nil || res.Method != v.factor || res.Level != "2" {
			t.Fatalf("%s: %+v, %v", v.factor, res, err)
		}
	}
	if _, err := reg.Verify(ctx, "totp", "alice", code, meta); !errors.Is(err, factors.ErrReplay) {
		t.Fatalf("TOTP replay: %v", err)
	}
	// Budget of 7, shared: 1 replay above, 2 wrong PINs, 4 wrong backup
	// codes; then even the right PIN is refused without being checked.
	for range 2 {
		_, _ = reg.Verify(ctx, "pin", "alice", "0000", meta)
	}
	for range 4 {
		_, _ = reg.Verify(ctx, "backup_code", "alice", "00000-00000", meta)
	}
	if _, err := reg.Verify(ctx, "pin", "alice", "5831", meta); !errors.Is(err, factors.ErrRateLimited) {
		t.Fatalf("after 7 failures: %v, want ErrRateLimited", err)
	}
	evs, err := st.ListAudit(ctx, store.AuditQuery{UserID: "alice", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]int{}
	for _, e := range evs {
		types[e.Type]++
		for _, v := range e.Details {
			if v == "5831" || strings.Contains(v, codes.Codes[0]) || v == code {
				t.Fatalf("audit event holds a secret: %+v", e)
			}
		}
	}
	want := map[string]int{"factor.enrol": 4, "factor.confirm": 1, "stepup.success": 2, "stepup.failure": 8, "lockout": 1}
	for k, n := range want {
		if types[k] != n {
			t.Errorf("%d %q events, want %d (all: %v)", types[k], k, n, types)
		}
	}
}

// BenchmarkRegistryVerifyTOTPSQLite is the whole choke point on the SQLite
// store: budget counters, factor check, step update and audit write.
func BenchmarkRegistryVerifyTOTPSQLite(b *testing.B) {
	ctx := context.Background()
	clock := factortest.NewClock()
	cfg := testConfig()
	cfg.RateLimits.UserFailuresPerHour = 100
	reg, err := NewRegistry(cfg, Deps{Store: factortest.SQLite(b), Now: clock.Now})
	if err != nil {
		b.Fatal(err)
	}
	enr, err := reg.Enrol(ctx, "totp", "alice", factors.EnrolRequest{}, factors.Meta{})
	if err != nil {
		b.Fatal(err)
	}
	key, _ := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(enr.Secret)
	secret := otpcore.Secret{Key: key, Algorithm: "SHA1", Digits: 6, Period: 30}
	code := func() string {
		c, _ := otpcore.Code(secret, uint64(clock.Now().Unix())/30)
		return c
	}
	if _, err := reg.Confirm(ctx, "totp", "alice", code(), factors.Meta{}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		clock.Advance(30 * time.Second)
		if _, err := reg.Verify(ctx, "totp", "alice", code(), factors.Meta{}); err != nil {
			b.Fatal(err)
		}
	}
}
