package perf

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
	"github.com/stepup-bridge/stepup-bridge/internal/app"
	"github.com/stepup-bridge/stepup-bridge/internal/keycloaktest"
)

// Dev realm facts (keycloaktest.DevRealm), the same the tests use.
const (
	Realm       = "stepup-dev"
	LoginClient = "stepup-login"
	LoginSecret = "stepup-login-secret"
	AdminClient = "stepup-bridge-admin"
	AdminSecret = "stepup-bridge-admin-secret"
)

// Options tune Start.
type Options struct {
	// Dir holds the SQLite database. Required; the caller removes it.
	Dir string
	// Mutate changes the sidecar's configuration before it starts.
	Mutate func(*config.Config)
	// Logger receives the sidecar's logs. Defaults to discarding them, as a
	// load test should not measure log I/O.
	Logger *slog.Logger
}

// Sidecar is a running sidecar beside a Keycloak-compatible server with the
// dev realm, both on 127.0.0.1. Close stops both.
type Sidecar struct {
	// URL and KeycloakURL are base URLs (http://127.0.0.1:port).
	URL, KeycloakURL string
	// Config is the sidecar's effective configuration.
	Config config.Config
	// KC is the Keycloak-compatible server (SetAvailable, Latency, ...).
	KC *keycloaktest.Server

	cancel context.CancelFunc
	done   chan error
	rt     *app.Runtime
	client *http.Client
}

// Config is the sidecar configuration Start uses for the dev realm at
// kcURL: loopback only, SQLite under dir, fresh keys, the production
// defaults otherwise (argon2 included).
func Config(kcURL, dir string) (config.Config, error) {
	enc, err := randomB64(32)
	if err != nil {
		return config.Config{}, err
	}
	pepper, err := randomB64(32)
	if err != nil {
		return config.Config{}, err
	}
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
	cfg.Store.SQLite.Path = filepath.Join(dir, "stepup.db")
	cfg.Secrets.EncryptionKeys = []config.Secret{config.Secret("p1:" + enc)}
	cfg.Secrets.Pepper = config.Secret(pepper)
	cfg.Log = config.Log{Level: "warn", Format: "json"}
	return cfg, nil
}

func randomB64(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("perf: random key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// Start starts the Keycloak-compatible server with the dev realm,
// provisions it as `stepup-bridge apply` does, and runs the sidecar until
// ctx is done or Close is called.
func Start(ctx context.Context, opts Options) (s *Sidecar, err error) {
	if opts.Dir == "" {
		return nil, errors.New("perf: Options.Dir is required")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		if err != nil {
			cancel()
		}
	}()
	kc, err := keycloaktest.Start(ctx, keycloaktest.Options{})
	if err != nil {
		return nil, fmt.Errorf("perf: starting keycloaktest: %w", err)
	}
	if err := kc.ImportRealm(keycloaktest.DevRealm()); err != nil {
		return nil, fmt.Errorf("perf: importing the dev realm: %w", err)
	}
	cfg, err := Config(kc.URL(), opts.Dir)
	if err != nil {
		return nil, err
	}
	if opts.Mutate != nil {
		opts.Mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("perf: config: %w", err)
	}
	if err := app.Apply(ctx, cfg, io.Discard); err != nil {
		return nil, fmt.Errorf("perf: provisioning: %w", err)
	}
	rt, err := app.New(ctx, cfg, log)
	if err != nil {
		return nil, fmt.Errorf("perf: starting the sidecar: %w", err)
	}
	s = &Sidecar{URL: "http://" + rt.Addr(), KeycloakURL: kc.URL(), Config: cfg, KC: kc,
		cancel: cancel, done: make(chan error, 1), rt: rt, client: &http.Client{Timeout: 30 * time.Second}}
	go func() { s.done <- rt.Run(ctx) }()
	return s, nil
}

// Close stops the sidecar (draining in-flight requests) and the
// Keycloak-compatible server, and returns the sidecar's Run error.
func (s *Sidecar) Close() error {
	s.cancel()
	runErr := <-s.done
	return errors.Join(runErr, s.rt.Close(), s.KC.Close())
}

// PasswordTokens logs user in at Keycloak directly (a password grant with
// the login client): a new Keycloak session whose access token the
// sidecar accepts.
func (s *Sidecar) PasswordTokens(ctx context.Context, user, pass string) (bridge.Tokens, error) {
	form := url.Values{
		"grant_type": {"password"}, "client_id": {LoginClient}, "client_secret": {LoginSecret},
		"username": {user}, "password": {pass}, "scope": {"openid"},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		s.KeycloakURL+"/realms/"+Realm+"/protocol/openid-connect/token", strings.NewReader(form.Encode()))
	if err != nil {
		return bridge.Tokens{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.client.Do(req)
	if err != nil {
		return bridge.Tokens{}, fmt.Errorf("perf: password grant: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return bridge.Tokens{}, fmt.Errorf("perf: password grant: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return bridge.Tokens{}, fmt.Errorf("perf: password grant for %s: %d %s", user, resp.StatusCode, body)
	}
	var tok bridge.Tokens
	if err := json.Unmarshal(body, &tok); err != nil {
		return bridge.Tokens{}, fmt.Errorf("perf: password grant response: %w", err)
	}
	return tok, nil
}
