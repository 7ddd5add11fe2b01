package keycloaktest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a pinned, advanceable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	t     *testing.T
	s     *Server
	clock *fakeClock
}

func newEnv(t *testing.T) *env {
	t.Helper()
	clock := &fakeClock{t: time.Unix(1700000000, 0)}
	s, err := Start(context.Background(), Options{Now: clock.Now})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.ImportRealm(DevRealm()); err != nil {
		t.Fatalf("ImportRealm: %v", err)
	}
	return &env{t: t, s: s, clock: clock}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("decoding %q: %v", r.body, err)
	}
	return m
}

func (e *env) do(method, path string, body io.Reader, hdr map[string]string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.s.URL()+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (e *env) form(path string, vals url.Values, hdr map[string]string) response {
	e.t.Helper()
	h := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	for k, v := range hdr {
		h[k] = v
	}
	return e.do(http.MethodPost, path, strings.NewReader(vals.Encode()), h)
}

func (e *env) api(method, path, token string, body any) response {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	return e.do(method, path, rd, map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/json"})
}

const devTokenPath = "/realms/stepup-dev/protocol/openid-connect/token"

// login runs a password grant against stepup-login and fails the test unless it succeeds.
func (e *env) login(username, password, scope string) map[string]any {
	e.t.Helper()
	r := e.form(devTokenPath, url.Values{"grant_type": {"password"}, "client_id": {"stepup-login"},
		"client_secret": {"stepup-login-secret"}, "username": {username}, "password": {password}, "scope": {scope}}, nil)
	if r.status != http.StatusOK {
		e.t.Fatalf("login %s: %d %s", username, r.status, r.body)
	}
	return r.json(e.t)
}

func (e *env) adminToken() string {
	e.t.Helper()
	r := e.form("/realms/master/protocol/openid-connect/token", url.Values{"grant_type": {"password"},
		"client_id": {"admin-cli"}, "username": {"admin"}, "password": {"admin"}}, nil)
	if r.status != http.StatusOK {
		e.t.Fatalf("admin login: %d %s", r.status, r.body)
	}
	return r.json(e.t)["access_token"].(string)
}

func (e *env) serviceToken() string {
	e.t.Helper()
	r := e.form(devTokenPath, url.Values{"grant_type": {"client_credentials"}}, map[string]string{
		"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("stepup-bridge-admin:stepup-bridge-admin-secret"))})
	if r.status != http.StatusOK {
		e.t.Fatalf("client credentials: %d %s", r.status, r.body)
	}
	return r.json(e.t)["access_token"].(string)
}

// claims decodes a JWT payload without verifying it.
func claims(t *testing.T, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func header(t *testing.T, jwt string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(jwt, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func (e *env) userID(token, username string) string {
	e.t.Helper()
	r := e.api(http.MethodGet, "/admin/realms/stepup-dev/users?exact=true&username="+username, token, nil)
	var list []map[string]any
	if err := json.Unmarshal(r.body, &list); err != nil || len(list) != 1 {
		e.t.Fatalf("user %s: %d %s", username, r.status, r.body)
	}
	return list[0]["id"].(string)
}
