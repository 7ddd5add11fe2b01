package keycloaktest

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/Nerzal/gocloak/v13"
)

// gocloakDir locates gocloak v13.9.0 in the module cache, for its testdata realm.
func gocloakDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/Nerzal/gocloak/v13").Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		t.Skipf("gocloak module directory unavailable (go list: %v); its testdata realm cannot be read", err)
	}
	return dir
}

// TestGocloak drives the server through gocloak v13.9.0, the client the bridge uses.
func TestGocloak(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	g := gocloak.NewClient(e.s.URL())
	const realm = "stepup-dev"

	admin, err := g.LoginAdmin(ctx, "admin", "admin", "master")
	if err != nil {
		t.Fatalf("LoginAdmin: %v", err)
	}
	tok, err := g.Login(ctx, "stepup-login", "stepup-login-secret", realm, "alice", "alice")
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	if _, err := g.Login(ctx, "stepup-login", "stepup-login-secret", realm, "alice", "wrong"); err == nil {
		t.Error("Login with a wrong password succeeded")
	} else if ae, ok := err.(*gocloak.APIError); !ok || ae.Code != 401 || !strings.Contains(ae.Message, "invalid_grant") {
		t.Errorf("wrong password error: %#v", err)
	}
	refreshed, err := g.RefreshToken(ctx, tok.RefreshToken, "stepup-login", "stepup-login-secret", realm)
	if err != nil || refreshed.AccessToken == "" || refreshed.RefreshToken == tok.RefreshToken {
		t.Fatalf("RefreshToken: %v", err)
	}

	users, err := g.GetUsers(ctx, admin.AccessToken, realm, gocloak.GetUsersParams{Username: gocloak.StringP("alice"), Exact: gocloak.BoolP(true)})
	if err != nil || len(users) != 1 {
		t.Fatalf("GetUsers: %v %d", err, len(users))
	}
	alice, err := g.GetUserByID(ctx, admin.AccessToken, realm, *users[0].ID)
	if err != nil || gocloak.PString(alice.FirstName) != "Alice" {
		t.Fatalf("GetUserByID: %v %+v", err, alice)
	}
	alice.LastName = gocloak.StringP("Pleasance")
	if err := g.UpdateUser(ctx, admin.AccessToken, realm, *alice); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	if got, _ := g.GetUserByID(ctx, admin.AccessToken, realm, *alice.ID); gocloak.PString(got.LastName) != "Pleasance" {
		t.Errorf("UpdateUser did not apply: %+v", got)
	}
	if _, err := g.GetUserByID(ctx, admin.AccessToken, realm, "missing"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("GetUserByID(missing): %v", err)
	}

	scopeID, err := g.CreateClientScope(ctx, admin.AccessToken, realm, gocloak.ClientScope{Name: gocloak.StringP("stepup"), Protocol: gocloak.StringP("openid-connect")})
	if err != nil || scopeID == "" {
		t.Fatalf("CreateClientScope: %v", err)
	}
	mapperID, err := g.CreateClientScopeProtocolMapper(ctx, admin.AccessToken, realm, scopeID, gocloak.ProtocolMappers{
		Name: gocloak.StringP("stepup"), Protocol: gocloak.StringP("openid-connect"), ProtocolMapper: gocloak.StringP("oidc-usermodel-attribute-mapper"),
		ProtocolMappersConfig: &gocloak.ProtocolMappersConfig{UserAttribute: gocloak.StringP("stepup"), ClaimName: gocloak.StringP("stepup"),
			JSONTypeLabel: gocloak.StringP("JSON"), Multivalued: gocloak.StringP("true"), AccessTokenClaim: gocloak.StringP("true")}})
	if err != nil || mapperID == "" {
		t.Fatalf("CreateClientScopeProtocolMapper: %v", err)
	}
	clients, err := g.GetClients(ctx, admin.AccessToken, realm, gocloak.GetClientsParams{ClientID: gocloak.StringP("stepup-login")})
	if err != nil || len(clients) != 1 {
		t.Fatalf("GetClients: %v %d", err, len(clients))
	}
	if err := g.AddDefaultScopeToClient(ctx, admin.AccessToken, realm, *clients[0].ID, scopeID); err != nil {
		t.Fatalf("AddDefaultScopeToClient: %v", err)
	}

	if _, err := g.CreateRealmRole(ctx, admin.AccessToken, realm, gocloak.Role{Name: gocloak.StringP("stepup-auditor")}); err != nil {
		t.Fatalf("CreateRealmRole: %v", err)
	}
	roles, err := g.GetRealmRoles(ctx, admin.AccessToken, realm, gocloak.GetRoleParams{})
	if err != nil {
		t.Fatalf("GetRealmRoles: %v", err)
	}
	var auditor *gocloak.Role
	for _, ro := range roles {
		if gocloak.PString(ro.Name) == "stepup-auditor" {
			auditor = ro
		}
	}
	if auditor == nil {
		t.Fatal("created role not listed")
	}
	if err := g.AddRealmRoleToUser(ctx, admin.AccessToken, realm, *alice.ID, []gocloak.Role{*auditor}); err != nil {
		t.Fatalf("AddRealmRoleToUser: %v", err)
	}
	fresh, err := g.Login(ctx, "stepup-login", "stepup-login-secret", realm, "alice", "alice")
	if err != nil {
		t.Fatalf("Login after changes: %v", err)
	}
	c := claims(t, fresh.AccessToken)
	if !containsAny(c["realm_access"].(map[string]any)["roles"].([]any), "stepup-auditor") {
		t.Errorf("new role not in token: %v", c["realm_access"])
	}
	if !strings.Contains(fresh.Scope, "stepup") {
		t.Errorf("attached scope not in scope: %q", fresh.Scope)
	}

	sessions, err := g.GetUserSessions(ctx, admin.AccessToken, realm, *alice.ID)
	if err != nil || len(sessions) != 2 {
		t.Fatalf("GetUserSessions: %v, %d sessions", err, len(sessions))
	}
	if err := g.Logout(ctx, "stepup-login", "stepup-login-secret", realm, fresh.RefreshToken); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	if sessions, _ := g.GetUserSessions(ctx, admin.AccessToken, realm, *alice.ID); len(sessions) != 1 {
		t.Errorf("after Logout %d sessions", len(sessions))
	}
	if _, err := g.RefreshToken(ctx, fresh.RefreshToken, "stepup-login", "stepup-login-secret", realm); err == nil {
		t.Error("refresh after Logout succeeded")
	}
}
