package totp

import (
	"bytes"
	"context"
	"encoding/base32"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/factors/internal/factortest"
	"github.com/stepup-bridge/stepup-bridge/factors/internal/otpcore"
	"github.com/stepup-bridge/stepup-bridge/internal/keyring"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

func newFactor(t testing.TB, creds store.Credentials, kr *keyring.Keyring, clock *factortest.Clock) *Factor {
	t.Helper()
	f, err := New(Config{Now: clock.Now}, creds, kr)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// codeAt computes the code an app shows at t for an enrolment's secret.
func codeAt(t testing.TB, enr factors.Enrolment, at time.Time) string {
	t.Helper()
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(enr.Secret)
	if err != nil {
		t.Fatal(err)
	}
	c, err := otpcore.Code(otpcore.Secret{Key: key, Algorithm: "SHA1", Digits: 6, Period: 30}, uint64(at.Unix())/30)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func enrolConfirmed(t testing.TB, f *Factor, user string, clock *factortest.Clock) factors.Enrolment {
	t.Helper()
	ctx := context.Background()
	enr, err := f.BeginEnrolment(ctx, user, factors.EnrolRequest{AccountName: user + "@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ConfirmEnrolment(ctx, user, codeAt(t, enr, clock.Now())); err != nil {
		t.Fatal(err)
	}
	return enr
}

func TestEnrolment(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mem := factortest.NewMem()
	clock := factortest.NewClock()
	f := newFactor(t, mem, factortest.Keyring(t), clock)
	enr, err := f.BeginEnrolment(ctx, "alice", factors.EnrolRequest{AccountName: "alice@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if !enr.Pending || enr.Factor != "totp" {
		t.Fatalf("enrolment = %+v, want pending totp", enr)
	}
	u, err := url.Parse(enr.URI)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Scheme != "otpauth" || u.Host != "totp" || u.Path != "/stepup-bridge:alice@example.com" ||
		q.Get("secret") != enr.Secret || q.Get("issuer") != "stepup-bridge" ||
		q.Get("algorithm") != "SHA1" || q.Get("digits") != "6" || q.Get("period") != "30" {
		t.Fatalf("URI %q does not carry the expected parameters", enr.URI)
	}
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(enr.Secret)
	if err != nil || len(raw) != 20 {
		t.Fatalf("secret %q: %d bytes, %v; want 160 bits", enr.Secret, len(raw), err)
	}
	if !bytes.HasPrefix(enr.QRPNG, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatal("QRPNG is not a PNG")
	}
	c := mem.Credential(t, enr.CredentialID)
	if c.Status != store.StatusPending || bytes.Contains(c.Data, raw) || bytes.Contains(c.Data, []byte(enr.Secret)) {
		t.Fatalf("stored credential is not pending or holds the secret in clear: %+v", c)
	}
	again, err := f.PendingEnrolment(ctx, "alice")
	if err != nil || again.URI != enr.URI || !bytes.Equal(again.QRPNG, enr.QRPNG) || again.Secret != enr.Secret {
		t.Fatalf("PendingEnrolment = %+v, %v; want the same URI, secret and QR code", again, err)
	}
	if _, err := f.PendingEnrolment(ctx, "bob"); !errors.Is(err, factors.ErrNotEnrolled) {
		t.Fatalf("PendingEnrolment without enrolment: %v", err)
	}
	code := codeAt(t, enr, clock.Now())
	if _, err := f.Verify(ctx, "alice", code); !errors.Is(err, factors.ErrNotEnrolled) {
		t.Fatalf("Verify of a pending enrolment: %v, want ErrNotEnrolled", err)
	}
	st, _ := f.Status(ctx, "alice")
	if st.State != factors.StatePending {
		t.Fatalf("status = %+v, want pending", st)
	}
	if _, err := f.ConfirmEnrolment(ctx, "alice", "000000"); !errors.Is(err, factors.ErrInvalidCode) {
		t.Fatalf("confirm with a wrong code: %v", err)
	}
	res, err := f.ConfirmEnrolment(ctx, "alice", code)
	if err != nil {
		t.Fatal(err)
	}
	if res != (factors.Result{Method: "totp", Level: "2", At: clock.Now(), CredentialID: enr.CredentialID}) {
		t.Fatalf("Result = %+v", res)
	}
	if _, err := f.Verify(ctx, "alice", code); !errors.Is(err, factors.ErrReplay) {
		t.Fatalf("the confirming code again: %v, want ErrReplay", err)
	}
	if _, err := f.ConfirmEnrolment(ctx, "alice", code); !errors.Is(err, factors.ErrAlreadyEnrolled) {
		t.Fatalf("second confirmation: %v, want ErrAlreadyEnrolled", err)
	}
	if _, err := f.PendingEnrolment(ctx, "alice"); !errors.Is(err, factors.ErrAlreadyEnrolled) {
		t.Fatalf("PendingEnrolment after confirmation: %v, want ErrAlreadyEnrolled (never shown again)", err)
	}
	if _, err := f.BeginEnrolment(ctx, "alice", factors.EnrolRequest{}); !errors.Is(err, factors.ErrAlreadyEnrolled) {
		t.Fatalf("enrolment over an active one: %v, want ErrAlreadyEnrolled", err)
	}
	st, _ = f.Status(ctx, "alice")
	if st.State != factors.StateActive || !st.LastUsedAt.Equal(clock.Now()) {
		t.Fatalf("status = %+v, want active, last used now", st)
	}
}

func TestPendingEnrolmentIsReplaced(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := factortest.NewClock()
	f := newFactor(t, factortest.NewMem(), factortest.Keyring(t), clock)
	first, err := f.BeginEnrolment(ctx, "alice", factors.EnrolRequest{})
	if err != nil {
		t.Fatal(err)
	}
	second, err := f.BeginEnrolment(ctx, "alice", factors.EnrolRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if first.Secret == second.Secret {
		t.Fatal("a new enrolment reused the secret")
	}
	if _, err := f.ConfirmEnrolment(ctx, "alice", codeAt(t, first, clock.Now())); !errors.Is(err, factors.ErrInvalidCode) {
		t.Fatalf("confirming with the abandoned secret: %v", err)
	}
	if _, err := f.ConfirmEnrolment(ctx, "alice", codeAt(t, second, clock.Now())); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyWindowAndReplay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := factortest.NewClock()
	f := newFactor(t, factortest.NewMem(), factortest.Keyring(t), clock)
	enr, err := f.BeginEnrolment(ctx, "alice", factors.EnrolRequest{})
	if err != nil {
		t.Fatal(err)
	}
	now := clock.Now()
	step := 30 * time.Second
	// Confirm with the previous step's code (the app's clock is behind).
	if _, err := f.ConfirmEnrolment(ctx, "alice", codeAt(t, enr, now.Add(-step))); err != nil {
		t.Fatalf("code of the previous step: %v", err)
	}
	for _, tc := range []struct {
		name string
		at   time.Time
		want error
	}{
		{"same step again", now.Add(-step), factors.ErrReplay},
		{"two steps back", now.Add(-2 * step), factors.ErrInvalidCode},
		{"current step", now, nil},
		{"current step again", now, factors.ErrReplay},
		{"next step (app ahead)", now.Add(step), nil},
		{"current step after the next was used", now, factors.ErrReplay},
		{"two steps ahead", now.Add(2 * step), factors.ErrInvalidCode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.Verify(ctx, "alice", codeAt(t, enr, tc.at))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
	// Time moves on: the code of two steps later is now current and fresh.
	clock.Advance(2 * step)
	if _, err := f.Verify(ctx, "alice", codeAt(t, enr, clock.Now())); err != nil {
		t.Fatalf("next period: %v", err)
	}
	for _, bad := range []string{"", "12345", "abcdef", "1234567"} {
		if _, err := f.Verify(ctx, "alice", bad); !errors.Is(err, factors.ErrInvalidCode) {
			t.Fatalf("Verify(%q) = %v, want ErrInvalidCode", bad, err)
		}
	}
	if _, err := f.Verify(ctx, "bob", "123456"); !errors.Is(err, factors.ErrNotEnrolled) {
		t.Fatalf("unknown user: %v", err)
	}
}

func TestStrictTime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := factortest.NewClock()
	f, err := New(Config{Now: clock.Now, StrictTime: true}, factortest.NewMem(), factortest.Keyring(t))
	if err != nil {
		t.Fatal(err)
	}
	enr, err := f.BeginEnrolment(ctx, "alice", factors.EnrolRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ConfirmEnrolment(ctx, "alice", codeAt(t, enr, clock.Now().Add(-30*time.Second))); !errors.Is(err, factors.ErrInvalidCode) {
		t.Fatalf("previous step without skew: %v", err)
	}
}

// TestReplayAcrossReplicas: two factor instances (two replicas) on one
// SQLite file, 20 concurrent submissions of one code: exactly one wins.
func TestReplayAcrossReplicas(t *testing.T) {
	t.Parallel()
	s := factortest.SQLite(t)
	replayAcrossReplicas(t, s, s)
}

// TestReplayAcrossReplicasPostgres: the same with two connection pools on
// one PostgreSQL schema, as two replicas have.
func TestReplayAcrossReplicasPostgres(t *testing.T) {
	t.Parallel()
	dsn := factortest.PostgresDSN(t)
	replayAcrossReplicas(t, factortest.OpenPostgres(t, dsn), factortest.OpenPostgres(t, dsn))
}

func replayAcrossReplicas(t *testing.T, s1, s2 store.Credentials) {
	t.Helper()
	ctx := context.Background()
	clock := factortest.NewClock()
	kr := factortest.Keyring(t)
	a := newFactor(t, s1, kr, clock)
	b := newFactor(t, s2, kr, clock)
	enr := enrolConfirmed(t, a, "alice", clock)
	clock.Advance(30 * time.Second)
	code := codeAt(t, enr, clock.Now())
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		f := a
		if i%2 == 1 {
			f = b
		}
		wg.Go(func() { _, errs[i] = f.Verify(ctx, "alice", code) })
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, factors.ErrReplay):
		default:
			t.Fatalf("unexpected: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d wins, want exactly 1", wins)
	}
}

// TestCopiedRowDoesNotDecrypt: a secret copied into another user's row is
// useless there.
func TestCopiedRowDoesNotDecrypt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := factortest.NewClock()
	mem := factortest.NewMem()
	f := newFactor(t, mem, factortest.Keyring(t), clock)
	alice := enrolConfirmed(t, f, "alice", clock)
	enrolConfirmed(t, f, "mallory", clock)
	stolen := mem.Credential(t, alice.CredentialID).Data
	if _, err := mem.UpdateCredential(ctx, factors.CredentialID("totp", "mallory"), func(c store.Credential) (store.Credential, error) {
		c.Data = stolen
		return c, nil
	}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	_, err := f.Verify(ctx, "mallory", codeAt(t, alice, clock.Now()))
	if err == nil || !errors.Is(err, keyring.ErrDecrypt) {
		t.Fatalf("verify with a copied secret: %v, want a decryption failure", err)
	}
}

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := factortest.NewClock()
	mem := factortest.NewMem()
	oldKey := keyring.Key{ID: "2024", Key: bytes.Repeat([]byte{1}, 32)}
	newKey := keyring.Key{ID: "2025", Key: bytes.Repeat([]byte{2}, 32)}
	oldRing, _ := keyring.New([]keyring.Key{oldKey}, keyring.Options{})
	rotated, _ := keyring.New([]keyring.Key{newKey, oldKey}, keyring.Options{})
	enr := enrolConfirmed(t, newFactor(t, mem, oldRing, clock), "alice", clock)
	if id, _ := keyring.KeyID(mem.Credential(t, enr.CredentialID).Data); id != "2024" {
		t.Fatalf("enrolled under %q", id)
	}
	clock.Advance(30 * time.Second)
	if _, err := newFactor(t, mem, rotated, clock).Verify(ctx, "alice", codeAt(t, enr, clock.Now())); err != nil {
		t.Fatalf("verify after rotation: %v", err)
	}
	if id, _ := keyring.KeyID(mem.Credential(t, enr.CredentialID).Data); id != "2025" {
		t.Fatalf("after a verification under the rotated ring the secret is under %q, want 2025", id)
	}
}

func TestReset(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := factortest.NewClock()
	f := newFactor(t, factortest.NewMem(), factortest.Keyring(t), clock)
	enrolConfirmed(t, f, "alice", clock)
	if err := f.Reset(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := f.Reset(ctx, "alice"); !errors.Is(err, factors.ErrNotEnrolled) {
		t.Fatalf("second reset: %v", err)
	}
	enrolConfirmed(t, f, "alice", clock)
}

// TestAuthenticatorApp enrols as a user with a phone would: the QR code is
// decoded by zbarimg, the code computed by oathtool from what the QR code
// says, the enrolment confirmed with it, and the same code refused the
// second time.
func TestAuthenticatorApp(t *testing.T) {
	t.Parallel()
	zbarimg := factortest.RequireTool(t, "zbarimg", "zbar-tools")
	oathtool := factortest.RequireTool(t, "oathtool", "oathtool")
	ctx := context.Background()
	clock := factortest.NewClock()
	f := newFactor(t, factortest.NewMem(), factortest.Keyring(t), clock)
	enr, err := f.BeginEnrolment(ctx, "alice", factors.EnrolRequest{AccountName: "alice@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	png := filepath.Join(t.TempDir(), "qr.png")
	if err := os.WriteFile(png, enr.QRPNG, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, zbarimg, "-q", "--raw", png).Output()
	if err != nil {
		t.Fatalf("zbarimg: %v", err)
	}
	scanned := strings.TrimSpace(string(out))
	if scanned != enr.URI {
		t.Fatalf("QR code says %q, enrolment URI is %q", scanned, enr.URI)
	}
	u, err := url.Parse(scanned)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	args := []string{"--totp=" + strings.ToLower(q.Get("algorithm")), "-d", q.Get("digits"), "-s", q.Get("period") + "s",
		"--now", "@" + strconv.FormatInt(clock.Now().Unix(), 10), "-b", q.Get("secret")}
	out, err = exec.CommandContext(ctx, oathtool, args...).Output()
	if err != nil {
		t.Fatalf("oathtool %v: %v", args, err)
	}
	code := strings.TrimSpace(string(out))
	if len(code) != 6 {
		t.Fatalf("oathtool printed %q", code)
	}
	if _, err := f.ConfirmEnrolment(ctx, "alice", code); err != nil {
		t.Fatalf("confirming with the app's code %s: %v", code, err)
	}
	if _, err := f.Verify(ctx, "alice", code); !errors.Is(err, factors.ErrReplay) {
		t.Fatalf("the app's code a second time: %v, want ErrReplay", err)
	}
}

func BenchmarkVerify(b *testing.B) {
	ctx := context.Background()
	clock := factortest.NewClock()
	f := newFactor(b, factortest.NewMem(), factortest.Keyring(b), clock)
	enr := enrolConfirmed(b, f, "alice", clock)
	for b.Loop() {
		// A fresh window each time (three steps on: the skew window of the
		// last check ends one step after it), so every verification is
		// accepted and written, as in production, even when two steps'
		// codes happen to collide.
		clock.Advance(90 * time.Second)
		if _, err := f.Verify(ctx, "alice", codeAt(b, enr, clock.Now())); err != nil {
			b.Fatal(err)
		}
	}
}
