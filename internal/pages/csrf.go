package pages

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// ErrCSRF: a POST without a valid CSRF token, or from another origin.
var ErrCSRF = errors.New("pages: cross-site request refused")

// csrfField is the form field carrying the token.
const csrfField = "csrf_token"

// csrf implements the signed double-submit pattern: the browser holds a
// random value in an HttpOnly SameSite=Strict cookie; forms carry
// HMAC(key, value). Another site can neither read the cookie nor compute the
// HMAC, and a cookie planted by a sibling subdomain has no matching HMAC
// without the key. The key is shared by every replica (derived from the
// pepper), so any replica accepts any form.
type csrf struct {
	key     []byte
	cookies cookieJar
	rand    io.Reader
}

// token returns the form token for r, issuing the cookie on w if r has
// none (or a malformed one).
func (c *csrf) token(w http.ResponseWriter, r *http.Request) (string, error) {
	v := c.cookies.get(r, cookieCSRF)
	if !validCookieValue(v) {
		var b [32]byte
		if _, err := io.ReadFull(c.rand, b[:]); err != nil {
			return "", fmt.Errorf("pages: csrf randomness: %w", err)
		}
		v = base64.RawURLEncoding.EncodeToString(b[:])
		c.cookies.set(w, r, cookieCSRF, v, 0)
	}
	return c.mac(v), nil
}

func (c *csrf) mac(v string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte("stepup-bridge pages csrf v1\x00"))
	m.Write([]byte(v))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// check verifies the form token of a parsed POST against its cookie.
func (c *csrf) check(r *http.Request) error {
	v := c.cookies.get(r, cookieCSRF)
	got := r.PostForm.Get(csrfField)
	if !validCookieValue(v) || got == "" {
		return fmt.Errorf("%w: missing CSRF token or cookie", ErrCSRF)
	}
	if !hmac.Equal([]byte(got), []byte(c.mac(v))) {
		return fmt.Errorf("%w: CSRF token does not match", ErrCSRF)
	}
	return nil
}

func validCookieValue(v string) bool {
	if len(v) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(v)
	return err == nil
}

// checkOrigin refuses a request whose Origin is present and not among
// allowed (exact scheme://host[:port] match), or, without Origin, whose
// Sec-Fetch-Site says it came from another site. "Origin: null" (sent for
// POSTs under a no-referrer policy, or from sandboxed or opaque origins)
// passes only with Sec-Fetch-Site: same-origin. A request with neither
// header (an old client, curl) passes this check and still needs the CSRF
// token.
func checkOrigin(r *http.Request, allowed ...string) error {
	if o := r.Header.Get("Origin"); o == "null" {
		if r.Header.Get("Sec-Fetch-Site") != "same-origin" {
			return fmt.Errorf("%w: opaque origin", ErrCSRF)
		}
		return nil
	} else if o != "" {
		for _, a := range allowed {
			if a != "" && strings.EqualFold(o, a) {
				return nil
			}
		}
		return fmt.Errorf("%w: origin %q", ErrCSRF, o)
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin":
		return nil
	default:
		return fmt.Errorf("%w: Sec-Fetch-Site %q", ErrCSRF, r.Header.Get("Sec-Fetch-Site"))
	}
}
