package policies

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/internal/keycloaktest"
)

// keycloakTokens logs alice in at the Keycloak-compatible test server,
// configured as `stepup-bridge apply` configures a realm (admin-only
// user-profile attribute, client scope with the JSON attribute mapper as a
// default scope of the login client), and steps her up by writing the
// attribute through the admin API and refreshing her token: what the
// sidecar's step-up flow does.
type keycloakTokens struct {
	srv     *keycloaktest.Server
	admin   string
	access  string
	refresh string
}

const kcRealm = "stepup-dev"

func newKeycloakTokens(t *testing.T) *keycloakTokens {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv, err := keycloaktest.Start(ctx, keycloaktest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	if err := srv.ImportRealm(keycloaktest.DevRealm()); err != nil {
		t.Fatal(err)
	}
	k := &keycloakTokens{srv: srv}
	tok := k.form(t, "/realms/master/protocol/openid-connect/token", url.Values{
		"grant_type": {"password"}, "client_id": {"admin-cli"}, "username": {"admin"}, "password": {"admin"}})
	k.admin = tok["access_token"].(string)

	// The attribute, admin-only, so users cannot forge step-ups.
	var profile map[string]any
	k.adminJSON(t, "GET", "/users/profile", nil, &profile)
	attrs, _ := profile["attributes"].([]any)
	profile["attributes"] = append(attrs, map[string]any{
		"name": "stepup", "multivalued": true,
		"permissions": map[string]any{"view": []string{"admin"}, "edit": []string{"admin"}},
	})
	k.adminJSON(t, "PUT", "/users/profile", profile, nil)

	// The client scope and mapper putting it into access tokens.
	loc := k.adminJSON(t, "POST", "/client-scopes", map[string]any{
		"name": "stepup", "protocol": "openid-connect",
		"attributes": map[string]string{"include.in.token.scope": "false"},
	}, nil)
	scopeID := loc[strings.LastIndex(loc, "/")+1:]
	k.adminJSON(t, "POST", "/client-scopes/"+scopeID+"/protocol-mappers/models", map[string]any{
		"name": "stepup", "protocol": "openid-connect", "protocolMapper": "oidc-usermodel-attribute-mapper",
		"config": map[string]string{
			"user.attribute": "stepup", "claim.name": "stepup", "jsonType.label": "JSON", "multivalued": "true",
			"access.token.claim": "true", "id.token.claim": "false", "userinfo.token.claim": "false",
			"introspection.token.claim": "true",
		},
	}, nil)
	var clients []map[string]any
	k.adminJSON(t, "GET", "/clients?clientId=stepup-login", nil, &clients)
	if len(clients) != 1 {
		t.Fatalf("clients named stepup-login: %v", clients)
	}
	k.adminJSON(t, "PUT", fmt.Sprintf("/clients/%s/default-client-scopes/%s", clients[0]["id"], scopeID), nil, nil)

	tok = k.form(t, "/realms/"+kcRealm+"/protocol/openid-connect/token", url.Values{
		"grant_type": {"password"}, "client_id": {"stepup-login"}, "client_secret": {"stepup-login-secret"},
		"username": {"alice"}, "password": {"alice"}, "scope": {"openid"}})
	k.access, k.refresh = tok["access_token"].(string), tok["refresh_token"].(string)
	return k
}

func (k *keycloakTokens) Issuer() string { return k.srv.URL() + "/realms/" + kcRealm }

func (k *keycloakTokens) Token(*testing.T) string { return k.access }

func (k *keycloakTokens) StepUp(t *testing.T, acr string, amr ...string) {
	t.Helper()
	sid, _ := unverifiedClaims(t, k.access)["sid"].(string)
	if sid == "" {
		t.Fatal("access token has no sid")
	}
	var users []map[string]any
	k.adminJSON(t, "GET", "/users?username=alice&exact=true", nil, &users)
	if len(users) != 1 {
		t.Fatalf("users named alice: %d", len(users))
	}
	id := users[0]["id"].(string)
	var user map[string]any
	k.adminJSON(t, "GET", "/users/"+id, nil, &user)
	now := time.Now()
	entry := StepUpEntry{SID: sid, ACR: acr, AMR: amr, IAT: now.Unix(), EXP: now.Add(time.Hour).Unix()}
	attrs, _ := user["attributes"].(map[string]any)
	if attrs == nil {
		attrs = map[string]any{}
	}
	attrs["stepup"] = []string{entry.Marshal()}
	user["attributes"] = attrs
	delete(user, "enabled") // sending enabled=true would lift a brute-force lockout
	k.adminJSON(t, "PUT", "/users/"+id, user, nil)

	tok := k.form(t, "/realms/"+kcRealm+"/protocol/openid-connect/token", url.Values{
		"grant_type": {"refresh_token"}, "client_id": {"stepup-login"}, "client_secret": {"stepup-login-secret"},
		"refresh_token": {k.refresh}})
	k.access, k.refresh = tok["access_token"].(string), tok["refresh_token"].(string)
	if _, ok := unverifiedClaims(t, k.access)["stepup"]; !ok {
		t.Fatal("refreshed access token carries no stepup claim")
	}
}

func (k *keycloakTokens) form(t *testing.T, path string, vals url.Values) map[string]any {
	t.Helper()
	resp, err := http.PostForm(k.srv.URL()+path, vals)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %d %s", path, resp.StatusCode, body)
	}
	var out map[string]any
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// adminJSON calls the realm's admin API and returns the Location header.
func (k *keycloakTokens) adminJSON(t *testing.T, method, path string, in, out any) string {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, k.srv.URL()+"/admin/realms/"+kcRealm+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+k.admin)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return resp.Header.Get("Location")
}

func unverifiedClaims(t *testing.T, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestNginxEndToEndWithKeycloakTokens runs the nginx scenario with real
// tokens from the Keycloak-compatible server: signed by its JWKS, with
// Keycloak's claims, the step-up written as the user attribute and
// carried by the mapper after a refresh.
func TestNginxEndToEndWithKeycloakTokens(t *testing.T) {
	requireNginx(t)
	runNginxEndToEnd(t, newKeycloakTokens(t))
}

// TestMiddlewareWithKeycloakTokens checks the Go middleware against the
// same real tokens, without a proxy.
func TestMiddlewareWithKeycloakTokens(t *testing.T) {
	t.Parallel()
	k := newKeycloakTokens(t)
	mw, err := Middleware(context.Background(), Config{Issuer: k.Issuer(), Audiences: []string{"stepup-login"}})
	if err != nil {
		t.Fatal(err)
	}
	var got *Info
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = FromContext(r.Context())
		w.WriteHeader(http.StatusNoContent)
	}))
	srv := newHTTPServer(t, h)
	call := func(method string) *http.Response {
		req, _ := http.NewRequest(method, srv+"/api/profile", nil)
		req.Header.Set("Authorization", "Bearer "+k.Token(t))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := call("GET"); resp.StatusCode != http.StatusNoContent || got == nil || got.Level != "1" {
		t.Fatalf("GET: %d, info %+v", resp.StatusCode, got)
	}
	resp := call("DELETE")
	if www := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != 401 ||
		!strings.Contains(www, `error="insufficient_user_authentication"`) || !strings.Contains(www, `acr_values="2", max_age=300`) {
		t.Fatalf("DELETE before step-up: %d %q", resp.StatusCode, www)
	}
	k.StepUp(t, "2", "totp")
	got = nil
	if resp := call("DELETE"); resp.StatusCode != http.StatusNoContent || got == nil || got.Level != "2" || len(got.AMR) != 1 || got.AMR[0] != "totp" {
		t.Fatalf("DELETE after step-up: %d, info %+v", resp.StatusCode, got)
	}
}
