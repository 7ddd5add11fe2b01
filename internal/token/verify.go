package token

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Errors Verify wraps; test with errors.Is. Every one but
// ErrKeySetUnavailable means "this token is not acceptable" (HTTP 401);
// ErrKeySetUnavailable means the keys could not be fetched (HTTP 503,
// never allow).
var (
	// ErrMalformed: not a compact JWS, or the header or claims do not decode.
	ErrMalformed = errors.New("token: malformed token")
	// ErrInvalidAlgorithm: the header's alg is not allowed, or does not fit the key.
	ErrInvalidAlgorithm = errors.New("token: signing algorithm not allowed")
	// ErrUnknownKey: the token names no kid, or a kid the key set lacks.
	ErrUnknownKey = errors.New("token: unknown signing key")
	// ErrKeySetUnavailable: the key set could not be fetched.
	ErrKeySetUnavailable = errors.New("token: key set unavailable")
	// ErrInvalidSignature: the signature does not verify.
	ErrInvalidSignature = errors.New("token: invalid signature")
	// ErrInvalidIssuer: iss is not the configured issuer.
	ErrInvalidIssuer = errors.New("token: invalid issuer")
	// ErrInvalidAudience: neither aud nor azp holds an accepted audience.
	ErrInvalidAudience = errors.New("token: invalid audience")
	// ErrExpired: exp is past (beyond the clock skew) or missing.
	ErrExpired = errors.New("token: expired")
	// ErrNotYetValid: nbf or iat is in the future beyond the clock skew.
	ErrNotYetValid = errors.New("token: not yet valid")
	// ErrInvalidType: the typ claim is not the required type (an ID or
	// refresh token presented as an access token).
	ErrInvalidType = errors.New("token: invalid token type")
	// ErrConfig: NewVerifier was given an unsafe or incomplete Config.
	ErrConfig = errors.New("token: invalid verifier config")
)

// maxTokenBytes bounds the raw token Verify looks at.
const maxTokenBytes = 256 << 10

// Config tunes a Verifier. Zero values mean the documented defaults.
type Config struct {
	// Issuer is the expected iss: Keycloak's {base}/realms/{realm}. Required.
	Issuer string
	// Audiences accepted: the token's aud or azp must contain one. Empty
	// skips the check, accepting tokens issued to any client of the realm;
	// that is insecure in production, where a token obtained by one
	// client must not be replayed against another service.
	Audiences []string
	// ClockSkew tolerated on exp, nbf and iat. Defaults to 30 seconds.
	ClockSkew time.Duration
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// AllowedAlgs are the JWS algorithms accepted. Defaults to RS256
	// (Keycloak's default). "none" and the HMAC algorithms are refused by
	// NewVerifier: verification uses public keys only.
	AllowedAlgs []string
	// RequiredType is the required typ claim. Defaults to "Bearer", which
	// Keycloak puts in access tokens (ID tokens say "ID", refresh tokens
	// "Refresh").
	RequiredType string
	// StepUpClaim is the claim holding step-up entries, as the mapper's
	// claim.name: dots nest, `\.` is a literal dot. Defaults to "stepup".
	StepUpClaim string
}

// Verifier checks Keycloak access tokens. Safe for concurrent use.
type Verifier struct {
	keys      KeySet
	issuer    string
	audiences []string
	skew      time.Duration
	now       func() time.Time
	algs      []jose.SignatureAlgorithm
	typ       string
	stepUp    []string
}

// NewVerifier returns a verifier of tokens signed by keys. It fails with
// ErrConfig if Issuer is empty, keys is nil, or AllowedAlgs names none, an
// HMAC algorithm, or an algorithm it does not know.
func NewVerifier(keys KeySet, cfg Config) (*Verifier, error) {
	if keys == nil {
		return nil, fmt.Errorf("%w: no key set", ErrConfig)
	}
	if cfg.Issuer == "" {
		return nil, fmt.Errorf("%w: issuer is required", ErrConfig)
	}
	if cfg.ClockSkew <= 0 {
		cfg.ClockSkew = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if len(cfg.AllowedAlgs) == 0 {
		cfg.AllowedAlgs = []string{string(jose.RS256)}
	}
	if cfg.RequiredType == "" {
		cfg.RequiredType = "Bearer"
	}
	if cfg.StepUpClaim == "" {
		cfg.StepUpClaim = "stepup"
	}
	algs := make([]jose.SignatureAlgorithm, 0, len(cfg.AllowedAlgs))
	for _, a := range cfg.AllowedAlgs {
		alg := jose.SignatureAlgorithm(a)
		if keyTypeFits(alg, nil) == errUnknownAlg {
			return nil, fmt.Errorf("%w: algorithm %q not allowed (asymmetric JWS algorithms only)", ErrConfig, a)
		}
		algs = append(algs, alg)
	}
	return &Verifier{
		keys:      keys,
		issuer:    cfg.Issuer,
		audiences: slices.Clone(cfg.Audiences),
		skew:      cfg.ClockSkew,
		now:       cfg.Now,
		algs:      algs,
		typ:       cfg.RequiredType,
		stepUp:    splitClaimPath(cfg.StepUpClaim),
	}, nil
}

type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

// Verify checks raw (a compact JWS) and returns its claims: the signature
// with the key its kid names, the algorithm, then iss, exp, nbf, iat,
// aud/azp and typ. On error the claims are nil and the error wraps one of
// the package's sentinel errors.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	if len(raw) > maxTokenBytes {
		return nil, fmt.Errorf("%w: over %d bytes", ErrMalformed, maxTokenBytes)
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return nil, fmt.Errorf("%w: not a compact JWS", ErrMalformed)
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	var h header
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	alg := jose.SignatureAlgorithm(h.Alg)
	if !slices.Contains(v.algs, alg) {
		return nil, fmt.Errorf("%w: %q", ErrInvalidAlgorithm, h.Alg)
	}
	if h.Kid == "" {
		return nil, fmt.Errorf("%w: token has no kid", ErrUnknownKey)
	}
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{alg})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("%w: want one signature", ErrMalformed)
	}
	key, err := v.keys.Key(ctx, h.Kid)
	if err != nil {
		return nil, err
	}
	if key.Algorithm != "" && key.Algorithm != h.Alg {
		return nil, fmt.Errorf("%w: key %q is for %s, token says %s", ErrInvalidAlgorithm, h.Kid, key.Algorithm, h.Alg)
	}
	if err := keyTypeFits(alg, key.Key); err != nil {
		return nil, fmt.Errorf("%w: key %q: %v", ErrInvalidAlgorithm, h.Kid, err)
	}
	payload, err := jws.Verify(key.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidSignature, err)
	}
	c, err := parseClaims(payload, v.stepUp)
	if err != nil {
		return nil, err
	}
	if err := v.check(c); err != nil {
		return nil, err
	}
	return c, nil
}

func (v *Verifier) check(c *Claims) error {
	if c.Issuer != v.issuer {
		return fmt.Errorf("%w: %q, want %q", ErrInvalidIssuer, c.Issuer, v.issuer)
	}
	now := v.now()
	if c.ExpiresAt.IsZero() {
		return fmt.Errorf("%w: no exp", ErrExpired)
	}
	if now.After(c.ExpiresAt.Add(v.skew)) {
		return fmt.Errorf("%w: at %s", ErrExpired, c.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if !c.NotBefore.IsZero() && now.Add(v.skew).Before(c.NotBefore) {
		return fmt.Errorf("%w: nbf %s", ErrNotYetValid, c.NotBefore.UTC().Format(time.RFC3339))
	}
	if !c.IssuedAt.IsZero() && now.Add(v.skew).Before(c.IssuedAt) {
		return fmt.Errorf("%w: iat %s in the future", ErrNotYetValid, c.IssuedAt.UTC().Format(time.RFC3339))
	}
	if len(v.audiences) > 0 {
		ok := slices.ContainsFunc(v.audiences, func(a string) bool {
			return a == c.AZP || slices.Contains(c.Audience, a)
		})
		if !ok {
			return fmt.Errorf("%w: aud %q azp %q", ErrInvalidAudience, c.Audience, c.AZP)
		}
	}
	if c.Type != v.typ {
		return fmt.Errorf("%w: %q, want %q", ErrInvalidType, c.Type, v.typ)
	}
	return nil
}

var errUnknownAlg = errors.New("unknown or symmetric algorithm")

// keyTypeFits checks that key is a public key of the family alg needs
// (RSA of at least 2048 bits for RS*/PS*, the curve of ES*, Ed25519 for
// EdDSA). With a nil key it only checks that alg is a known asymmetric
// algorithm, returning errUnknownAlg otherwise.
func keyTypeFits(alg jose.SignatureAlgorithm, key any) error {
	switch alg {
	case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		if key == nil {
			return nil
		}
		k, ok := key.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("%s needs an RSA public key, have %T", alg, key)
		}
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key of %d bits, at least 2048 required", k.N.BitLen())
		}
		return nil
	case jose.ES256, jose.ES384, jose.ES512:
		if key == nil {
			return nil
		}
		k, ok := key.(*ecdsa.PublicKey)
		if !ok {
			return fmt.Errorf("%s needs an ECDSA public key, have %T", alg, key)
		}
		want := map[jose.SignatureAlgorithm]elliptic.Curve{jose.ES256: elliptic.P256(), jose.ES384: elliptic.P384(), jose.ES512: elliptic.P521()}[alg]
		if k.Curve != want {
			return fmt.Errorf("%s needs curve %s", alg, want.Params().Name)
		}
		return nil
	case jose.EdDSA:
		if key == nil {
			return nil
		}
		if _, ok := key.(ed25519.PublicKey); !ok {
			return fmt.Errorf("EdDSA needs an Ed25519 public key, have %T", key)
		}
		return nil
	default:
		return errUnknownAlg
	}
}

// splitClaimPath splits a Keycloak claim.name on unescaped dots.
func splitClaimPath(name string) []string {
	var parts []string
	var cur bytes.Buffer
	for i := 0; i < len(name); i++ {
		switch {
		case name[i] == '\\' && i+1 < len(name) && name[i+1] == '.':
			cur.WriteByte('.')
			i++
		case name[i] == '.':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(name[i])
		}
	}
	return append(parts, cur.String())
}
