package token

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Claims are the verified claims of a Keycloak access token. The caller
// owns the value; it is not shared with the verifier.
type Claims struct {
	// Issuer is iss.
	Issuer string
	// Subject is sub, the Keycloak user id. Keycloak 25+ puts it in the
	// token only with the "basic" client scope.
	Subject string
	// SessionID is sid, falling back to session_state (Keycloak 24).
	SessionID string
	// ACR is Keycloak's own acr ("1" after a password grant).
	ACR string
	// AuthTime is auth_time; zero when absent.
	AuthTime time.Time
	// Scopes are the space-separated values of scope.
	Scopes []string
	// AZP is the client the token was issued to.
	AZP string
	// Audience is aud (a string or an array in the token).
	Audience []string
	// RealmRoles are realm_access.roles.
	RealmRoles []string
	// ClientRoles are resource_access.{client}.roles, by client id.
	ClientRoles map[string][]string
	// PreferredUsername is preferred_username.
	PreferredUsername string
	// Email is email.
	Email string
	// Type is typ ("Bearer" for access tokens).
	Type string
	// ID is jti.
	ID string
	// ExpiresAt is exp; IssuedAt is iat; NotBefore is nbf (zero when absent).
	ExpiresAt time.Time
	IssuedAt  time.Time
	NotBefore time.Time
	// StepUp are the valid step-up entries of the step-up claim, whatever
	// their session and expiry: policies decide which count. Malformed
	// entries are left out.
	StepUp []StepUpEntry
	// Raw is every claim as decoded by encoding/json with UseNumber
	// (numbers are json.Number).
	Raw map[string]any
}

// HasScope reports whether the token carries scope s.
func (c *Claims) HasScope(s string) bool {
	for _, x := range c.Scopes {
		if x == s {
			return true
		}
	}
	return false
}

// HasRealmRole reports whether the token carries realm role r.
func (c *Claims) HasRealmRole(r string) bool {
	for _, x := range c.RealmRoles {
		if x == r {
			return true
		}
	}
	return false
}

// ParseClaims decodes a JWT payload without verifying anything: for tests
// and for fuzzing the decoder. Never use it on a token that did not pass
// Verify. stepUpClaim defaults to "stepup".
func ParseClaims(payload []byte, stepUpClaim string) (*Claims, error) {
	if stepUpClaim == "" {
		stepUpClaim = "stepup"
	}
	return parseClaims(payload, splitClaimPath(stepUpClaim))
}

func parseClaims(payload []byte, stepUpPath []string) (*Claims, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil || raw == nil {
		return nil, fmt.Errorf("%w: claims are not a JSON object", ErrMalformed)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after claims", ErrMalformed)
	}
	c := &Claims{Raw: raw}
	var err error
	str := func(name string) string {
		if err != nil {
			return ""
		}
		v, ok := raw[name]
		if !ok || v == nil {
			return ""
		}
		s, isStr := v.(string)
		if !isStr {
			err = fmt.Errorf("%w: claim %s is not a string", ErrMalformed, name)
		}
		return s
	}
	date := func(name string) time.Time {
		if err != nil {
			return time.Time{}
		}
		v, ok := raw[name]
		if !ok || v == nil {
			return time.Time{}
		}
		n, isNum := v.(json.Number)
		if !isNum {
			err = fmt.Errorf("%w: claim %s is not a number", ErrMalformed, name)
			return time.Time{}
		}
		secs, ok := numericDate(json.RawMessage(n.String()))
		if !ok || secs < 0 {
			err = fmt.Errorf("%w: claim %s is not a valid date", ErrMalformed, name)
			return time.Time{}
		}
		return time.Unix(secs, 0)
	}
	c.Issuer = str("iss")
	c.Subject = str("sub")
	c.SessionID = str("sid")
	if c.SessionID == "" {
		c.SessionID = str("session_state")
	}
	c.ACR = str("acr")
	c.AZP = str("azp")
	c.PreferredUsername = str("preferred_username")
	c.Email = str("email")
	c.Type = str("typ")
	c.ID = str("jti")
	c.Scopes = strings.Fields(str("scope"))
	c.ExpiresAt = date("exp")
	c.IssuedAt = date("iat")
	c.NotBefore = date("nbf")
	c.AuthTime = date("auth_time")
	if err != nil {
		return nil, err
	}
	switch aud := raw["aud"].(type) {
	case nil:
	case string:
		c.Audience = []string{aud}
	case []any:
		for _, a := range aud {
			s, ok := a.(string)
			if !ok {
				return nil, fmt.Errorf("%w: aud holds a non-string", ErrMalformed)
			}
			c.Audience = append(c.Audience, s)
		}
	default:
		return nil, fmt.Errorf("%w: aud is neither a string nor an array", ErrMalformed)
	}
	if ra, ok := raw["realm_access"].(map[string]any); ok {
		c.RealmRoles = stringList(ra["roles"])
	}
	if res, ok := raw["resource_access"].(map[string]any); ok {
		c.ClientRoles = make(map[string][]string, len(res))
		for client, v := range res {
			if m, ok := v.(map[string]any); ok {
				c.ClientRoles[client] = stringList(m["roles"])
			}
		}
	}
	c.StepUp = ParseStepUpClaim(lookupPath(raw, stepUpPath))
	return c, nil
}

// stringList keeps the strings of a decoded JSON array.
func stringList(v any) []string {
	arr, ok := v.([]any)
	if !ok {
		return nil
	}
	out := make([]string, 0, len(arr))
	for _, x := range arr {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// lookupPath follows nested objects; nil when any step is missing.
func lookupPath(m map[string]any, path []string) any {
	var cur any = m
	for _, p := range path {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = obj[p]
	}
	return cur
}
