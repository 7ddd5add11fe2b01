// Package testenv starts a whole sidecar for end-to-end tests: the
// Keycloak-compatible server with the dev realm, the realm provisioned as
// `stepup-bridge apply` does it, and the sidecar itself on loopback with a
// SQLite store in the test's temp dir (or a shared PostgreSQL schema).
// Everything is torn down by t.Cleanup.
package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"

	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
	"github.com/stepup-bridge/stepup-bridge/internal/app"
	"github.com/stepup-bridge/stepup-bridge/internal/keycloaktest"
)

// Dev realm facts (keycloaktest.DevRealm).
const (
	Realm        = "stepup-dev"
	LoginClient  = "stepup-login"
	LoginSecret  = "stepup-login-secret"
	AdminClient  = "stepup-bridge-admin"
	AdminSecret  = "stepup-bridge-admin-secret"
	AdminRole    = "stepup-admin"
	ResourceAPI  = "demo-api"
	DefaultLevel = "2"
)

// Options tune Start.
type Options struct {
	// Mutate changes the sidecar's config before it starts.
	Mutate func(*config.Config)
	// KC reuses a running Keycloak-compatible server (two replicas of the
	// sidecar against one realm); nil starts a new one.
	KC *keycloaktest.Server
	// SkipProvision leaves the realm as imported (for plan/apply tests).
	SkipProvision bool
	// Logger receives the sidecar's logs. Defaults to discarding them.
	Logger *slog.Logger
}

// Env is a running sidecar and its Keycloak.
type Env struct {
	KC          *keycloaktest.Server
	KeycloakURL string
	SidecarURL  string
	Config      config.Config
	Runtime     *app.Runtime
	Client      *http.Client
}

// Start starts everything or fails the test.
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	kc := opts.KC
	if kc == nil {
		var err error
		kc, err = keycloaktest.Start(ctx, keycloaktest.Options{})
		if err != nil {
			cancel()
			t.Fatalf("testenv: starting keycloaktest: %v", err)
		}
		if err := kc.ImportRealm(keycloaktest.DevRealm()); err != nil {
			cancel()
			t.Fatalf("testenv: importing the dev realm: %v", err)
		}
		t.Cleanup(func() { _ = kc.Close() })
	}
	cfg := Config(t, kc.URL())
	if opts.Mutate != nil {
		opts.Mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		cancel()
		t.Fatalf("testenv: config: %v", err)
	}
	if !opts.SkipProvision {
		if err := app.Apply(ctx, cfg, io.Discard); err != nil {
			cancel()
			t.Fatalf("testenv: provisioning: %v", err)
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rt, err := app.New(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatalf("testenv: starting the sidecar: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("testenv: sidecar stopped with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("testenv: sidecar did not stop")
		}
		_ = rt.Close()
	})
	return &Env{
		KC: kc, KeycloakURL: kc.URL(), SidecarURL: "http://" + rt.Addr(), Config: cfg, Runtime: rt,
		Client: &http.Client{Timeout: 30 * time.Second},
	}
}

// Config is the sidecar configuration for the dev realm at kcURL, with
// fresh keys and SQLite in the test's temp dir; everything on loopback.
func Config(t testing.TB, kcURL string) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.DevMode = true
	cfg.Listen.Addr = "127.0.0.1:0"
	cfg.Keycloak.URL = kcURL
	cfg.Keycloak.Realm = Realm
	cfg.Keycloak.ClientID = LoginClient
	cfg.Keycloak.ClientSecret = LoginSecret
	cfg.Keycloak.AdminClientID = AdminClient
	cfg.Keycloak.AdminClientSecret = AdminSecret
	cfg.Claims.Clients = []string{LoginClient}
	cfg.Store.SQLite.Path = filepath.Join(t.TempDir(), "stepup.db")
	cfg.Secrets.EncryptionKeys = []config.Secret{config.Secret("t1:" + randomB64(t, 32))}
	cfg.Secrets.Pepper = config.Secret(randomB64(t, 32))
	// Cheap PIN hashing keeps tests fast; production cost is measured in docs/performance.md.
	cfg.Factors.PIN.Argon2 = config.Argon2{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}
	cfg.Factors.Enabled = []string{"backup_code", "pin", "totp", "hotp"}
	// Tests make many requests from 127.0.0.1.
	cfg.RateLimits.IPRequestsPerMinute = 100000
	return cfg
}

func randomB64(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// PasswordTokens logs user in at Keycloak directly (a password grant with
// the login client), bypassing the sidecar: a new Keycloak session.
func (e *Env) PasswordTokens(t testing.TB, user, pass string) bridge.Tokens {
	t.Helper()
	return e.tokenRequest(t, url.Values{
		"grant_type": {"password"}, "client_id": {LoginClient}, "client_secret": {LoginSecret},
		"username": {user}, "password": {pass}, "scope": {"openid"},
	})
}

// Refresh refreshes tokens at Keycloak directly.
func (e *Env) Refresh(t testing.TB, refreshToken string) bridge.Tokens {
	t.Helper()
	return e.tokenRequest(t, url.Values{
		"grant_type": {"refresh_token"}, "client_id": {LoginClient}, "client_secret": {LoginSecret},
		"refresh_token": {refreshToken},
	})
}

func (e *Env) tokenRequest(t testing.TB, form url.Values) bridge.Tokens {
	t.Helper()
	resp, err := e.Client.PostForm(e.KeycloakURL+"/realms/"+Realm+"/protocol/openid-connect/token", form)
	if err != nil {
		t.Fatalf("token request: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token request (%s): %d %s", form.Get("grant_type"), resp.StatusCode, body)
	}
	var tok bridge.Tokens
	if err := json.Unmarshal(body, &tok); err != nil {
		t.Fatalf("token response: %v", err)
	}
	return tok
}

// Do sends a JSON request to the sidecar (body nil sends none) with an
// optional Bearer token and returns the response with its body read.
func (e *Env) Do(t testing.TB, method, path, bearer string, body any) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.SidecarURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := e.Client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// DecodeJSON decodes b into a map or fails the test.
func DecodeJSON(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return m
}

// Claims returns the payload of a JWT without verifying it (tests inspect
// tokens the sidecar or Keycloak issued).
func Claims(t testing.TB, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	return DecodeJSON(t, b)
}
