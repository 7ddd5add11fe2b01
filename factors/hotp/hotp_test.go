package hotp

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/factors/internal/factortest"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// rfcSecret is RFC 4226 Appendix D's secret; rfcCodes its codes for
// counters 0..9.
var (
	rfcSecret = []byte("12345678901234567890")
	rfcCodes  = []string{"755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"}
)

// newRFCFactor enrols "alice" with the RFC secret (the random source
// yields exactly it) and returns the factor and the store.
func newRFCFactor(t testing.TB, creds store.Credentials, mod func(*Config)) (*Factor, factors.Enrolment) {
	t.Helper()
	cfg := Config{Now: factortest.NewClock().Now, Rand: io.MultiReader(bytes.NewReader(rfcSecret), rand.Reader)}
	if mod != nil {
		mod(&cfg)
	}
	f, err := New(cfg, creds, factortest.Keyring(t))
	if err != nil {
		t.Fatal(err)
	}
	enr, err := f.BeginEnrolment(context.Background(), "alice", factors.EnrolRequest{AccountName: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	return f, enr
}

func TestRFC4226ThroughTheFactor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mem := factortest.NewMem()
	f, enr := newRFCFactor(t, mem, nil)
	if enr.Secret != "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" {
		t.Fatalf("secret %q is not the RFC seed", enr.Secret)
	}
	if _, err := f.Verify(ctx, "alice", rfcCodes[0]); !errors.Is(err, factors.ErrNotEnrolled) {
		t.Fatalf("verify while pending: %v", err)
	}
	if _, err := f.ConfirmEnrolment(ctx, "alice", rfcCodes[0]); err != nil {
		t.Fatalf("confirm with counter 0: %v", err)
	}
	for i := 1; i < len(rfcCodes); i++ {
		res, err := f.Verify(ctx, "alice", rfcCodes[i])
		if err != nil {
			t.Fatalf("counter %d (%s): %v", i, rfcCodes[i], err)
		}
		if res.Method != "hotp" || res.CredentialID != enr.CredentialID {
			t.Fatalf("Result = %+v", res)
		}
		if c := mem.Credential(t, enr.CredentialID); c.Counter != int64(i+1) {
			t.Fatalf("after counter %d the stored counter is %d", i, c.Counter)
		}
	}
}

func TestLookAheadAndNoReplay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mem := factortest.NewMem()
	f, enr := newRFCFactor(t, mem, func(c *Config) { c.LookAhead = 3 })
	if _, err := f.ConfirmEnrolment(ctx, "alice", rfcCodes[0]); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		code        string
		want        error
		wantCounter int64
	}{
		{"used code", rfcCodes[0], factors.ErrInvalidCode, 1},
		{"beyond the window (counter 5, window 1..4)", rfcCodes[5], factors.ErrInvalidCode, 1},
		{"skip ahead within the window: resync", rfcCodes[4], nil, 5},
		{"skipped code is never tried", rfcCodes[2], factors.ErrInvalidCode, 5},
		{"same code again", rfcCodes[4], factors.ErrInvalidCode, 5},
		{"next", rfcCodes[5], nil, 6},
		{"malformed", "75522", factors.ErrInvalidCode, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.Verify(ctx, "alice", tc.code)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
			if c := mem.Credential(t, enr.CredentialID); c.Counter != tc.wantCounter {
				t.Fatalf("counter = %d, want %d", c.Counter, tc.wantCounter)
			}
		})
	}
}

func TestConcurrentUseOfOneCode(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, _ := newRFCFactor(t, factortest.SQLite(t), nil)
	if _, err := f.ConfirmEnrolment(ctx, "alice", rfcCodes[0]); err != nil {
		t.Fatal(err)
	}
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { _, errs[i] = f.Verify(ctx, "alice", rfcCodes[1]) })
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, factors.ErrReplay), errors.Is(err, factors.ErrInvalidCode):
		default:
			t.Fatalf("unexpected: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d wins, want exactly 1", wins)
	}
}

func TestEnrolmentRules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, enr := newRFCFactor(t, factortest.NewMem(), nil)
	u, err := url.Parse(enr.URI)
	if err != nil {
		t.Fatal(err)
	}
	if u.Host != "hotp" || u.Query().Get("counter") != "0" || u.Query().Get("secret") != enr.Secret {
		t.Fatalf("URI %q lacks hotp, counter=0 or the secret", enr.URI)
	}
	again, err := f.PendingEnrolment(ctx, "alice")
	if err != nil || again.URI != enr.URI || !bytes.Equal(again.QRPNG, enr.QRPNG) {
		t.Fatalf("PendingEnrolment = %+v, %v; want the same URI and QR code", again, err)
	}
	if _, err := f.ConfirmEnrolment(ctx, "alice", rfcCodes[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := f.PendingEnrolment(ctx, "alice"); !errors.Is(err, factors.ErrAlreadyEnrolled) {
		t.Fatalf("PendingEnrolment after confirmation: %v", err)
	}
	if _, err := f.BeginEnrolment(ctx, "alice", factors.EnrolRequest{}); !errors.Is(err, factors.ErrAlreadyEnrolled) {
		t.Fatalf("enrol over active: %v", err)
	}
	if _, err := f.ConfirmEnrolment(ctx, "alice", rfcCodes[1]); !errors.Is(err, factors.ErrAlreadyEnrolled) {
		t.Fatalf("confirm when active: %v", err)
	}
	st, err := f.Status(ctx, "alice")
	if err != nil || st.State != factors.StateActive {
		t.Fatalf("status = %+v, %v", st, err)
	}
	if err := f.Reset(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Verify(ctx, "alice", rfcCodes[1]); !errors.Is(err, factors.ErrNotEnrolled) {
		t.Fatalf("after reset: %v", err)
	}
}

// TestAuthenticatorApp: the QR code read by zbarimg, codes computed by
// oathtool in counter mode, as a hardware token or app would.
func TestAuthenticatorApp(t *testing.T) {
	t.Parallel()
	zbarimg := factortest.RequireTool(t, "zbarimg", "zbar-tools")
	oathtool := factortest.RequireTool(t, "oathtool", "oathtool")
	ctx := context.Background()
	f, err := New(Config{Now: factortest.NewClock().Now}, factortest.NewMem(), factortest.Keyring(t))
	if err != nil {
		t.Fatal(err)
	}
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
	u, err := url.Parse(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	counter, err := strconv.Atoi(u.Query().Get("counter"))
	if err != nil {
		t.Fatalf("QR URI %q has no counter", u)
	}
	code := func(c int) string {
		out, err := exec.CommandContext(ctx, oathtool, "--hotp", "-c", strconv.Itoa(c), "-b", u.Query().Get("secret")).Output()
		if err != nil {
			t.Fatalf("oathtool: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	first := code(counter)
	if _, err := f.ConfirmEnrolment(ctx, "alice", first); err != nil {
		t.Fatalf("confirm with the app's first code: %v", err)
	}
	if _, err := f.Verify(ctx, "alice", first); !errors.Is(err, factors.ErrInvalidCode) {
		t.Fatalf("first code again: %v, want refusal", err)
	}
	if _, err := f.Verify(ctx, "alice", code(counter+1)); err != nil {
		t.Fatalf("next code: %v", err)
	}
}
