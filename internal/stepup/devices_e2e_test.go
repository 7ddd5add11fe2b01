package stepup_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/config"
	"github.com/stepup-bridge/stepup-bridge/factors/delivery/webhook"
	"github.com/stepup-bridge/stepup-bridge/internal/keycloaktest"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
	"github.com/stepup-bridge/stepup-bridge/internal/store/postgres/pgtest"
	"github.com/stepup-bridge/stepup-bridge/internal/testenv"
)

const (
	uaFirefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	uaChrome  = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
)

// devicePolicy: payments need a freshly proven factor, other writes accept
// a trusted device.
const devicePolicy = `
levels: ["1", "2"]
rules:
  - name: payments
    match: {methods: [POST], paths: ["/api/payments/**"]}
    require: {acr: "2", max_age: 5m, trusted_device: false}
  - name: writes
    match: {methods: [POST, PUT, PATCH, DELETE]}
    require: {acr: "2", max_age: 5m}
  - name: reads
    match: {methods: [GET, HEAD]}
    require: {acr: "1"}
default: deny
`

// receiver is the notification gateway behind the webhook sender: it
// records every request.
type receiver struct {
	mu   sync.Mutex
	reqs []webhook.Request
	keys []string
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var body webhook.Request
	if err := json.NewDecoder(req.Body).Decode(&body); err != nil {
		http.Error(w, "bad json", 400)
		return
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, body)
	r.keys = append(r.keys, req.Header.Get("Idempotency-Key"))
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// count is how many messages to whose subject contains title.
func (r *receiver) count(to, title string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.reqs {
		if m.To == to && strings.Contains(m.Subject, title) {
			n++
		}
	}
	return n
}

func (r *receiver) all() []webhook.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

// startDevices starts a sidecar with trusted devices, the device policy
// and notifications by e-mail through the webhook sender to rcv.
func startDevices(t *testing.T, rcv *receiver, mutate func(*config.Config)) *testenv.Env {
	t.Helper()
	return startDevicesOn(t, nil, rcv, mutate)
}

// startDevicesOn is startDevices against a running Keycloak (nil starts
// one), for replicas.
func startDevicesOn(t *testing.T, kc *keycloaktest.Server, rcv *receiver, mutate func(*config.Config)) *testenv.Env {
	t.Helper()
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policy, []byte(devicePolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	return testenv.Start(t, testenv.Options{KC: kc, Mutate: func(c *config.Config) {
		c.Devices.Enabled = true
		c.Policies.File = policy
		c.Notifications.Enabled = true
		c.Factors.Email.Sender = "webhook"
		c.Factors.Email.Webhook = config.Webhook{URL: srv.URL, Secret: "0123456789abcdef0123"}
		if mutate != nil {
			mutate(c)
		}
	}})
}

// doUA is env.Do with a User-Agent.
func doUA(t *testing.T, env *testenv.Env, method, path, bearer, ua string, body any) (*http.Response, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, env.SidecarURL+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	req.Header.Set("User-Agent", ua)
	resp, err := env.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := map[string]any{}
	if len(bytes.TrimSpace(b)) > 0 {
		m = testenv.DecodeJSON(t, b)
	}
	return resp, m
}

// loginMFA logs alice in with a backup code from ua and returns the grant.
func loginMFA(t *testing.T, env *testenv.Env, ua, code string, trust bool) map[string]any {
	t.Helper()
	resp, m := doUA(t, env, "POST", "/v1/login", "", ua, map[string]string{"username": "alice", "password": "alice"})
	if resp.StatusCode != 401 || m["error"] != "mfa_required" {
		t.Fatalf("login = %d %v, want mfa_required", resp.StatusCode, m)
	}
	resp, g := doUA(t, env, "POST", "/v1/login/mfa", "", ua, map[string]any{
		"mfa_token": m["mfa_token"], "factor": "backup_code", "code": code, "trust_device": trust})
	if resp.StatusCode != 200 {
		t.Fatalf("mfa = %d %v", resp.StatusCode, g)
	}
	return g
}

func deviceToken(t *testing.T, g map[string]any) (token, id string) {
	t.Helper()
	d, _ := g["device"].(map[string]any)
	token, _ = d["device_token"].(string)
	id, _ = d["device_id"].(string)
	if token == "" || id == "" || d["label"] != "Firefox on Linux" {
		t.Fatalf("grant without a device credential: %v", g)
	}
	return token, id
}

// loginWithDevice logs alice in presenting tok from ua: it returns the
// access token when the factor was skipped, "" when it was asked for.
func loginWithDevice(t *testing.T, env *testenv.Env, ua, tok string) (string, map[string]any) {
	t.Helper()
	resp, m := doUA(t, env, "POST", "/v1/login", "", ua, map[string]string{"username": "alice", "password": "alice", "device_token": tok})
	switch {
	case resp.StatusCode == 200:
		return m["access_token"].(string), m
	case resp.StatusCode == 401 && m["error"] == "mfa_required":
		if _, leaked := m["access_token"]; leaked {
			t.Fatal("tokens leaked with mfa_required")
		}
		return "", m
	}
	t.Fatalf("login with device = %d %v", resp.StatusCode, m)
	return "", nil
}

// TestTrustedDevices drives trusted devices end to end through the HTTP
// API: trusted after MFA, the factor is skipped on the next login from that
// device only, never with a wrong password, never after expiry or
// revocation, and never for a rule that wants a fresh factor.
func TestTrustedDevices(t *testing.T) {
	rcv := &receiver{}
	env := startDevices(t, rcv, nil)
	direct := env.PasswordTokens(t, "alice", "alice")
	alice := subject(t, direct.AccessToken)
	codes := enrolBackupCodes(t, env, alice)
	next := 0
	code := func() string { next++; return codes[next-1] }

	g := loginMFA(t, env, uaFirefox, code(), true)
	tok, id := deviceToken(t, g)

	t.Run("a device trusted after MFA skips the factor on the next login", func(t *testing.T) {
		access, m := loginWithDevice(t, env, uaFirefox, tok)
		if access == "" {
			t.Fatalf("trusted device asked for the factor: %v", m)
		}
		td, _ := m["trusted_device"].(map[string]any)
		if td["device_id"] != id || m["acr"] != "2" {
			t.Fatalf("login answer = %v", m)
		}
		entries := stepUpEntries(t, access)
		e := entries[len(entries)-1]
		if e.SID != sid(t, access) || e.ACR != "2" || !slices.Equal(e.AMR, []string{"trusted_device"}) {
			t.Fatalf("entry of the trusted-device login = %+v", e)
		}
		// Writes that accept a trusted device pass; payments want a fresh
		// factor and answer RFC 9470's challenge.
		if resp := authz(t, env, access, "POST", "/api/profile"); resp.StatusCode != 200 {
			t.Fatalf("profile write on a trusted device = %d", resp.StatusCode)
		}
		resp := authz(t, env, access, "POST", "/api/payments/42")
		if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "insufficient_user_authentication") {
			t.Fatalf("payment on a trusted device = %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
		// Managing factors also wants a fresh factor.
		r, body := doUA(t, env, "POST", "/v1/factors/backup_code/regenerate", access, uaFirefox, nil)
		if r.StatusCode != 401 || body["error"] != "insufficient_user_authentication" {
			t.Fatalf("regenerating codes on a trusted-device login = %d %v", r.StatusCode, body)
		}
		// A step-up with a real factor satisfies the payment rule.
		fresh := loginRefresh(t, env, m)
		g, status := stepUp(t, env, access, fresh, "backup_code", code())
		if status != 200 {
			t.Fatalf("step-up = %d %v", status, g)
		}
		stepped := g["tokens"].(map[string]any)["access_token"].(string)
		if resp := authz(t, env, stepped, "POST", "/api/payments/42"); resp.StatusCode != 200 {
			t.Fatalf("payment after a fresh factor = %d", resp.StatusCode)
		}
	})

	t.Run("a different device does not", func(t *testing.T) {
		if access, m := loginWithDevice(t, env, uaChrome, tok); access != "" {
			t.Fatalf("token replayed from another kind of device skipped the factor: %v", m)
		}
		if access, _ := loginWithDevice(t, env, uaFirefox, ""); access != "" {
			t.Fatal("no device token skipped the factor")
		}
	})

	t.Run("the password is still required", func(t *testing.T) {
		resp, m := doUA(t, env, "POST", "/v1/login", "", uaFirefox, map[string]string{"username": "alice", "password": "wrong", "device_token": tok})
		if resp.StatusCode != 401 || m["error"] != "invalid_grant" {
			t.Fatalf("wrong password with a trusted device = %d %v", resp.StatusCode, m)
		}
	})

	t.Run("an expired one does not", func(t *testing.T) {
		g := loginMFA(t, env, uaFirefox, code(), true)
		tok2, id2 := deviceToken(t, g)
		if _, err := env.Runtime.Store().UpdateDevice(context.Background(), id2, func(d store.Device) (store.Device, error) {
			d.ExpiresAt = time.Now().Add(-time.Second)
			return d, nil
		}); err != nil {
			t.Fatal(err)
		}
		if access, _ := loginWithDevice(t, env, uaFirefox, tok2); access != "" {
			t.Fatal("an expired device skipped the factor")
		}
	})

	t.Run("one revoked by the user does not", func(t *testing.T) {
		g := loginMFA(t, env, uaFirefox, code(), true)
		tok3, id3 := deviceToken(t, g)
		access := g["tokens"].(map[string]any)["access_token"].(string)
		resp, list := doUA(t, env, "GET", "/v1/devices", access, uaFirefox, nil)
		if resp.StatusCode != 200 || !strings.Contains(jsonString(list), id3) || strings.Contains(jsonString(list), tok3) {
			t.Fatalf("GET /v1/devices = %d %v", resp.StatusCode, list)
		}
		if resp, _ := doUA(t, env, "DELETE", "/v1/devices/"+id3, access, uaFirefox, nil); resp.StatusCode != 204 {
			t.Fatalf("revoke = %d", resp.StatusCode)
		}
		if resp, _ := doUA(t, env, "DELETE", "/v1/devices/"+id3, access, uaFirefox, nil); resp.StatusCode != 404 {
			t.Fatalf("second revoke = %d", resp.StatusCode)
		}
		if _, list := doUA(t, env, "GET", "/v1/devices", access, uaFirefox, nil); strings.Contains(jsonString(list), id3) {
			t.Fatalf("revoked device still listed: %v", list)
		}
		if access, _ := loginWithDevice(t, env, uaFirefox, tok3); access != "" {
			t.Fatal("a revoked device skipped the factor")
		}
		// Another user cannot revoke alice's device.
		bob := env.PasswordTokens(t, "bob", "bob")
		if resp, _ := doUA(t, env, "DELETE", "/v1/devices/"+id, bob.AccessToken, uaFirefox, nil); resp.StatusCode != 404 {
			t.Fatalf("bob revoking alice's device = %d", resp.StatusCode)
		}
	})

	t.Run("one revoked by a factor change or an admin does not", func(t *testing.T) {
		// The first device is still trusted here.
		if access, _ := loginWithDevice(t, env, uaFirefox, tok); access == "" {
			t.Fatal("first device no longer trusted")
		}
		g := loginMFA(t, env, uaFirefox, code(), false)
		access := g["tokens"].(map[string]any)["access_token"].(string)
		resp, body := doUA(t, env, "POST", "/v1/factors/backup_code/regenerate", access, uaFirefox, nil)
		if resp.StatusCode != 201 {
			t.Fatalf("regenerate = %d %v", resp.StatusCode, body)
		}
		if access, _ := loginWithDevice(t, env, uaFirefox, tok); access != "" {
			t.Fatal("a device trusted before a factor change skipped the factor")
		}
		var fresh []string
		for _, c := range body["codes"].([]any) {
			fresh = append(fresh, c.(string))
		}
		g = loginMFA(t, env, uaFirefox, fresh[0], true)
		tok4, _ := deviceToken(t, g)
		admin := env.PasswordTokens(t, "carol", "carol")
		resp, body = doUA(t, env, "GET", "/v1/admin/users/"+alice+"/devices", admin.AccessToken, uaFirefox, nil)
		if list, _ := body["devices"].([]any); resp.StatusCode != 200 || len(list) != 1 || strings.Contains(jsonString(body), tok4) {
			t.Fatalf("admin list = %d %v", resp.StatusCode, body)
		}
		resp, body = doUA(t, env, "DELETE", "/v1/admin/users/"+alice+"/devices", admin.AccessToken, uaFirefox, nil)
		if resp.StatusCode != 200 || body["revoked"] != float64(1) {
			t.Fatalf("admin revoke = %d %v", resp.StatusCode, body)
		}
		if access, _ := loginWithDevice(t, env, uaFirefox, tok4); access != "" {
			t.Fatal("a device revoked by an admin skipped the factor")
		}
		if resp, _ := doUA(t, env, "DELETE", "/v1/admin/users/"+alice+"/devices", access, uaFirefox, nil); resp.StatusCode != 403 {
			t.Fatalf("a user calling the admin revoke = %d", resp.StatusCode)
		}
	})

	t.Run("every trust, use and revocation is audited without the token", func(t *testing.T) {
		evs, err := env.Runtime.Store().ListAudit(context.Background(), store.AuditQuery{UserID: alice, Limit: 1000,
			Types: []string{"device.trusted", "device.used", "device.refused", "device.revoked"}})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for _, e := range evs {
			seen[e.Type]++
			if strings.Contains(jsonString(e.Details), tok) {
				t.Fatalf("audit event %s carries the device token", e.Type)
			}
		}
		if seen["device.trusted"] != 4 || seen["device.used"] < 2 || seen["device.refused"] < 3 || seen["device.revoked"] < 3 {
			t.Fatalf("device audit events = %v", seen)
		}
	})
}

// loginRefresh returns the refresh token of a login answer.
func loginRefresh(t *testing.T, _ *testenv.Env, m map[string]any) string {
	t.Helper()
	r, _ := m["refresh_token"].(string)
	if r == "" {
		t.Fatalf("login answer without refresh_token: %v", m)
	}
	return r
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestSecurityNotifications: each event of the list reaches the
// local receiver exactly once, and the user sees them in /v1/activity.
func TestSecurityNotifications(t *testing.T) {
	rcv := &receiver{}
	env := startDevices(t, rcv, func(c *config.Config) {
		c.Factors.BackupCodes.Count = 5
		c.Factors.BackupCodes.LowWatermark = 3
		c.Factors.PIN.MaxFailures = 3
	})
	const aliceMail, bobMail = "alice@example.test", "bob@example.test"

	// Sign-in from a new device: bob has no factor; the second login from
	// the same device and address tells nothing new, another device does.
	for _, ua := range []string{uaFirefox, uaFirefox, uaChrome} {
		if resp, m := doUA(t, env, "POST", "/v1/login", "", ua, map[string]string{"username": "bob", "password": "bob"}); resp.StatusCode != 200 {
			t.Fatalf("bob login = %d %v", resp.StatusCode, m)
		}
	}

	a := env.PasswordTokens(t, "alice", "alice")
	// Factor added (the first one needs no step-up).
	if resp, m := doUA(t, env, "POST", "/v1/factors/pin", a.AccessToken, uaFirefox, map[string]string{"pin": "4826", "confirmation": "4826"}); resp.StatusCode != 201 {
		t.Fatalf("enrol pin = %d %v", resp.StatusCode, m)
	}
	g, status := stepUp(t, env, a.AccessToken, a.RefreshToken, "pin", "4826")
	if status != 200 {
		t.Fatalf("step-up = %d %v", status, g)
	}
	access := g["tokens"].(map[string]any)["access_token"].(string)
	// Backup codes added, then regenerated.
	var codes []string
	for range 2 {
		resp, m := doUA(t, env, "POST", "/v1/factors/backup_code", access, uaFirefox, nil)
		if resp.StatusCode != 201 {
			t.Fatalf("backup codes = %d %v", resp.StatusCode, m)
		}
		codes = codes[:0]
		for _, c := range m["codes"].([]any) {
			codes = append(codes, c.(string))
		}
	}
	// Running low: 5 codes, watermark 3: the second use.
	for _, c := range codes[:3] {
		if g, status := stepUp(t, env, access, "", "backup_code", c); status != 200 {
			t.Fatalf("backup code step-up = %d %v", status, g)
		}
	}
	// Factor changed, then a lockout of the PIN (3 wrong), then removed.
	if resp, m := doUA(t, env, "PUT", "/v1/factors/pin", access, uaFirefox, map[string]string{"current": "4826", "pin": "7391", "confirmation": "7391"}); resp.StatusCode != 200 {
		t.Fatalf("change pin = %d %v", resp.StatusCode, m)
	}
	for range 3 {
		stepUp(t, env, access, "", "pin", "0000")
	}
	if resp, m := doUA(t, env, "DELETE", "/v1/factors/pin", access, uaFirefox, nil); resp.StatusCode != 204 {
		t.Fatalf("remove pin = %d %v", resp.StatusCode, m)
	}

	want := []struct {
		to, title string
	}{
		{bobMail, "new sign-in"},
		{aliceMail, "a second factor was added"},
		{aliceMail, "new backup codes were generated"},
		{aliceMail, "running out of backup codes"},
		{aliceMail, "a second factor was changed"},
		{aliceMail, "sign-in attempts were blocked"},
		{aliceMail, "a second factor was removed"},
	}
	wantCount := map[string]int{"new sign-in": 2, "a second factor was added": 2}
	deadline := time.Now().Add(15 * time.Second)
	for {
		missing := ""
		for _, w := range want {
			n := wantCount[w.title]
			if n == 0 {
				n = 1
			}
			if rcv.count(w.to, w.title) < n {
				missing = w.to + ": " + w.title
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no notification %q; got %+v", missing, rcv.all())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Nothing more arrives: drain every due notification, then count.
	if _, err := env.Runtime.Notifier().Deliver(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		n := wantCount[w.title]
		if n == 0 {
			n = 1
		}
		if got := rcv.count(w.to, w.title); got != n {
			t.Errorf("%s: %q sent %d times, want %d", w.to, w.title, got, n)
		}
	}
	for _, m := range rcv.all() {
		if m.Type != "email" || m.Text == "" || strings.Contains(m.Text, "4826") || strings.Contains(m.Text, "7391") {
			t.Errorf("message %+v", m)
		}
	}
	rcv.mu.Lock()
	keys := slices.Clone(rcv.keys)
	rcv.mu.Unlock()
	slices.Sort(keys)
	if len(slices.Compact(keys)) != len(rcv.all()) {
		t.Errorf("idempotency keys repeat: %v", keys)
	}

	// The same events in alice's security activity.
	resp, m := doUA(t, env, "GET", "/v1/activity", access, uaFirefox, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("activity = %d %v", resp.StatusCode, m)
	}
	var events []string
	for _, a := range m["activity"].([]any) {
		e := a.(map[string]any)
		events = append(events, e["event"].(string))
		if e["notified"] != "sent" {
			t.Errorf("activity %v not marked sent", e)
		}
	}
	slices.Reverse(events)
	wantEvents := []string{"factor_added", "factor_added", "backup_codes_regenerated", "backup_codes_low", "factor_changed", "lockout", "factor_removed"}
	if !slices.Equal(events, wantEvents) {
		t.Fatalf("activity = %v, want %v", events, wantEvents)
	}
}

// TestTrustDeviceNeedsDevicesEnabled: asking to trust a device while
// trusted devices are off is refused before the code is spent, and a
// device token sent to login changes nothing.
func TestTrustDeviceNeedsDevicesEnabled(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	alice := subject(t, env.PasswordTokens(t, "alice", "alice").AccessToken)
	codes := enrolBackupCodes(t, env, alice)
	resp, m := doUA(t, env, "POST", "/v1/login", "", uaFirefox, map[string]string{"username": "alice", "password": "alice",
		"device_token": "sbd1.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"})
	if resp.StatusCode != 401 || m["error"] != "mfa_required" {
		t.Fatalf("login with a device token, devices off = %d %v", resp.StatusCode, m)
	}
	mfa := m["mfa_token"]
	resp, g := doUA(t, env, "POST", "/v1/login/mfa", "", uaFirefox, map[string]any{"mfa_token": mfa, "factor": "backup_code", "code": codes[0], "trust_device": true})
	if resp.StatusCode != 400 || !strings.Contains(jsonString(g), "trusted devices are not enabled") {
		t.Fatalf("trust_device with devices off = %d %v", resp.StatusCode, g)
	}
	resp, g = doUA(t, env, "POST", "/v1/login/mfa", "", uaFirefox, map[string]any{"mfa_token": mfa, "factor": "backup_code", "code": codes[0]})
	if resp.StatusCode != 200 || g["device"] != nil {
		t.Fatalf("the same code afterwards = %d %v", resp.StatusCode, g)
	}
	if resp, _ := doUA(t, env, "GET", "/v1/devices", g["tokens"].(map[string]any)["access_token"].(string), uaFirefox, nil); resp.StatusCode != 404 {
		t.Fatalf("GET /v1/devices with devices off = %d", resp.StatusCode)
	}
}

// TestDevicesAndNotificationsAcrossReplicas: two sidecars over one
// PostgreSQL, both delivering: a device trusted on one is trusted on the
// other, and each event reaches the receiver once, whichever replica saw
// it and however often.
func TestDevicesAndNotificationsAcrossReplicas(t *testing.T) {
	pgtest.Require(t)
	dsn := pgtest.FreshSchema(t)
	rcv := &receiver{}
	usePG := func(c *config.Config) {
		c.Store.Type = "postgres"
		c.Store.Postgres.DSN = config.Secret(dsn)
		c.Store.Postgres.MaxConns = 4
	}
	r1 := startDevices(t, rcv, usePG)
	r2 := startDevicesOn(t, r1.KC, rcv, func(c *config.Config) {
		usePG(c)
		c.Secrets = r1.Config.Secrets
	})
	alice := subject(t, r1.PasswordTokens(t, "alice", "alice").AccessToken)
	codes := enrolBackupCodes(t, r1, alice)
	g := loginMFA(t, r1, uaFirefox, codes[0], true)
	tok, _ := deviceToken(t, g)
	if access, m := loginWithDevice(t, r2, uaFirefox, tok); access == "" {
		t.Fatalf("device trusted on one replica asked for the factor on the other: %v", m)
	}
	// bob signs in on both replicas at once from one device and address.
	var wg sync.WaitGroup
	for i := range 6 {
		env := r1
		if i%2 == 1 {
			env = r2
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			doUA(t, env, "POST", "/v1/login", "", uaChrome, map[string]string{"username": "bob", "password": "bob"})
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(15 * time.Second)
	for rcv.count("bob@example.test", "new sign-in") < 1 || rcv.count("alice@example.test", "a second factor was added") < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("notifications missing: %+v", rcv.all())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, env := range []*testenv.Env{r1, r2} {
		if _, err := env.Runtime.Notifier().Deliver(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := rcv.count("bob@example.test", "new sign-in"); n != 1 {
		t.Errorf("bob's new sign-in told %d times, want 1", n)
	}
	if n := rcv.count("alice@example.test", "a second factor was added"); n != 1 {
		t.Errorf("alice's factor_added told %d times, want 1", n)
	}
}
