package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stepup-bridge/stepup-bridge/config"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
	"github.com/stepup-bridge/stepup-bridge/internal/store/sqlite"
	"github.com/stepup-bridge/stepup-bridge/internal/token"
)

var testNow = time.Unix(1700000000, 0)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openLeases(t *testing.T) store.Leases {
	t.Helper()
	s, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "leases.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newTestBridge(t *testing.T, f *fakeKeycloak, c *clock, leases store.Leases, mod func(*Config)) *Bridge {
	t.Helper()
	cfg := Config{
		BaseURL: f.srv.URL, Realm: "demo", ClientID: "web", ClientSecret: "p%ss+w&rd",
		AdminClientID: "sidecar-admin", AdminClientSecret: f.adminSecret,
		Now: c.Now, Leases: leases, MaxEntries: 5, Timeout: 2 * time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no base url", Config{Realm: "demo"}},
		{"not http", Config{BaseURL: "ftp://kc", Realm: "demo"}},
		{"no realm", Config{BaseURL: "https://kc"}},
		{"admin without secret", Config{BaseURL: "https://kc", Realm: "demo", AdminClientID: "a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := New(tc.cfg); err == nil {
				t.Fatal("New accepted an incomplete config")
			}
		})
	}
}

func TestPasswordLogin(t *testing.T) {
	t.Parallel()
	f := newFakeKeycloak(t)
	f.addUser("u1", "alice", "right", nil)
	f.addUser("u2", "bob", "right", nil)
	f.users["u2"]["enabled"] = false
	f.addUser("u3", "carol", "right", nil)
	f.users["u3"]["requiredActions"] = []any{"UPDATE_PASSWORD"}
	f.addUser("u4", "dave", "right", nil)
	f.locked["u4"] = true
	b := newTestBridge(t, f, &clock{t: testNow}, nil, nil)

	tests := []struct {
		user, pass string
		want       error
	}{
		{"alice", "right", nil},
		{"alice", "wrong", ErrInvalidCredentials},
		{"nobody", "right", ErrInvalidCredentials},
		{"bob", "right", ErrAccountDisabled},
		{"carol", "right", ErrAccountNotSetUp},
		{"dave", "right", ErrInvalidCredentials},
		{"alice", "", ErrInvalidCredentials},
	}
	for _, tc := range tests {
		t.Run(tc.user+"/"+tc.pass, func(t *testing.T) {
			tok, err := b.PasswordLogin(context.Background(), tc.user, tc.pass)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.want == nil && (tok.AccessToken == "" || tok.RefreshToken == "" || tok.SessionState != "sess-1") {
				t.Fatalf("tokens = %+v", tok)
			}
			if tc.want != nil && strings.Contains(err.Error(), tc.pass) && tc.pass != "" {
				t.Fatalf("error %q contains the password", err)
			}
		})
	}
	// client_secret_post: the secret travels as a form field, unmangled,
	// and no Basic header is built from it.
	f.mu.Lock()
	defer f.mu.Unlock()
	if got := f.forms[0].Get("client_secret"); got != "p%ss+w&rd" {
		t.Errorf("client_secret sent as %q", got)
	}
	if f.authHeaders[0] != "" {
		t.Errorf("Authorization header sent to the token endpoint: %q", f.authHeaders[0])
	}
}

func TestTokensStringRedacts(t *testing.T) {
	t.Parallel()
	tok := Tokens{AccessToken: "secret-at", RefreshToken: "secret-rt", TokenType: "Bearer"}
	for _, s := range []string{tok.String(), fmt.Sprintf("%v", tok), fmt.Sprintf("%+v", tok), fmt.Sprintf("%#v", tok)} {
		if strings.Contains(s, "secret") {
			t.Fatalf("tokens printed: %s", s)
		}
	}
}

func TestRefreshLogoutRevoke(t *testing.T) {
	t.Parallel()
	f := newFakeKeycloak(t)
	f.addUser("u1", "alice", "right", nil)
	b := newTestBridge(t, f, &clock{t: testNow}, nil, nil)
	ctx := context.Background()
	tok, err := b.PasswordLogin(ctx, "alice", "right")
	if err != nil {
		t.Fatal(err)
	}
	next, err := b.Refresh(ctx, tok.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Refresh(ctx, "rt-unknown"); !errors.Is(err, ErrInvalidGrant) {
		t.Fatalf("refresh of an unknown token: err = %v", err)
	}
	if err := b.Logout(ctx, next.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if err := b.Logout(ctx, next.RefreshToken); err != nil {
		t.Fatalf("second logout: %v (must be idempotent)", err)
	}
	if _, err := b.Refresh(ctx, next.RefreshToken); !errors.Is(err, ErrInvalidGrant) {
		t.Fatalf("refresh after logout: err = %v", err)
	}
	if err := b.Revoke(ctx, tok.RefreshToken); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.loggedOut) != 1 {
		t.Fatalf("%d logouts reached Keycloak, want 1", len(f.loggedOut))
	}
	if _, ok := f.refresh[tok.RefreshToken]; ok {
		t.Fatal("revoked token still known")
	}
}

func TestUnavailable(t *testing.T) {
	t.Parallel()
	for _, status := range []int{500, 502, 503, 429} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			f := newFakeKeycloak(t)
			f.addUser("u1", "alice", "right", nil)
			b := newTestBridge(t, f, &clock{t: testNow}, openLeases(t), nil)
			f.mu.Lock()
			f.failStatus = status
			f.mu.Unlock()
			ctx := context.Background()
			if _, err := b.PasswordLogin(ctx, "alice", "right"); !errors.Is(err, ErrUnavailable) {
				t.Errorf("login: err = %v", err)
			}
			if _, err := b.GetUser(ctx, "u1"); !errors.Is(err, ErrUnavailable) {
				t.Errorf("get user: err = %v", err)
			}
			if err := b.WriteStepUp(ctx, "u1", b.NewEntry("s", "2", []string{"pin"})); !errors.Is(err, ErrUnavailable) {
				t.Errorf("write: err = %v", err)
			}
			if err := b.Ping(ctx); !errors.Is(err, ErrUnavailable) {
				t.Errorf("ping: err = %v", err)
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		f := newFakeKeycloak(t)
		b := newTestBridge(t, f, &clock{t: testNow}, nil, nil)
		f.srv.Close()
		if _, err := b.PasswordLogin(context.Background(), "alice", "right"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err = %v", err)
		}
		var e *Error
		if _, err := b.GetUser(context.Background(), "u1"); !errors.As(err, &e) || e.Status != 0 || !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestAdminToken(t *testing.T) {
	t.Parallel()
	f := newFakeKeycloak(t)
	f.addUser("u1", "alice", "right", nil)
	c := &clock{t: testNow}
	b := newTestBridge(t, f, c, nil, nil)
	ctx := context.Background()
	fetches := func() int { f.mu.Lock(); defer f.mu.Unlock(); return f.adminFetches }

	for i := 0; i < 3; i++ {
		if _, err := b.GetUser(ctx, "u1"); err != nil {
			t.Fatal(err)
		}
	}
	if n := fetches(); n != 1 {
		t.Fatalf("%d admin token fetches for three calls, want 1", n)
	}
	// Renewed before expiry: at 80% of its 300s life the token is replaced.
	c.Add(240 * time.Second)
	if _, err := b.GetUser(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	if n := fetches(); n != 2 {
		t.Fatalf("%d fetches after 240s, want 2 (renewed before expiry)", n)
	}
	// Keycloak forgets the token (restart, revocation): one retry.
	f.mu.Lock()
	f.adminTokens = map[string]bool{}
	f.mu.Unlock()
	if _, err := b.GetUser(ctx, "u1"); err != nil {
		t.Fatalf("after the token was invalidated: %v", err)
	}
	if n := fetches(); n != 3 {
		t.Fatalf("%d fetches, want 3", n)
	}
	if _, err := b.GetUser(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown user: err = %v", err)
	}
}

func TestAdminTokenWrongSecret(t *testing.T) {
	t.Parallel()
	f := newFakeKeycloak(t)
	b := newTestBridge(t, f, &clock{t: testNow}, nil, func(c *Config) { c.AdminClientSecret = "wrong" })
	_, err := b.GetUser(context.Background(), "u1")
	if !errors.Is(err, ErrClientConfig) {
		t.Fatalf("err = %v, want ErrClientConfig", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Fatalf("secret in error: %v", err)
	}
}

func TestRolesAndGroups(t *testing.T) {
	t.Parallel()
	f := newFakeKeycloak(t)
	f.addUser("u1", "alice", "right", nil)
	b := newTestBridge(t, f, &clock{t: testNow}, nil, nil)
	ctx := context.Background()
	roles, err := b.UserRealmRoles(ctx, "u1")
	if err != nil || strings.Join(roles, ",") != "stepup-admin,default-roles-demo" {
		t.Fatalf("roles = %v, %v", roles, err)
	}
	groups, err := b.UserGroups(ctx, "u1")
	if err != nil || strings.Join(groups, ",") != "/staff/admins,admins" {
		t.Fatalf("groups = %v, %v", groups, err)
	}
	u, err := b.GetUser(ctx, "u1")
	if err != nil || u.Username != "alice" || u.FirstName != "Ada" || !u.Enabled || u.CreatedAt.Unix() != 1700000000 {
		t.Fatalf("user = %+v, %v", u, err)
	}
}

func entry(sid string, iat int64) token.StepUpEntry {
	return token.StepUpEntry{SID: sid, ACR: "2", AMR: []string{"pin"}, IAT: iat, EXP: iat + 3600}
}

func TestWriteStepUp(t *testing.T) {
	t.Parallel()
	f := newFakeKeycloak(t)
	old := entry("old", testNow.Unix()-7200) // expired
	keep := entry("keep", testNow.Unix()-60)
	f.addUser("u1", "alice", "right", map[string]any{
		"department": []any{"research"},
		"stepup":     []any{old.Marshal(), keep.Marshal(), `{"sid":"broken"`, `{"sid":"x"}`},
	})
	f.locked["u1"] = true
	c := &clock{t: testNow}
	b := newTestBridge(t, f, c, openLeases(t), nil)
	ctx := context.Background()

	e := b.NewEntry("sess-1", "2", []string{"totp"})
	if err := b.WriteStepUp(ctx, "u1", e); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	put := f.puts[len(f.puts)-1]
	u := f.users["u1"]
	locked := f.locked["u1"]
	f.mu.Unlock()

	if _, ok := put["enabled"]; ok {
		t.Error("PUT carried enabled")
	}
	if _, ok := put["requiredActions"]; ok {
		t.Error("PUT carried requiredActions")
	}
	if locked {
		t.Log("user still locked, as it must be")
	} else {
		t.Error("the write unlocked a brute-force-locked user")
	}
	for k, want := range map[string]string{"firstName": "Ada", "lastName": "Lovelace", "email": "alice@example.com", "username": "alice"} {
		if u[k] != want {
			t.Errorf("%s = %v after the write, want %q", k, u[k], want)
		}
	}
	attrs := u["attributes"].(map[string]any)
	if fmt.Sprint(attrs["department"]) != "[research]" {
		t.Errorf("department = %v", attrs["department"])
	}
	var got []string
	for _, v := range attrs["stepup"].([]any) {
		s := v.(string)
		if !json.Valid([]byte(s)) {
			t.Errorf("invalid JSON written: %q", s)
		}
		got = append(got, s)
	}
	want := []string{keep.Marshal(), e.Marshal()}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("stepup = %v, want %v (expired and broken values removed)", got, want)
	}

	entries, err := b.StepUpEntries(ctx, "u1")
	if err != nil || len(entries) != 2 {
		t.Fatalf("StepUpEntries = %v, %v", entries, err)
	}
	if err := b.RemoveStepUp(ctx, "u1", "keep"); err != nil {
		t.Fatal(err)
	}
	if entries, _ := b.StepUpEntries(ctx, "u1"); len(entries) != 1 || entries[0].SID != "sess-1" {
		t.Fatalf("after RemoveStepUp: %v", entries)
	}
}

func TestWriteStepUpBound(t *testing.T) {
	t.Parallel()
	f := newFakeKeycloak(t)
	f.addUser("u1", "alice", "right", nil)
	c := &clock{t: testNow}
	b := newTestBridge(t, f, c, openLeases(t), nil) // MaxEntries 5
	ctx := context.Background()
	for i := 0; i < 8; i++ {
		if err := b.WriteStepUp(ctx, "u1", entry(fmt.Sprintf("s%d", i), testNow.Unix()+int64(i))); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := b.StepUpEntries(ctx, "u1")
	if err != nil {
		t.Fatal(err)
	}
	var sids []string
	for _, e := range entries {
		sids = append(sids, e.SID)
	}
	if strings.Join(sids, ",") != "s3,s4,s5,s6,s7" {
		t.Fatalf("entries = %v, want the newest five", sids)
	}
}

func TestWriteStepUpAttributeDropped(t *testing.T) {
	t.Parallel()
	f := newFakeKeycloak(t)
	f.addUser("u1", "alice", "right", nil)
	f.declared = false
	b := newTestBridge(t, f, &clock{t: testNow}, openLeases(t), nil)
	err := b.WriteStepUp(context.Background(), "u1", b.NewEntry("s", "2", []string{"pin"}))
	if !errors.Is(err, ErrAttributeDropped) {
		t.Fatalf("err = %v, want ErrAttributeDropped", err)
	}
	if !strings.Contains(err.Error(), "stepup-bridge apply") {
		t.Fatalf("error does not say how to fix it: %v", err)
	}
}

func TestWriteStepUpRefuses(t *testing.T) {
	t.Parallel()
	f := newFakeKeycloak(t)
	f.addUser("u1", "alice", "right", nil)
	c := &clock{t: testNow}
	b := newTestBridge(t, f, c, openLeases(t), nil)
	noLeases := newTestBridge(t, f, c, nil, nil)
	ctx := context.Background()
	tests := []struct {
		name string
		b    *Bridge
		e    token.StepUpEntry
		want error
	}{
		{"invalid entry", b, token.StepUpEntry{SID: "s", ACR: "2"}, token.ErrInvalidEntry},
		{"expired entry", b, entry("s", testNow.Unix()-7200), token.ErrInvalidEntry},
		{"oversized entry", b, token.StepUpEntry{SID: strings.Repeat("s", 3000), ACR: "2", IAT: 1, EXP: testNow.Unix() + 10}, token.ErrInvalidEntry},
		{"no leases", noLeases, entry("s", testNow.Unix()), ErrNoLeases},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.b.WriteStepUp(ctx, "u1", tc.e); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.puts) != 0 {
		t.Fatalf("%d PUTs for refused writes", len(f.puts))
	}
}

// Two bridges sharing one store are two replicas: concurrent writes for
// one user must all survive.
func TestWriteStepUpConcurrentReplicas(t *testing.T) {
	t.Parallel()
	f := newFakeKeycloak(t)
	f.addUser("u1", "alice", "right", nil)
	c := &clock{t: testNow}
	leases := openLeases(t)
	mod := func(cfg *Config) { cfg.MaxEntries = 100 }
	replicas := []*Bridge{newTestBridge(t, f, c, leases, mod), newTestBridge(t, f, c, leases, mod)}
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs <- replicas[i%2].WriteStepUp(ctx, "u1", entry(fmt.Sprintf("s%02d", i), testNow.Unix()+int64(i)))
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	entries, err := replicas[0].StepUpEntries(ctx, "u1")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 20 {
		t.Fatalf("%d entries after 20 concurrent writes, want 20", len(entries))
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	f := newFakeKeycloak(t)
	f.addUser("u1", "alice", "right", nil)
	b := newTestBridge(t, f, &clock{t: testNow}, nil, nil)
	reg := prometheus.NewRegistry()
	if err := b.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, _ = b.GetUser(ctx, "u1")
	_, _ = b.GetUser(ctx, "nobody")
	_, _ = b.PasswordLogin(ctx, "alice", "wrong")
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != "stepup_bridge_keycloak_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var op, out string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "operation":
					op = l.GetValue()
				case "outcome":
					out = l.GetValue()
				}
			}
			seen[op+"/"+out] = m.GetHistogram().GetSampleCount()
		}
	}
	for _, k := range []string{"get_user/ok", "get_user/not_found", "password_grant/rejected"} {
		if seen[k] != 1 {
			t.Errorf("%s observed %d times, want 1 (all: %v)", k, seen[k], seen)
		}
	}
	if err := b.RegisterMetrics(reg); err == nil {
		t.Error("second registration accepted")
	}
}

func TestFromConfig(t *testing.T) {
	t.Parallel()
	f := newFakeKeycloak(t)
	f.addUser("u1", "alice", "right", nil)
	var c config.Config
	c.Keycloak.URL = f.srv.URL + "/"
	c.Keycloak.Realm = "demo"
	c.Keycloak.ClientID = "web"
	c.Keycloak.AdminClientID = "sidecar-admin"
	c.Keycloak.AdminClientSecret = config.Secret(f.adminSecret)
	c.Claims.Attribute = "mfa"
	b, err := FromConfig(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if got, want := b.Issuer(), f.srv.URL+"/realms/demo"; got != want {
		t.Errorf("Issuer = %q, want %q", got, want)
	}
	if b.Attribute() != "mfa" {
		t.Errorf("Attribute = %q", b.Attribute())
	}
	if _, err := b.GetUser(context.Background(), "u1"); err != nil {
		t.Errorf("GetUser through the configured bridge: %v", err)
	}

	c.Keycloak.CAFile = filepath.Join(t.TempDir(), "missing.pem")
	if _, err := FromConfig(c, nil); err == nil {
		t.Error("missing CA file accepted")
	}
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.Keycloak.CAFile = notPEM
	if _, err := FromConfig(c, nil); err == nil {
		t.Error("CA file without a certificate accepted")
	}
}

// TestWriteStepUpIsIdempotent: a write-back retried after a lost answer
// leaves one entry, not two.
func TestWriteStepUpIsIdempotent(t *testing.T) {
	t.Parallel()
	f := newFakeKeycloak(t)
	f.addUser("u1", "alice", "right", nil)
	c := &clock{t: testNow}
	b := newTestBridge(t, f, c, openLeases(t), nil)
	ctx := context.Background()
	e := entry("s1", testNow.Unix())
	for i := 0; i < 3; i++ {
		if err := b.WriteStepUp(ctx, "u1", e); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.WriteStepUp(ctx, "u1", entry("s2", testNow.Unix())); err != nil {
		t.Fatal(err)
	}
	entries, err := b.StepUpEntries(ctx, "u1")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("entries = %+v, want s1 once and s2", entries)
	}
}
