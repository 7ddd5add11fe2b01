package bridge

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// fakeKeycloak is a small stand-in for the endpoints the unit tests need,
// with Keycloak's traps built in: a PUT with attributes clears root fields
// left out, enabled:true clears a brute-force lock, undeclared attributes
// are dropped. The contract suite runs the same behaviour against
// internal/keycloaktest and a real Keycloak.
type fakeKeycloak struct {
	t   *testing.T
	srv *httptest.Server

	mu            sync.Mutex
	adminSecret   string
	adminTokens   map[string]bool
	adminFetches  int
	adminLifetime int
	users         map[string]map[string]any // raw representations by id
	passwords     map[string]string         // username -> password
	locked        map[string]bool
	declared      bool // the step-up attribute is in the user profile
	puts          []map[string]any
	failStatus    int               // when set, admin and token calls answer it
	refresh       map[string]string // refresh token -> username
	loggedOut     []string
	forms         []url.Values
	authHeaders   []string
}

func newFakeKeycloak(t *testing.T) *fakeKeycloak {
	t.Helper()
	f := &fakeKeycloak{
		t: t, adminSecret: "s3cr%t+&=x", adminTokens: map[string]bool{}, adminLifetime: 300,
		users: map[string]map[string]any{}, passwords: map[string]string{}, locked: map[string]bool{},
		declared: true, refresh: map[string]string{},
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func randHex() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (f *fakeKeycloak) addUser(id, username, password string, attrs map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users[id] = map[string]any{
		"id": id, "username": username, "enabled": true, "firstName": "Ada", "lastName": "Lovelace",
		"email": username + "@example.com", "emailVerified": true, "createdTimestamp": 1700000000000,
		"requiredActions": []any{}, "attributes": attrs,
	}
	f.passwords[username] = password
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeKeycloak) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failStatus != 0 {
		w.WriteHeader(f.failStatus)
		_, _ = w.Write([]byte("<html>bad gateway</html>"))
		return
	}
	p := strings.TrimPrefix(r.URL.Path, "/realms/demo/protocol/openid-connect/")
	if p != r.URL.Path {
		_ = r.ParseForm()
		f.forms = append(f.forms, r.PostForm)
		f.authHeaders = append(f.authHeaders, r.Header.Get("Authorization"))
		f.serveOIDC(w, r, p)
		return
	}
	p = strings.TrimPrefix(r.URL.Path, "/admin/realms/demo/")
	if p == r.URL.Path {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "Realm does not exist"})
		return
	}
	if !f.adminTokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")] {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "HTTP 401 Unauthorized"})
		return
	}
	f.serveAdmin(w, r, strings.Split(p, "/"))
}

func (f *fakeKeycloak) serveOIDC(w http.ResponseWriter, r *http.Request, p string) {
	form := r.PostForm
	switch p {
	case "token":
		switch form.Get("grant_type") {
		case "client_credentials":
			if form.Get("client_id") != "sidecar-admin" || form.Get("client_secret") != f.adminSecret {
				writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_client", "error_description": "Invalid client or Invalid client credentials"})
				return
			}
			tok := "admin-" + randHex()
			f.adminTokens[tok] = true
			f.adminFetches++
			writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "expires_in": f.adminLifetime, "token_type": "Bearer"})
		case "password":
			user := form.Get("username")
			var u map[string]any
			for _, x := range f.users {
				if x["username"] == user {
					u = x
				}
			}
			switch {
			case u != nil && u["enabled"] == false:
				writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_grant", "error_description": "Account disabled"})
			case u == nil || f.passwords[user] != form.Get("password") || f.locked[u["id"].(string)]:
				writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_grant", "error_description": "Invalid user credentials"})
			case len(u["requiredActions"].([]any)) > 0:
				writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_grant", "error_description": "Account is not fully set up"})
			default:
				rt := "rt-" + randHex()
				f.refresh[rt] = user
				writeJSON(w, http.StatusOK, map[string]any{"access_token": "at-" + randHex(), "refresh_token": rt, "expires_in": 300,
					"refresh_expires_in": 1800, "token_type": "Bearer", "session_state": "sess-1", "scope": "openid profile"})
			}
		case "refresh_token":
			user, ok := f.refresh[form.Get("refresh_token")]
			if !ok {
				writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_grant", "error_description": "Session not active"})
				return
			}
			rt := "rt-" + randHex()
			f.refresh[rt] = user
			writeJSON(w, http.StatusOK, map[string]any{"access_token": "at-" + randHex(), "refresh_token": rt, "expires_in": 300, "token_type": "Bearer"})
		default:
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "unsupported_grant_type"})
		}
	case "logout":
		if _, ok := f.refresh[form.Get("refresh_token")]; !ok {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_grant", "error_description": "Invalid refresh token"})
			return
		}
		delete(f.refresh, form.Get("refresh_token"))
		f.loggedOut = append(f.loggedOut, form.Get("refresh_token"))
		w.WriteHeader(http.StatusNoContent)
	case "revoke":
		delete(f.refresh, form.Get("token"))
		w.WriteHeader(http.StatusOK)
	case "token/introspect":
		writeJSON(w, http.StatusOK, map[string]any{"active": false})
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func (f *fakeKeycloak) serveAdmin(w http.ResponseWriter, r *http.Request, p []string) {
	switch {
	case len(p) == 2 && p[0] == "users":
		u, ok := f.users[p[1]]
		if !ok {
			writeJSON(w, http.StatusNotFound, map[string]any{"error": "User not found"})
			return
		}
		switch r.Method {
		case http.MethodGet:
			writeJSON(w, http.StatusOK, f.visible(u))
		case http.MethodPut:
			var body map[string]any
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]any{"errorMessage": "invalid JSON"})
				return
			}
			f.puts = append(f.puts, body)
			f.update(p[1], u, body)
			w.WriteHeader(http.StatusNoContent)
		}
	case len(p) == 5 && p[0] == "users" && p[2] == "role-mappings":
		writeJSON(w, http.StatusOK, []map[string]any{{"id": "r1", "name": "stepup-admin"}, {"id": "r2", "name": "default-roles-demo"}})
	case len(p) == 3 && p[0] == "users" && p[2] == "groups":
		writeJSON(w, http.StatusOK, []map[string]any{{"id": "g1", "name": "admins", "path": "/staff/admins"}})
	case len(p) == 4 && p[0] == "attack-detection":
		writeJSON(w, http.StatusOK, map[string]any{"disabled": f.locked[p[3]], "numFailures": 0})
	default:
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "unknown_error"})
	}
}

// visible hides an undeclared step-up attribute, as Keycloak 24+ does.
func (f *fakeKeycloak) visible(u map[string]any) map[string]any {
	b, _ := json.Marshal(u)
	var c map[string]any
	_ = json.Unmarshal(b, &c)
	if !f.declared {
		if a, ok := c["attributes"].(map[string]any); ok {
			delete(a, "stepup")
		}
	}
	return c
}

func (f *fakeKeycloak) update(id string, u, body map[string]any) {
	if attrs, ok := body["attributes"].(map[string]any); ok {
		if !f.declared {
			old, _ := u["attributes"].(map[string]any)
			if v, had := old["stepup"]; had {
				attrs["stepup"] = v // stored values stay, hidden
			} else {
				delete(attrs, "stepup")
			}
		}
		u["attributes"] = attrs
		for _, k := range []string{"firstName", "lastName", "email"} {
			if v, ok := body[k]; ok {
				u[k] = v
			} else {
				delete(u, k)
			}
		}
	}
	if body["enabled"] == true {
		f.locked[id] = false
		u["enabled"] = true
	}
	if ra, ok := body["requiredActions"].([]any); ok {
		u["requiredActions"] = ra
	}
}
