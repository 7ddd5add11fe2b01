package bridge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/stepup-bridge/stepup-bridge/config"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
	"github.com/stepup-bridge/stepup-bridge/internal/token"
)

// Config configures a Bridge. Zero values mean the documented defaults.
type Config struct {
	// BaseURL is Keycloak's base URL without /realms, e.g.
	// https://sso.example.com. Required.
	BaseURL string
	// Realm is the realm name. Required.
	Realm string
	// ClientID is the client of the password grant (direct access grants
	// on); confidential or public.
	ClientID string
	// ClientSecret is ClientID's secret; empty for a public client. Sent
	// as client_secret_post, so any character is safe.
	ClientSecret string
	// AdminClientID is a confidential client whose service account holds
	// view-users and manage-users (and manage-realm, manage-clients,
	// view-clients for plan/apply). Required for the admin operations.
	AdminClientID string
	// AdminClientSecret is AdminClientID's secret.
	AdminClientSecret string
	// Timeout bounds each call to Keycloak. Defaults to 5 seconds.
	Timeout time.Duration
	// HTTPClient carries every call, including JWKS fetches. Defaults to
	// a client with Go's default transport.
	HTTPClient *http.Client
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Attribute is the multivalued user attribute holding step-up entries
	// (and, through the mapper, the claim name). Defaults to "stepup".
	Attribute string
	// MaxEntries bounds the entries kept per user, newest kept. Defaults to 20.
	MaxEntries int
	// EntryTTL is the life of a new step-up entry (NewEntry). Defaults to 1h.
	EntryTTL time.Duration
	// Leases serialise the read-modify-write of one user across replicas.
	// Required for WriteStepUp; share one store between replicas.
	Leases store.Leases
	// LockTTL bounds how long one replica holds a user's lease; the write
	// (three Keycloak calls) is cut off before it ends. Defaults to 10s.
	LockTTL time.Duration
	// Audiences accepted in access tokens by Verifier (aud or azp). Empty
	// accepts any client of the realm: insecure in production.
	Audiences []string
	// ClockSkew tolerated by Verifier. Defaults to 30 seconds.
	ClockSkew time.Duration
	// JWKSRefreshFloor is the least time between two JWKS fetches caused
	// by unknown key ids. Defaults to 10 seconds.
	JWKSRefreshFloor time.Duration
}

// Tokens are Keycloak's token response. They are bearer secrets: String
// redacts them, and callers must never log the fields.
type Tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
	TokenType    string `json:"token_type"`
	// ExpiresIn and RefreshExpiresIn are in seconds, as Keycloak sends them.
	ExpiresIn        int `json:"expires_in"`
	RefreshExpiresIn int `json:"refresh_expires_in,omitempty"`
	// SessionState is Keycloak's session id (the sid of the tokens).
	SessionState string `json:"session_state,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

// String keeps tokens out of logs.
func (t Tokens) String() string {
	return fmt.Sprintf("bridge.Tokens{type=%s expires_in=%d session=%s [tokens redacted]}", t.TokenType, t.ExpiresIn, t.SessionState)
}

// GoString keeps %#v redacted too.
func (t Tokens) GoString() string { return t.String() }

func tokensFrom(r tokenResponse) Tokens {
	return Tokens{
		AccessToken: r.AccessToken, RefreshToken: r.RefreshToken, IDToken: r.IDToken, TokenType: r.TokenType,
		ExpiresIn: r.ExpiresIn, RefreshExpiresIn: r.RefreshExpiresIn, SessionState: r.SessionState, Scope: r.Scope,
	}
}

// Bridge is the sidecar's one way to Keycloak: primary login, the service
// account's admin calls, the step-up write-back and token verification.
// Safe for concurrent use; build one per process with New and Close it.
type Bridge struct {
	cfg     Config
	kc      *keycloak
	metrics *metrics

	adminMu  sync.Mutex
	adminTok string
	adminExp time.Time

	verifier *token.Verifier
	keysStop context.CancelFunc
}

// New checks cfg, applies defaults and returns a Bridge. It does not call
// Keycloak: use Ping for readiness.
func New(cfg Config) (*Bridge, error) {
	var problems []string
	u, err := url.Parse(cfg.BaseURL)
	if cfg.BaseURL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		problems = append(problems, fmt.Sprintf("BaseURL %q is not an http(s) URL", cfg.BaseURL))
	}
	if cfg.Realm == "" {
		problems = append(problems, "Realm is required")
	}
	if cfg.AdminClientID != "" && cfg.AdminClientSecret == "" {
		problems = append(problems, "AdminClientSecret is required with AdminClientID")
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("bridge: invalid config: %s", strings.Join(problems, "; "))
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Attribute == "" {
		cfg.Attribute = "stepup"
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 20
	}
	if cfg.EntryTTL <= 0 {
		cfg.EntryTTL = time.Hour
	}
	if cfg.LockTTL <= 0 {
		cfg.LockTTL = 10 * time.Second
	}
	b := &Bridge{cfg: cfg, kc: newKeycloak(cfg.BaseURL, cfg.Realm, cfg.HTTPClient, cfg.Timeout), metrics: newMetrics()}

	keysCtx, stop := context.WithCancel(context.Background())
	keys := token.NewRemoteKeySet(keysCtx, b.kc.realmURL("protocol", "openid-connect", "certs"), token.KeySetOptions{
		HTTPClient:   &http.Client{Transport: cfg.HTTPClient.Transport, Timeout: cfg.Timeout},
		RefreshFloor: cfg.JWKSRefreshFloor,
		Now:          cfg.Now,
	})
	v, err := token.NewVerifier(keys, token.Config{
		Issuer:      b.Issuer(),
		Audiences:   cfg.Audiences,
		ClockSkew:   cfg.ClockSkew,
		Now:         cfg.Now,
		StepUpClaim: cfg.Attribute,
	})
	if err != nil {
		stop()
		return nil, fmt.Errorf("bridge: building verifier: %w", err)
	}
	b.verifier, b.keysStop = v, stop
	return b, nil
}

// FromConfig builds a Bridge from the sidecar's configuration: Keycloak
// URL, realm, clients and secrets (secret files are already read by
// config.Load), claim settings, and an HTTP client trusting
// Keycloak.CAFile besides the system roots. leases may be nil for plan and
// apply, which never write step-up entries.
func FromConfig(c config.Config, leases store.Leases) (*Bridge, error) {
	hc := &http.Client{}
	if c.Keycloak.CAFile != "" {
		pem, err := os.ReadFile(c.Keycloak.CAFile)
		if err != nil {
			return nil, fmt.Errorf("bridge: reading keycloak.ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("bridge: keycloak.ca_file %s holds no PEM certificate", c.Keycloak.CAFile)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		hc.Transport = tr
	}
	return New(Config{
		BaseURL:           c.Keycloak.URL,
		Realm:             c.Keycloak.Realm,
		ClientID:          c.Keycloak.ClientID,
		ClientSecret:      c.Keycloak.ClientSecret.Reveal(),
		AdminClientID:     c.Keycloak.AdminClientID,
		AdminClientSecret: c.Keycloak.AdminClientSecret.Reveal(),
		Timeout:           c.Keycloak.Timeout,
		HTTPClient:        hc,
		Attribute:         c.Claims.Attribute,
		MaxEntries:        c.Claims.MaxEntries,
		EntryTTL:          c.Claims.EntryTTL,
		Leases:            leases,
		LockTTL:           c.Claims.LockTTL,
		Audiences:         c.Keycloak.Audiences,
		ClockSkew:         c.Keycloak.ClockSkew,
		JWKSRefreshFloor:  c.Keycloak.JWKSRefreshFloor,
	})
}

// Close stops the verifier's background key fetches. The Bridge must not
// be used afterwards.
func (b *Bridge) Close() error {
	b.keysStop()
	return nil
}

// Issuer is the realm's issuer, {BaseURL}/realms/{realm}, as Keycloak
// writes it in iss when reached at BaseURL (set Keycloak's hostname so
// that the sidecar and the clients see the same URL).
func (b *Bridge) Issuer() string { return b.kc.realmURL() }

// Verifier returns the access-token verifier for the realm: issuer, JWKS
// at {issuer}/protocol/openid-connect/certs, the configured audiences and
// the step-up claim named after the attribute.
func (b *Bridge) Verifier() *token.Verifier { return b.verifier }

// Attribute is the user attribute (and claim) holding step-up entries.
func (b *Bridge) Attribute() string { return b.cfg.Attribute }

// NewEntry returns the step-up entry for a step-up of session sid to level
// acr by methods amr, issued now and valid for EntryTTL.
func (b *Bridge) NewEntry(sid, acr string, amr []string) token.StepUpEntry {
	now := b.cfg.Now()
	return token.StepUpEntry{SID: sid, ACR: acr, AMR: append([]string(nil), amr...), IAT: now.Unix(), EXP: now.Add(b.cfg.EntryTTL).Unix()}
}

// Ping checks that Keycloak answers for the realm (readiness): it reads
// the realm's OpenID configuration.
func (b *Bridge) Ping(ctx context.Context) (err error) {
	defer b.track("ping")(&err)
	_, err = b.kc.do(ctx, request{op: "ping", method: http.MethodGet, url: b.kc.realmURL(".well-known", "openid-configuration")})
	return err
}

// adminToken returns a cached service-account token, fetching a new one
// when none is cached or the cached one ends within a quarter of its
// life (at least 5 seconds).
func (b *Bridge) adminToken(ctx context.Context) (string, error) {
	if b.cfg.AdminClientID == "" {
		return "", &Error{Op: "admin token", Message: "no AdminClientID configured", Kind: ErrClientConfig}
	}
	b.adminMu.Lock()
	defer b.adminMu.Unlock()
	if b.adminTok != "" && b.cfg.Now().Before(b.adminExp) {
		return b.adminTok, nil
	}
	t, err := b.kc.tokenGrant(ctx, "admin token", b.cfg.AdminClientID, b.cfg.AdminClientSecret, map[string]string{"grant_type": "client_credentials"})
	if err != nil {
		return "", grantError(err, ErrClientConfig)
	}
	b.metrics.renewed.Inc()
	life := time.Duration(t.ExpiresIn) * time.Second
	margin := max(life/4, 5*time.Second)
	b.adminTok = t.AccessToken
	b.adminExp = b.cfg.Now().Add(life - margin)
	return b.adminTok, nil
}

// dropAdminToken forgets tok if it is still the cached one.
func (b *Bridge) dropAdminToken(tok string) {
	b.adminMu.Lock()
	if b.adminTok == tok {
		b.adminTok = ""
	}
	b.adminMu.Unlock()
}

// admin runs fn with the service-account token, renewing it and retrying
// once if Keycloak answers 401 (a token revoked or expired early).
func (b *Bridge) admin(ctx context.Context, fn func(tok string) error) error {
	tok, err := b.adminToken(ctx)
	if err != nil {
		return err
	}
	err = fn(tok)
	if statusOf(err) != http.StatusUnauthorized {
		return err
	}
	b.dropAdminToken(tok)
	if tok, err = b.adminToken(ctx); err != nil {
		return err
	}
	return fn(tok)
}
