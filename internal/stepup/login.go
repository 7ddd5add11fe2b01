package stepup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/internal/devices"
	"github.com/stepup-bridge/stepup-bridge/internal/keyring"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
	"github.com/stepup-bridge/stepup-bridge/internal/token"
	"github.com/stepup-bridge/stepup-bridge/policies"
)

// LoginRequest is a primary login.
type LoginRequest struct {
	Username string
	Password string
	IP       string
	// UserAgent names the kind of device (devices.Label).
	UserAgent string
	// DeviceToken is a trusted-device credential the client holds, if any.
	// It can only ever replace the second factor, after the password.
	DeviceToken string
}

// LoginResult is either tokens (no second factor needed, or the grace
// period) or a pending login waiting for a factor, never both.
type LoginResult struct {
	// Tokens are released when no second factor is required.
	Tokens *bridge.Tokens
	// EnrolmentRequired: tokens were released inside the grace period and
	// the user must enrol a factor.
	EnrolmentRequired bool
	// Pending is set when a second factor is required.
	Pending *PendingLogin
	// TrustedDevice is set when the second factor was skipped because
	// DeviceToken named a trusted device; the tokens then carry a step-up
	// entry whose amr is policies.AMRTrustedDevice.
	TrustedDevice *devices.Device
	// Grant describes that entry when TrustedDevice is set.
	Grant *Grant
}

// PendingLogin is what the client gets instead of tokens.
type PendingLogin struct {
	// MFAToken identifies the pending login; shown once, stored hashed.
	MFAToken  string
	Factors   []string
	ExpiresAt time.Time
}

// Login performs the password grant and decides whether a second factor
// is required before any token leaves the sidecar.
func (s *Service) Login(ctx context.Context, req LoginRequest) (LoginResult, error) {
	tokens, err := s.cfg.Keycloak.PasswordLogin(ctx, req.Username, req.Password)
	if err != nil {
		return LoginResult{}, err
	}
	// From here on a Keycloak session exists: every failure path logs it out.
	claims, err := s.cfg.Verifier.Verify(ctx, tokens.AccessToken)
	if err != nil {
		s.logout(ctx, tokens.RefreshToken)
		return LoginResult{}, fmt.Errorf("stepup: verifying Keycloak's token: %w", err)
	}
	active, err := s.cfg.Factors.Active(ctx, claims.Subject)
	if err != nil {
		s.logout(ctx, tokens.RefreshToken)
		return LoginResult{}, fmt.Errorf("stepup: listing factors: %w", err)
	}
	offered := offerOrder(intersect(s.cfg.Factors.Names(), active))
	required, err := s.required(ctx, claims, len(offered) > 0)
	if err != nil {
		s.logout(ctx, tokens.RefreshToken)
		return LoginResult{}, err
	}
	switch {
	case !required:
		s.signedIn(ctx, claims.Subject, req.UserAgent, req.IP)
		return LoginResult{Tokens: &tokens}, nil
	case len(offered) == 0:
		if s.cfg.Now().Before(s.cfg.Require.GraceUntil) {
			s.signedIn(ctx, claims.Subject, req.UserAgent, req.IP)
			return LoginResult{Tokens: &tokens, EnrolmentRequired: true}, nil
		}
		s.logout(ctx, tokens.RefreshToken)
		s.audit(ctx, store.AuditEvent{Type: AuditLoginAborted, Actor: claims.Subject, UserID: claims.Subject,
			SessionID: claims.SessionID, IP: req.IP, Outcome: "denied", Details: map[string]string{"reason": "enrolment required"}})
		return LoginResult{}, ErrEnrolmentRequired
	}

	if res, ok, err := s.trustedDeviceLogin(ctx, req, claims, tokens); ok || err != nil {
		if err != nil {
			s.logout(ctx, tokens.RefreshToken)
		}
		return res, err
	}

	raw, id, err := s.newID()
	if err != nil {
		s.logout(ctx, tokens.RefreshToken)
		return LoginResult{}, err
	}
	sealed, err := s.sealTokens(id, claims.Subject, tokens)
	if err != nil {
		s.logout(ctx, tokens.RefreshToken)
		return LoginResult{}, err
	}
	now := s.cfg.Now()
	exp := now.Add(s.cfg.LoginTTL)
	err = s.cfg.Store.CreateChallenge(ctx, store.Challenge{
		ID: id, Kind: kindLogin, UserID: claims.Subject, SessionID: claims.SessionID,
		Data:        challengeData{ACR: s.cfg.Level, IP: req.IP, Device: devices.Label(req.UserAgent), Tokens: sealed}.encode(),
		MaxAttempts: s.cfg.LoginAttempts, CreatedAt: now, ExpiresAt: exp,
	})
	if err != nil {
		s.logout(ctx, tokens.RefreshToken)
		return LoginResult{}, fmt.Errorf("stepup: storing pending login: %w", err)
	}
	s.audit(ctx, store.AuditEvent{Type: AuditLoginMFARequired, Actor: claims.Subject, UserID: claims.Subject,
		SessionID: claims.SessionID, IP: req.IP, Outcome: "pending"})
	return LoginResult{Pending: &PendingLogin{MFAToken: raw, Factors: offered, ExpiresAt: exp}}, nil
}

// trustedDeviceLogin skips the second factor when the request carries a
// device token that is trusted for this user and this kind of device. The
// password was just verified by Keycloak; the device stands in for the
// second factor only. The entry written says so (amr trusted_device), so a
// policy rule can refuse it. ok is false when the factor is still needed;
// a store failure of the check also asks for the factor (never less).
func (s *Service) trustedDeviceLogin(ctx context.Context, req LoginRequest, claims *token.Claims, tokens bridge.Tokens) (LoginResult, bool, error) {
	if s.cfg.Devices == nil || req.DeviceToken == "" {
		return LoginResult{}, false, nil
	}
	meta := devices.Meta{SessionID: claims.SessionID, IP: req.IP}
	dev, err := s.cfg.Devices.Check(ctx, claims.Subject, req.DeviceToken, req.UserAgent, meta)
	if err != nil {
		if !errors.Is(err, devices.ErrUntrusted) {
			s.log.WarnContext(ctx, "checking a trusted device; asking for the factor", "err", err)
		}
		return LoginResult{}, false, nil
	}
	now := s.cfg.Now()
	entry := token.StepUpEntry{SID: claims.SessionID, ACR: s.cfg.Level, AMR: []string{policies.AMRTrustedDevice},
		IAT: now.Unix(), EXP: now.Add(s.cfg.EntryTTL).Unix()}
	if err := s.cfg.Keycloak.WriteStepUp(ctx, claims.Subject, entry); err != nil {
		return LoginResult{}, false, fmt.Errorf("stepup: writing the step-up claim: %w", err)
	}
	fresh, err := s.cfg.Keycloak.Refresh(ctx, tokens.RefreshToken)
	if err != nil {
		return LoginResult{}, false, fmt.Errorf("stepup: refreshing tokens after a trusted-device login: %w", err)
	}
	s.audit(ctx, store.AuditEvent{Type: AuditLoginGranted, Actor: claims.Subject, UserID: claims.Subject, Factor: policies.AMRTrustedDevice,
		SessionID: claims.SessionID, IP: req.IP, Outcome: "success", Details: map[string]string{"acr": entry.ACR, "device_id": dev.ID}})
	g := Grant{ACR: entry.ACR, AMR: entry.AMR, ExpiresAt: time.Unix(entry.EXP, 0), Tokens: &fresh}
	return LoginResult{Tokens: &fresh, TrustedDevice: &dev, Grant: &g}, true, nil
}

// signedIn tells SignIns of a login not made on a trusted device.
func (s *Service) signedIn(ctx context.Context, userID, userAgentOrLabel, ip string) {
	if s.cfg.SignIns == nil {
		return
	}
	if err := s.cfg.SignIns.NewSignIn(context.WithoutCancel(ctx), userID, devices.Label(userAgentOrLabel), ip); err != nil {
		s.log.WarnContext(ctx, "recording a sign-in", "err", err)
	}
}

// trust issues a device credential after a verified factor, if asked.
func (s *Service) trust(ctx context.Context, ask bool, userID, userAgent, sid, ip string) (*devices.Issued, error) {
	if !ask {
		return nil, nil
	}
	iss, err := s.cfg.Devices.Trust(ctx, userID, userAgent, devices.Meta{SessionID: sid, IP: ip})
	if err != nil {
		return nil, fmt.Errorf("stepup: trusting the device: %w", err)
	}
	return &iss, nil
}

// required applies login.require to the freshly logged-in user.
func (s *Service) required(ctx context.Context, claims *token.Claims, enrolled bool) (bool, error) {
	r := s.cfg.Require
	switch r.Mode {
	case "everyone":
		return true, nil
	case "members":
		if enrolled {
			return true, nil
		}
		for _, role := range r.Roles {
			if claims.HasRealmRole(role) {
				return true, nil
			}
		}
		if len(r.Groups) == 0 {
			return false, nil
		}
		groups, err := s.cfg.Keycloak.UserGroups(ctx, claims.Subject)
		if err != nil {
			return false, fmt.Errorf("stepup: reading groups: %w", err)
		}
		// The bridge reports each group by full path and by name, so a
		// configured group matches either way.
		for _, g := range groups {
			if slices.Contains(r.Groups, g) {
				return true, nil
			}
		}
		return false, nil
	default: // "enrolled"
		return enrolled, nil
	}
}

// MFARequest answers a pending login.
type MFARequest struct {
	MFAToken string
	Factor   string
	Code     string
	IP       string
	// TrustDevice asks for a device credential (Grant.Device) once the
	// factor is verified; UserAgent names the device.
	TrustDevice bool
	UserAgent   string
}

// pendingLogin loads the pending login named by the raw mfa token.
func (s *Service) pendingLogin(ctx context.Context, raw string) (store.Challenge, error) {
	if !validRawID(raw) {
		return store.Challenge{}, ErrChallengeNotFound
	}
	c, err := s.cfg.Store.GetChallenge(ctx, hashID(raw))
	if errors.Is(err, store.ErrNotFound) {
		return c, ErrChallengeNotFound
	}
	if err != nil {
		return c, fmt.Errorf("stepup: loading pending login: %w", err)
	}
	if c.Kind != kindLogin {
		return c, ErrChallengeNotFound
	}
	return c, nil
}

// LoginChallenge delivers a code (flash call, SMS, e-mail) for a pending
// login.
func (s *Service) LoginChallenge(ctx context.Context, mfaToken, factor, ip string) (factors.Delivery, error) {
	c, err := s.pendingLogin(ctx, mfaToken)
	if err != nil {
		return factors.Delivery{}, err
	}
	if !c.ConsumedAt.IsZero() {
		return factors.Delivery{}, store.ErrConsumed
	}
	if !s.cfg.Now().Before(c.ExpiresAt) {
		return factors.Delivery{}, store.ErrExpired
	}
	if err := s.available(ctx, c.UserID, factor); err != nil {
		return factors.Delivery{}, err
	}
	return s.cfg.Factors.Challenge(ctx, factor, c.UserID, factors.ChallengeRequest{SessionID: c.SessionID},
		factors.Meta{SessionID: c.SessionID, IP: ip, Purpose: kindLogin})
}

// LoginMFA verifies the second factor of a pending login and releases
// tokens carrying the step-up claim.
func (s *Service) LoginMFA(ctx context.Context, req MFARequest) (Grant, error) {
	if req.TrustDevice && s.cfg.Devices == nil {
		return Grant{}, ErrDevicesDisabled
	}
	c, err := s.pendingLogin(ctx, req.MFAToken)
	if err != nil {
		return Grant{}, err
	}
	data, err := decodeData(c)
	if err != nil {
		return Grant{}, err
	}
	if data.Completed {
		return Grant{}, store.ErrConsumed
	}
	if data.Verified == nil {
		if err := s.available(ctx, c.UserID, req.Factor); err != nil {
			return Grant{}, err
		}
		c.Factor = req.Factor
		entry, err := s.verifyLoginFactor(ctx, c, data, req)
		if err != nil {
			return Grant{}, err
		}
		data.Verified = &entry
	}
	entry := *data.Verified
	tokens, err := s.openTokens(c.ID, c.UserID, data.Tokens)
	if err != nil {
		return Grant{}, err
	}
	if !data.Audited {
		if err := s.recordGrant(ctx, c, data, entry, AuditLoginGranted, req.IP); err != nil {
			return Grant{}, err
		}
	}
	if err := s.cfg.Keycloak.WriteStepUp(ctx, c.UserID, entry); err != nil {
		return Grant{}, fmt.Errorf("stepup: writing the step-up claim: %w", err)
	}
	// Refresh so the released access token carries the claim.
	fresh, err := s.cfg.Keycloak.Refresh(ctx, tokens.RefreshToken)
	if err != nil {
		return Grant{}, fmt.Errorf("stepup: refreshing tokens after MFA: %w", err)
	}
	var done bool
	err = s.persist(ctx, "completing the login", func(ctx context.Context) error {
		_, err := s.cfg.Store.UpdateChallenge(ctx, c.ID, func(cur store.Challenge) (store.Challenge, error) {
			d, err := decodeData(cur)
			if err != nil {
				return cur, err
			}
			if d.Completed {
				return cur, store.ErrConsumed
			}
			d.Completed = true
			d.Tokens = nil // released: nothing sealed stays behind
			cur.Data = d.encode()
			done = true
			return cur, nil
		})
		return err
	})
	if err != nil || !done {
		// Another request released the tokens first: this one releases none.
		s.logout(ctx, fresh.RefreshToken)
		if err == nil {
			err = store.ErrConsumed
		}
		return Grant{}, err
	}
	label := data.Device
	if label == "" {
		label = req.UserAgent
	}
	s.signedIn(ctx, c.UserID, label, req.IP)
	g := Grant{ACR: entry.ACR, AMR: entry.AMR, ExpiresAt: time.Unix(entry.EXP, 0), Tokens: &fresh}
	// The tokens are released: a failure to trust the device must not
	// lose them. The client may trust it later with a step-up.
	if dev, err := s.trust(ctx, req.TrustDevice, c.UserID, req.UserAgent, c.SessionID, req.IP); err != nil {
		s.log.ErrorContext(ctx, "trusting the device after MFA", "err", err)
	} else {
		g.Device = dev
	}
	return g, nil
}

func (s *Service) verifyLoginFactor(ctx context.Context, c store.Challenge, data challengeData, req MFARequest) (token.StepUpEntry, error) {
	now := s.cfg.Now()
	attempted, err := store.AttemptChallenge(ctx, s.cfg.Store, c.ID, now)
	if errors.Is(err, store.ErrTooManyAttempts) {
		s.abortLogin(ctx, c, data, req.IP, "too many attempts")
		return token.StepUpEntry{}, ErrLoginFailed
	}
	if err != nil {
		return token.StepUpEntry{}, err
	}
	meta := factors.Meta{SessionID: c.SessionID, IP: req.IP, Purpose: kindLogin}
	res, err := s.cfg.Factors.Verify(ctx, req.Factor, c.UserID, req.Code, meta)
	if err != nil {
		var locked *factors.LockedError
		if isWrongAnswer(err) || errors.As(err, &locked) || errors.Is(err, factors.ErrRateLimited) {
			if attempted.Attempts >= attempted.MaxAttempts {
				s.abortLogin(ctx, c, data, req.IP, "too many attempts")
				return token.StepUpEntry{}, ErrLoginFailed
			}
			if isWrongAnswer(err) {
				return token.StepUpEntry{}, &InvalidCodeError{Remaining: attempted.MaxAttempts - attempted.Attempts, Err: err}
			}
		}
		return token.StepUpEntry{}, err
	}
	at := res.At
	if at.IsZero() {
		at = now
	}
	entry := token.StepUpEntry{SID: c.SessionID, ACR: data.ACR, AMR: []string{res.Method},
		IAT: at.Unix(), EXP: at.Add(s.cfg.EntryTTL).Unix()}
	if entry.ACR == "" {
		entry.ACR = s.cfg.Level
	}
	return entry, s.consume(ctx, c.ID, now, entry, req.Factor)
}

// abortLogin ends a pending login: its Keycloak session is logged out and
// the sealed tokens are deleted, so nothing usable dangles.
func (s *Service) abortLogin(ctx context.Context, c store.Challenge, data challengeData, ip, reason string) {
	if tokens, err := s.openTokens(c.ID, c.UserID, data.Tokens); err == nil {
		s.logout(ctx, tokens.RefreshToken)
	} else {
		s.log.ErrorContext(ctx, "cannot open pending login to log it out", "err", err)
	}
	if err := s.cfg.Store.DeleteChallenge(ctx, c.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.ErrorContext(ctx, "deleting aborted login", "err", err)
	}
	s.audit(ctx, store.AuditEvent{Type: AuditLoginAborted, Actor: c.UserID, UserID: c.UserID, SessionID: c.SessionID,
		IP: ip, Outcome: "failure", Details: map[string]string{"reason": reason}})
}

// Sweep deletes expired challenges and logs out the Keycloak sessions of
// expired pending logins. Run it periodically (any replica may; deletion
// hands each expired row to exactly one of them).
func (s *Service) Sweep(ctx context.Context) (int, error) {
	expired, err := s.cfg.Store.DeleteExpiredChallenges(ctx, s.cfg.Now())
	if err != nil {
		return 0, fmt.Errorf("stepup: sweeping challenges: %w", err)
	}
	for _, c := range expired {
		if c.Kind != kindLogin {
			continue
		}
		data, err := decodeData(c)
		if err != nil || len(data.Tokens) == 0 {
			continue
		}
		if tokens, err := s.openTokens(c.ID, c.UserID, data.Tokens); err == nil {
			s.logout(ctx, tokens.RefreshToken)
			s.audit(ctx, store.AuditEvent{Type: AuditLoginAborted, Actor: c.UserID, UserID: c.UserID,
				SessionID: c.SessionID, Outcome: "expired", Details: map[string]string{"reason": "mfa not completed in time"}})
		}
	}
	return len(expired), nil
}

// Logout ends the Keycloak session of tokens the caller will not hand
// out (the hosted pages, which never give the browser Keycloak tokens).
// Failures are logged: the session then ends at its idle timeout.
func (s *Service) Logout(ctx context.Context, t bridge.Tokens) {
	s.logout(ctx, t.RefreshToken)
}

func (s *Service) logout(ctx context.Context, refreshToken string) {
	if refreshToken == "" {
		return
	}
	ctx = context.WithoutCancel(ctx)
	if err := s.cfg.Keycloak.Logout(ctx, refreshToken); err != nil {
		s.log.WarnContext(ctx, "logging out a Keycloak session", "err", err)
	}
}

// sealTokens encrypts the pending login's tokens, bound to the challenge
// and user: a row copied elsewhere does not decrypt.
func (s *Service) sealTokens(id, userID string, t bridge.Tokens) ([]byte, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("stepup: encoding tokens: %w", err)
	}
	return s.cfg.Keyring.Encrypt(b, keyring.Binding{UserID: userID, Factor: "login:" + id})
}

func (s *Service) openTokens(id, userID string, sealed []byte) (bridge.Tokens, error) {
	var t bridge.Tokens
	if len(sealed) == 0 {
		return t, errors.New("stepup: pending login holds no tokens")
	}
	b, err := s.cfg.Keyring.Decrypt(sealed, keyring.Binding{UserID: userID, Factor: "login:" + id})
	if err != nil {
		return t, fmt.Errorf("stepup: opening pending login: %w", err)
	}
	if err := json.Unmarshal(b, &t); err != nil {
		return t, fmt.Errorf("stepup: decoding pending login: %w", err)
	}
	return t, nil
}

func intersect(order, have []string) []string {
	var out []string
	for _, n := range order {
		if slices.Contains(have, n) {
			out = append(out, n)
		}
	}
	return out
}
