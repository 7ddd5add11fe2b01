package keycloaktest

import (
	"crypto"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Access and ID tokens are RS256 JWTs signed with the realm's active key;
// refresh tokens are HS512 JWTs signed with the realm's HMAC secret
// (services/src/main/java/org/keycloak/jose/jws/DefaultTokenManager.java:
// refresh tokens use the "HS512" signature of the generated hmac provider).

var errBadToken = errors.New("invalid token")

func encodeSegment(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func signRS256(k *signingKey, claims map[string]any) (string, error) {
	h, err := encodeSegment(map[string]string{"alg": "RS256", "typ": "JWT", "kid": k.kid})
	if err != nil {
		return "", err
	}
	p, err := encodeSegment(claims)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(h + "." + p))
	sig, err := rsa.SignPKCS1v15(nil, k.priv, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("signing token: %w", err)
	}
	return h + "." + p + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

func signHS512(kid string, key []byte, claims map[string]any) (string, error) {
	h, err := encodeSegment(map[string]string{"alg": "HS512", "typ": "JWT", "kid": kid})
	if err != nil {
		return "", err
	}
	p, err := encodeSegment(claims)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha512.New, key)
	m.Write([]byte(h + "." + p))
	return h + "." + p + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil)), nil
}

type jwtHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

// parseJWT verifies the signature against the realm's keys and returns the claims.
func (r *realm) parseJWT(raw string) (map[string]any, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, errBadToken
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return nil, errBadToken
	}
	var hdr jwtHeader
	if json.Unmarshal(hb, &hdr) != nil {
		return nil, errBadToken
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, errBadToken
	}
	signed := []byte(parts[0] + "." + parts[1])
	switch hdr.Alg {
	case "RS256":
		var key *signingKey
		for _, k := range r.keys {
			if k.kid == hdr.Kid {
				key = k
			}
		}
		if key == nil {
			return nil, errBadToken
		}
		sum := sha256.Sum256(signed)
		if rsa.VerifyPKCS1v15(&key.priv.PublicKey, crypto.SHA256, sum[:], sig) != nil {
			return nil, errBadToken
		}
	case "HS512":
		m := hmac.New(sha512.New, r.hmacKey)
		m.Write(signed)
		if !hmac.Equal(m.Sum(nil), sig) {
			return nil, errBadToken
		}
	default:
		return nil, errBadToken
	}
	pb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, errBadToken
	}
	var claims map[string]any
	dec := json.NewDecoder(strings.NewReader(string(pb)))
	dec.UseNumber()
	if dec.Decode(&claims) != nil {
		return nil, errBadToken
	}
	return claims, nil
}

func claimString(c map[string]any, k string) string {
	s, _ := c[k].(string)
	return s
}

func claimInt(c map[string]any, k string) int64 {
	switch v := c[k].(type) {
	case json.Number:
		n, _ := v.Int64()
		return n
	case float64:
		return int64(v)
	case int64:
		return v
	}
	return 0
}
