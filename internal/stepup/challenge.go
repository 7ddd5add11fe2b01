package stepup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/internal/devices"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
	"github.com/stepup-bridge/stepup-bridge/internal/token"
)

// Challenge kinds in the store.
const (
	kindStepUp = "stepup"
	kindLogin  = "login"
)

// Audit event types the flows write (the registry writes the factor-level
// ones: stepup.success, stepup.failure, login.success, ...).
const (
	AuditChallengeCreated = "stepup.challenge"
	AuditStepUpGranted    = "stepup.granted"
	AuditLoginMFARequired = "login.mfa_required"
	AuditLoginGranted     = "login.granted"
	AuditLoginAborted     = "login.aborted"
)

// Action is the request the client says it wants to make after the
// step-up; recorded so a mutative action can be traced to its proof.
type Action struct {
	Method string `json:"method,omitempty"`
	URI    string `json:"uri,omitempty"`
}

// Request describes the caller of a flow.
type Request struct {
	// AccessToken is the caller's Keycloak access token (Bearer).
	AccessToken string
	// IP is the client address as the server derived it.
	IP string
}

// ChallengeRequest opens a step-up challenge.
type ChallengeRequest struct {
	Request
	Factor string
	// ACRValues are the acceptable levels (space separated in RFC 9470's
	// acr_values); empty accepts what a factor grants.
	ACRValues []string
	// MaxAge, if set, is echoed into the audit trail.
	MaxAge time.Duration
	Action Action
}

// Challenge is an open challenge as the client sees it.
type Challenge struct {
	// ID is shown once; the store keeps only its hash.
	ID        string
	Factor    string
	ExpiresAt time.Time
	// Delivery is set for factors that deliver something (flash call, SMS, e-mail).
	Delivery *factors.Delivery
}

// challengeData is what a challenge row carries besides its binding.
type challengeData struct {
	ACR    string `json:"acr"`
	MaxAge int64  `json:"max_age,omitempty"`
	Action Action `json:"action,omitzero"`
	IP     string `json:"ip,omitempty"`
	// Device is the label of the device a pending login came from.
	Device string `json:"device,omitempty"`
	// Verified is set once the factor succeeded; Audited once the grant
	// is in the audit trail; Completed once the entry is in Keycloak.
	Verified  *token.StepUpEntry `json:"verified,omitempty"`
	Audited   bool               `json:"audited,omitempty"`
	Completed bool               `json:"completed,omitempty"`
	// Tokens are the pending login's Keycloak tokens, encrypted.
	Tokens []byte `json:"tokens,omitempty"`
}

// errCorrupt: a challenge row that does not decode; never retried.
var errCorrupt = errors.New("stepup: corrupt challenge data")

func decodeData(c store.Challenge) (challengeData, error) {
	var d challengeData
	if len(c.Data) == 0 {
		return d, nil
	}
	if err := json.Unmarshal(c.Data, &d); err != nil {
		return d, fmt.Errorf("%w: %w", errCorrupt, err)
	}
	return d, nil
}

func (d challengeData) encode() []byte {
	b, err := json.Marshal(d)
	if err != nil {
		// Only plain strings, numbers and bytes: cannot fail.
		panic(fmt.Sprintf("stepup: encoding challenge data: %v", err))
	}
	return b
}

// session verifies the caller's token and requires a user session.
func (s *Service) session(ctx context.Context, raw string) (*token.Claims, error) {
	claims, err := s.cfg.Verifier.Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	if claims.SessionID == "" || claims.Subject == "" {
		return nil, ErrNoSession
	}
	return claims, nil
}

// grantable checks the requested acr values against what a factor grants.
func (s *Service) grantable(requested []string) (string, error) {
	if len(requested) == 0 || slices.Contains(requested, s.cfg.Level) {
		return s.cfg.Level, nil
	}
	return "", fmt.Errorf("%w: asked for %s, a factor grants %q", ErrLevelUnsupported, strings.Join(requested, " "), s.cfg.Level)
}

// available says whether userID may use factor name now.
func (s *Service) available(ctx context.Context, userID, name string) error {
	if !slices.Contains(s.cfg.Factors.Names(), name) {
		return fmt.Errorf("%w: %q is not enabled", ErrFactorUnavailable, name)
	}
	active, err := s.cfg.Factors.Active(ctx, userID)
	if err != nil {
		return fmt.Errorf("stepup: listing factors: %w", err)
	}
	if !slices.Contains(active, name) {
		return fmt.Errorf("%w: %q is not enrolled", ErrFactorUnavailable, name)
	}
	return nil
}

// CreateChallenge opens a step-up challenge for the caller's session.
func (s *Service) CreateChallenge(ctx context.Context, req ChallengeRequest) (Challenge, error) {
	claims, err := s.session(ctx, req.AccessToken)
	if err != nil {
		return Challenge{}, err
	}
	level, err := s.grantable(req.ACRValues)
	if err != nil {
		return Challenge{}, err
	}
	if err := s.available(ctx, claims.Subject, req.Factor); err != nil {
		return Challenge{}, err
	}
	now := s.cfg.Now()
	if limit := s.cfg.ChallengesPerHour; limit > 0 {
		// Each challenge is a row until it expires: bound them per user,
		// across replicas.
		n, resetAt, err := s.cfg.Counters.IncrementCounter(ctx, "stepup:challenges:"+claims.Subject, 1, time.Hour, now)
		if err != nil {
			return Challenge{}, fmt.Errorf("stepup: counting challenges: %w", err)
		}
		if n > int64(limit) {
			return Challenge{}, &factors.RateLimitedError{RetryAfter: resetAt.Sub(now), Until: resetAt}
		}
	}
	meta := factors.Meta{SessionID: claims.SessionID, IP: req.IP, Purpose: kindStepUp}
	out := Challenge{Factor: req.Factor, ExpiresAt: now.Add(s.cfg.ChallengeTTL)}
	if f, ok := s.cfg.Factors.Factor(req.Factor); ok {
		if _, delivers := f.(factors.Challenger); delivers {
			d, err := s.cfg.Factors.Challenge(ctx, req.Factor, claims.Subject, factors.ChallengeRequest{SessionID: claims.SessionID}, meta)
			if err != nil {
				return Challenge{}, err
			}
			out.Delivery = &d
			if !d.ExpiresAt.IsZero() && d.ExpiresAt.Before(out.ExpiresAt) {
				out.ExpiresAt = d.ExpiresAt
			}
		}
	}
	raw, id, err := s.newID()
	if err != nil {
		return Challenge{}, err
	}
	data := challengeData{ACR: level, MaxAge: int64(req.MaxAge / time.Second), Action: req.Action, IP: req.IP}
	err = s.cfg.Store.CreateChallenge(ctx, store.Challenge{
		ID: id, Kind: kindStepUp, UserID: claims.Subject, SessionID: claims.SessionID, Factor: req.Factor,
		Data: data.encode(), MaxAttempts: s.cfg.MaxAttempts, CreatedAt: now, ExpiresAt: out.ExpiresAt,
	})
	if err != nil {
		return Challenge{}, fmt.Errorf("stepup: storing challenge: %w", err)
	}
	out.ID = raw
	s.audit(ctx, store.AuditEvent{Type: AuditChallengeCreated, Actor: claims.Subject, UserID: claims.Subject,
		Factor: req.Factor, SessionID: claims.SessionID, IP: req.IP, Outcome: "created",
		Details: actionDetails(req.Action, map[string]string{"acr": level, "challenge": id[:16]})})
	return out, nil
}

// VerifyRequest answers a step-up challenge.
type VerifyRequest struct {
	Request
	ChallengeID string
	Code        string
	// RefreshToken, if given, is used to return fresh tokens carrying the
	// step-up claim; it must belong to the same session.
	RefreshToken string
	// TrustDevice asks for a device credential (Grant.Device) once the
	// factor is verified; UserAgent names the device.
	TrustDevice bool
	UserAgent   string
}

// Grant is a successful step-up.
type Grant struct {
	ACR       string
	AMR       []string
	ExpiresAt time.Time
	// Tokens are refreshed tokens when a refresh token was given.
	Tokens *bridge.Tokens
	// Device is the trusted-device credential issued on request; its
	// Token is shown once.
	Device *devices.Issued
}

// VerifyChallenge checks the code and, on success, writes the step-up
// entry into Keycloak.
func (s *Service) VerifyChallenge(ctx context.Context, req VerifyRequest) (Grant, error) {
	if req.TrustDevice && s.cfg.Devices == nil {
		return Grant{}, ErrDevicesDisabled
	}
	claims, err := s.session(ctx, req.AccessToken)
	if err != nil {
		return Grant{}, err
	}
	if !validRawID(req.ChallengeID) {
		return Grant{}, ErrChallengeNotFound
	}
	id := hashID(req.ChallengeID)
	c, err := s.cfg.Store.GetChallenge(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Grant{}, ErrChallengeNotFound
	}
	if err != nil {
		return Grant{}, fmt.Errorf("stepup: loading challenge: %w", err)
	}
	// Bound to user and session: someone else's challenge does not exist.
	if c.Kind != kindStepUp || c.UserID != claims.Subject || c.SessionID != claims.SessionID {
		return Grant{}, ErrChallengeNotFound
	}
	data, err := decodeData(c)
	if err != nil {
		return Grant{}, err
	}
	if data.Completed {
		return Grant{}, store.ErrConsumed
	}
	if data.Verified == nil {
		entry, err := s.verifyFactor(ctx, c, req.Code, claims, req.IP)
		if err != nil {
			return Grant{}, err
		}
		data.Verified = &entry
	}
	// The factor is proven, now or by an earlier call of this session that
	// failed later on (its retry needs no code: the proof is on the
	// challenge). Record the grant, then write the claim.
	entry := *data.Verified
	if !data.Audited {
		if err := s.recordGrant(ctx, c, data, entry, AuditStepUpGranted, req.IP); err != nil {
			return Grant{}, err
		}
	}
	if err := s.cfg.Keycloak.WriteStepUp(ctx, c.UserID, entry); err != nil {
		return Grant{}, fmt.Errorf("stepup: writing the step-up claim: %w", err)
	}
	if err := s.markChallenge(ctx, id, func(d *challengeData) { d.Completed = true }); err != nil {
		// The entry is in Keycloak; a retry would only rewrite it.
		s.log.WarnContext(ctx, "marking challenge completed", "err", err)
	}
	g := Grant{ACR: entry.ACR, AMR: entry.AMR, ExpiresAt: time.Unix(entry.EXP, 0)}
	if req.RefreshToken != "" {
		t, err := s.refreshSameSession(ctx, req.RefreshToken, claims.SessionID)
		if err != nil {
			return Grant{}, err
		}
		g.Tokens = &t
	}
	// The step-up is written: a failure to trust the device must not hide
	// it (a retry would find the challenge used). The client may ask again
	// with its next step-up.
	dev, err := s.trust(ctx, req.TrustDevice, c.UserID, req.UserAgent, claims.SessionID, req.IP)
	if err != nil {
		s.log.ErrorContext(ctx, "trusting the device after a step-up", "err", err)
	}
	g.Device = dev
	return g, nil
}

// verifyFactor counts the attempt, checks the code and consumes the
// challenge, recording the proof on it; it returns the entry to write.
func (s *Service) verifyFactor(ctx context.Context, c store.Challenge, code string, claims *token.Claims, ip string) (token.StepUpEntry, error) {
	now := s.cfg.Now()
	attempted, err := store.AttemptChallenge(ctx, s.cfg.Store, c.ID, now)
	if err != nil {
		return token.StepUpEntry{}, err
	}
	data, err := decodeData(attempted)
	if err != nil {
		return token.StepUpEntry{}, err
	}
	meta := factors.Meta{SessionID: claims.SessionID, IP: ip, Purpose: c.Kind,
		Details: actionDetails(data.Action, map[string]string{"challenge": c.ID[:16]})}
	res, err := s.cfg.Factors.Verify(ctx, c.Factor, c.UserID, code, meta)
	if err != nil {
		if isWrongAnswer(err) {
			return token.StepUpEntry{}, &InvalidCodeError{Remaining: attempted.MaxAttempts - attempted.Attempts, Err: err}
		}
		return token.StepUpEntry{}, err
	}
	verifiedAt := res.At
	if verifiedAt.IsZero() {
		verifiedAt = now
	}
	level := data.ACR
	if level == "" {
		level = s.cfg.Level
	}
	entry := token.StepUpEntry{SID: c.SessionID, ACR: level, AMR: []string{res.Method},
		IAT: verifiedAt.Unix(), EXP: verifiedAt.Add(s.cfg.EntryTTL).Unix()}
	if err := s.consume(ctx, c.ID, now, entry, ""); err != nil {
		return token.StepUpEntry{}, err
	}
	return entry, nil
}

// consume records a proven factor on challenge id and consumes it: of
// concurrent answers exactly one gets here. The factor has already spent
// the code (a backup code is used, a TOTP step accepted), so this write
// must not be lost to a passing store failure (a PostgreSQL restart, a
// dropped connection): it is retried for a while. factor, if set, records
// which factor a pending login was answered with.
func (s *Service) consume(ctx context.Context, id string, now time.Time, entry token.StepUpEntry, factor string) error {
	return s.persist(ctx, "recording the proof", func(ctx context.Context) error {
		_, err := s.cfg.Store.UpdateChallenge(ctx, id, func(cur store.Challenge) (store.Challenge, error) {
			if !cur.ConsumedAt.IsZero() {
				return cur, store.ErrConsumed
			}
			d, err := decodeData(cur)
			if err != nil {
				return cur, err
			}
			d.Verified = &entry
			cur.ConsumedAt = now
			if factor != "" {
				cur.Factor = factor
			}
			cur.Data = d.encode()
			return cur, nil
		})
		return err
	})
}

// recordGrant appends the grant to the audit trail and marks the challenge
// audited. No grant without its record: if the append fails the caller
// answers 503 and a retry appends again (a failure to mark the challenge
// may, on a retry, record a grant twice, never zero times).
func (s *Service) recordGrant(ctx context.Context, c store.Challenge, data challengeData, entry token.StepUpEntry, typ, ip string) error {
	details := actionDetails(data.Action, map[string]string{
		"acr": entry.ACR, "amr": strings.Join(entry.AMR, " "), "exp": strconv.FormatInt(entry.EXP, 10), "challenge": c.ID[:16]})
	if data.MaxAge > 0 {
		details["max_age"] = strconv.FormatInt(data.MaxAge, 10)
	}
	factor := c.Factor
	if len(entry.AMR) > 0 {
		factor = entry.AMR[0]
	}
	e := store.AuditEvent{Time: time.Unix(entry.IAT, 0).UTC(), Type: typ, Actor: c.UserID, UserID: c.UserID,
		Factor: factor, SessionID: c.SessionID, IP: ip, Outcome: "success", Details: details}
	if err := s.persist(ctx, "recording the grant", func(ctx context.Context) error {
		_, err := s.cfg.Store.AppendAudit(ctx, e)
		return err
	}); err != nil {
		return err
	}
	if err := s.markChallenge(ctx, c.ID, func(d *challengeData) { d.Audited = true }); err != nil {
		s.log.WarnContext(ctx, "marking challenge audited", "err", err)
	}
	return nil
}

// markChallenge updates a challenge's data, retrying passing failures.
func (s *Service) markChallenge(ctx context.Context, id string, fn func(*challengeData)) error {
	return s.persist(ctx, "updating the challenge", func(ctx context.Context) error {
		_, err := s.cfg.Store.UpdateChallenge(ctx, id, func(cur store.Challenge) (store.Challenge, error) {
			d, err := decodeData(cur)
			if err != nil {
				return cur, err
			}
			fn(&d)
			cur.Data = d.encode()
			return cur, nil
		})
		return err
	})
}

// persist runs a store write that records work already done (a spent
// code, a granted step-up), riding out a passing store outage for up to
// PersistTimeout (store.Retry).
func (s *Service) persist(ctx context.Context, what string, fn func(context.Context) error) error {
	if err := store.Retry(ctx, s.cfg.PersistTimeout, final, fn); err != nil {
		return fmt.Errorf("stepup: %s: %w", what, err)
	}
	return nil
}

// final: a challenge row that does not decode will not decode on retry.
func final(err error) bool { return errors.Is(err, errCorrupt) }

// isWrongAnswer tells the user's mistakes from failures of the machinery.
func isWrongAnswer(err error) bool {
	return errors.Is(err, factors.ErrInvalidCode) || errors.Is(err, factors.ErrReplay) ||
		errors.Is(err, factors.ErrInvalidInput)
}

// refreshSameSession refreshes tokens and releases them only if they belong
// to sid: a refresh token of another session must not collect this
// session's step-up.
func (s *Service) refreshSameSession(ctx context.Context, refreshToken, sid string) (bridge.Tokens, error) {
	t, err := s.cfg.Keycloak.Refresh(ctx, refreshToken)
	if err != nil {
		return bridge.Tokens{}, err
	}
	claims, err := s.cfg.Verifier.Verify(ctx, t.AccessToken)
	if err != nil {
		return bridge.Tokens{}, fmt.Errorf("stepup: verifying refreshed token: %w", err)
	}
	if claims.SessionID != sid {
		return bridge.Tokens{}, fmt.Errorf("%w: the refresh token belongs to another session", ErrChallengeNotFound)
	}
	return t, nil
}

func actionDetails(a Action, d map[string]string) map[string]string {
	if a.Method != "" {
		d["action_method"] = a.Method
	}
	if a.URI != "" {
		d["action_uri"] = a.URI
	}
	return d
}
