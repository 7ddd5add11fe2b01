package pin

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/factors/internal/factortest"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// cheap keeps tests fast; the production cost is measured by the benchmarks.
var cheap = Argon2{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}

func newFactor(t testing.TB, creds store.Credentials, clock *factortest.Clock, mod func(*Config)) *Factor {
	t.Helper()
	cfg := Config{Argon2: cheap, Now: clock.Now}
	if mod != nil {
		mod(&cfg)
	}
	f, err := New(cfg, creds)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func enrol(t testing.TB, f *Factor, user, pin string) {
	t.Helper()
	if _, err := f.BeginEnrolment(context.Background(), user, factors.EnrolRequest{Secret: pin, Confirmation: pin}); err != nil {
		t.Fatalf("setting PIN %s: %v", pin, err)
	}
}

func TestRules(t *testing.T) {
	t.Parallel()
	r := Rules{MinLength: 4, MaxLength: 8, DenyList: []string{"4826"}}
	for _, tc := range []struct {
		pin  string
		want string // substring of the message; "" = accepted
	}{
		{"5831", ""},
		{"482913", ""},
		{"73920581", ""},
		{"583", "4 to 8 digits"},
		{"583192047", "4 to 8 digits"},
		{"", "digits only"},
		{"58a1", "digits only"},
		{"5831 ", "digits only"},
		{"５８３１", "digits only"}, // full-width digits
		{"1111", "repeat one digit"},
		{"00000000", "repeat one digit"},
		{"1234", "sequence"},
		{"456789", "sequence"},
		{"8901", "sequence"},
		{"7890", "sequence"},
		{"9012", "sequence"},
		{"4321", "sequence"},
		{"3210", "sequence"},
		{"1098", "sequence"},
		{"0987", "sequence"},
		{"1212", "pattern"},
		{"12121", "pattern"},
		{"123123", "pattern"},
		{"45674567", "pattern"},
		{"2580", "too common"},
		{"6969", "pattern"},
		{"1004", "too common"},
		{"159753", "too common"},
		{"4826", "too common"}, // configured deny list
	} {
		t.Run(tc.pin, func(t *testing.T) {
			err := r.Check(tc.pin)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Check(%q) = %v, want accepted", tc.pin, err)
				}
				return
			}
			var ie *factors.InputError
			if !errors.As(err, &ie) || !errors.Is(err, factors.ErrInvalidInput) {
				t.Fatalf("Check(%q) = %v, want an InputError", tc.pin, err)
			}
			if !strings.Contains(ie.Message, tc.want) {
				t.Fatalf("Check(%q) message %q, want it to mention %q", tc.pin, ie.Message, tc.want)
			}
		})
	}
}

func TestBuiltInListIsDigits(t *testing.T) {
	t.Parallel()
	for _, p := range commonPINs {
		if !allDigits(p) || len(p) < 4 || len(p) > 12 {
			t.Fatalf("built-in PIN %q is malformed", p)
		}
	}
}

func FuzzRulesCheck(f *testing.F) {
	for _, s := range []string{"5831", "1234", "8901", "1212", "", "x", "99999999999"} {
		f.Add(s)
	}
	r := Rules{}
	f.Fuzz(func(t *testing.T, pin string) {
		err := r.Check(pin)
		if err == nil {
			if !allDigits(pin) || len(pin) < 4 || len(pin) > 8 {
				t.Fatalf("Check accepted %q", pin)
			}
			if isSequence(pin, 0) || isSequence(pin, 1) || isSequence(pin, 9) || repeatsPattern(pin) {
				t.Fatalf("Check accepted trivial %q", pin)
			}
		} else if !errors.Is(err, factors.ErrInvalidInput) {
			t.Fatalf("Check(%q) = %v, not ErrInvalidInput", pin, err)
		}
	})
}

func FuzzParseDigits(f *testing.F) {
	for _, s := range []string{"5831", " 5831\n", "58 31", "", "٣٤٥٦"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		d, ok := parseDigits(in)
		if !ok {
			return
		}
		if !allDigits(d) || strings.TrimSpace(in) != d {
			t.Fatalf("parseDigits(%q) = %q", in, d)
		}
	})
}

func FuzzParsePHC(f *testing.F) {
	h, err := hashPIN("5831", cheap, &factortest.SeqReader{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(h.String())
	f.Add("$argon2id$v=19$m=65536,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
	f.Add("$argon2i$v=19$m=65536,t=3,p=1$c2FsdHNhbHQ$aGFzaA")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePHC(s)
		if err != nil {
			return
		}
		if p.params.MemoryKiB > maxMemoryKiB || p.params.Time > maxTime || p.params.Time == 0 || p.params.Threads == 0 {
			t.Fatalf("parsePHC(%q) accepted out-of-bounds parameters %+v", s, p.params)
		}
		again, err := parsePHC(p.String())
		if err != nil || again.String() != p.String() {
			t.Fatalf("round trip of %q: %q, %v", s, again.String(), err)
		}
	})
}

func TestPHCFormat(t *testing.T) {
	t.Parallel()
	h, err := hashPIN("5831", Argon2{Time: 3, MemoryKiB: 65536, Threads: 1}, &factortest.SeqReader{})
	if err != nil {
		t.Fatal(err)
	}
	// Salt 00 01 .. 0f from the pinned reader.
	want := "$argon2id$v=19$m=65536,t=3,p=1$AAECAwQFBgcICQoLDA0ODw$"
	if !strings.HasPrefix(h.String(), want) {
		t.Fatalf("PHC string %q, want prefix %q", h.String(), want)
	}
	if !h.matches("5831") || h.matches("5832") {
		t.Fatal("hash does not verify its own PIN only")
	}
}

func TestEnrol(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mem := factortest.NewMem()
	f := newFactor(t, mem, factortest.NewClock(), nil)
	for _, tc := range []struct {
		name string
		req  factors.EnrolRequest
		want error
	}{
		{"mismatch", factors.EnrolRequest{Secret: "5831", Confirmation: "5832"}, factors.ErrInvalidInput},
		{"trivial", factors.EnrolRequest{Secret: "1234", Confirmation: "1234"}, factors.ErrInvalidInput},
		{"letters", factors.EnrolRequest{Secret: "abcd", Confirmation: "abcd"}, factors.ErrInvalidInput},
		{"ok", factors.EnrolRequest{Secret: "5831", Confirmation: "5831"}, nil},
		{"again", factors.EnrolRequest{Secret: "7302", Confirmation: "7302"}, factors.ErrAlreadyEnrolled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enr, err := f.BeginEnrolment(ctx, "alice", tc.req)
			if !errors.Is(err, tc.want) {
				t.Fatalf("BeginEnrolment = %v, want %v", err, tc.want)
			}
			if err == nil && (enr.Pending || enr.CredentialID == "" || enr.Factor != "pin") {
				t.Fatalf("enrolment = %+v", enr)
			}
		})
	}
	// Same PIN, two users: different salts, different hashes.
	enrol(t, f, "bob", "5831")
	a := mem.Credential(t, factors.CredentialID("pin", "alice"))
	b := mem.Credential(t, factors.CredentialID("pin", "bob"))
	if string(a.Data) == string(b.Data) {
		t.Fatal("two users with the same PIN have the same stored hash")
	}
	if a.Status != store.StatusActive || !strings.Contains(string(a.Data), "$argon2id$v=19$m=8192,t=1,p=1$") {
		t.Fatalf("stored credential = %+v %s", a, a.Data)
	}
	if _, err := f.ConfirmEnrolment(ctx, "alice", "5831"); !errors.Is(err, factors.ErrAlreadyEnrolled) {
		t.Fatalf("ConfirmEnrolment = %v", err)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := factortest.NewClock()
	f := newFactor(t, factortest.NewMem(), clock, nil)
	enrol(t, f, "alice", "5831")
	for _, tc := range []struct {
		name, user, pin string
		want            error
	}{
		{"right", "alice", "5831", nil},
		{"right with spaces", "alice", " 5831\n", nil},
		{"wrong", "alice", "5832", factors.ErrInvalidCode},
		{"prefix", "alice", "583", factors.ErrInvalidCode},
		{"malformed", "alice", "58x1", factors.ErrInvalidCode},
		{"no PIN", "bob", "5831", factors.ErrNotEnrolled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := f.Verify(ctx, tc.user, tc.pin)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
			if err == nil {
				want := factors.Result{Method: "pin", Level: "2", At: clock.Now(), CredentialID: factors.CredentialID("pin", "alice")}
				if res != want {
					t.Fatalf("Result = %+v, want %+v", res, want)
				}
			}
		})
	}
}

func TestLockout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := factortest.NewClock()
	mem := factortest.NewMem()
	f := newFactor(t, mem, clock, nil) // 5 failures, 1m doubling to 1h
	enrol(t, f, "alice", "5831")
	for i := 1; i <= 4; i++ {
		_, err := f.Verify(ctx, "alice", "0000")
		var le *factors.LockedError
		if !errors.Is(err, factors.ErrInvalidCode) || errors.As(err, &le) {
			t.Fatalf("failure %d: %v, want plain ErrInvalidCode", i, err)
		}
	}
	_, err := f.Verify(ctx, "alice", "0000")
	var le *factors.LockedError
	if !errors.As(err, &le) || !le.Started() || !errors.Is(err, factors.ErrInvalidCode) || !le.Until.Equal(clock.Now().Add(time.Minute)) {
		t.Fatalf("5th failure: %v, want a lockout started until +1m", err)
	}
	// Locked: even the right PIN is refused without being checked, and the
	// refusal does not extend the lockout.
	_, err = f.Verify(ctx, "alice", "5831")
	if !errors.As(err, &le) || le.Started() || errors.Is(err, factors.ErrInvalidCode) {
		t.Fatalf("right PIN while locked: %v, want LockedError without check", err)
	}
	if c := mem.Credential(t, factors.CredentialID("pin", "alice")); c.Failures != 5 {
		t.Fatalf("failures = %d after a refused attempt, want 5", c.Failures)
	}
	st, _ := f.Status(ctx, "alice")
	if !st.LockedUntil.Equal(clock.Now().Add(time.Minute)) {
		t.Fatalf("status LockedUntil = %v", st.LockedUntil)
	}
	// Each further failure after a lockout doubles the wait, up to 1h.
	wantWaits := []time.Duration{2, 4, 8, 16, 32, 60, 60}
	for i, w := range wantWaits {
		clock.Advance(time.Hour)
		_, err := f.Verify(ctx, "alice", "0000")
		if !errors.As(err, &le) || !le.Started() || !le.Until.Equal(clock.Now().Add(w*time.Minute)) {
			t.Fatalf("failure %d after the first lockout: %v, want locked for %dm", i+1, err, w)
		}
	}
	clock.Advance(time.Hour)
	if _, err := f.Verify(ctx, "alice", "5831"); err != nil {
		t.Fatalf("right PIN after the lockout: %v", err)
	}
	c := mem.Credential(t, factors.CredentialID("pin", "alice"))
	if c.Failures != 0 || !c.LockedUntil.IsZero() {
		t.Fatalf("after success failures=%d lockedUntil=%v, want cleared", c.Failures, c.LockedUntil)
	}
	// The count is of consecutive failures: a success in between resets it.
	for range 4 {
		_, _ = f.Verify(ctx, "alice", "0000")
	}
	if _, err := f.Verify(ctx, "alice", "5831"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Verify(ctx, "alice", "0000"); errors.As(err, &le) {
		t.Fatalf("first failure after a success locked: %v", err)
	}
}

func TestUnlock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := factortest.NewClock()
	f := newFactor(t, factortest.NewMem(), clock, func(c *Config) { c.MaxFailures = 2 })
	enrol(t, f, "alice", "5831")
	_, _ = f.Verify(ctx, "alice", "0000")
	_, _ = f.Verify(ctx, "alice", "0000")
	if _, err := f.Verify(ctx, "alice", "5831"); !errors.Is(err, factors.ErrLocked) {
		t.Fatalf("not locked: %v", err)
	}
	if err := f.Unlock(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Verify(ctx, "alice", "5831"); err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	if err := f.Unlock(ctx, "bob"); !errors.Is(err, factors.ErrNotEnrolled) {
		t.Fatalf("Unlock without PIN: %v", err)
	}
}

// TestParallelGuesses: guesses sent at once cannot run more checks than
// MaxFailures; the rest are refused as locked, across connections of the
// real store.
func TestParallelGuesses(t *testing.T) {
	t.Parallel()
	parallelGuesses(t, factortest.SQLite(t))
}

func TestParallelGuessesPostgres(t *testing.T) {
	t.Parallel()
	parallelGuesses(t, factortest.Postgres(t))
}

func parallelGuesses(t *testing.T, s store.Credentials) {
	t.Helper()
	ctx := context.Background()
	f := newFactor(t, s, factortest.NewClock(), nil)
	enrol(t, f, "alice", "5831")
	const n = 30
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { _, errs[i] = f.Verify(ctx, "alice", "0000") })
	}
	wg.Wait()
	checked, refused := 0, 0
	for _, err := range errs {
		switch {
		case errors.Is(err, factors.ErrInvalidCode):
			checked++
		case errors.Is(err, factors.ErrLocked):
			refused++
		default:
			t.Fatalf("unexpected: %v", err)
		}
	}
	if checked != 5 || refused != n-5 {
		t.Fatalf("%d guesses checked, %d refused; want 5 and %d", checked, refused, n-5)
	}
}

func TestRehashOnRaisedParameters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mem := factortest.NewMem()
	clock := factortest.NewClock()
	old := newFactor(t, mem, clock, nil)
	enrol(t, old, "alice", "5831")
	raised := newFactor(t, mem, clock, func(c *Config) { c.Argon2 = Argon2{Time: 2, MemoryKiB: 9 * 1024, Threads: 1} })
	if _, err := raised.Verify(ctx, "alice", "0000"); !errors.Is(err, factors.ErrInvalidCode) {
		t.Fatal(err)
	}
	if !strings.Contains(string(mem.Credential(t, factors.CredentialID("pin", "alice")).Data), "m=8192,t=1,p=1") {
		t.Fatal("a failure rehashed")
	}
	if _, err := raised.Verify(ctx, "alice", "5831"); err != nil {
		t.Fatal(err)
	}
	data := string(mem.Credential(t, factors.CredentialID("pin", "alice")).Data)
	if !strings.Contains(data, "m=9216,t=2,p=1") {
		t.Fatalf("not rehashed with raised parameters: %s", data)
	}
	if _, err := raised.Verify(ctx, "alice", "5831"); err != nil {
		t.Fatalf("after rehash: %v", err)
	}
	// Lowering the configured cost keeps the stronger hash.
	if _, err := old.Verify(ctx, "alice", "5831"); err != nil {
		t.Fatal(err)
	}
	if data2 := string(mem.Credential(t, factors.CredentialID("pin", "alice")).Data); data2 != data {
		t.Fatal("lower configured cost rehashed a stronger hash")
	}
}

func TestLifetime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := factortest.NewClock()
	f := newFactor(t, factortest.NewMem(), clock, func(c *Config) { c.Lifetime = 90 * 24 * time.Hour })
	enrol(t, f, "alice", "5831")
	st, _ := f.Status(ctx, "alice")
	if !st.ExpiresAt.Equal(clock.Now().Add(90 * 24 * time.Hour)) {
		t.Fatalf("ExpiresAt = %v", st.ExpiresAt)
	}
	clock.Advance(90*24*time.Hour - time.Second)
	if _, err := f.Verify(ctx, "alice", "5831"); err != nil {
		t.Fatalf("just before expiry: %v", err)
	}
	clock.Advance(time.Second)
	if _, err := f.Verify(ctx, "alice", "5831"); !errors.Is(err, factors.ErrExpired) {
		t.Fatalf("expired PIN: %v, want ErrExpired", err)
	}
	if _, err := f.Verify(ctx, "alice", "5832"); !errors.Is(err, factors.ErrInvalidCode) {
		t.Fatalf("wrong PIN after expiry: %v, want ErrInvalidCode (expiry told only to who knows the PIN)", err)
	}
	if _, err := f.Change(ctx, "alice", "5831", factors.EnrolRequest{Secret: "7302", Confirmation: "7302"}); err != nil {
		t.Fatalf("change of an expired PIN: %v", err)
	}
	if _, err := f.Verify(ctx, "alice", "7302"); err != nil {
		t.Fatalf("new PIN: %v", err)
	}
}

func TestChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mem := factortest.NewMem()
	f := newFactor(t, mem, factortest.NewClock(), nil)
	enrol(t, f, "alice", "5831")
	for _, tc := range []struct {
		name, current string
		req           factors.EnrolRequest
		want          error
	}{
		{"mismatch", "5831", factors.EnrolRequest{Secret: "7302", Confirmation: "7303"}, factors.ErrInvalidInput},
		{"trivial", "5831", factors.EnrolRequest{Secret: "0000", Confirmation: "0000"}, factors.ErrInvalidInput},
		{"same", "5831", factors.EnrolRequest{Secret: "5831", Confirmation: "5831"}, factors.ErrInvalidInput},
		{"wrong current", "5830", factors.EnrolRequest{Secret: "7302", Confirmation: "7302"}, factors.ErrInvalidCode},
		{"ok", "5831", factors.EnrolRequest{Secret: "7302", Confirmation: "7302"}, nil},
		{"old PIN no longer current", "5831", factors.EnrolRequest{Secret: "6417", Confirmation: "6417"}, factors.ErrInvalidCode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.Change(ctx, "alice", tc.current, tc.req)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Change = %v, want %v", err, tc.want)
			}
		})
	}
	if c := mem.Credential(t, factors.CredentialID("pin", "alice")); c.Failures != 1 {
		t.Fatalf("failures = %d: a wrong current PIN in Change must count", c.Failures)
	}
	if _, err := f.Verify(ctx, "alice", "5831"); !errors.Is(err, factors.ErrInvalidCode) {
		t.Fatalf("old PIN after change: %v", err)
	}
	if _, err := f.Verify(ctx, "alice", "7302"); err != nil {
		t.Fatalf("new PIN after change: %v", err)
	}
}

func TestReset(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFactor(t, factortest.NewMem(), factortest.NewClock(), nil)
	enrol(t, f, "alice", "5831")
	if err := f.Reset(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Verify(ctx, "alice", "5831"); !errors.Is(err, factors.ErrNotEnrolled) {
		t.Fatalf("after reset: %v", err)
	}
	if err := f.Reset(ctx, "alice"); !errors.Is(err, factors.ErrNotEnrolled) {
		t.Fatalf("second reset: %v", err)
	}
	st, err := f.Status(ctx, "alice")
	if err != nil || st.State != factors.StateNone {
		t.Fatalf("status after reset = %+v, %v", st, err)
	}
	enrol(t, f, "alice", "7302")
}

func TestNewRefusesWeakConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{Rules: Rules{MinLength: 3, MaxLength: 8}},
		{Argon2: Argon2{MemoryKiB: 1024}},
		{LockoutBase: time.Hour, LockoutMax: time.Minute},
	} {
		if _, err := New(cfg, factortest.NewMem()); err == nil {
			t.Fatalf("New(%+v) accepted", cfg)
		}
	}
}

func benchmarkVerify(b *testing.B, p Argon2) {
	ctx := context.Background()
	clock := factortest.NewClock()
	f, err := New(Config{Argon2: p, Now: clock.Now}, factortest.NewMem())
	if err != nil {
		b.Fatal(err)
	}
	enrol(b, f, "alice", "5831")
	for b.Loop() {
		if _, err := f.Verify(ctx, "alice", "5831"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyDefault is the cost of one check with DefaultArgon2; it
// must stay within 20-100 ms on a server core.
func BenchmarkVerifyDefault(b *testing.B) { benchmarkVerify(b, DefaultArgon2) }

// BenchmarkVerifyT3M64 is RFC 9106's second recommendation (t=3, 64 MiB).
func BenchmarkVerifyT3M64(b *testing.B) {
	benchmarkVerify(b, Argon2{Time: 3, MemoryKiB: 64 * 1024, Threads: 1})
}

// BenchmarkVerifyT1M46 is OWASP's first option (t=1, 46 MiB).
func BenchmarkVerifyT1M46(b *testing.B) {
	benchmarkVerify(b, Argon2{Time: 1, MemoryKiB: 46 * 1024, Threads: 1})
}
