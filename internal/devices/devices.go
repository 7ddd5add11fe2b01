package devices

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// Audit event types the package writes.
const (
	AuditTrusted = "device.trusted"
	AuditUsed    = "device.used"
	AuditRefused = "device.refused"
	AuditRevoked = "device.revoked"
)

// Who revoked a device (store.Device.RevokedBy and the audit details).
const (
	RevokedByUser         = "user"
	RevokedByAdmin        = "admin"
	RevokedByFactorChange = "factor_change"
	RevokedByLimit        = "limit"
)

// Defaults of Config.
const (
	DefaultTTL        = 30 * 24 * time.Hour
	DefaultMaxPerUser = 10
)

const tokenPrefix = "sbd1"

var (
	// ErrUntrusted: the token does not make the device trusted (malformed,
	// unknown, someone else's, expired, revoked, or presented by another
	// kind of device). Deliberately one error: the client learns nothing
	// about why.
	ErrUntrusted = errors.New("devices: not a trusted device")
	// ErrNotFound: no such device of this user.
	ErrNotFound = errors.New("devices: no such device")
)

// Config configures New. Store, Audit and Key are required.
type Config struct {
	Store store.Devices
	Audit store.Audit
	// Key keys the HMAC over tokens, at least 32 bytes (KeyFromPepper). Every
	// replica must use the same key; changing it distrusts every device.
	Key []byte
	// TTL is how long a device stays trusted. Defaults to DefaultTTL.
	TTL time.Duration
	// MaxPerUser bounds a user's trusted devices: trusting one more revokes
	// the oldest. Defaults to DefaultMaxPerUser.
	MaxPerUser int
	// Registerer receives the metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Now and Rand default to time.Now and crypto/rand.
	Now    func() time.Time
	Rand   io.Reader
	Logger *slog.Logger
}

// Service issues, checks, lists and revokes device credentials. It is
// safe for concurrent use; all state is in the store.
type Service struct {
	cfg Config
	log *slog.Logger
	m   *metrics
}

// KeyFromPepper derives the token HMAC key from the server pepper, so no
// other secret has to be configured and the key is never the pepper itself.
func KeyFromPepper(pepper []byte) []byte {
	m := hmac.New(sha256.New, pepper)
	m.Write([]byte("stepup-bridge trusted device key v1"))
	return m.Sum(nil)
}

// New checks cfg and fills the defaults.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Audit == nil {
		return nil, errors.New("devices: Store and Audit are required")
	}
	if len(cfg.Key) < 32 {
		return nil, errors.New("devices: Key must have at least 32 bytes")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.MaxPerUser <= 0 {
		cfg.MaxPerUser = DefaultMaxPerUser
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, log: log, m: m}, nil
}

// TTL is how long a newly trusted device stays trusted.
func (s *Service) TTL() time.Duration { return s.cfg.TTL }

// Device is a trusted device as the user and admins see it. It holds no
// secret.
type Device struct {
	ID         string    `json:"id"`
	Label      string    `json:"label"`
	IP         string    `json:"ip,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
}

func public(d store.Device) Device {
	return Device{ID: d.ID, Label: d.Label, IP: d.IP, CreatedAt: d.CreatedAt, ExpiresAt: d.ExpiresAt, LastUsedAt: d.LastUsedAt}
}

// Meta is who acts and from where, for the audit trail.
type Meta struct {
	// Actor is who acts; empty means the user.
	Actor     string
	SessionID string
	IP        string
}

// Issued is a newly trusted device. Token is shown once: the client keeps
// it, the store only its keyed hash.
type Issued struct {
	Token  string
	Device Device
}

// Trust issues a credential binding userID to the kind of device userAgent
// describes. The caller must have just verified a second factor of userID.
func (s *Service) Trust(ctx context.Context, userID, userAgent string, meta Meta) (Issued, error) {
	if userID == "" {
		return Issued{}, errors.New("devices: empty user id")
	}
	var idb [16]byte
	var secret [32]byte
	if _, err := io.ReadFull(s.cfg.Rand, idb[:]); err != nil {
		return Issued{}, fmt.Errorf("devices: random id: %w", err)
	}
	if _, err := io.ReadFull(s.cfg.Rand, secret[:]); err != nil {
		return Issued{}, fmt.Errorf("devices: random secret: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(idb[:])
	sec := base64.RawURLEncoding.EncodeToString(secret[:])
	now := s.cfg.Now()
	d := store.Device{ID: id, UserID: userID, Label: Label(userAgent), Hash: s.mac(id, userID, sec),
		IP: meta.IP, CreatedAt: now, ExpiresAt: now.Add(s.cfg.TTL)}
	if err := s.cfg.Store.CreateDevice(ctx, d); err != nil {
		s.m.ops.WithLabelValues("trust", "error").Inc()
		return Issued{}, fmt.Errorf("devices: storing device: %w", err)
	}
	s.m.ops.WithLabelValues("trust", "success").Inc()
	s.audit(ctx, AuditTrusted, userID, d, meta, "success", map[string]string{"expires_at": d.ExpiresAt.UTC().Format(time.RFC3339)})
	s.enforceLimit(ctx, userID, meta)
	return Issued{Token: tokenPrefix + "." + id + "." + sec, Device: public(d)}, nil
}

// enforceLimit revokes the oldest active devices beyond MaxPerUser. Two
// replicas trusting at once may each leave one extra until the next trust.
func (s *Service) enforceLimit(ctx context.Context, userID string, meta Meta) {
	active, err := s.active(ctx, userID)
	if err != nil {
		s.log.WarnContext(ctx, "devices: listing for the per-user limit", "err", err)
		return
	}
	for i := 0; i < len(active)-s.cfg.MaxPerUser; i++ {
		if err := s.revoke(ctx, active[i].ID, RevokedByLimit, meta); err != nil && !errors.Is(err, ErrNotFound) {
			s.log.WarnContext(ctx, "devices: revoking beyond the per-user limit", "err", err)
		}
	}
}

// Check tells whether token makes this device trusted for userID now: the
// token is well formed, its keyed hash matches (constant time) a device of
// userID that is neither revoked nor expired, and userAgent describes the
// same kind of device. A success records the use. Every refusal is
// ErrUntrusted; other errors mean the store failed, and the caller must
// then ask for the factor.
func (s *Service) Check(ctx context.Context, userID, token, userAgent string, meta Meta) (Device, error) {
	d, err := s.check(ctx, userID, token, userAgent, meta)
	switch {
	case err == nil:
		s.m.ops.WithLabelValues("check", "success").Inc()
	case errors.Is(err, ErrUntrusted):
		s.m.ops.WithLabelValues("check", "refused").Inc()
	default:
		s.m.ops.WithLabelValues("check", "error").Inc()
	}
	return d, err
}

func (s *Service) check(ctx context.Context, userID, token, userAgent string, meta Meta) (Device, error) {
	id, sec, ok := parseToken(token)
	if !ok || userID == "" {
		return Device{}, ErrUntrusted
	}
	d, err := s.cfg.Store.GetDevice(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Device{}, ErrUntrusted
	}
	if err != nil {
		return Device{}, fmt.Errorf("devices: loading device: %w", err)
	}
	// The user is inside the MAC: another user's device never matches.
	if !hmac.Equal(d.Hash, s.mac(id, userID, sec)) || d.UserID != userID {
		return Device{}, ErrUntrusted
	}
	now := s.cfg.Now()
	reason := refusal(d, now, Label(userAgent))
	if reason == "" {
		d, err = s.cfg.Store.UpdateDevice(ctx, id, func(cur store.Device) (store.Device, error) {
			// Re-checked under the row lock: a revocation that committed
			// meanwhile wins.
			if r := refusal(cur, now, Label(userAgent)); r != "" {
				return cur, &refusedError{reason: r}
			}
			cur.LastUsedAt = now
			return cur, nil
		})
		var re *refusedError
		switch {
		case errors.As(err, &re):
			reason = re.reason
		case errors.Is(err, store.ErrNotFound):
			reason = "revoked"
		case err != nil:
			return Device{}, fmt.Errorf("devices: recording use: %w", err)
		}
	}
	if reason != "" {
		s.audit(ctx, AuditRefused, userID, d, meta, "denied", map[string]string{"reason": reason, "presented_by": Label(userAgent)})
		return Device{}, ErrUntrusted
	}
	s.audit(ctx, AuditUsed, userID, d, meta, "success", nil)
	return public(d), nil
}

type refusedError struct{ reason string }

func (e *refusedError) Error() string { return "devices: refused: " + e.reason }

func refusal(d store.Device, now time.Time, label string) string {
	switch {
	case !d.RevokedAt.IsZero():
		return "revoked"
	case !now.Before(d.ExpiresAt):
		return "expired"
	case d.Label != label:
		return "other_device"
	}
	return ""
}

// List returns userID's devices that are trusted now, oldest first.
func (s *Service) List(ctx context.Context, userID string) ([]Device, error) {
	active, err := s.active(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := make([]Device, 0, len(active))
	for _, d := range active {
		out = append(out, public(d))
	}
	return out, nil
}

func (s *Service) active(ctx context.Context, userID string) ([]store.Device, error) {
	all, err := s.cfg.Store.ListDevices(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("devices: listing devices of %s: %w", userID, err)
	}
	now := s.cfg.Now()
	var out []store.Device
	for _, d := range all {
		if d.RevokedAt.IsZero() && now.Before(d.ExpiresAt) {
			out = append(out, d)
		}
	}
	return out, nil
}

// Revoke revokes device id of userID; ErrNotFound if userID has no such
// trusted device (someone else's device does not exist). by is one of the
// RevokedBy* values.
func (s *Service) Revoke(ctx context.Context, userID, id, by string, meta Meta) error {
	d, err := s.cfg.Store.GetDevice(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (d.UserID != userID || !d.RevokedAt.IsZero())) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("devices: loading device: %w", err)
	}
	return s.revoke(ctx, id, by, meta)
}

func (s *Service) revoke(ctx context.Context, id, by string, meta Meta) error {
	now := s.cfg.Now()
	d, err := s.cfg.Store.UpdateDevice(ctx, id, func(cur store.Device) (store.Device, error) {
		if !cur.RevokedAt.IsZero() {
			return cur, ErrNotFound
		}
		cur.RevokedAt, cur.RevokedBy = now, by
		return cur, nil
	})
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, ErrNotFound) {
		return ErrNotFound
	}
	if err != nil {
		s.m.ops.WithLabelValues("revoke", "error").Inc()
		return fmt.Errorf("devices: revoking device: %w", err)
	}
	s.m.ops.WithLabelValues("revoke", "success").Inc()
	s.audit(ctx, AuditRevoked, d.UserID, d, meta, "success", map[string]string{"by": by})
	return nil
}

// RevokeAll revokes every device of userID (a factor was changed or reset,
// or an admin asked) and returns how many were trusted.
func (s *Service) RevokeAll(ctx context.Context, userID, by string, meta Meta) (int, error) {
	ids, err := s.cfg.Store.RevokeDevices(ctx, userID, by, s.cfg.Now())
	if err != nil {
		s.m.ops.WithLabelValues("revoke", "error").Inc()
		return 0, fmt.Errorf("devices: revoking devices of %s: %w", userID, err)
	}
	s.m.ops.WithLabelValues("revoke", "success").Add(float64(len(ids)))
	for _, id := range ids {
		s.audit(ctx, AuditRevoked, userID, store.Device{ID: id}, meta, "success", map[string]string{"by": by})
	}
	return len(ids), nil
}

func (s *Service) mac(id, userID, secret string) []byte {
	m := hmac.New(sha256.New, s.cfg.Key)
	m.Write([]byte(tokenPrefix))
	for _, p := range []string{id, userID, secret} {
		m.Write([]byte{0})
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

// parseToken splits a token into its id and secret, refusing anything not
// of the exact shape Trust makes.
func parseToken(tok string) (id, secret string, ok bool) {
	if len(tok) != len(tokenPrefix)+1+22+1+43 {
		return "", "", false
	}
	prefix, rest, _ := strings.Cut(tok, ".")
	id, secret, _ = strings.Cut(rest, ".")
	if prefix != tokenPrefix || len(id) != 22 || len(secret) != 43 {
		return "", "", false
	}
	if _, err := base64.RawURLEncoding.DecodeString(id); err != nil {
		return "", "", false
	}
	if _, err := base64.RawURLEncoding.DecodeString(secret); err != nil {
		return "", "", false
	}
	return id, secret, true
}

// ValidTokenShape reports whether tok could be a device token, so a caller
// can refuse junk before any work. It says nothing about trust.
func ValidTokenShape(tok string) bool {
	_, _, ok := parseToken(tok)
	return ok
}

func (s *Service) audit(ctx context.Context, typ, userID string, d store.Device, meta Meta, outcome string, details map[string]string) {
	actor := meta.Actor
	if actor == "" {
		actor = userID
	}
	if details == nil {
		details = map[string]string{}
	}
	details["device_id"] = d.ID
	if d.Label != "" {
		details["device"] = d.Label
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := s.cfg.Audit.AppendAudit(actx, store.AuditEvent{Time: s.cfg.Now(), Type: typ, Actor: actor, UserID: userID,
		Factor: "trusted_device", SessionID: meta.SessionID, IP: meta.IP, Outcome: outcome, Details: details}); err != nil {
		s.log.ErrorContext(ctx, "devices: audit append failed", "type", typ, "err", err)
	}
}

// FromAudit revokes every trusted device of the user an appended audit
// event shows a factor change of: a factor enrolled active or confirmed
// (factor.enrol with pending=false, factor.confirm), changed
// (factor.change) or removed (factor.reset, admin.reset), all successful.
// Whoever made the change (the user on the API or the hosted pages, an
// admin), a device trusted under the old factors must pass a factor again.
// Wire it after the audit append (a store decorator), so every path that
// changes factors through the Registry is covered. Failures are logged:
// the change itself has happened.
func (s *Service) FromAudit(ctx context.Context, e store.AuditEvent) {
	if e.UserID == "" || e.Outcome != "success" {
		return
	}
	by := RevokedByFactorChange
	switch e.Type {
	case "factor.enrol":
		if e.Details["pending"] != "false" {
			return
		}
	case "factor.confirm", "factor.change", "factor.reset":
	case "admin.reset":
		by = RevokedByAdmin
	default:
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	meta := Meta{Actor: e.Actor, SessionID: e.SessionID, IP: e.IP}
	if _, err := s.RevokeAll(ctx, e.UserID, by, meta); err != nil {
		s.log.ErrorContext(ctx, "devices: revoking after a factor change", "type", e.Type, "err", err)
	}
}
