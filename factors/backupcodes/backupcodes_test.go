package backupcodes

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/factors/internal/factortest"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

func newFactor(t testing.TB, creds store.Credentials, clock *factortest.Clock) *Factor {
	t.Helper()
	f, err := New(Config{Now: clock.Now}, creds, factortest.Pepper(t))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"ABCDE-FGHJK", "ABCDEFGHJK", true},
		{"abcde-fghjk", "ABCDEFGHJK", true},
		{"  abcde fghjk ", "ABCDEFGHJK", true},
		{"ab-cd-ef-gh-jk", "ABCDEFGHJK", true},
		{"ABCDE\u2013FGHJK", "ABCDEFGHJK", true}, // en dash
		{"ABCDE\tFGHJK\n", "ABCDEFGHJK", true},
		{"oOiIlL-01234", "001111" + "01234", false}, // 11 characters
		{"oOiIl-01234", "0011101234", true},
		{"ABCDEFGHJK", "ABCDEFGHJK", true},
		{"ABCDEFGHJ", "", false},   // too short
		{"ABCDEFGHJKM", "", false}, // too long
		{"ABCDE-FGHJU", "", false}, // U is not Crockford
		{"ABCDE_FGHJK", "", false},
		{"ABCDE-FGHJ\u00c9", "", false},
		{"", "", false},
		{strings.Repeat(" ", 60) + "ABCDEFGHJK", "", false}, // input bound
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, ok := Normalize(tc.in)
			if ok != tc.ok || (ok && got != tc.want) {
				t.Fatalf("Normalize(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"ABCDE-FGHJK", "abcde fghjk", "oOiIl-01234", "", "U", "\u2013", "ÿÿÿÿÿÿÿÿÿÿ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, ok := Normalize(in)
		if !ok {
			if got != "" {
				t.Fatalf("Normalize(%q) failed but returned %q", in, got)
			}
			return
		}
		if len(got) != CodeLength {
			t.Fatalf("Normalize(%q) = %q: length %d", in, got, len(got))
		}
		for i := range len(got) {
			if !strings.ContainsRune(Alphabet, rune(got[i])) {
				t.Fatalf("Normalize(%q) = %q: %q not in alphabet", in, got, got[i])
			}
		}
		again, ok := Normalize(Format(got))
		if !ok || again != got {
			t.Fatalf("Normalize(Format(%q)) = %q, %v: not idempotent", got, again, ok)
		}
		lower, ok := Normalize(strings.ToLower(got))
		if !ok || lower != got {
			t.Fatalf("lower case of %q normalises to %q, %v", got, lower, ok)
		}
	})
}

func TestGenerate(t *testing.T) {
	t.Parallel()
	mem := factortest.NewMem()
	f := newFactor(t, mem, factortest.NewClock())
	ctx := context.Background()
	enr, err := f.BeginEnrolment(ctx, "alice", factors.EnrolRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if enr.Pending || enr.Replaced || len(enr.Codes) != 10 {
		t.Fatalf("enrolment = %+v, want 10 codes, active, not replaced", enr)
	}
	seen := map[string]bool{}
	c := mem.Credential(t, enr.CredentialID)
	for _, code := range enr.Codes {
		if len(code) != 11 || code[5] != '-' {
			t.Fatalf("code %q is not formatted XXXXX-XXXXX", code)
		}
		norm, ok := Normalize(code)
		if !ok {
			t.Fatalf("generated code %q does not normalise", code)
		}
		if seen[norm] {
			t.Fatalf("duplicate code %q", code)
		}
		seen[norm] = true
		if bytes.Contains(c.Data, []byte(norm)) || bytes.Contains(c.Data, []byte(code)) {
			t.Fatalf("stored data contains code %q", code)
		}
	}
	// Data holds per code exactly a salt, a MAC and a used-at time.
	var raw struct {
		Codes []map[string]json.RawMessage `json:"codes"`
	}
	if err := json.Unmarshal(c.Data, &raw); err != nil {
		t.Fatal(err)
	}
	for i, m := range raw.Codes {
		for k := range m {
			if k != "salt" && k != "mac" && k != "used_at" {
				t.Fatalf("stored code %d has unexpected field %q", i, k)
			}
		}
	}
	if c.Status != store.StatusActive || c.UserID != "alice" || c.Factor != factors.BackupCode {
		t.Fatalf("credential = %+v", c)
	}
	if _, err := f.ConfirmEnrolment(ctx, "alice", enr.Codes[0]); !errors.Is(err, factors.ErrAlreadyEnrolled) {
		t.Fatalf("ConfirmEnrolment: %v, want ErrAlreadyEnrolled", err)
	}
	if _, err := f.ConfirmEnrolment(ctx, "bob", "x"); !errors.Is(err, factors.ErrNotEnrolled) {
		t.Fatalf("ConfirmEnrolment without set: %v, want ErrNotEnrolled", err)
	}
}

// TestEntropy: every character position takes every alphabet symbol, so a
// code really carries 10 x 5 bits.
func TestEntropy(t *testing.T) {
	t.Parallel()
	f := newFactor(t, factortest.NewMem(), factortest.NewClock())
	codes, _, err := f.newSet(400)
	if err != nil {
		t.Fatal(err)
	}
	for pos := range CodeLength {
		seen := map[byte]bool{}
		for _, c := range codes {
			n, _ := Normalize(c)
			seen[n[pos]] = true
		}
		if len(seen) != len(Alphabet) {
			t.Fatalf("position %d took %d of %d symbols in 400 codes", pos, len(seen), len(Alphabet))
		}
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mem := factortest.NewMem()
	clock := factortest.NewClock()
	f := newFactor(t, mem, clock)
	enr, err := f.BeginEnrolment(ctx, "alice", factors.EnrolRequest{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := f.BeginEnrolment(ctx, "bob", factors.EnrolRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		user string
		code string
		want error
	}{
		{"first code", "alice", enr.Codes[0], nil},
		{"first code again", "alice", enr.Codes[0], factors.ErrReplay},
		{"last code, lower case without dash", "alice", strings.ToLower(strings.ReplaceAll(enr.Codes[9], "-", "")), nil},
		{"look-alikes and spaces", "alice", lookAlike(enr.Codes[5]), nil},
		{"another user's code", "alice", other.Codes[1], factors.ErrInvalidCode},
		{"unknown code", "alice", "00000-00000", factors.ErrInvalidCode},
		{"malformed", "alice", "hello", factors.ErrInvalidCode},
		{"no set", "carol", enr.Codes[1], factors.ErrNotEnrolled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := f.Verify(ctx, tc.user, tc.code)
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("Verify = %v, want %v", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := factors.Result{Method: "backup_code", Level: "2", At: clock.Now(), CredentialID: enr.CredentialID}
			if res != want {
				t.Fatalf("Result = %+v, want %+v", res, want)
			}
		})
	}
	st, err := f.Status(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if st.State != factors.StateActive || *st.Remaining != 7 || st.Low {
		t.Fatalf("status after 3 uses = %+v (remaining %d)", st, *st.Remaining)
	}
	if got := mem.Credential(t, enr.CredentialID).LastUsedAt; !got.Equal(clock.Now()) {
		t.Fatalf("LastUsedAt = %v", got)
	}
}

// lookAlike writes a code as a careless user would: lower case, spaces
// for the dash, O for 0, l for 1.
func lookAlike(code string) string {
	r := strings.NewReplacer("-", " ", "0", "O", "1", "l")
	return " " + strings.ToLower(r.Replace(code)) + " "
}

func TestEveryPositionMatches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFactor(t, factortest.NewMem(), factortest.NewClock())
	enr, err := f.BeginEnrolment(ctx, "alice", factors.EnrolRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for i := len(enr.Codes) - 1; i >= 0; i-- {
		if _, err := f.Verify(ctx, "alice", enr.Codes[i]); err != nil {
			t.Fatalf("code %d: %v", i, err)
		}
	}
	st, err := f.Status(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if st.State != factors.StateExhausted || *st.Remaining != 0 || !st.Low {
		t.Fatalf("status of a used-up set = %+v", st)
	}
}

func TestStatusLow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, err := New(Config{Count: 5, LowWatermark: 3, Now: factortest.NewClock().Now}, factortest.NewMem(), factortest.Pepper(t))
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.Status(ctx, "alice")
	if err != nil || st.State != factors.StateNone || st.Remaining != nil {
		t.Fatalf("status without set = %+v, %v", st, err)
	}
	enr, err := f.BeginEnrolment(ctx, "alice", factors.EnrolRequest{})
	if err != nil {
		t.Fatal(err)
	}
	wantLow := []bool{false, true, true, true, true} // remaining 4, 3, 2, 1, 0
	for i, code := range enr.Codes {
		if _, err := f.Verify(ctx, "alice", code); err != nil {
			t.Fatal(err)
		}
		st, err := f.Status(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if *st.Remaining != 4-i || st.Low != wantLow[i] {
			t.Fatalf("after %d uses: remaining %d low %v, want %d %v", i+1, *st.Remaining, st.Low, 4-i, wantLow[i])
		}
	}
}

func TestRegenerateReplacesSet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mem := factortest.NewMem()
	f := newFactor(t, mem, factortest.NewClock())
	first, err := f.BeginEnrolment(ctx, "alice", factors.EnrolRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Verify(ctx, "alice", first.Codes[0]); err != nil {
		t.Fatal(err)
	}
	second, err := f.BeginEnrolment(ctx, "alice", factors.EnrolRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !second.Replaced || second.CredentialID != first.CredentialID {
		t.Fatalf("regeneration = %+v, want Replaced on the same credential", second)
	}
	for _, code := range first.Codes[1:] {
		if _, err := f.Verify(ctx, "alice", code); !errors.Is(err, factors.ErrInvalidCode) {
			t.Fatalf("old code after regeneration: %v, want ErrInvalidCode", err)
		}
	}
	if _, err := f.Verify(ctx, "alice", second.Codes[0]); err != nil {
		t.Fatalf("new code: %v", err)
	}
	st, _ := f.Status(ctx, "alice")
	if *st.Remaining != 9 {
		t.Fatalf("remaining = %d, want 9", *st.Remaining)
	}
}

func TestReset(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFactor(t, factortest.NewMem(), factortest.NewClock())
	if err := f.Reset(ctx, "alice"); !errors.Is(err, factors.ErrNotEnrolled) {
		t.Fatalf("Reset without set: %v", err)
	}
	enr, err := f.BeginEnrolment(ctx, "alice", factors.EnrolRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Reset(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Verify(ctx, "alice", enr.Codes[0]); !errors.Is(err, factors.ErrNotEnrolled) {
		t.Fatalf("Verify after reset: %v", err)
	}
}

func TestStoreDown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mem := factortest.NewMem()
	f := newFactor(t, mem, factortest.NewClock())
	enr, err := f.BeginEnrolment(ctx, "alice", factors.EnrolRequest{})
	if err != nil {
		t.Fatal(err)
	}
	mem.SetDown(true)
	_, err = f.Verify(ctx, "alice", enr.Codes[0])
	if err == nil || errors.Is(err, factors.ErrInvalidCode) || errors.Is(err, factors.ErrNotEnrolled) || !errors.Is(err, factortest.ErrDown) {
		t.Fatalf("Verify with store down = %v, want the store error and no factor sentinel", err)
	}
}

// raceOneCode verifies one code from 50 goroutines at once: exactly one
// may win, every other must get ErrReplay.
func raceOneCode(t *testing.T, creds store.Credentials) {
	t.Helper()
	ctx := context.Background()
	f := newFactor(t, creds, factortest.NewClock())
	enr, err := f.BeginEnrolment(ctx, "alice", factors.EnrolRequest{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			_, errs[i] = f.Verify(ctx, "alice", enr.Codes[3])
		})
	}
	close(start)
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, factors.ErrReplay):
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of %d concurrent verifications of one code succeeded, want exactly 1", wins, n)
	}
	st, err := f.Status(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if *st.Remaining != 9 {
		t.Fatalf("remaining = %d, want 9", *st.Remaining)
	}
}

func TestConcurrentUseMem(t *testing.T) {
	t.Parallel()
	raceOneCode(t, factortest.NewMem())
}

func TestConcurrentUseSQLite(t *testing.T) {
	t.Parallel()
	raceOneCode(t, factortest.SQLite(t))
}

func TestConcurrentUsePostgres(t *testing.T) {
	t.Parallel()
	raceOneCode(t, factortest.Postgres(t))
}

func TestConcurrentGenerate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := factortest.SQLite(t)
	f := newFactor(t, s, factortest.NewClock())
	var wg sync.WaitGroup
	sets := make([]factors.Enrolment, 8)
	errs := make([]error, len(sets))
	for i := range sets {
		wg.Go(func() { sets[i], errs[i] = f.BeginEnrolment(ctx, "alice", factors.EnrolRequest{}) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	creds, err := s.ListCredentials(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(creds) != 1 {
		t.Fatalf("%d credentials after concurrent generation, want 1", len(creds))
	}
	// Exactly one of the generated sets is the live one.
	live := 0
	for _, set := range sets {
		if _, err := f.Verify(ctx, "alice", set.Codes[0]); err == nil {
			live++
		}
	}
	if live != 1 {
		t.Fatalf("%d sets are live, want 1", live)
	}
}

func BenchmarkVerifySetOf10(b *testing.B) {
	ctx := context.Background()
	clock := factortest.NewClock()
	f := newFactor(b, factortest.NewMem(), clock)
	enr, err := f.BeginEnrolment(ctx, "alice", factors.EnrolRequest{})
	if err != nil {
		b.Fatal(err)
	}
	// The worst case: the code matches nothing, every MAC is computed.
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Verify(ctx, "alice", "00000-00000"); !errors.Is(err, factors.ErrInvalidCode) {
			b.Fatal(err)
		}
	}
	_ = enr
}
