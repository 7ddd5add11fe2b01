package server

import (
	"context"
	"net/http"
	"strings"

	"github.com/stepup-bridge/stepup-bridge/internal/token"
)

// Verifier verifies Keycloak access tokens (the bridge's verifier).
type Verifier interface {
	Verify(ctx context.Context, raw string) (*token.Claims, error)
}

const ctxClaims ctxKey = 100

// claimsFrom returns the verified claims requireUser put in the context.
func claimsFrom(ctx context.Context) *token.Claims {
	c, _ := ctx.Value(ctxClaims).(*token.Claims)
	return c
}

// bearer extracts the Bearer token (RFC 6750 2.1); "" if absent or malformed.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	tok = strings.TrimSpace(tok)
	if tok == "" || strings.ContainsAny(tok, " \t") {
		return ""
	}
	return tok
}

// errNoToken is a request without credentials: RFC 6750 3.1 says no error
// code then, only the scheme and realm.
var errNoToken = &apiError{Status: http.StatusUnauthorized, Code: "invalid_request",
	Description: "a Bearer access token is required"}

// requireToken verifies the Bearer token, lets allow decide on its claims
// (returning the refusal, or nil), and calls next with the claims in the
// context. The token is checked before anything about the endpoint is
// revealed.
func (s *Server) requireToken(allow func(*token.Claims) error, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.verifier == nil {
			s.writeError(w, r, errUnavailable("token verification"))
			return
		}
		raw := bearer(r)
		if raw == "" {
			s.writeError(w, r, errNoToken)
			return
		}
		claims, err := s.verifier.Verify(r.Context(), raw)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := allow(claims); err != nil {
			s.writeError(w, r, err)
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), ctxClaims, claims)))
	}
}

// errNotUser: a valid token without a user session (a service account).
var errNotUser = &apiError{Status: http.StatusForbidden, Code: "access_denied",
	Description: "this endpoint is for users; the token has no user session"}

// requireUser verifies the Bearer token and requires a user session (not a
// service account) before calling next.
func (s *Server) requireUser(next http.HandlerFunc) http.HandlerFunc {
	return s.requireToken(func(claims *token.Claims) error {
		if claims.Subject == "" || claims.SessionID == "" {
			return errNotUser
		}
		return nil
	}, next)
}
