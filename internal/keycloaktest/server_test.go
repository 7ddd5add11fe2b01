package keycloaktest

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestDiscovery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do(http.MethodGet, "/realms/stepup-dev/.well-known/openid-configuration", nil, nil)
	if r.status != http.StatusOK {
		t.Fatalf("status %d", r.status)
	}
	d := r.json(t)
	iss := e.s.URL() + "/realms/stepup-dev"
	for k, want := range map[string]string{
		"issuer":                 iss,
		"token_endpoint":         iss + "/protocol/openid-connect/token",
		"jwks_uri":               iss + "/protocol/openid-connect/certs",
		"introspection_endpoint": iss + "/protocol/openid-connect/token/introspect",
		"userinfo_endpoint":      iss + "/protocol/openid-connect/userinfo",
		"end_session_endpoint":   iss + "/protocol/openid-connect/logout",
		"revocation_endpoint":    iss + "/protocol/openid-connect/revoke",
	} {
		if d[k] != want {
			t.Errorf("%s = %v, want %s", k, d[k], want)
		}
	}
	if r := e.do(http.MethodGet, "/realms/nope/.well-known/openid-configuration", nil, nil); r.status != http.StatusNotFound {
		t.Errorf("unknown realm: %d", r.status)
	}
}

func jwksKeys(t *testing.T, e *env) []map[string]any {
	t.Helper()
	r := e.do(http.MethodGet, "/realms/stepup-dev/protocol/openid-connect/certs", nil, nil)
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(r.body, &set); err != nil {
		t.Fatal(err)
	}
	return set.Keys
}

// verifyWithJWKS checks an RS256 token against the published key with its kid.
func verifyWithJWKS(t *testing.T, keys []map[string]any, jwt string) bool {
	t.Helper()
	kid := header(t, jwt)["kid"]
	for _, k := range keys {
		if k["kid"] != kid || k["use"] != "sig" {
			continue
		}
		n, _ := base64.RawURLEncoding.DecodeString(k["n"].(string))
		eb, _ := base64.RawURLEncoding.DecodeString(k["e"].(string))
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(eb).Int64())}
		parts := strings.Split(jwt, ".")
		sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
		sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig) == nil
	}
	return false
}

func TestJWKS(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	keys := jwksKeys(t, e)
	if len(keys) != 2 {
		t.Fatalf("want sig+enc keys, got %d", len(keys))
	}
	uses := map[string]string{}
	for _, k := range keys {
		for _, f := range []string{"kid", "kty", "alg", "use", "n", "e", "x5c", "x5t", "x5t#S256"} {
			if _, ok := k[f]; !ok {
				t.Errorf("key %v lacks %s", k["kid"], f)
			}
		}
		uses[k["use"].(string)] = k["alg"].(string)
	}
	if uses["sig"] != "RS256" || uses["enc"] != "RSA-OAEP" {
		t.Errorf("uses = %v", uses)
	}
	tok := e.login("alice", "alice", "openid")
	if !verifyWithJWKS(t, keys, tok["access_token"].(string)) {
		t.Error("access token does not verify with the JWKS")
	}
}

func TestPasswordGrant(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		client     url.Values
		username   string
		password   string
		wantStatus int
		wantError  string
		wantDesc   string
	}{
		{"ok", url.Values{"client_id": {"stepup-login"}, "client_secret": {"stepup-login-secret"}}, "alice", "alice", 200, "", ""},
		{"login by email", url.Values{"client_id": {"stepup-login"}, "client_secret": {"stepup-login-secret"}}, "alice@example.test", "alice", 200, "", ""},
		{"wrong password", url.Values{"client_id": {"stepup-login"}, "client_secret": {"stepup-login-secret"}}, "alice", "nope", 401, "invalid_grant", "Invalid user credentials"},
		{"unknown user", url.Values{"client_id": {"stepup-login"}, "client_secret": {"stepup-login-secret"}}, "mallory", "x", 401, "invalid_grant", "Invalid user credentials"},
		{"wrong client secret", url.Values{"client_id": {"stepup-login"}, "client_secret": {"bad"}}, "alice", "alice", 401, "unauthorized_client", "Invalid client or Invalid client credentials"},
		{"missing client secret", url.Values{"client_id": {"stepup-login"}}, "alice", "alice", 401, "unauthorized_client", "Invalid client or Invalid client credentials"},
		{"unknown client", url.Values{"client_id": {"ghost"}}, "alice", "alice", 401, "invalid_client", "Invalid client or Invalid client credentials"},
		{"no client", url.Values{}, "alice", "alice", 400, "invalid_client", "Missing client_id parameter"},
		{"direct grants off", url.Values{"client_id": {"stepup-bridge-admin"}, "client_secret": {"stepup-bridge-admin-secret"}}, "alice", "alice", 400, "unauthorized_client", "Client not allowed for direct access grants"},
		{"bearer-only client without secret", url.Values{"client_id": {"demo-api"}}, "alice", "alice", 401, "unauthorized_client", "Invalid client or Invalid client credentials"},
	}
	e := newEnv(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := url.Values{"grant_type": {"password"}, "username": {tt.username}, "password": {tt.password}}
			for k, x := range tt.client {
				v[k] = x
			}
			r := e.form(devTokenPath, v, nil)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, tt.wantStatus, r.body)
			}
			body := r.json(t)
			if tt.wantError != "" {
				if body["error"] != tt.wantError || body["error_description"] != tt.wantDesc {
					t.Errorf("body %v", body)
				}
				return
			}
			for _, f := range []string{"access_token", "expires_in", "refresh_expires_in", "refresh_token", "token_type", "not-before-policy", "session_state", "scope"} {
				if _, ok := body[f]; !ok {
					t.Errorf("response lacks %s", f)
				}
			}
		})
	}
}

func TestAccessTokenClaims(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok := e.login("carol", "carol", "openid")
	at := tok["access_token"].(string)
	h := header(t, at)
	if h["alg"] != "RS256" || h["typ"] != "JWT" || h["kid"] == "" {
		t.Errorf("header %v", h)
	}
	c := claims(t, at)
	iss := e.s.URL() + "/realms/stepup-dev"
	want := map[string]any{
		"iss": iss, "typ": "Bearer", "azp": "stepup-login", "acr": "1", "preferred_username": "carol",
		"email": "carol@example.test", "email_verified": true, "name": "Carol Danvers", "given_name": "Carol",
		"family_name": "Danvers", "scope": "openid profile email", "aud": "account", "sid": tok["session_state"],
		"exp": float64(1700000000 + 300), "iat": float64(1700000000), "auth_time": float64(1700000000),
	}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("%s = %v, want %v", k, c[k], v)
		}
	}
	if c["sub"] == "" || c["jti"] == "" {
		t.Errorf("sub/jti missing: %v", c)
	}
	roles := c["realm_access"].(map[string]any)["roles"].([]any)
	if !containsAny(roles, "stepup-admin") || !containsAny(roles, "default-roles-stepup-dev") {
		t.Errorf("realm roles %v", roles)
	}
	acc := c["resource_access"].(map[string]any)["account"].(map[string]any)["roles"].([]any)
	if !containsAny(acc, "manage-account") || !containsAny(acc, "view-profile") {
		t.Errorf("account roles %v", acc)
	}
	if _, ok := c["session_state"]; ok {
		t.Error("Keycloak 25+ tokens carry sid, not session_state")
	}
	id := claims(t, tok["id_token"].(string))
	if id["typ"] != "ID" || id["aud"] != "stepup-login" || id["sid"] != tok["session_state"] || id["at_hash"] == nil {
		t.Errorf("id token %v", id)
	}
	// No id_token without openid.
	if tok2 := e.login("carol", "carol", ""); tok2["id_token"] != nil || tok2["scope"] != "profile email" {
		t.Errorf("without openid: scope %v id_token %v", tok2["scope"], tok2["id_token"] != nil)
	}
}

func containsAny(list []any, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func TestAdminGetAndPutUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok := e.serviceToken()
	id := e.userID(tok, "alice")
	r := e.api(http.MethodGet, "/admin/realms/stepup-dev/users/"+id, tok, nil)
	if r.status != 200 {
		t.Fatalf("GET: %d %s", r.status, r.body)
	}
	u := r.json(t)
	if u["firstName"] != "Alice" || u["email"] != "alice@example.test" || u["enabled"] != true {
		t.Errorf("user %v", u)
	}
	// PUT with attributes and without firstName wipes firstName (the trap).
	r = e.api(http.MethodPut, "/admin/realms/stepup-dev/users/"+id, tok, map[string]any{
		"lastName": "Liddell", "email": "alice@example.test", "attributes": map[string][]string{}})
	if r.status != http.StatusNoContent {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	u = e.api(http.MethodGet, "/admin/realms/stepup-dev/users/"+id, tok, nil).json(t)
	if _, ok := u["firstName"]; ok {
		t.Errorf("firstName survived a PUT with attributes: %v", u)
	}
	if u["lastName"] != "Liddell" {
		t.Errorf("lastName = %v", u["lastName"])
	}
	// Without attributes, missing fields are kept.
	e.api(http.MethodPut, "/admin/realms/stepup-dev/users/"+id, tok, map[string]any{"firstName": "Alice"})
	u = e.api(http.MethodGet, "/admin/realms/stepup-dev/users/"+id, tok, nil).json(t)
	if u["firstName"] != "Alice" || u["lastName"] != "Liddell" {
		t.Errorf("after partial PUT: %v", u)
	}
	if r := e.api(http.MethodGet, "/admin/realms/stepup-dev/users/00000000-0000-0000-0000-000000000000", tok, nil); r.status != 404 || string(r.json(t)["error"].(string)) != "User not found" {
		t.Errorf("missing user: %d %s", r.status, r.body)
	}
}

func TestStartStopsWithContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := http.Get(s.URL() + "/realms/master/.well-known/openid-configuration"); err != nil || r.StatusCode != 200 {
		t.Fatalf("master discovery: %v", err)
	} else {
		r.Body.Close()
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := http.Get(s.URL() + "/realms/master"); err != nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Error("server still answers after its context ended")
}
