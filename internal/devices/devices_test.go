package devices_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/internal/devices"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
	"github.com/stepup-bridge/stepup-bridge/internal/store/sqlite"
)

const (
	firefoxLinux = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	chromeMac    = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
)

type fixture struct {
	svc   *devices.Service
	store *sqlite.Store
	now   time.Time
}

func newFixture(t *testing.T, mutate func(*devices.Config)) *fixture {
	t.Helper()
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "d.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	f := &fixture{store: st, now: time.Unix(1700000000, 0)}
	cfg := devices.Config{Store: st, Audit: st, Key: devices.KeyFromPepper([]byte("0123456789abcdef0123456789abcdef")),
		TTL: 24 * time.Hour, Now: func() time.Time { return f.now }}
	if mutate != nil {
		mutate(&cfg)
	}
	f.svc, err = devices.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestCheck(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// prepare acts between Trust and Check and returns what Check is
		// given.
		prepare func(t *testing.T, f *fixture, iss devices.Issued) (user, token, ua string)
		trusted bool
		reason  string
	}{
		{"same user and device", func(t *testing.T, f *fixture, iss devices.Issued) (string, string, string) {
			return "alice", iss.Token, firefoxLinux
		}, true, ""},
		{"a browser update keeps the device", func(t *testing.T, f *fixture, iss devices.Issued) (string, string, string) {
			return "alice", iss.Token, strings.ReplaceAll(firefoxLinux, "128.0", "130.0")
		}, true, ""},
		{"another user", func(t *testing.T, f *fixture, iss devices.Issued) (string, string, string) {
			return "bob", iss.Token, firefoxLinux
		}, false, ""},
		{"another kind of device", func(t *testing.T, f *fixture, iss devices.Issued) (string, string, string) {
			return "alice", iss.Token, chromeMac
		}, false, "other_device"},
		{"expired", func(t *testing.T, f *fixture, iss devices.Issued) (string, string, string) {
			f.now = f.now.Add(24 * time.Hour)
			return "alice", iss.Token, firefoxLinux
		}, false, "expired"},
		{"revoked", func(t *testing.T, f *fixture, iss devices.Issued) (string, string, string) {
			if err := f.svc.Revoke(ctx, "alice", iss.Device.ID, devices.RevokedByUser, devices.Meta{}); err != nil {
				t.Fatal(err)
			}
			return "alice", iss.Token, firefoxLinux
		}, false, "revoked"},
		{"secret changed", func(t *testing.T, f *fixture, iss devices.Issued) (string, string, string) {
			b := []byte(iss.Token)
			b[len(b)-2] ^= 1
			return "alice", string(b), firefoxLinux
		}, false, ""},
		{"malformed", func(t *testing.T, f *fixture, iss devices.Issued) (string, string, string) {
			return "alice", iss.Token + "x", firefoxLinux
		}, false, ""},
		{"empty", func(t *testing.T, f *fixture, iss devices.Issued) (string, string, string) {
			return "alice", "", firefoxLinux
		}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			iss, err := f.svc.Trust(ctx, "alice", firefoxLinux, devices.Meta{IP: "192.0.2.1"})
			if err != nil {
				t.Fatal(err)
			}
			if !devices.ValidTokenShape(iss.Token) || iss.Device.Label != "Firefox on Linux" {
				t.Fatalf("issued %+v", iss.Device)
			}
			user, tok, ua := tt.prepare(t, f, iss)
			d, err := f.svc.Check(ctx, user, tok, ua, devices.Meta{})
			if tt.trusted {
				if err != nil || d.ID != iss.Device.ID || !d.LastUsedAt.Equal(f.now) {
					t.Fatalf("Check = %+v, %v; want the device, used now", d, err)
				}
				return
			}
			if !errors.Is(err, devices.ErrUntrusted) {
				t.Fatalf("Check = %+v, %v; want ErrUntrusted", d, err)
			}
			if tt.reason != "" {
				evs, _ := f.store.ListAudit(ctx, store.AuditQuery{Types: []string{devices.AuditRefused}})
				if len(evs) != 1 || evs[0].Details["reason"] != tt.reason {
					t.Fatalf("refusal audit = %+v, want reason %s", evs, tt.reason)
				}
			}
		})
	}
}

func TestTokenIsHashedAndNeverAudited(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	iss, err := f.svc.Trust(ctx, "alice", firefoxLinux, devices.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Check(ctx, "alice", iss.Token, firefoxLinux, devices.Meta{}); err != nil {
		t.Fatal(err)
	}
	secret := iss.Token[strings.LastIndex(iss.Token, ".")+1:]
	d, err := f.store.GetDevice(ctx, iss.Device.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Hash) != 32 || strings.Contains(string(d.Hash), secret) {
		t.Fatalf("stored hash %x", d.Hash)
	}
	evs, _ := f.store.ListAudit(ctx, store.AuditQuery{})
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
		for _, v := range e.Details {
			if strings.Contains(v, secret) {
				t.Fatalf("audit event %s carries the secret", e.Type)
			}
		}
	}
	if strings.Join(types, ",") != "device.trusted,device.used" {
		t.Fatalf("audit types = %v", types)
	}
}

func TestLimitAndRevokeAll(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, func(c *devices.Config) { c.MaxPerUser = 2 })
	var issued []devices.Issued
	for range 3 {
		iss, err := f.svc.Trust(ctx, "alice", firefoxLinux, devices.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		issued = append(issued, iss)
		f.now = f.now.Add(time.Second)
	}
	list, err := f.svc.List(ctx, "alice")
	if err != nil || len(list) != 2 || list[0].ID != issued[1].Device.ID {
		t.Fatalf("List = %+v, %v; want the two newest", list, err)
	}
	if _, err := f.svc.Check(ctx, "alice", issued[0].Token, firefoxLinux, devices.Meta{}); !errors.Is(err, devices.ErrUntrusted) {
		t.Fatalf("device beyond the limit still trusted: %v", err)
	}
	if err := f.svc.Revoke(ctx, "bob", issued[1].Device.ID, devices.RevokedByUser, devices.Meta{}); !errors.Is(err, devices.ErrNotFound) {
		t.Fatalf("bob revoked alice's device: %v", err)
	}
	n, err := f.svc.RevokeAll(ctx, "alice", devices.RevokedByFactorChange, devices.Meta{})
	if err != nil || n != 2 {
		t.Fatalf("RevokeAll = %d, %v", n, err)
	}
	for _, iss := range issued {
		if _, err := f.svc.Check(ctx, "alice", iss.Token, firefoxLinux, devices.Meta{}); !errors.Is(err, devices.ErrUntrusted) {
			t.Fatalf("revoked device trusted: %v", err)
		}
	}
	if list, _ := f.svc.List(ctx, "alice"); len(list) != 0 {
		t.Fatalf("List after RevokeAll = %+v", list)
	}
}

func TestLabel(t *testing.T) {
	for _, tt := range []struct{ ua, want string }{
		{firefoxLinux, "Firefox on Linux"},
		{chromeMac, "Chrome on macOS"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36 Edg/126.0", "Edge on Windows"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1", "Safari on iOS"},
		{"curl/8.5.0", "curl"},
		{"", "Unknown device"},
		{"<script>alert(1)</script>", "Unknown device"},
	} {
		t.Run(tt.want, func(t *testing.T) {
			if got := devices.Label(tt.ua); got != tt.want {
				t.Fatalf("Label(%q) = %q, want %q", tt.ua, got, tt.want)
			}
		})
	}
}

// TestFactorChangesRevoke: every audited factor change of the user revokes
// their devices; other events and other users do not.
func TestFactorChangesRevoke(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		event  store.AuditEvent
		revoke bool
	}{
		{store.AuditEvent{Type: "factor.enrol", Outcome: "success", Details: map[string]string{"pending": "false"}}, true},
		{store.AuditEvent{Type: "factor.enrol", Outcome: "success", Details: map[string]string{"pending": "true"}}, false},
		{store.AuditEvent{Type: "factor.confirm", Outcome: "success"}, true},
		{store.AuditEvent{Type: "factor.confirm", Outcome: "failure"}, false},
		{store.AuditEvent{Type: "factor.change", Outcome: "success"}, true},
		{store.AuditEvent{Type: "factor.reset", Outcome: "success"}, true},
		{store.AuditEvent{Type: "admin.reset", Outcome: "success", Actor: "admin-1"}, true},
		{store.AuditEvent{Type: "stepup.success", Outcome: "success"}, false},
		{store.AuditEvent{Type: "lockout", Outcome: "locked"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.event.Type+"/"+tt.event.Outcome+"/"+tt.event.Details["pending"], func(t *testing.T) {
			f := newFixture(t, nil)
			iss, err := f.svc.Trust(ctx, "alice", firefoxLinux, devices.Meta{})
			if err != nil {
				t.Fatal(err)
			}
			bob, err := f.svc.Trust(ctx, "bob", firefoxLinux, devices.Meta{})
			if err != nil {
				t.Fatal(err)
			}
			e := tt.event
			e.UserID = "alice"
			f.svc.FromAudit(ctx, e)
			_, err = f.svc.Check(ctx, "alice", iss.Token, firefoxLinux, devices.Meta{})
			if revoked := errors.Is(err, devices.ErrUntrusted); revoked != tt.revoke {
				t.Fatalf("revoked = %v (%v), want %v", revoked, err, tt.revoke)
			}
			if _, err := f.svc.Check(ctx, "bob", bob.Token, firefoxLinux, devices.Meta{}); err != nil {
				t.Fatalf("bob's device was touched: %v", err)
			}
			if tt.revoke {
				d, _ := f.store.GetDevice(ctx, iss.Device.ID)
				want := devices.RevokedByFactorChange
				if e.Type == "admin.reset" {
					want = devices.RevokedByAdmin
				}
				if d.RevokedBy != want {
					t.Fatalf("RevokedBy = %q, want %q", d.RevokedBy, want)
				}
			}
		})
	}
}

// BenchmarkCheck is one trusted-device login check on SQLite: parse, read,
// HMAC, record the use, audit.
func BenchmarkCheck(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(b.TempDir(), "d.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	svc, err := devices.New(devices.Config{Store: st, Audit: st, Key: devices.KeyFromPepper([]byte("0123456789abcdef0123456789abcdef"))})
	if err != nil {
		b.Fatal(err)
	}
	iss, err := svc.Trust(ctx, "alice", firefoxLinux, devices.Meta{})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := svc.Check(ctx, "alice", iss.Token, firefoxLinux, devices.Meta{}); err != nil {
			b.Fatal(err)
		}
	}
}
