package keycloaktest

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const devAdmin = "/admin/realms/stepup-dev"

func basicAuth(id, secret string) map[string]string {
	return map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))}
}

func (e *env) refresh(rt string) response {
	e.t.Helper()
	return e.form(devTokenPath, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}},
		basicAuth("stepup-login", "stepup-login-secret"))
}

func (e *env) introspect(token string, hdr map[string]string, extra url.Values) response {
	e.t.Helper()
	v := url.Values{"token": {token}}
	for k, x := range extra {
		v[k] = x
	}
	return e.form("/realms/stepup-dev/protocol/openid-connect/token/introspect", v, hdr)
}

func TestRefreshTokenRotation(t *testing.T) {
	t.Parallel()
	for _, revoke := range []bool{false, true} {
		t.Run(map[bool]string{false: "reuse allowed", true: "revokeRefreshToken"}[revoke], func(t *testing.T) {
			e := newEnv(t)
			admin := e.adminToken()
			if r := e.api(http.MethodPut, devAdmin, admin, map[string]any{"revokeRefreshToken": revoke}); r.status != 204 {
				t.Fatalf("realm PUT %d %s", r.status, r.body)
			}
			tok := e.login("alice", "alice", "openid")
			rt1 := tok["refresh_token"].(string)
			r := e.refresh(rt1)
			if r.status != 200 {
				t.Fatalf("refresh: %d %s", r.status, r.body)
			}
			rt2 := r.json(t)["refresh_token"].(string)
			if rt2 == rt1 {
				t.Fatal("refresh returned the same refresh token")
			}
			if claims(t, r.json(t)["access_token"].(string))["sid"] != tok["session_state"] {
				t.Error("refreshed token left its session")
			}
			e.clock.Advance(time.Second)
			r = e.refresh(rt1)
			if revoke {
				if r.status != 400 || r.json(t)["error"] != "invalid_grant" || r.json(t)["error_description"] != "Maximum allowed refresh token reuse exceeded" {
					t.Errorf("reuse with revokeRefreshToken: %d %s", r.status, r.body)
				}
				// Reuse detection detaches the client session: the newest token dies too.
				if r := e.refresh(rt2); r.status != 400 {
					t.Errorf("newest refresh token after reuse: %d %s", r.status, r.body)
				}
			} else if r.status != 200 {
				t.Errorf("reuse without revokeRefreshToken: %d %s", r.status, r.body)
			}
		})
	}
}

func TestLogoutEndsSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok := e.login("alice", "alice", "openid")
	hdr := basicAuth("stepup-login", "stepup-login-secret")
	if r := e.introspect(tok["access_token"].(string), hdr, nil); r.json(t)["active"] != true {
		t.Fatalf("introspection before logout: %s", r.body)
	}
	r := e.form("/realms/stepup-dev/protocol/openid-connect/logout", url.Values{"refresh_token": {tok["refresh_token"].(string)}}, hdr)
	if r.status != http.StatusNoContent {
		t.Fatalf("logout %d %s", r.status, r.body)
	}
	if r := e.refresh(tok["refresh_token"].(string)); r.status != 400 || r.json(t)["error_description"] != "Session not active" {
		t.Errorf("refresh after logout: %d %s", r.status, r.body)
	}
	if r := e.introspect(tok["access_token"].(string), hdr, nil); string(r.body) != "{\"active\":false}\n" {
		t.Errorf("introspection after logout: %s", r.body)
	}
}

func TestIntrospection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok := e.login("bob", "bob", "openid")
	at := tok["access_token"].(string)
	// A public client.
	admin := e.adminToken()
	if r := e.api(http.MethodPost, devAdmin+"/clients", admin, map[string]any{"clientId": "spa", "publicClient": true}); r.status != 201 {
		t.Fatalf("create client: %d %s", r.status, r.body)
	}
	tests := []struct {
		name       string
		hdr        map[string]string
		extra      url.Values
		token      string
		wantStatus int
		wantActive any
	}{
		{"confidential active", basicAuth("stepup-login", "stepup-login-secret"), nil, at, 200, true},
		{"client_secret_post", nil, url.Values{"client_id": {"stepup-login"}, "client_secret": {"stepup-login-secret"}}, at, 200, true},
		{"garbage token", basicAuth("stepup-login", "stepup-login-secret"), nil, "x.y.z", 200, false},
		{"public client refused", nil, url.Values{"client_id": {"spa"}}, at, 403, nil},
		{"bad secret", basicAuth("stepup-login", "wrong"), nil, at, 401, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.introspect(tt.token, tt.hdr, tt.extra)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			body := r.json(t)
			if tt.wantActive != nil && body["active"] != tt.wantActive {
				t.Errorf("active = %v", body["active"])
			}
			if tt.wantStatus == 403 && (body["error"] != "invalid_request" || body["error_description"] != "Client not allowed.") {
				t.Errorf("public: %v", body)
			}
			if tt.wantActive == true && (body["username"] != "bob" || body["client_id"] != "stepup-login" || body["token_type"] != "Bearer") {
				t.Errorf("active body %v", body)
			}
		})
	}
	e.clock.Advance(301 * time.Second)
	if r := e.introspect(at, basicAuth("stepup-login", "stepup-login-secret"), nil); r.json(t)["active"] != false {
		t.Errorf("expired token active: %s", r.body)
	}
}

func TestRevoke(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hdr := basicAuth("stepup-login", "stepup-login-secret")
	tok := e.login("alice", "alice", "")
	r := e.form("/realms/stepup-dev/protocol/openid-connect/revoke", url.Values{"token": {tok["access_token"].(string)}}, hdr)
	if r.status != 200 {
		t.Fatalf("revoke access: %d %s", r.status, r.body)
	}
	if r := e.introspect(tok["access_token"].(string), hdr, nil); r.json(t)["active"] != false {
		t.Error("revoked access token still active")
	}
	if r := e.refresh(tok["refresh_token"].(string)); r.status != 200 {
		t.Errorf("revoking the access token ended the session: %s", r.body)
	}
	e.form("/realms/stepup-dev/protocol/openid-connect/revoke", url.Values{"token": {tok["refresh_token"].(string)}, "token_type_hint": {"refresh_token"}}, hdr)
	if r := e.refresh(tok["refresh_token"].(string)); r.status != 400 {
		t.Errorf("refresh after revoke: %d", r.status)
	}
}

func TestUserinfo(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok := e.login("alice", "alice", "openid")
	r := e.do(http.MethodGet, "/realms/stepup-dev/protocol/openid-connect/userinfo", nil, map[string]string{"Authorization": "Bearer " + tok["access_token"].(string)})
	u := r.json(t)
	if r.status != 200 || u["preferred_username"] != "alice" || u["sub"] == nil || u["email"] != "alice@example.test" {
		t.Errorf("userinfo %d %v", r.status, u)
	}
	if r := e.do(http.MethodGet, "/realms/stepup-dev/protocol/openid-connect/userinfo", nil, map[string]string{"Authorization": "Bearer x"}); r.status != 401 {
		t.Errorf("bad token: %d", r.status)
	}
	noOpenID := e.login("alice", "alice", "")["access_token"].(string)
	if r := e.do(http.MethodGet, "/realms/stepup-dev/protocol/openid-connect/userinfo", nil, map[string]string{"Authorization": "Bearer " + noOpenID}); r.status != 403 || r.json(t)["error"] != "insufficient_scope" {
		t.Errorf("token without openid: %d %s", r.status, r.body)
	}
}

func TestAccountStateErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		update   map[string]any
		wantDesc string
	}{
		{"disabled", map[string]any{"enabled": false}, "Account disabled"},
		{"required action", map[string]any{"requiredActions": []string{"UPDATE_PASSWORD"}}, "Account is not fully set up"},
		{"missing lastName under default profile", map[string]any{"firstName": "Bob", "email": "bob@example.test", "attributes": map[string][]string{}}, "Account is not fully set up"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			admin := e.adminToken()
			id := e.userID(admin, "bob")
			if r := e.api(http.MethodPut, devAdmin+"/users/"+id, admin, tt.update); r.status != 204 {
				t.Fatalf("PUT %d %s", r.status, r.body)
			}
			r := e.form(devTokenPath, url.Values{"grant_type": {"password"}, "client_id": {"stepup-login"},
				"client_secret": {"stepup-login-secret"}, "username": {"bob"}, "password": {"bob"}}, nil)
			if b := r.json(t); r.status != 400 || b["error"] != "invalid_grant" || b["error_description"] != tt.wantDesc {
				t.Errorf("%d %v", r.status, b)
			}
		})
	}
}

func TestBruteForceAndEnabledUnlock(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := e.adminToken()
	if r := e.api(http.MethodPut, devAdmin, admin, map[string]any{"bruteForceProtected": true, "failureFactor": 3}); r.status != 204 {
		t.Fatal(r.status)
	}
	id := e.userID(admin, "alice")
	bad := url.Values{"grant_type": {"password"}, "client_id": {"stepup-login"}, "client_secret": {"stepup-login-secret"}, "username": {"alice"}, "password": {"wrong"}}
	for i := 0; i < 3; i++ {
		e.clock.Advance(2 * time.Second) // slower than quickLoginCheckMilliSeconds
		if r := e.form(devTokenPath, bad, nil); r.status != 401 {
			t.Fatalf("failure %d: %d", i, r.status)
		}
	}
	good := url.Values{"grant_type": {"password"}, "client_id": {"stepup-login"}, "client_secret": {"stepup-login-secret"}, "username": {"alice"}, "password": {"alice"}}
	r := e.form(devTokenPath, good, nil)
	if b := r.json(t); b["error"] != "invalid_grant" || b["error_description"] != "Invalid user credentials" {
		t.Fatalf("locked user with right password: %d %v", r.status, b)
	}
	st := e.api(http.MethodGet, devAdmin+"/attack-detection/brute-force/users/"+id, admin, nil).json(t)
	if st["disabled"] != true || st["numFailures"] != float64(3) {
		t.Errorf("status %v", st)
	}
	// The GET-modify-PUT trap: enabled:true unlocks.
	if r := e.api(http.MethodPut, devAdmin+"/users/"+id, admin, map[string]any{"enabled": true}); r.status != 204 {
		t.Fatal(r.status)
	}
	if r := e.form(devTokenPath, good, nil); r.status != 200 {
		t.Errorf("after enabled:true: %d %s", r.status, r.body)
	}
	// The lock also expires: 60 s wait increment.
	for i := 0; i < 3; i++ {
		e.clock.Advance(2 * time.Second)
		e.form(devTokenPath, bad, nil)
	}
	if r := e.form(devTokenPath, good, nil); r.status == 200 {
		t.Error("not locked again")
	}
	e.clock.Advance(61 * time.Second)
	if r := e.form(devTokenPath, good, nil); r.status != 200 {
		t.Errorf("after wait: %d %s", r.status, r.body)
	}
	if r := e.api(http.MethodDelete, devAdmin+"/attack-detection/brute-force/users/"+id, admin, nil); r.status != 204 {
		t.Errorf("DELETE lockout: %d", r.status)
	}
}

func (e *env) putProfile(token string, mutate func(up map[string]any)) response {
	e.t.Helper()
	up := e.api(http.MethodGet, devAdmin+"/users/profile", token, nil).json(e.t)
	mutate(up)
	return e.api(http.MethodPut, devAdmin+"/users/profile", token, up)
}

func TestUserProfileAttributes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sa := e.serviceToken()
	id := e.userID(sa, "alice")
	put := func(attrs map[string][]string) response {
		return e.api(http.MethodPut, devAdmin+"/users/"+id, sa, map[string]any{
			"firstName": "Alice", "lastName": "Liddell", "email": "alice@example.test", "attributes": attrs})
	}
	// Undeclared attribute with unmanaged attributes off: dropped, still 204.
	if r := put(map[string][]string{"stepup": {`{"m":"totp"}`}}); r.status != 204 {
		t.Fatalf("PUT %d %s", r.status, r.body)
	}
	if u := e.api(http.MethodGet, devAdmin+"/users/"+id, sa, nil).json(t); u["attributes"] != nil {
		t.Errorf("undeclared attribute stored: %v", u["attributes"])
	}
	// Invalid configuration.
	r := e.putProfile(sa, func(up map[string]any) {
		up["attributes"] = append(up["attributes"].([]any), map[string]any{"name": "bad name"})
	})
	if r.status != 400 || r.json(t)["errorMessage"] == nil {
		t.Errorf("invalid config: %d %s", r.status, r.body)
	}
	// Declare an admin-only attribute.
	r = e.putProfile(sa, func(up map[string]any) {
		up["attributes"] = append(up["attributes"].([]any), map[string]any{"name": "stepup", "multivalued": true,
			"permissions": map[string]any{"view": []string{"admin"}, "edit": []string{"admin"}}})
	})
	if r.status != 200 {
		t.Fatalf("declare: %d %s", r.status, r.body)
	}
	if r := put(map[string][]string{"stepup": {`{"m":"totp"}`}}); r.status != 204 {
		t.Fatal(r.status)
	}
	u := e.api(http.MethodGet, devAdmin+"/users/"+id, sa, nil).json(t)
	if got, _ := json.Marshal(u["attributes"]); string(got) != `{"stepup":["{\"m\":\"totp\"}"]}` {
		t.Errorf("attributes %s", got)
	}
	// The account API hides it and refuses a change.
	tok := e.login("alice", "alice", "")
	acc := e.api(http.MethodGet, "/realms/stepup-dev/account", tok["access_token"].(string), nil)
	if acc.status != 200 || strings.Contains(string(acc.body), "stepup") && acc.json(t)["attributes"] != nil {
		t.Errorf("account GET %d %s", acc.status, acc.body)
	}
	r = e.api(http.MethodPost, "/realms/stepup-dev/account", tok["access_token"].(string), map[string]any{
		"firstName": "Alice", "lastName": "Liddell", "email": "alice@example.test",
		"attributes": map[string][]string{"stepup": {`{"m":"none"}`}}})
	if r.status != 400 || r.json(t)["errorMessage"] != "error-user-attribute-read-only" {
		t.Errorf("account POST of admin-only attribute: %d %s", r.status, r.body)
	}
	// A user-editable attribute is saved through the account API.
	e.putProfile(sa, func(up map[string]any) {
		up["attributes"] = append(up["attributes"].([]any), map[string]any{"name": "nickname",
			"permissions": map[string]any{"view": []string{"admin", "user"}, "edit": []string{"admin", "user"}}})
	})
	r = e.api(http.MethodPost, "/realms/stepup-dev/account", tok["access_token"].(string), map[string]any{
		"firstName": "Alice", "lastName": "Liddell", "email": "alice@example.test",
		"attributes": map[string][]string{"nickname": {"ali"}}})
	if r.status != 204 {
		t.Fatalf("account POST: %d %s", r.status, r.body)
	}
	u = e.api(http.MethodGet, devAdmin+"/users/"+id, sa, nil).json(t)
	attrs, _ := u["attributes"].(map[string]any)
	if attrs["nickname"] == nil || attrs["stepup"] == nil {
		t.Errorf("after account POST: %v", attrs)
	}
}

// addStepupMapper creates a client scope with an attribute mapper for
// "stepup" and makes it a default scope of stepup-login.
func (e *env) addStepupMapper(token, jsonType string, multivalued bool) {
	e.t.Helper()
	r := e.api(http.MethodPost, devAdmin+"/client-scopes", token, map[string]any{"name": "stepup", "protocol": "openid-connect"})
	if r.status != 201 {
		e.t.Fatalf("scope: %d %s", r.status, r.body)
	}
	loc := r.header.Get("Location")
	scopeID := loc[strings.LastIndex(loc, "/")+1:]
	if r := e.api(http.MethodPost, devAdmin+"/client-scopes", token, map[string]any{"name": "stepup"}); r.status != 409 {
		e.t.Errorf("duplicate scope: %d", r.status)
	}
	mapper := map[string]any{"name": "stepup", "protocol": "openid-connect", "protocolMapper": "oidc-usermodel-attribute-mapper",
		"config": map[string]string{"user.attribute": "stepup", "claim.name": "stepup.methods", "jsonType.label": jsonType,
			"multivalued":        map[bool]string{true: "true", false: "false"}[multivalued],
			"access.token.claim": "true", "id.token.claim": "false", "userinfo.token.claim": "false", "introspection.token.claim": "true"}}
	if r := e.api(http.MethodPost, devAdmin+"/client-scopes/"+scopeID+"/protocol-mappers/models", token, mapper); r.status != 201 {
		e.t.Fatalf("mapper: %d %s", r.status, r.body)
	}
	if r := e.api(http.MethodPost, devAdmin+"/client-scopes/"+scopeID+"/protocol-mappers/models", token, mapper); r.status != 409 {
		e.t.Errorf("duplicate mapper: %d", r.status)
	}
	var clients []map[string]any
	_ = json.Unmarshal(e.api(http.MethodGet, devAdmin+"/clients?clientId=stepup-login", token, nil).body, &clients)
	if len(clients) != 1 {
		e.t.Fatalf("clients %v", clients)
	}
	cid := clients[0]["id"].(string)
	if r := e.api(http.MethodPut, devAdmin+"/clients/"+cid+"/default-client-scopes/nope", token, nil); r.status != 404 {
		e.t.Errorf("unknown scope attach: %d", r.status)
	}
	if r := e.api(http.MethodPut, devAdmin+"/clients/"+cid+"/default-client-scopes/"+scopeID, token, nil); r.status != 204 {
		e.t.Fatalf("attach: %d %s", r.status, r.body)
	}
}

func TestAttributeMapper(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		jsonType   string
		multi      bool
		values     []string
		wantStatus int
		wantClaim  string
	}{
		{"JSON multivalued", "JSON", true, []string{`{"m":"totp","at":1}`, `{"m":"pin"}`}, 200, `[{"at":1,"m":"totp"},{"m":"pin"}]`},
		{"JSON single", "JSON", false, []string{`{"m":"totp"}`}, 200, `{"m":"totp"}`},
		{"String", "String", false, []string{"totp"}, 200, `"totp"`},
		{"long", "long", false, []string{"42"}, 200, `42`},
		{"boolean", "boolean", false, []string{"true"}, 200, `true`},
		{"invalid JSON is a 500 (issue 26744)", "JSON", true, []string{`{not json`}, 500, ``},
		{"invalid long is a 500", "long", false, []string{`x`}, 500, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			sa := e.serviceToken()
			e.addStepupMapper(sa, tt.jsonType, tt.multi)
			// Undeclared: the admin API drops it, so store it through the
			// profile first, then undeclare it again: mappers still see it.
			e.putProfile(sa, func(up map[string]any) {
				up["attributes"] = append(up["attributes"].([]any), map[string]any{"name": "stepup", "multivalued": true,
					"permissions": map[string]any{"view": []string{"admin"}, "edit": []string{"admin"}}})
			})
			id := e.userID(sa, "alice")
			if r := e.api(http.MethodPut, devAdmin+"/users/"+id, sa, map[string]any{"firstName": "Alice", "lastName": "Liddell",
				"email": "alice@example.test", "attributes": map[string][]string{"stepup": tt.values}}); r.status != 204 {
				t.Fatalf("PUT %d %s", r.status, r.body)
			}
			e.putProfile(sa, func(up map[string]any) {
				attrs := up["attributes"].([]any)
				up["attributes"] = attrs[:len(attrs)-1]
			})
			r := e.form(devTokenPath, url.Values{"grant_type": {"password"}, "client_id": {"stepup-login"},
				"client_secret": {"stepup-login-secret"}, "username": {"alice"}, "password": {"alice"}}, nil)
			if r.status != tt.wantStatus {
				t.Fatalf("token: %d %s", r.status, r.body)
			}
			if tt.wantStatus != 200 {
				return
			}
			c := claims(t, r.json(t)["access_token"].(string))
			got, _ := json.Marshal(c["stepup"].(map[string]any)["methods"])
			if string(got) != tt.wantClaim {
				t.Errorf("claim %s, want %s", got, tt.wantClaim)
			}
			// Bob has no value: no claim, no error.
			if c := claims(t, e.login("bob", "bob", "")["access_token"].(string)); c["stepup"] != nil {
				t.Errorf("bob got %v", c["stepup"])
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	old := e.login("alice", "alice", "")["access_token"].(string)
	if err := e.s.RotateKeys("stepup-dev"); err != nil {
		t.Fatal(err)
	}
	keys := jwksKeys(t, e)
	if len(keys) != 3 {
		t.Fatalf("after rotation %d keys", len(keys))
	}
	fresh := e.login("alice", "alice", "")["access_token"].(string)
	if header(t, fresh)["kid"] == header(t, old)["kid"] {
		t.Error("rotation kept the kid")
	}
	if !verifyWithJWKS(t, keys, old) || !verifyWithJWKS(t, keys, fresh) {
		t.Error("old or new token does not verify")
	}
	hdr := basicAuth("stepup-login", "stepup-login-secret")
	if e.introspect(old, hdr, nil).json(t)["active"] != true {
		t.Error("old-key token inactive before RemoveOldKeys")
	}
	if err := e.s.RemoveOldKeys("stepup-dev"); err != nil {
		t.Fatal(err)
	}
	if keys := jwksKeys(t, e); len(keys) != 2 || verifyWithJWKS(t, keys, old) {
		t.Error("old key still published")
	}
	if e.introspect(old, hdr, nil).json(t)["active"] != false {
		t.Error("old-key token still active")
	}
	if err := e.s.RotateKeys("nope"); err == nil {
		t.Error("RotateKeys of unknown realm succeeded")
	}
}

func TestAdminPermissions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := e.adminToken()
	sa := e.serviceToken()
	user := e.login("carol", "carol", "")["access_token"].(string)
	id := e.userID(admin, "bob")
	tests := []struct {
		name, method, path, token string
		body                      any
		want                      int
	}{
		{"master admin reads users", "GET", devAdmin + "/users/" + id, admin, nil, 200},
		{"service account reads users", "GET", devAdmin + "/users/" + id, sa, nil, 200},
		{"plain user refused", "GET", devAdmin + "/users/" + id, user, nil, 403},
		{"no token", "GET", devAdmin + "/users/" + id, "", nil, 401},
		{"service account lists clients", "GET", devAdmin + "/clients", sa, nil, 200},
		{"service account reads profile", "GET", devAdmin + "/users/profile", sa, nil, 200},
		{"service account cannot create realms", "POST", "/admin/realms", sa, map[string]any{"realm": "x"}, 401},
		{"service account cannot delete realm", "DELETE", devAdmin, sa, nil, 403},
		{"count", "GET", devAdmin + "/users/count", sa, nil, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := e.api(tt.method, tt.path, tt.token, tt.body); r.status != tt.want {
				t.Errorf("%d, want %d: %s", r.status, tt.want, r.body)
			}
		})
	}
	// Remove manage-users from the service account: PUT becomes 403.
	var clients []map[string]any
	_ = json.Unmarshal(e.api("GET", devAdmin+"/clients?clientId=realm-management", admin, nil).body, &clients)
	rm := clients[0]["id"].(string)
	saUser := e.api("GET", devAdmin+"/clients/"+clientUUID(t, e, admin, "stepup-bridge-admin")+"/service-account-user", admin, nil).json(t)
	role := e.api("GET", devAdmin+"/clients/"+rm+"/roles/manage-users", admin, nil).json(t)
	if r := e.api("DELETE", devAdmin+"/users/"+saUser["id"].(string)+"/role-mappings/clients/"+rm, admin, []any{role}); r.status != 204 {
		t.Fatalf("unmap: %d %s", r.status, r.body)
	}
	sa = e.serviceToken()
	if r := e.api("PUT", devAdmin+"/users/"+id, sa, map[string]any{"firstName": "B"}); r.status != 403 {
		t.Errorf("PUT without manage-users: %d", r.status)
	}
}

func clientUUID(t *testing.T, e *env, token, clientID string) string {
	t.Helper()
	var clients []map[string]any
	_ = json.Unmarshal(e.api("GET", devAdmin+"/clients?clientId="+clientID, token, nil).body, &clients)
	if len(clients) != 1 {
		t.Fatalf("client %s not found", clientID)
	}
	return clients[0]["id"].(string)
}

func TestRealmLifecycleAndGocloakExport(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := e.adminToken()
	export, err := os.ReadFile(filepath.Join(gocloakDir(t), "testdata", "gocloak-realm.json"))
	if err != nil {
		t.Fatalf("gocloak testdata: %v", err)
	}
	r := e.do(http.MethodPost, "/admin/realms", strings.NewReader(string(export)), map[string]string{
		"Authorization": "Bearer " + admin, "Content-Type": "application/json"})
	if r.status != 201 {
		t.Fatalf("create gocloak realm: %d %s", r.status, r.body)
	}
	r = e.do(http.MethodPost, "/admin/realms", strings.NewReader(string(export)), map[string]string{
		"Authorization": "Bearer " + admin, "Content-Type": "application/json"})
	if r.status != 409 {
		t.Errorf("duplicate realm: %d", r.status)
	}
	// Its confidential client "gocloak" gets a service-account token with the imported roles.
	tr := e.form("/realms/gocloak/protocol/openid-connect/token", url.Values{"grant_type": {"client_credentials"},
		"client_id": {"gocloak"}, "client_secret": {"gocloak-secret"}}, nil)
	if tr.status != 200 {
		t.Fatalf("gocloak client credentials: %d %s", tr.status, tr.body)
	}
	c := claims(t, tr.json(t)["access_token"].(string))
	rm, _ := c["resource_access"].(map[string]any)["realm-management"].(map[string]any)
	if rm == nil || !containsAny(rm["roles"].([]any), "manage-clients") {
		t.Errorf("service account roles: %v", c["resource_access"])
	}
	if c["sub"] == nil {
		t.Error("migrated basic scope missing: no sub")
	}
	if r := e.api(http.MethodDelete, "/admin/realms/gocloak", admin, nil); r.status != 204 {
		t.Errorf("delete realm: %d", r.status)
	}
	if r := e.do(http.MethodGet, "/realms/gocloak/.well-known/openid-configuration", nil, nil); r.status != 404 {
		t.Errorf("deleted realm still served: %d", r.status)
	}
}

func TestHashedCredentialImport(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Credentials in the secretData/credentialData form kc.sh export writes.
	for _, alg := range []string{"pbkdf2-sha256", "pbkdf2-sha512", "argon2"} {
		t.Run(alg, func(t *testing.T) {
			pc := &passwordCredential{algorithm: alg, iterations: map[string]int{"argon2": 5}[alg] + map[bool]int{true: 1000}[alg != "argon2"],
				salt: []byte("saltsaltsaltsalt"), params: map[string][]string{"hashLength": {"32"}, "memory": {"7168"}, "parallelism": {"1"}, "type": {"id"}}}
			if alg == "pbkdf2-sha512" || alg == "pbkdf2-sha256" {
				pc.hash = make([]byte, 64)
			}
			hash, err := pc.derive("secret")
			if err != nil {
				t.Fatal(err)
			}
			sd, _ := json.Marshal(map[string]any{"value": base64.StdEncoding.EncodeToString(hash), "salt": base64.StdEncoding.EncodeToString(pc.salt), "additionalParameters": map[string]any{}})
			cd, _ := json.Marshal(map[string]any{"hashIterations": pc.iterations, "algorithm": alg, "additionalParameters": pc.params})
			realm := map[string]any{"realm": "hashed-" + alg, "users": []any{map[string]any{
				"username": "u", "enabled": true, "firstName": "U", "lastName": "U", "email": "u@example.test",
				"credentials": []any{map[string]any{"type": "password", "secretData": string(sd), "credentialData": string(cd)}}}}}
			b, _ := json.Marshal(realm)
			if err := e.s.ImportRealm(b); err != nil {
				t.Fatal(err)
			}
			path := "/realms/hashed-" + alg + "/protocol/openid-connect/token"
			ok := e.form(path, url.Values{"grant_type": {"password"}, "client_id": {"admin-cli"}, "username": {"u"}, "password": {"secret"}}, nil)
			bad := e.form(path, url.Values{"grant_type": {"password"}, "client_id": {"admin-cli"}, "username": {"u"}, "password": {"Secret"}}, nil)
			if ok.status != 200 || bad.status != 401 {
				t.Errorf("right %d %s, wrong %d", ok.status, ok.body, bad.status)
			}
		})
	}
}

func TestFaultHelpers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	certs := "/realms/stepup-dev/protocol/openid-connect/certs"
	before := e.s.Requests(certs)
	e.do(http.MethodGet, certs, nil, nil)
	e.do(http.MethodGet, certs, nil, nil)
	if got := e.s.Requests(certs) - before; got != 2 {
		t.Errorf("Requests = %d, want 2", got)
	}
	e.s.SetAvailable(false)
	if r := e.do(http.MethodGet, certs, nil, nil); r.status != 503 {
		t.Errorf("unavailable: %d", r.status)
	}
	e.s.SetAvailable(true)
	e.s.Latency(50 * time.Millisecond)
	start := time.Now()
	if r := e.do(http.MethodGet, certs, nil, nil); r.status != 200 {
		t.Errorf("status %d", r.status)
	}
	if time.Since(start) < 50*time.Millisecond {
		t.Error("latency not applied")
	}
	e.s.Latency(0)
}
