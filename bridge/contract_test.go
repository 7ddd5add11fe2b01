package bridge_test

// The contract suite: one set of tests of the bridge's behaviour against
// Keycloak. It always runs against internal/keycloaktest, and also against
// a real Keycloak when KEYCLOAK_URL, KEYCLOAK_ADMIN and
// KEYCLOAK_ADMIN_PASSWORD are set. Each run creates its own realm with a
// random name from testdata/contract-realm.json (as the master admin, like
// any operator would) and deletes it at the end, so both targets run the
// same steps.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/internal/keycloaktest"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
	"github.com/stepup-bridge/stepup-bridge/internal/store/sqlite"
	"github.com/stepup-bridge/stepup-bridge/internal/token"
)

//go:embed testdata/contract-realm.json
var contractRealm string

const (
	loginSecret = "login%se+cr&t=1"
	adminSecret = "admin%se+cr&t=2"
)

// contractEnv is one Keycloak the suite runs against.
type contractEnv struct {
	name                string
	baseURL             string
	adminUser, adminPwd string
	// now is the server's clock, as far as the test can know it.
	now func() time.Time
	// advance moves the server's clock (keycloaktest) or waits (real).
	advance func(d time.Duration)
	// advanceServer moves only the server's clock; nil when impossible.
	advanceServer func(d time.Duration)
	// rotateKeys makes a new active signing key in the realm.
	rotateKeys func(t *testing.T, m *master, realm string)
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func contractEnvs(t *testing.T) []contractEnv {
	t.Helper()
	clock := &fakeClock{t: time.Now().Truncate(time.Second)}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := keycloaktest.Start(ctx, keycloaktest.Options{Now: clock.Now})
	if err != nil {
		t.Fatalf("starting keycloaktest: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	envs := []contractEnv{{
		name: "keycloaktest", baseURL: s.URL(), adminUser: "admin", adminPwd: "admin",
		now: clock.Now, advance: clock.Add, advanceServer: clock.Add,
		rotateKeys: func(t *testing.T, _ *master, realm string) {
			t.Helper()
			if err := s.RotateKeys(realm); err != nil {
				t.Fatal(err)
			}
		},
	}}
	if u := os.Getenv("KEYCLOAK_URL"); u != "" {
		envs = append(envs, contractEnv{
			name: "keycloak", baseURL: strings.TrimRight(u, "/"),
			adminUser: os.Getenv("KEYCLOAK_ADMIN"), adminPwd: os.Getenv("KEYCLOAK_ADMIN_PASSWORD"),
			now: time.Now, advance: time.Sleep, rotateKeys: rotateRealKeys,
		})
	}
	return envs
}

// rotateRealKeys adds an rsa-generated key provider with a higher priority
// than the realm's default one, which makes its key the active one.
func rotateRealKeys(t *testing.T, m *master, realm string) {
	t.Helper()
	var rep map[string]any
	m.mustDo(t, http.MethodGet, "/admin/realms/"+realm, nil, &rep, http.StatusOK)
	m.mustDo(t, http.MethodPost, "/admin/realms/"+realm+"/components", map[string]any{
		"name": "contract-rotated", "providerId": "rsa-generated", "providerType": "org.keycloak.keys.KeyProvider",
		"parentId": rep["id"],
		"config":   map[string][]string{"priority": {"1000"}, "keySize": {"2048"}, "active": {"true"}, "enabled": {"true"}, "algorithm": {"RS256"}},
	}, nil, http.StatusCreated)
}

// master calls the admin API as the master realm's administrator, the way
// an operator sets a realm up; it stands outside the bridge on purpose.
type master struct {
	base, user, pwd string
	hc              *http.Client
}

func (m *master) token(t *testing.T) string {
	t.Helper()
	form := url.Values{"grant_type": {"password"}, "client_id": {"admin-cli"}, "username": {m.user}, "password": {m.pwd}}
	resp, err := m.hc.PostForm(m.base+"/realms/master/protocol/openid-connect/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("master admin login: HTTP %d, %v", resp.StatusCode, err)
	}
	return tok.AccessToken
}

// do sends a JSON request with the master token (or with bearer when set)
// and returns the status; out is decoded from a 2xx body.
func (m *master) do(t *testing.T, method, path string, body, out any, bearer string) int {
	t.Helper()
	var rd io.Reader
	if raw, ok := body.([]byte); ok {
		rd = bytes.NewReader(raw)
	} else if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, m.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if bearer == "" {
		bearer = m.token(t)
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := m.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decoding %s: %v", method, path, b, err)
		}
	}
	if resp.StatusCode/100 != 2 {
		t.Logf("%s %s: HTTP %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode
}

func (m *master) mustDo(t *testing.T, method, path string, body, out any, want int) {
	t.Helper()
	if got := m.do(t, method, path, body, out, ""); got != want {
		t.Fatalf("%s %s: HTTP %d, want %d", method, path, got, want)
	}
}

func (m *master) userID(t *testing.T, realm, username string) string {
	t.Helper()
	var users []map[string]any
	m.mustDo(t, http.MethodGet, "/admin/realms/"+realm+"/users?exact=true&username="+username, nil, &users, http.StatusOK)
	if len(users) != 1 {
		t.Fatalf("user %s: %d matches", username, len(users))
	}
	return users[0]["id"].(string)
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func TestContract(t *testing.T) {
	for _, env := range contractEnvs(t) {
		t.Run(env.name, func(t *testing.T) { runContract(t, env) })
	}
}

func runContract(t *testing.T, env contractEnv) {
	ctx := context.Background()
	m := &master{base: env.baseURL, user: env.adminUser, pwd: env.adminPwd, hc: &http.Client{Timeout: 30 * time.Second}}
	realm := "contract-" + randomHex(t, 6)
	m.mustDo(t, http.MethodPost, "/admin/realms", []byte(strings.ReplaceAll(contractRealm, "REALM_NAME", realm)), nil, http.StatusCreated)
	t.Cleanup(func() { m.do(t, http.MethodDelete, "/admin/realms/"+realm, nil, nil, "") })

	s, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "store.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	var leases store.Leases = s

	newBridge := func(t *testing.T, mod func(*bridge.Config)) *bridge.Bridge {
		t.Helper()
		cfg := bridge.Config{
			BaseURL: env.baseURL, Realm: realm,
			ClientID: "contract-login", ClientSecret: loginSecret,
			AdminClientID: "contract-admin", AdminClientSecret: adminSecret,
			Now: env.now, Leases: leases, MaxEntries: 50, Timeout: 10 * time.Second,
			JWKSRefreshFloor: time.Millisecond,
		}
		if mod != nil {
			mod(&cfg)
		}
		b, err := bridge.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	b := newBridge(t, nil)
	alice := m.userID(t, realm, "alice")
	dave := m.userID(t, realm, "dave")

	t.Run("password grant error mapping", func(t *testing.T) {
		tests := []struct {
			user, pwd string
			want      error
		}{
			{"alice", "alice-pw", nil},
			{"alice", "wrong", bridge.ErrInvalidCredentials},
			{"nobody", "alice-pw", bridge.ErrInvalidCredentials},
			{"erin", "erin-pw", bridge.ErrAccountDisabled},
		}
		for _, tc := range tests {
			t.Run(tc.user+"/"+tc.pwd, func(t *testing.T) {
				tok, err := b.PasswordLogin(ctx, tc.user, tc.pwd)
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				if tc.want == nil {
					if _, err := b.Verifier().Verify(ctx, tok.AccessToken); err != nil {
						t.Fatalf("Keycloak's own token does not verify: %v", err)
					}
				}
			})
		}
	})

	t.Run("undeclared attribute is dropped and reported", func(t *testing.T) {
		err := b.WriteStepUp(ctx, alice, b.NewEntry("no-session", "2", []string{"pin"}))
		if !errors.Is(err, bridge.ErrAttributeDropped) {
			t.Fatalf("err = %v, want ErrAttributeDropped", err)
		}
		if !strings.Contains(err.Error(), "stepup-bridge apply") {
			t.Fatalf("error does not name the fix: %v", err)
		}
	})

	t.Run("provisioning calls", func(t *testing.T) {
		profile, err := b.UserProfile(ctx)
		if err != nil {
			t.Fatal(err)
		}
		attrs, _ := profile["attributes"].([]any)
		if len(attrs) == 0 {
			t.Fatalf("user profile without attributes: %v", profile)
		}
		attrs = append(attrs,
			map[string]any{"name": "stepup", "displayName": "Step-up", "multivalued": true,
				"permissions": map[string]any{"view": []string{"admin"}, "edit": []string{"admin"}}},
			map[string]any{"name": "department", "displayName": "Department",
				"permissions": map[string]any{"view": []string{"admin", "user"}, "edit": []string{"admin"}}})
		profile["attributes"] = attrs
		stored, err := b.UpdateUserProfile(ctx, profile)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(fmt.Sprint(stored["attributes"]), "stepup") {
			t.Fatalf("stored profile lacks the attribute: %v", stored)
		}

		scopeID, err := b.CreateClientScope(ctx, bridge.ClientScope{Name: "stepup", Protocol: "openid-connect",
			Attributes: map[string]string{"include.in.token.scope": "false", "display.on.consent.screen": "false"}})
		if err != nil || scopeID == "" {
			t.Fatalf("create scope: %q, %v", scopeID, err)
		}
		if _, err := b.CreateClientScope(ctx, bridge.ClientScope{Name: "stepup"}); !errors.Is(err, bridge.ErrConflict) {
			t.Fatalf("duplicate scope: err = %v, want ErrConflict", err)
		}
		found, err := b.ClientScopeByName(ctx, "stepup")
		if err != nil || found.ID != scopeID || found.Attributes["include.in.token.scope"] != "false" {
			t.Fatalf("scope by name = %+v, %v", found, err)
		}
		mapper := bridge.ProtocolMapper{Name: "stepup", Protocol: "openid-connect", ProtocolMapper: "oidc-usermodel-attribute-mapper",
			Config: map[string]string{
				"user.attribute": "stepup", "claim.name": "stepup", "jsonType.label": "JSON", "multivalued": "true",
				"access.token.claim": "true", "id.token.claim": "false", "userinfo.token.claim": "false",
				"introspection.token.claim": "false",
			}}
		mapperID, err := b.CreateProtocolMapper(ctx, scopeID, mapper)
		if err != nil {
			t.Fatal(err)
		}
		mapper.ID = mapperID
		mapper.Config["introspection.token.claim"] = "true"
		if err := b.UpdateProtocolMapper(ctx, scopeID, mapper); err != nil {
			t.Fatal(err)
		}
		mappers, err := b.ProtocolMappers(ctx, scopeID)
		if err != nil || len(mappers) != 1 || mappers[0].Config["introspection.token.claim"] != "true" || mappers[0].ID != mapperID {
			t.Fatalf("mappers = %+v, %v (introspection.token.claim must survive)", mappers, err)
		}
		client, err := b.ClientByClientID(ctx, "contract-login")
		if err != nil || client.ID == "" || !client.DirectAccessGrants {
			t.Fatalf("client = %+v, %v", client, err)
		}
		if _, err := b.ClientByClientID(ctx, "no-such-client"); !errors.Is(err, bridge.ErrNotFound) {
			t.Fatalf("unknown client: err = %v", err)
		}
		if err := b.AddDefaultClientScope(ctx, client.ID, scopeID); err != nil {
			t.Fatal(err)
		}
		defaults, err := b.DefaultClientScopes(ctx, client.ID)
		if err != nil || !slices.ContainsFunc(defaults, func(s bridge.ClientScope) bool { return s.ID == scopeID && s.Name == "stepup" }) {
			t.Fatalf("default scopes = %+v, %v", defaults, err)
		}
		if err := b.AddDefaultClientScope(ctx, client.ID, "no-such-scope"); !errors.Is(err, bridge.ErrNotFound) {
			t.Fatalf("unknown scope: err = %v", err)
		}
		if _, err := b.RealmRole(ctx, "stepup-admin"); !errors.Is(err, bridge.ErrNotFound) {
			t.Fatalf("absent role: err = %v", err)
		}
		if err := b.CreateRealmRole(ctx, bridge.Role{Name: "stepup-admin", Description: "administers step-up"}); err != nil {
			t.Fatal(err)
		}
		if err := b.CreateRealmRole(ctx, bridge.Role{Name: "stepup-admin"}); !errors.Is(err, bridge.ErrConflict) {
			t.Fatalf("duplicate role: err = %v", err)
		}
		if r, err := b.RealmRole(ctx, "stepup-admin"); err != nil || r.Description != "administers step-up" {
			t.Fatalf("role = %+v, %v", r, err)
		}
	})

	t.Run("write keeps other attributes and root fields", func(t *testing.T) {
		var u map[string]any
		m.mustDo(t, http.MethodGet, "/admin/realms/"+realm+"/users/"+alice, nil, &u, http.StatusOK)
		attrs, _ := u["attributes"].(map[string]any)
		if attrs == nil {
			attrs = map[string]any{}
		}
		attrs["department"] = []string{"research"}
		m.mustDo(t, http.MethodPut, "/admin/realms/"+realm+"/users/"+alice, map[string]any{
			"username": "alice", "firstName": "Alice", "lastName": "Liddell", "email": "alice@example.test", "attributes": attrs,
		}, nil, http.StatusNoContent)

		e := b.NewEntry("sess-keep", "2", []string{"pin"})
		if err := b.WriteStepUp(ctx, alice, e); err != nil {
			t.Fatal(err)
		}
		got, err := b.GetUser(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		if got.FirstName != "Alice" || got.LastName != "Liddell" || got.Email != "alice@example.test" || !got.Enabled || !got.EmailVerified {
			t.Fatalf("root fields after the write: %+v", got)
		}
		if fmt.Sprint(got.Attributes["department"]) != "[research]" {
			t.Fatalf("department = %v after the write", got.Attributes["department"])
		}
		if !slices.Contains(got.Attributes["stepup"], e.Marshal()) {
			t.Fatalf("stepup = %v, want it to hold %s", got.Attributes["stepup"], e.Marshal())
		}
		for _, v := range got.Attributes["stepup"] {
			if !json.Valid([]byte(v)) {
				t.Fatalf("invalid JSON stored: %q", v)
			}
		}
	})

	t.Run("mapped claim appears in a refreshed token", func(t *testing.T) {
		tok, err := b.PasswordLogin(ctx, "alice", "alice-pw")
		if err != nil {
			t.Fatal(err)
		}
		claims, err := b.Verifier().Verify(ctx, tok.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if claims.SessionID == "" || claims.Subject != alice {
			t.Fatalf("claims: sid %q sub %q", claims.SessionID, claims.Subject)
		}
		e := b.NewEntry(claims.SessionID, "2", []string{"totp"})
		if err := b.WriteStepUp(ctx, alice, e); err != nil {
			t.Fatal(err)
		}
		next, err := b.Refresh(ctx, tok.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		refreshed, err := b.Verifier().Verify(ctx, next.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(refreshed.StepUp, func(x token.StepUpEntry) bool { return x.Marshal() == e.Marshal() }) {
			t.Fatalf("refreshed token's step-up entries = %+v, raw %v; want %s", refreshed.StepUp, refreshed.Raw["stepup"], e.Marshal())
		}
		if refreshed.SessionID != claims.SessionID {
			t.Fatalf("refresh changed the session: %q -> %q", claims.SessionID, refreshed.SessionID)
		}
		res, err := b.Introspect(ctx, next.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if res["active"] != true || !strings.Contains(fmt.Sprint(res["stepup"]), claims.SessionID) {
			t.Fatalf("introspection = %v, want active with the step-up claim", res)
		}
	})

	t.Run("user cannot edit the attribute through the account API", func(t *testing.T) {
		tok, err := b.PasswordLogin(ctx, "alice", "alice-pw")
		if err != nil {
			t.Fatal(err)
		}
		var acct map[string]any
		if st := m.do(t, http.MethodGet, "/realms/"+realm+"/account", nil, &acct, tok.AccessToken); st != http.StatusOK {
			t.Fatalf("GET account: HTTP %d", st)
		}
		if strings.Contains(fmt.Sprint(acct["attributes"]), "stepup") {
			t.Fatalf("the account API shows the admin-only attribute: %v", acct["attributes"])
		}
		before, err := b.StepUpEntries(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		forged := token.StepUpEntry{SID: "forged", ACR: "3", AMR: []string{"pin"}, IAT: env.now().Unix(), EXP: env.now().Add(time.Hour).Unix()}
		attrs, _ := acct["attributes"].(map[string]any)
		if attrs == nil {
			attrs = map[string]any{}
		}
		attrs["stepup"] = []string{forged.Marshal()}
		acct["attributes"] = attrs
		st := m.do(t, http.MethodPost, "/realms/"+realm+"/account", acct, nil, tok.AccessToken)
		if st != http.StatusBadRequest {
			t.Errorf("account update with the step-up attribute: HTTP %d, want 400 (error-user-attribute-read-only)", st)
		}
		after, err := b.StepUpEntries(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(after, func(x token.StepUpEntry) bool { return x.SID == "forged" }) || len(after) != len(before) {
			t.Fatalf("the user changed their step-up entries: before %v after %v", before, after)
		}
	})

	t.Run("a write never unlocks a brute-force-locked user", func(t *testing.T) {
		for i := 0; i < 4; i++ {
			if _, err := b.PasswordLogin(ctx, "dave", "wrong"); !errors.Is(err, bridge.ErrInvalidCredentials) {
				t.Fatalf("wrong password: err = %v", err)
			}
		}
		locked := false
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if locked, err = b.UserLocked(ctx, dave); err != nil {
				t.Fatal(err)
			} else if locked {
				break
			}
		}
		if !locked {
			t.Fatal("dave is not locked after 4 failures with failureFactor 3")
		}
		if err := b.WriteStepUp(ctx, dave, b.NewEntry("sess-dave", "2", []string{"pin"})); err != nil {
			t.Fatal(err)
		}
		if locked, err := b.UserLocked(ctx, dave); err != nil || !locked {
			t.Fatalf("after the write: locked = %v, %v; the write unlocked the user", locked, err)
		}
		if _, err := b.PasswordLogin(ctx, "dave", "dave-pw"); !errors.Is(err, bridge.ErrInvalidCredentials) {
			t.Fatalf("locked user logged in: err = %v", err)
		}
	})

	t.Run("forged tokens are refused", func(t *testing.T) {
		tok, err := b.PasswordLogin(ctx, "alice", "alice-pw")
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(tok.AccessToken, ".")
		var hdr map[string]any
		hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
		_ = json.Unmarshal(hb, &hdr)
		kid, _ := hdr["kid"].(string)
		pb, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var payload map[string]any
		if err := json.Unmarshal(pb, &payload); err != nil {
			t.Fatal(err)
		}
		enc := func(v any) string {
			b, _ := json.Marshal(v)
			return base64.RawURLEncoding.EncodeToString(b)
		}
		evil, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		signWith := func(alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
			t.Helper()
			sg, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", kid).WithType("JWT"))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(claims)
			obj, err := sg.Sign(b)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := obj.CompactSerialize()
			return raw
		}
		tampered := map[string]any{}
		for k, v := range payload {
			tampered[k] = v
		}
		tampered["sub"] = dave
		pubPEM := realmPublicKeyPEM(t, env.baseURL, realm, kid)

		tests := []struct {
			name  string
			token string
			want  error
		}{
			{"tampered payload", parts[0] + "." + enc(tampered) + "." + parts[2], token.ErrInvalidSignature},
			{"alg none", enc(map[string]any{"alg": "none", "kid": kid}) + "." + parts[1] + ".", token.ErrInvalidAlgorithm},
			{"foreign key with the realm's kid", signWith(jose.RS256, evil, kid, tampered), token.ErrInvalidSignature},
			{"foreign key with its own kid", signWith(jose.RS256, evil, "evil-"+randomHex(t, 4), tampered), token.ErrUnknownKey},
			{"HS256 keyed with the realm's public key", signWith(jose.HS256, pubPEM, kid, tampered), token.ErrInvalidAlgorithm},
			{"ID token as access token", tok.IDToken, token.ErrInvalidType},
			{"refresh token as access token", tok.RefreshToken, token.ErrInvalidAlgorithm},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if tc.token == "" {
					t.Fatal("Keycloak sent no such token")
				}
				c, err := b.Verifier().Verify(ctx, tc.token)
				if c != nil || !errors.Is(err, tc.want) {
					t.Fatalf("claims %v, err = %v, want %v", c != nil, err, tc.want)
				}
			})
		}
		t.Run("wrong audience", func(t *testing.T) {
			keys := token.NewRemoteKeySet(ctx, b.Issuer()+"/protocol/openid-connect/certs", token.KeySetOptions{Now: env.now})
			v, err := token.NewVerifier(keys, token.Config{Issuer: b.Issuer(), Audiences: []string{"orders-api"}, Now: env.now})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.Verify(ctx, tok.AccessToken); !errors.Is(err, token.ErrInvalidAudience) {
				t.Fatalf("err = %v, want ErrInvalidAudience", err)
			}
		})
	})

	t.Run("JWKS rotation", func(t *testing.T) {
		old, err := b.PasswordLogin(ctx, "alice", "alice-pw")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Verifier().Verify(ctx, old.AccessToken); err != nil {
			t.Fatal(err)
		}
		env.rotateKeys(t, m, realm)
		env.advance(20 * time.Millisecond) // past the refresh floor
		fresh, err := b.PasswordLogin(ctx, "alice", "alice-pw")
		if err != nil {
			t.Fatal(err)
		}
		if kidOf(t, fresh.AccessToken) == kidOf(t, old.AccessToken) {
			t.Fatal("rotation did not change the signing key")
		}
		if _, err := b.Verifier().Verify(ctx, fresh.AccessToken); err != nil {
			t.Fatalf("token signed by the new key: %v", err)
		}
		if _, err := b.Verifier().Verify(ctx, old.AccessToken); err != nil {
			t.Fatalf("token signed by the old, still published key: %v", err)
		}
	})

	t.Run("concurrent writes from two replicas lose no entry", func(t *testing.T) {
		replicas := []*bridge.Bridge{newBridge(t, nil), newBridge(t, nil)}
		const n = 10
		var wg sync.WaitGroup
		errs := make(chan error, n)
		want := make([]string, n)
		for i := 0; i < n; i++ {
			e := replicas[0].NewEntry(fmt.Sprintf("conc-%02d", i), "2", []string{"pin"})
			want[i] = e.Marshal()
			wg.Add(1)
			go func(r *bridge.Bridge) {
				defer wg.Done()
				errs <- r.WriteStepUp(ctx, alice, e)
			}(replicas[i%2])
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		got, err := b.GetUser(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !slices.Contains(got.Attributes["stepup"], w) {
				t.Errorf("entry %s lost", w)
			}
		}
		if fmt.Sprint(got.Attributes["department"]) != "[research]" {
			t.Errorf("department lost under concurrency: %v", got.Attributes["department"])
		}
	})

	t.Run("pruning and bound", func(t *testing.T) {
		clock := &fakeClock{t: env.now()}
		pb := newBridge(t, func(c *bridge.Config) { c.MaxEntries = 3; c.Now = clock.Now; c.EntryTTL = time.Hour })
		var last []string
		for i := 0; i < 5; i++ {
			clock.Add(time.Second)
			e := pb.NewEntry(fmt.Sprintf("bound-%d", i), "2", []string{"pin"})
			last = append(last, e.Marshal())
			if err := pb.WriteStepUp(ctx, alice, e); err != nil {
				t.Fatal(err)
			}
		}
		got, err := pb.GetUser(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(got.Attributes["stepup"], "|") != strings.Join(last[2:], "|") {
			t.Fatalf("stepup = %v, want the newest three %v", got.Attributes["stepup"], last[2:])
		}
		clock.Add(2 * time.Hour)
		e := pb.NewEntry("after-expiry", "2", []string{"pin"})
		if err := pb.WriteStepUp(ctx, alice, e); err != nil {
			t.Fatal(err)
		}
		got, err = pb.GetUser(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Attributes["stepup"]) != 1 || got.Attributes["stepup"][0] != e.Marshal() {
			t.Fatalf("stepup = %v, want only the fresh entry (the others expired)", got.Attributes["stepup"])
		}
		if fmt.Sprint(got.Attributes["department"]) != "[research]" {
			t.Fatalf("department lost: %v", got.Attributes["department"])
		}
	})

	t.Run("unreachable Keycloak is ErrUnavailable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		down := newBridge(t, func(c *bridge.Config) { c.BaseURL = "http://" + addr; c.Timeout = 2 * time.Second })
		if _, err := down.PasswordLogin(ctx, "alice", "alice-pw"); !errors.Is(err, bridge.ErrUnavailable) {
			t.Fatalf("login: err = %v", err)
		}
		if err := down.WriteStepUp(ctx, alice, down.NewEntry("s", "2", []string{"pin"})); !errors.Is(err, bridge.ErrUnavailable) {
			t.Fatalf("write: err = %v", err)
		}
	})

	// Both admin-token tests invalidate tokens, so they run last.
	renewals := func(t *testing.T, reg *prometheus.Registry) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "stepup_bridge_keycloak_admin_token_renewals_total" {
				return mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		return 0
	}
	frozenBridge := func(t *testing.T) (*bridge.Bridge, *prometheus.Registry) {
		t.Helper()
		frozen := env.now()
		fb := newBridge(t, func(c *bridge.Config) { c.Now = func() time.Time { return frozen } })
		reg := prometheus.NewRegistry()
		if err := fb.RegisterMetrics(reg); err != nil {
			t.Fatal(err)
		}
		if _, err := fb.GetUser(ctx, alice); err != nil {
			t.Fatal(err)
		}
		return fb, reg
	}

	t.Run("expired admin token is renewed", func(t *testing.T) {
		if env.advanceServer == nil {
			t.Skip("a real Keycloak's clock cannot be moved; the revoked-token case covers the 401 retry")
		}
		fb, reg := frozenBridge(t)
		env.advanceServer(10 * time.Minute) // the service-account token (300s) expires
		if _, err := fb.GetUser(ctx, alice); err != nil {
			t.Fatalf("after expiry: %v", err)
		}
		if n := renewals(t, reg); n != 2 {
			t.Fatalf("%v token fetches, want 2", n)
		}
	})

	t.Run("revoked admin token is renewed", func(t *testing.T) {
		fb, reg := frozenBridge(t)
		// Realm not-before: every token issued before it is refused.
		m.mustDo(t, http.MethodPut, "/admin/realms/"+realm, map[string]any{"notBefore": env.now().Unix() + 1}, nil, http.StatusNoContent)
		env.advance(2 * time.Second)
		if _, err := fb.GetUser(ctx, alice); err != nil {
			t.Fatalf("after revocation: %v", err)
		}
		if n := renewals(t, reg); n != 2 {
			t.Fatalf("%v token fetches, want 2", n)
		}
	})
}

func kidOf(t *testing.T, raw string) string {
	t.Helper()
	hb, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(hb, &h); err != nil {
		t.Fatal(err)
	}
	return h.Kid
}

// realmPublicKeyPEM fetches the realm's JWKS and returns the PEM of the
// key kid, the bytes an HS256 confusion attack would use as the secret.
func realmPublicKeyPEM(t *testing.T, base, realm, kid string) []byte {
	t.Helper()
	resp, err := http.Get(base + "/realms/" + realm + "/protocol/openid-connect/certs")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
			N   string `json:"n"`
			E   string `json:"e"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	for _, k := range set.Keys {
		if k.Kid != kid {
			continue
		}
		n, _ := base64.RawURLEncoding.DecodeString(k.N)
		e, _ := base64.RawURLEncoding.DecodeString(k.E)
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	t.Fatalf("kid %s not in the JWKS", kid)
	return nil
}
