package policies

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// Error codes of RFC 6750 and RFC 9470 used in WWW-Authenticate and JSON
// bodies.
const (
	ErrorInvalidToken                   = "invalid_token"
	ErrorInsufficientScope              = "insufficient_scope"
	ErrorInsufficientUserAuthentication = "insufficient_user_authentication"
	ErrorAccessDenied                   = "access_denied"
	ErrorTemporarilyUnavailable         = "temporarily_unavailable"
)

// Challenge is one Bearer challenge (RFC 6750 section 3, RFC 9470
// section 3). Zero fields are left out.
type Challenge struct {
	Realm            string
	Error            string
	ErrorDescription string
	// ACRValues are the acceptable acr values, space-separated in the
	// header.
	ACRValues []string
	// MaxAge in seconds; 0 leaves the parameter out.
	MaxAge int64
	// Scope lists scopes, one of which would be sufficient.
	Scope []string
}

// String renders the WWW-Authenticate value, quoting every string
// parameter. Characters RFC 6750 does not allow in a parameter value
// (quotes, backslashes, controls, non-ASCII) are replaced by '?', so the
// value is always one well-formed header line.
func (c Challenge) String() string {
	var b strings.Builder
	b.WriteString("Bearer")
	sep := " "
	param := func(name, value string) {
		b.WriteString(sep)
		b.WriteString(name)
		b.WriteString(`="`)
		b.WriteString(sanitizeParam(value))
		b.WriteByte('"')
		sep = ", "
	}
	if c.Realm != "" {
		param("realm", c.Realm)
	}
	if c.Error != "" {
		param("error", c.Error)
	}
	if c.ErrorDescription != "" {
		param("error_description", c.ErrorDescription)
	}
	if len(c.Scope) > 0 {
		param("scope", strings.Join(c.Scope, " "))
	}
	if len(c.ACRValues) > 0 {
		param("acr_values", strings.Join(c.ACRValues, " "))
	}
	if c.MaxAge > 0 {
		b.WriteString(sep)
		b.WriteString("max_age=")
		b.WriteString(strconv.FormatInt(c.MaxAge, 10))
	}
	return b.String()
}

// sanitizeParam keeps RFC 6750's NQSCHAR (%x20-21 / %x23-5B / %x5D-7E).
func sanitizeParam(s string) string {
	ok := true
	for i := 0; i < len(s); i++ {
		if !nqschar(s[i]) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	out := []byte(s)
	for i := range out {
		if !nqschar(out[i]) {
			out[i] = '?'
		}
	}
	return string(out)
}

func nqschar(c byte) bool {
	return c >= 0x20 && c <= 0x7e && c != '"' && c != '\\'
}

// errorBody is the JSON body of every refusal.
type errorBody struct {
	Error            string   `json:"error"`
	ErrorDescription string   `json:"error_description,omitempty"`
	ACRValues        string   `json:"acr_values,omitempty"`
	MaxAge           int64    `json:"max_age,omitempty"`
	Factors          []string `json:"factors,omitempty"`
	Scope            string   `json:"scope,omitempty"`
}

// writeRefusal writes status, the challenge (if any) and the JSON body.
func writeRefusal(w http.ResponseWriter, status int, ch *Challenge, body errorBody) {
	h := w.Header()
	if ch != nil {
		h.Set("WWW-Authenticate", ch.String())
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
