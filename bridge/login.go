package bridge

import (
	"context"
	"errors"
	"net/http"
	"strings"
)

// Primary login through Keycloak's token endpoint.
//
// Error mapping for the HTTP layer (compare errors with errors.Is):
//
//	ErrInvalidCredentials, ErrAccountDisabled -> 401, one and the same body
//	    ("invalid username or password"). Keycloak checks "disabled" before
//	    the password, so telling them apart would let anyone test which
//	    usernames exist and are disabled. Log the difference, never show it.
//	ErrAccountNotSetUp -> 400/403 with a message sending the user to
//	    Keycloak to finish their required actions. Keycloak reports it only
//	    after the password matched, so it reveals nothing to someone who
//	    does not already hold the password.
//	ErrInvalidGrant (refresh) -> 401, the client logs in again.
//	ErrUnavailable -> 503 with Retry-After; never treat as success.
//	ErrClientConfig, ErrBadRequest -> 500 (operator problem), details logged.

// PasswordLogin runs the password grant for username with the configured
// client (confidential with ClientSecret, public without) and scope
// openid. Keycloak's brute-force protection sees the attempt.
func (b *Bridge) PasswordLogin(ctx context.Context, username, password string) (t Tokens, err error) {
	defer b.track("password_grant")(&err)
	if username == "" || password == "" {
		return Tokens{}, &Error{Op: "password grant", Message: "empty username or password", Kind: ErrInvalidCredentials}
	}
	r, err := b.kc.tokenGrant(ctx, "password grant", b.cfg.ClientID, b.cfg.ClientSecret, map[string]string{
		"grant_type": "password", "username": username, "password": password, "scope": "openid",
	})
	if err != nil {
		return Tokens{}, grantError(err, ErrInvalidCredentials)
	}
	return tokensFrom(r), nil
}

// Refresh exchanges a refresh token for new tokens (Keycloak returns a new
// refresh token every time; with revokeRefreshToken on, the old one stops
// working). ErrInvalidGrant means the session is over.
func (b *Bridge) Refresh(ctx context.Context, refreshToken string) (t Tokens, err error) {
	defer b.track("refresh")(&err)
	if refreshToken == "" {
		return Tokens{}, &Error{Op: "refresh", Message: "empty refresh token", Kind: ErrInvalidGrant}
	}
	r, err := b.kc.tokenGrant(ctx, "refresh", b.cfg.ClientID, b.cfg.ClientSecret, map[string]string{
		"grant_type": "refresh_token", "refresh_token": refreshToken,
	})
	if err != nil {
		return Tokens{}, grantError(err, ErrInvalidGrant)
	}
	return tokensFrom(r), nil
}

// Logout ends the Keycloak session the refresh token belongs to (all its
// tokens stop refreshing). A session already over is not an error:
// logout is idempotent.
func (b *Bridge) Logout(ctx context.Context, refreshToken string) (err error) {
	defer b.track("logout")(&err)
	err = b.kc.logout(ctx, b.cfg.ClientID, b.cfg.ClientSecret, refreshToken)
	if err != nil {
		err = grantError(err, ErrInvalidGrant)
		if errors.Is(err, ErrInvalidGrant) {
			return nil
		}
	}
	return err
}

// Revoke revokes a refresh or access token (RFC 7009); Keycloak answers
// success for tokens it does not know. Revoking an offline or refresh
// token ends that client session.
func (b *Bridge) Revoke(ctx context.Context, tok string) (err error) {
	defer b.track("revoke")(&err)
	err = b.kc.revoke(ctx, b.cfg.ClientID, b.cfg.ClientSecret, tok, "")
	if err != nil {
		return grantError(err, ErrInvalidGrant)
	}
	return nil
}

// grantError maps a token-endpoint failure by Keycloak's OAuth error code,
// not its status (Keycloak has answered invalid_grant with 400 and 401
// across versions). invalidGrant is what a plain invalid_grant means for
// this grant.
func grantError(err error, invalidGrant error) error {
	var e *Error
	if !errors.As(err, &e) || e.Status == 0 || e.Status >= 500 || e.Status == http.StatusTooManyRequests {
		return err
	}
	m := *e
	desc := strings.ToLower(e.Message)
	switch e.Code {
	case "invalid_grant":
		switch {
		case strings.Contains(desc, "account disabled"), strings.Contains(desc, "account is disabled"):
			m.Kind = ErrAccountDisabled
		case strings.Contains(desc, "not fully set up"):
			m.Kind = ErrAccountNotSetUp
		default:
			m.Kind = invalidGrant
		}
	case "invalid_client", "unauthorized_client", "unsupported_grant_type":
		m.Kind = ErrClientConfig
	case "":
		if e.Status == http.StatusUnauthorized {
			m.Kind = ErrClientConfig
		}
	default:
		m.Kind = ErrBadRequest
	}
	return &m
}
