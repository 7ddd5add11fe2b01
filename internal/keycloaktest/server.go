// Package keycloaktest is a Keycloak-compatible HTTP server (Keycloak 24-26
// behaviour) started in-process on loopback. It serves the OIDC endpoints,
// the admin REST API and the account REST API that gocloak and the bridge
// use, from realms imported as `kc.sh export` JSON. Behaviour is reproduced
// from Keycloak's source; docs/keycloak.md lists what is covered and from
// which file. It is meant for tests and `stepup-bridge dev`, never for
// production: state lives in memory only.
package keycloaktest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures Start. The zero value is usable.
type Options struct {
	// Addr is the listen address. Defaults to "127.0.0.1:0" (a free port).
	Addr string
	// Now is the clock for token times, sessions and brute-force windows.
	// Defaults to time.Now; tests pin it and advance it instead of sleeping.
	Now func() time.Time
	// AdminUser and AdminPassword are the master realm administrator.
	// Default to "admin" / "admin".
	AdminUser, AdminPassword string
	// Logger receives one debug line per request. Defaults to a discarding logger.
	Logger *slog.Logger
}

// Server is a running Keycloak-compatible server. All methods are safe for
// concurrent use.
type Server struct {
	opts Options
	ln   net.Listener
	http *http.Server
	url  string
	rand io.Reader

	mu     sync.Mutex
	realms map[string]*realm

	countMu sync.Mutex
	counts  map[string]int

	unavailable atomic.Bool
	latency     atomic.Int64
	closeOnce   sync.Once
	closeErr    error
	stopWatch   func() bool
}

var errConflict = errors.New("conflict")

// Start listens on opts.Addr, creates the master realm with the admin user
// and the admin-cli client, and serves until Close or until ctx is done.
// Creating a realm generates two RSA keys, so Start and ImportRealm take a
// few hundred milliseconds; share a server between tests where you can.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.AdminUser == "" {
		opts.AdminUser = "admin"
	}
	if opts.AdminPassword == "" {
		opts.AdminPassword = "admin"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: opts, rand: rand.Reader, realms: map[string]*realm{}, counts: map[string]int{}}
	if err := s.createMaster(); err != nil {
		return nil, fmt.Errorf("keycloaktest: creating master realm: %w", err)
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("keycloaktest: listening on %s: %w", opts.Addr, err)
	}
	s.ln = ln
	s.url = "http://" + ln.Addr().String()
	s.http = &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.http.Serve(ln) }()
	s.stopWatch = context.AfterFunc(ctx, func() { _ = s.Close() })
	return s, nil
}

// URL is the base URL, e.g. http://127.0.0.1:34567, without /realms or /auth.
func (s *Server) URL() string { return s.url }

// Close stops the server; open connections are closed.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.stopWatch()
		s.closeErr = s.http.Close()
	})
	return s.closeErr
}

// ImportRealm adds a realm from its export JSON (as `kc.sh export` writes it,
// or as POST /admin/realms takes it). ErrRealmExists if the name is taken.
func (s *Server) ImportRealm(export []byte) error {
	var rep realmRep
	if err := json.Unmarshal(export, &rep); err != nil {
		return fmt.Errorf("keycloaktest: parsing realm export: %w", err)
	}
	return s.importRep(&rep)
}

func (s *Server) importRep(rep *realmRep) error {
	s.mu.Lock()
	_, exists := s.realms[rep.Realm]
	s.mu.Unlock()
	if exists {
		return fmt.Errorf("keycloaktest: realm %s: %w", rep.Realm, ErrRealmExists)
	}
	// Key generation is slow; build outside the lock, then publish.
	r, err := s.buildRealm(rep)
	if err != nil {
		return fmt.Errorf("keycloaktest: importing realm %s: %w", rep.Realm, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, exists := s.realms[r.name]; exists {
		return fmt.Errorf("keycloaktest: realm %s: %w", r.name, ErrRealmExists)
	}
	for _, other := range s.realms {
		if other.id == r.id {
			r.id = s.newID()
		}
	}
	s.realms[r.name] = r
	return nil
}

// RotateKeys makes a new RS256 key the active signing key of the realm. The
// previous keys stay in the JWKS and keep verifying until RemoveOldKeys, as
// a passive key does in Keycloak.
func (s *Server) RotateKeys(realmName string) error {
	k, err := s.newKey(realmName)
	if err != nil {
		return fmt.Errorf("keycloaktest: rotating keys: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.realms[realmName]
	if r == nil {
		return fmt.Errorf("keycloaktest: %s: %w", realmName, ErrRealmNotFound)
	}
	r.keys = append([]*signingKey{k}, r.keys...)
	return nil
}

// RemoveOldKeys drops every signing key but the active one: tokens signed
// with them no longer verify and their kids leave the JWKS.
func (s *Server) RemoveOldKeys(realmName string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.realms[realmName]
	if r == nil {
		return fmt.Errorf("keycloaktest: %s: %w", realmName, ErrRealmNotFound)
	}
	r.keys = r.keys[:1]
	return nil
}

// Requests reports how many requests reached the exact URL path, e.g.
// "/realms/stepup-dev/protocol/openid-connect/certs". Requests refused by
// SetAvailable(false) count too.
func (s *Server) Requests(path string) int {
	s.countMu.Lock()
	defer s.countMu.Unlock()
	return s.counts[path]
}

// SetAvailable(false) makes every endpoint answer 503 until SetAvailable(true),
// for fault tests.
func (s *Server) SetAvailable(ok bool) { s.unavailable.Store(!ok) }

// Latency delays every response by d (0 turns it off). The delay ends early
// when the client gives up.
func (s *Server) Latency(d time.Duration) { s.latency.Store(int64(d)) }

func (s *Server) now() time.Time { return s.opts.Now() }

// newID returns a random UUID v4, as Keycloak's KeycloakModelUtils.generateId.
func (s *Server) newID() string {
	var b [16]byte
	if _, err := io.ReadFull(s.rand, b[:]); err != nil {
		panic("keycloaktest: random source failed: " + err.Error())
	}
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// newSecret returns a 32-character client secret (SecretGenerator).
func (s *Server) newSecret() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 32)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		panic("keycloaktest: random source failed: " + err.Error())
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func (s *Server) createMaster() error {
	t := true
	user, pass := s.opts.AdminUser, s.opts.AdminPassword
	rep := &realmRep{
		Realm: "master", DisplayName: "Keycloak",
		Roles: &rolesRep{Realm: []roleRep{
			{Name: "admin", Description: "${role_admin}"},
			{Name: "create-realm", Description: "${role_create-realm}"},
		}},
		Users: []userRep{{Username: &user, Enabled: &t, RealmRoles: []string{"admin", "default-roles-master"},
			Credentials: []credentialRep{{Type: "password", Value: pass}}}},
		RequiredActions: []requiredActionRep{{Alias: "VERIFY_PROFILE", Enabled: false}},
	}
	r, err := s.buildRealm(rep)
	if err != nil {
		return err
	}
	s.realms[r.name] = r
	return nil
}

// handler wraps the router with availability, latency, counting and logging.
func (s *Server) handler() http.Handler {
	mux := s.routes()
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.countMu.Lock()
		s.counts[req.URL.Path]++
		s.countMu.Unlock()
		s.opts.Logger.Debug("keycloaktest request", "method", req.Method, "path", req.URL.Path)
		if d := time.Duration(s.latency.Load()); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-req.Context().Done():
				t.Stop()
				return
			}
		}
		if s.unavailable.Load() {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "Service Unavailable")
			return
		}
		mux.ServeHTTP(w, req)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// oauthError writes an OAuth2ErrorRepresentation {"error","error_description"}.
func oauthError(w http.ResponseWriter, status int, code, desc string) {
	body := map[string]string{"error": code}
	if desc != "" {
		body["error_description"] = desc
	}
	writeJSON(w, status, body)
}

// serverError is what KeycloakErrorHandler answers to an uncaught exception.
func (s *Server) serverError(w http.ResponseWriter, err error) {
	s.opts.Logger.Error("keycloaktest uncaught server error", "err", err)
	writeJSON(w, http.StatusInternalServerError, map[string]string{
		"error": "unknown_error", "error_description": "For more on this error consult the server log."})
}

func (s *Server) issuer(r *realm) string { return s.url + "/realms/" + r.name }

func splitPath(p string) []string {
	return strings.Split(strings.Trim(p, "/"), "/")
}
