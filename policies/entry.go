package policies

import "github.com/stepup-bridge/stepup-bridge/internal/token"

// StepUpEntry is one step-up proof carried in an access token: it counts
// only for the session SID names, until EXP, and max_age is measured from
// IAT (Unix seconds). It is the verifier's type, re-exported so a resource
// server needs no import of internal packages.
type StepUpEntry = token.StepUpEntry

// Claims are the verified claims of an access token, re-exported from the
// verifier so a resource server can read them from Info.Claims.
type Claims = token.Claims

// FactsFromClaims extracts what a decision needs from verified claims.
// Keycloak's amr claim (present only when an AMR mapper adds it) is read
// from the raw claims; a value that is not a string or a list of strings
// is ignored. The returned Facts share slices with c.
func FactsFromClaims(c *token.Claims) Facts {
	f := Facts{
		Subject:   c.Subject,
		SessionID: c.SessionID,
		ACR:       c.ACR,
		AuthTime:  c.AuthTime,
		Scopes:    c.Scopes,
		StepUp:    c.StepUp,
	}
	switch v := c.Raw["amr"].(type) {
	case string:
		if v != "" {
			f.AMR = []string{v}
		}
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok && s != "" {
				f.AMR = append(f.AMR, s)
			}
		}
	}
	return f
}

// ErrKeySetUnavailable is the verifier's sentinel for "the signing keys
// could not be fetched", re-exported: a custom TokenVerifier wraps it so
// the answer is 503 (never allow) instead of 401.
var ErrKeySetUnavailable = token.ErrKeySetUnavailable
