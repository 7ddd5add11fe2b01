package perf_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/internal/testenv"
)

// subject is the sub claim of a Keycloak access token.
func subject(t testing.TB, access string) string {
	t.Helper()
	sub, _ := testenv.Claims(t, access)["sub"].(string)
	if sub == "" {
		t.Fatal("token without sub")
	}
	return sub
}

// enrolBackupCodes gives userID a (new) set of backup codes.
func enrolBackupCodes(t testing.TB, env *testenv.Env, userID string) []string {
	t.Helper()
	e, err := env.Runtime.Factors().Enrol(context.Background(), factors.BackupCode, userID, factors.EnrolRequest{}, factors.Meta{})
	if err != nil {
		t.Fatalf("enrolling backup codes: %v", err)
	}
	if len(e.Codes) == 0 {
		t.Fatal("enrolment gave no backup codes")
	}
	return e.Codes
}

func enrolPIN(t testing.TB, env *testenv.Env, userID, pin string) {
	t.Helper()
	if _, err := env.Runtime.Factors().Enrol(context.Background(), factors.PIN, userID,
		factors.EnrolRequest{Secret: pin, Confirmation: pin}, factors.Meta{}); err != nil {
		t.Fatalf("enrolling a PIN: %v", err)
	}
}

// enrolTOTP enrols and confirms a TOTP secret for userID and returns it
// (base32). The confirmation uses the previous time step (the verifier
// accepts one step of skew), so a code of the current step is still
// fresh for the caller.
func enrolTOTP(t testing.TB, env *testenv.Env, userID string) string {
	t.Helper()
	ctx := context.Background()
	// Not across a step boundary: a code of the previous step, checked in
	// the step after the current one, would be two steps old.
	if into := time.Since(time.Now().Truncate(30 * time.Second)); into > 28*time.Second {
		time.Sleep(30*time.Second - into + 50*time.Millisecond)
	}
	e, err := env.Runtime.Factors().Enrol(ctx, factors.TOTP, userID, factors.EnrolRequest{}, factors.Meta{})
	if err != nil {
		t.Fatalf("enrolling TOTP: %v", err)
	}
	if _, err := env.Runtime.Factors().Confirm(ctx, factors.TOTP, userID, totpCode(t, e.Secret, time.Now().Add(-30*time.Second)), factors.Meta{}); err != nil {
		t.Fatalf("confirming TOTP: %v", err)
	}
	return e.Secret
}

func totpCode(t testing.TB, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatalf("TOTP code: %v", err)
	}
	return c
}

// call is one request to the sidecar with optional JSON body, Bearer
// token and client address (X-Forwarded-For, believed only when the
// sidecar trusts 127.0.0.1 as a proxy). It returns the status, the
// decoded JSON body (nil if none) and the headers.
type call struct {
	method, path, bearer, xff string
	body                      any
}

func do(t testing.TB, env *testenv.Env, c call) (int, map[string]any, http.Header) {
	t.Helper()
	var rd io.Reader
	if c.body != nil {
		b, err := json.Marshal(c.body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(c.method, env.SidecarURL+c.path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if c.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	if c.xff != "" {
		req.Header.Set("X-Forwarded-For", c.xff)
	}
	resp, err := env.Client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", c.method, c.path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &m)
	}
	return resp.StatusCode, m, resp.Header
}

// createChallenge opens a step-up challenge and returns its id, or "" with
// the status and body when it was refused.
func createChallenge(t testing.TB, env *testenv.Env, access, factor, xff string) (string, int, map[string]any) {
	t.Helper()
	status, m, _ := do(t, env, call{method: "POST", path: "/v1/stepup/challenges", bearer: access, xff: xff,
		body: map[string]any{"factor": factor}})
	if status != http.StatusCreated {
		return "", status, m
	}
	id, _ := m["challenge_id"].(string)
	if id == "" {
		t.Fatalf("challenge without id: %v", m)
	}
	return id, status, m
}

func verifyChallenge(t testing.TB, env *testenv.Env, access, id, code, xff string) (int, map[string]any, http.Header) {
	t.Helper()
	return do(t, env, call{method: "POST", path: "/v1/stepup/challenges/" + id + "/verify", bearer: access, xff: xff,
		body: map[string]any{"code": code}})
}

// adminToken is a token of the sidecar's service account (manage-users).
func adminToken(t testing.TB, env *testenv.Env) string {
	t.Helper()
	resp, err := env.Client.PostForm(env.KeycloakURL+"/realms/"+testenv.Realm+"/protocol/openid-connect/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {testenv.AdminClient}, "client_secret": {testenv.AdminSecret}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("admin token: %d %v", resp.StatusCode, err)
	}
	return tok.AccessToken
}

// createUser adds a user (password = name) to the dev realm through the
// admin API.
func createUser(t testing.TB, env *testenv.Env, admin, name string) {
	t.Helper()
	rep := map[string]any{"username": name, "enabled": true, "email": name + "@example.test",
		"firstName": "Load", "lastName": name, "emailVerified": true,
		"credentials": []map[string]any{{"type": "password", "value": name, "temporary": false}}}
	b, _ := json.Marshal(rep)
	req, _ := http.NewRequest("POST", env.KeycloakURL+"/admin/realms/"+testenv.Realm+"/users", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := env.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("creating user %s: %d %s", name, resp.StatusCode, body)
	}
}

// forger signs well-formed RS256 tokens with a key Keycloak never had,
// each under a kid of the caller's choosing.
type forger struct {
	key *rsa.PrivateKey
}

func newForger(t testing.TB) *forger {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &forger{key: k}
}

// token copies the claims of a genuine token (so only the signature and
// the kid are wrong) and signs them under kid.
func (f *forger) token(t testing.TB, genuine, kid string) string {
	t.Helper()
	claims := testenv.Claims(t, genuine)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: f.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	obj, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// randomKid is a fresh key id.
func randomKid(t testing.TB) string {
	t.Helper()
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// authz asks /v1/authz about a GET of /api/orders/7 (allowed at level 1
// by the default policy) and returns the status.
func authz(t testing.TB, env *testenv.Env, access string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", env.SidecarURL+"/v1/authz", nil)
	req.Header.Set("X-Original-Method", "GET")
	req.Header.Set("X-Original-URI", "/api/orders/7")
	req.Header.Set("Authorization", "Bearer "+access)
	resp, err := env.Client.Do(req)
	if err != nil {
		t.Fatalf("authz: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
