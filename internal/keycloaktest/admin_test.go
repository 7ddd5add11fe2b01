package keycloaktest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestUserSearch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sa := e.serviceToken()
	tests := []struct {
		query string
		want  []string
	}{
		{"", []string{"alice", "bob", "carol"}},
		{"?username=ali", []string{"alice"}},
		{"?username=ali&exact=true", nil},
		{"?username=alice&exact=true", []string{"alice"}},
		{"?email=example.test", []string{"alice", "bob", "carol"}},
		{"?firstName=Bob", []string{"bob"}},
		{"?lastName=ddell", []string{"alice"}},
		{"?search=b", []string{"bob"}},
		{"?search=*test*", []string{"alice", "bob", "carol"}},
		{"?search=ddell", nil},
		{"?search=%22carol%22", []string{"carol"}},
		{"?username=service-account", []string{"service-account-stepup-bridge-admin"}},
		{"?search=service", nil},
		{"?first=1&max=1", []string{"bob"}},
		{"?briefRepresentation=true&username=bob&exact=true", []string{"bob"}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			r := e.api(http.MethodGet, devAdmin+"/users"+tt.query, sa, nil)
			var list []map[string]any
			if err := json.Unmarshal(r.body, &list); err != nil {
				t.Fatalf("%d %s", r.status, r.body)
			}
			var got []string
			for _, u := range list {
				got = append(got, u["username"].(string))
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			var count int
			cq := strings.Replace(tt.query, "?", "&", 1)
			if strings.Contains(tt.query, "first=") || strings.Contains(tt.query, "brief") {
				return
			}
			_ = json.Unmarshal(e.api(http.MethodGet, devAdmin+"/users/count?x=1"+cq, sa, nil).body, &count)
			if count != len(tt.want) {
				t.Errorf("count %d, want %d", count, len(tt.want))
			}
		})
	}
}

func TestUserCreateDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sa := e.serviceToken()
	f := false
	r := e.api(http.MethodPost, devAdmin+"/users", sa, map[string]any{"username": "Dave", "enabled": true,
		"firstName": "Dave", "lastName": "Lister", "email": "dave@example.test",
		"attributes":  map[string][]string{"undeclared": {"x"}},
		"credentials": []any{map[string]any{"type": "password", "value": "dave", "temporary": f}}})
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	loc := r.header.Get("Location")
	if !strings.HasPrefix(loc, e.s.URL()+devAdmin+"/users/") {
		t.Fatalf("Location %q", loc)
	}
	id := loc[strings.LastIndex(loc, "/")+1:]
	u := e.api(http.MethodGet, devAdmin+"/users/"+id, sa, nil).json(t)
	if u["username"] != "dave" || u["attributes"] != nil {
		t.Errorf("created user %v", u)
	}
	tok := e.login("dave", "dave", "")
	if !containsAny(claims(t, tok["access_token"].(string))["realm_access"].(map[string]any)["roles"].([]any), "default-roles-stepup-dev") {
		t.Error("new user lacks the default role")
	}
	conflicts := []struct {
		body map[string]any
		want string
	}{
		{map[string]any{"username": "dave"}, "User exists with same username"},
		{map[string]any{"username": "dave2", "email": "DAVE@example.test"}, "User exists with same email"},
	}
	for _, c := range conflicts {
		r := e.api(http.MethodPost, devAdmin+"/users", sa, c.body)
		if r.status != 409 || r.json(t)["errorMessage"] != c.want {
			t.Errorf("conflict %v: %d %s", c.body, r.status, r.body)
		}
	}
	if r := e.api(http.MethodPost, devAdmin+"/users", sa, map[string]any{"email": "x@example.test"}); r.status != 400 || r.json(t)["errorMessage"] != "User name is missing" {
		t.Errorf("no username: %d %s", r.status, r.body)
	}
	bob := e.userID(sa, "bob")
	if r := e.api(http.MethodPut, devAdmin+"/users/"+bob, sa, map[string]any{"email": "dave@example.test"}); r.status != 409 {
		t.Errorf("PUT duplicate email: %d %s", r.status, r.body)
	}
	if r := e.api(http.MethodPut, devAdmin+"/users/"+id+"/reset-password", sa, map[string]any{"type": "password", "value": "new", "temporary": false}); r.status != 204 {
		t.Fatalf("reset-password: %d %s", r.status, r.body)
	}
	e.login("dave", "new", "")
	if r := e.api(http.MethodPut, devAdmin+"/users/"+id+"/reset-password", sa, map[string]any{"type": "password", "value": "temp", "temporary": true}); r.status != 204 {
		t.Fatal(r.status)
	}
	r = e.form(devTokenPath, url.Values{"grant_type": {"password"}, "client_id": {"stepup-login"}, "client_secret": {"stepup-login-secret"}, "username": {"dave"}, "password": {"temp"}}, nil)
	if r.json(t)["error_description"] != "Account is not fully set up" {
		t.Errorf("temporary password: %s", r.body)
	}
	if r := e.api(http.MethodDelete, devAdmin+"/users/"+id, sa, nil); r.status != 204 {
		t.Errorf("delete: %d", r.status)
	}
	if r := e.api(http.MethodGet, devAdmin+"/users/"+id, sa, nil); r.status != 404 {
		t.Errorf("after delete: %d", r.status)
	}
	if r := e.api(http.MethodPut, devAdmin+"/users/"+id, sa, map[string]any{}); r.status != 404 || r.json(t)["error"] != "User not found" {
		t.Errorf("PUT missing user: %d %s", r.status, r.body)
	}
	if r := e.do(http.MethodPut, devAdmin+"/users/"+bob, strings.NewReader("{bad"), map[string]string{"Authorization": "Bearer " + sa}); r.status != 400 {
		t.Errorf("bad JSON: %d", r.status)
	}
}

func TestUnmanagedAttributePolicies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		policy            string
		adminSees         bool
		adminEdits        bool
		userEdits         bool
		serviceAcctStores bool
	}{
		{"", false, false, false, true},
		{"ENABLED", true, true, true, true},
		{"ADMIN_VIEW", true, false, false, true},
		{"ADMIN_EDIT", true, true, false, true},
	}
	for _, tt := range tests {
		t.Run("policy="+tt.policy, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			admin := e.adminToken()
			r := e.putProfile(admin, func(up map[string]any) {
				if tt.policy != "" {
					up["unmanagedAttributePolicy"] = tt.policy
				}
			})
			if r.status != 200 {
				t.Fatalf("profile: %d %s", r.status, r.body)
			}
			id := e.userID(admin, "bob")
			put := map[string]any{"firstName": "Bob", "lastName": "Builder", "email": "bob@example.test",
				"attributes": map[string][]string{"color": {"blue"}}}
			if r := e.api(http.MethodPut, devAdmin+"/users/"+id, admin, put); r.status != 204 {
				t.Fatalf("PUT %d %s", r.status, r.body)
			}
			u := e.api(http.MethodGet, devAdmin+"/users/"+id, admin, nil).json(t)
			attrs, _ := u["attributes"].(map[string]any)
			_, seen := attrs["color"]
			if seen != (tt.adminSees && tt.adminEdits) {
				t.Errorf("admin sees stored value: %v", seen)
			}
			// Account API for the user.
			tok := e.login("bob", "bob", "")["access_token"].(string)
			r = e.api(http.MethodPost, "/realms/stepup-dev/account", tok, map[string]any{"firstName": "Bob", "lastName": "Builder",
				"email": "bob@example.test", "attributes": map[string][]string{"mood": {"happy"}}})
			if r.status != 204 {
				t.Fatalf("account POST: %d %s", r.status, r.body)
			}
			e.putProfile(admin, func(up map[string]any) { up["unmanagedAttributePolicy"] = "ENABLED" })
			u = e.api(http.MethodGet, devAdmin+"/users/"+id, admin, nil).json(t)
			attrs, _ = u["attributes"].(map[string]any)
			if _, ok := attrs["mood"]; ok != tt.userEdits {
				t.Errorf("user-set unmanaged attribute stored: %v", ok)
			}
			// Service accounts take unmanaged attributes whatever the policy.
			var clients []map[string]any
			_ = json.Unmarshal(e.api(http.MethodGet, devAdmin+"/clients?clientId=stepup-bridge-admin", admin, nil).body, &clients)
			sa := e.api(http.MethodGet, devAdmin+"/clients/"+clients[0]["id"].(string)+"/service-account-user", admin, nil).json(t)
			e.putProfile(admin, func(up map[string]any) { delete(up, "unmanagedAttributePolicy") })
			if r := e.api(http.MethodPut, devAdmin+"/users/"+sa["id"].(string), admin, map[string]any{"attributes": map[string][]string{"tier": {"gold"}}}); r.status != 204 {
				t.Fatal(r.status)
			}
			sau := e.api(http.MethodGet, devAdmin+"/users/"+sa["id"].(string), admin, nil).json(t)
			if a, _ := sau["attributes"].(map[string]any); a["tier"] == nil {
				t.Errorf("service account attribute dropped: %v", sau)
			}
		})
	}
}

func TestRolesAndMappings(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sa := e.serviceToken()
	if r := e.api(http.MethodPost, devAdmin+"/roles", sa, map[string]any{"name": "auditor", "description": "reads"}); r.status != 201 || !strings.HasSuffix(r.header.Get("Location"), "/roles/auditor") {
		t.Fatalf("create role: %d %s %q", r.status, r.body, r.header.Get("Location"))
	}
	if r := e.api(http.MethodPost, devAdmin+"/roles", sa, map[string]any{"name": "auditor"}); r.status != 409 || r.json(t)["errorMessage"] != "Role with name auditor already exists" {
		t.Errorf("duplicate role: %d %s", r.status, r.body)
	}
	role := e.api(http.MethodGet, devAdmin+"/roles/auditor", sa, nil).json(t)
	if role["description"] != "reads" || role["clientRole"] != false {
		t.Errorf("role %v", role)
	}
	if r := e.api(http.MethodGet, devAdmin+"/roles/nope", sa, nil); r.status != 404 || r.json(t)["error"] != "Could not find role" {
		t.Errorf("missing role: %d %s", r.status, r.body)
	}
	id := e.userID(sa, "bob")
	path := devAdmin + "/users/" + id + "/role-mappings/realm"
	if r := e.api(http.MethodPost, path, sa, []any{role}); r.status != 204 {
		t.Fatalf("map: %d %s", r.status, r.body)
	}
	var mapped []map[string]any
	_ = json.Unmarshal(e.api(http.MethodGet, path, sa, nil).body, &mapped)
	names := []string{}
	for _, m := range mapped {
		names = append(names, m["name"].(string))
	}
	if strings.Join(names, ",") != "auditor,default-roles-stepup-dev" {
		t.Errorf("mappings %v", names)
	}
	if r := e.api(http.MethodPost, path, sa, []any{map[string]any{"name": "auditor", "id": "wrong"}}); r.status != 404 {
		t.Errorf("mismatched id: %d", r.status)
	}
	if r := e.api(http.MethodDelete, path, sa, []any{role}); r.status != 204 {
		t.Errorf("unmap: %d", r.status)
	}
	if c := claims(t, e.login("bob", "bob", "")["access_token"].(string)); containsAny(c["realm_access"].(map[string]any)["roles"].([]any), "auditor") {
		t.Error("unmapped role still in token")
	}
	if r := e.api(http.MethodPut, devAdmin+"/roles/auditor", sa, map[string]any{"name": "auditor", "description": "changed"}); r.status != 204 {
		t.Errorf("update role: %d", r.status)
	}
	if r := e.api(http.MethodDelete, devAdmin+"/roles/auditor", sa, nil); r.status != 204 {
		t.Errorf("delete role: %d", r.status)
	}
	// Groups carry roles into tokens.
	admin := e.adminToken()
	r := e.api(http.MethodPost, devAdmin+"/groups", admin, map[string]any{"name": "staff"})
	if r.status != 201 {
		t.Fatalf("group: %d %s", r.status, r.body)
	}
	gid := r.header.Get("Location")[strings.LastIndex(r.header.Get("Location"), "/")+1:]
	adminRole := e.api(http.MethodGet, devAdmin+"/roles/stepup-admin", admin, nil).json(t)
	e.api(http.MethodPost, devAdmin+"/groups/"+gid+"/role-mappings/realm", admin, []any{adminRole})
	if r := e.api(http.MethodPut, devAdmin+"/users/"+id+"/groups/"+gid, admin, nil); r.status != 204 {
		t.Fatalf("join: %d", r.status)
	}
	var groups []map[string]any
	_ = json.Unmarshal(e.api(http.MethodGet, devAdmin+"/users/"+id+"/groups", admin, nil).body, &groups)
	if len(groups) != 1 || groups[0]["path"] != "/staff" {
		t.Errorf("user groups %v", groups)
	}
	if c := claims(t, e.login("bob", "bob", "")["access_token"].(string)); !containsAny(c["realm_access"].(map[string]any)["roles"].([]any), "stepup-admin") {
		t.Error("group role not in token")
	}
}

func TestClientsAndScopes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sa := e.serviceToken()
	login := clientUUID(t, e, sa, "stepup-login")
	c := e.api(http.MethodGet, devAdmin+"/clients/"+login, sa, nil).json(t)
	if c["secret"] != "stepup-login-secret" || c["directAccessGrantsEnabled"] != true {
		t.Errorf("client %v", c)
	}
	sec := e.api(http.MethodGet, devAdmin+"/clients/"+login+"/client-secret", sa, nil).json(t)
	if sec["type"] != "secret" || sec["value"] != "stepup-login-secret" {
		t.Errorf("secret %v", sec)
	}
	var scopes []map[string]any
	_ = json.Unmarshal(e.api(http.MethodGet, devAdmin+"/clients/"+login+"/default-client-scopes", sa, nil).body, &scopes)
	var names []string
	var profileID string
	for _, s := range scopes {
		names = append(names, s["name"].(string))
		if s["name"] == "profile" {
			profileID = s["id"].(string)
		}
	}
	for _, want := range []string{"profile", "email", "roles", "web-origins", "acr", "basic"} {
		if !strings.Contains(","+strings.Join(names, ",")+",", ","+want+",") {
			t.Errorf("default scopes %v lack %s", names, want)
		}
	}
	if r := e.api(http.MethodDelete, devAdmin+"/clients/"+login+"/default-client-scopes/"+profileID, sa, nil); r.status != 204 {
		t.Fatal(r.status)
	}
	if c := claims(t, e.login("alice", "alice", "")["access_token"].(string)); c["preferred_username"] != nil || c["email"] == nil {
		t.Errorf("without profile scope: %v", c)
	}
	// Realm default scopes apply to clients created afterwards.
	var dd []map[string]any
	_ = json.Unmarshal(e.api(http.MethodGet, devAdmin+"/default-default-client-scopes", sa, nil).body, &dd)
	if len(dd) < 6 {
		t.Errorf("realm default scopes %v", dd)
	}
	// Optional scope only when requested; unknown scope refused.
	addr := ""
	var all []map[string]any
	_ = json.Unmarshal(e.api(http.MethodGet, devAdmin+"/client-scopes", sa, nil).body, &all)
	for _, s := range all {
		if s["name"] == "phone" {
			addr = s["id"].(string)
		}
	}
	if addr == "" {
		t.Fatal("no phone scope")
	}
	if tok := e.login("alice", "alice", "phone"); !strings.Contains(tok["scope"].(string), "phone") {
		t.Errorf("optional scope not granted: %v", tok["scope"])
	}
	r := e.form(devTokenPath, url.Values{"grant_type": {"password"}, "client_id": {"stepup-login"}, "client_secret": {"stepup-login-secret"},
		"username": {"alice"}, "password": {"alice"}, "scope": {"openid bogus"}}, nil)
	if r.status != 400 || r.json(t)["error"] != "invalid_scope" {
		t.Errorf("unknown scope: %d %s", r.status, r.body)
	}
	// Mapper update and delete.
	e.addStepupMapper(sa, "String", false)
	var created []map[string]any
	_ = json.Unmarshal(e.api(http.MethodGet, devAdmin+"/client-scopes", sa, nil).body, &created)
	var sid string
	for _, s := range created {
		if s["name"] == "stepup" {
			sid = s["id"].(string)
		}
	}
	var mappers []map[string]any
	_ = json.Unmarshal(e.api(http.MethodGet, devAdmin+"/client-scopes/"+sid+"/protocol-mappers/models", sa, nil).body, &mappers)
	if len(mappers) != 1 {
		t.Fatalf("mappers %v", mappers)
	}
	m := mappers[0]
	m["config"].(map[string]any)["claim.name"] = "step_up"
	if r := e.api(http.MethodPut, devAdmin+"/client-scopes/"+sid+"/protocol-mappers/models/"+m["id"].(string), sa, m); r.status != 204 {
		t.Fatalf("mapper PUT %d %s", r.status, r.body)
	}
	got := e.api(http.MethodGet, devAdmin+"/client-scopes/"+sid+"/protocol-mappers/models/"+m["id"].(string), sa, nil).json(t)
	if got["config"].(map[string]any)["claim.name"] != "step_up" {
		t.Errorf("mapper after PUT %v", got)
	}
	if r := e.api(http.MethodDelete, devAdmin+"/client-scopes/"+sid+"/protocol-mappers/models/"+m["id"].(string), sa, nil); r.status != 204 {
		t.Errorf("mapper DELETE %d", r.status)
	}
	if r := e.api(http.MethodGet, devAdmin+"/client-scopes/nope", sa, nil); r.status != 404 {
		t.Errorf("missing scope %d", r.status)
	}
	// Service-account user and client credentials token.
	bridge := clientUUID(t, e, sa, "stepup-bridge-admin")
	sau := e.api(http.MethodGet, devAdmin+"/clients/"+bridge+"/service-account-user", sa, nil).json(t)
	if sau["username"] != "service-account-stepup-bridge-admin" {
		t.Errorf("service account %v", sau)
	}
	cc := claims(t, sa)
	rm := cc["resource_access"].(map[string]any)["realm-management"].(map[string]any)["roles"].([]any)
	for _, want := range []string{"view-users", "manage-users", "view-realm", "manage-realm", "view-clients", "manage-clients"} {
		if !containsAny(rm, want) {
			t.Errorf("service account token lacks %s: %v", want, rm)
		}
	}
	if cc["azp"] != "stepup-bridge-admin" || cc["preferred_username"] != "service-account-stepup-bridge-admin" || cc["aud"] == nil ||
		cc["client_id"] != "stepup-bridge-admin" || cc["clientAddress"] != "127.0.0.1" {
		t.Errorf("client credentials claims %v", cc)
	}
}

func TestClientSecretBasicIsURLDecoded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := e.adminToken()
	if r := e.api(http.MethodPost, devAdmin+"/clients", admin, map[string]any{"clientId": "plus", "secret": "a+b&c", "directAccessGrantsEnabled": true}); r.status != 201 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	v := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice"}}
	if r := e.form(devTokenPath, v, basicAuth("plus", "a+b&c")); r.status != 401 {
		t.Errorf("raw secret with + and &: %d (Keycloak URL-decodes Basic credentials)", r.status)
	}
	if r := e.form(devTokenPath, v, basicAuth("plus", url.QueryEscape("a+b&c"))); r.status != 200 {
		t.Errorf("encoded secret: %d %s", r.status, r.body)
	}
}

func TestSessionsAdmin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sa := e.serviceToken()
	id := e.userID(sa, "alice")
	t1 := e.login("alice", "alice", "")
	e.login("alice", "alice", "")
	var sessions []map[string]any
	_ = json.Unmarshal(e.api(http.MethodGet, devAdmin+"/users/"+id+"/sessions", sa, nil).body, &sessions)
	if len(sessions) != 2 || sessions[0]["username"] != "alice" || sessions[0]["clients"] == nil {
		t.Fatalf("sessions %v", sessions)
	}
	if r := e.api(http.MethodDelete, devAdmin+"/sessions/"+t1["session_state"].(string), sa, nil); r.status != 204 {
		t.Errorf("delete session %d", r.status)
	}
	if r := e.refresh(t1["refresh_token"].(string)); r.status != 400 {
		t.Errorf("refresh of deleted session: %d", r.status)
	}
	if r := e.api(http.MethodPost, devAdmin+"/users/"+id+"/logout", sa, nil); r.status != 204 {
		t.Errorf("logout user %d", r.status)
	}
	_ = json.Unmarshal(e.api(http.MethodGet, devAdmin+"/users/"+id+"/sessions", sa, nil).body, &sessions)
	if len(sessions) != 0 {
		t.Errorf("after logout %v", sessions)
	}
	// SSO idle timeout ends sessions.
	tok := e.login("alice", "alice", "")
	e.clock.Advance(1801e9)
	if r := e.refresh(tok["refresh_token"].(string)); r.status != 400 {
		t.Errorf("refresh after idle timeout: %d", r.status)
	}
}
