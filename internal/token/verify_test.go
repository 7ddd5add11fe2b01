package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const testIssuer = "https://sso.example.com/realms/demo"

var testNow = time.Unix(1700000000, 0)

type signingKey struct {
	priv *rsa.PrivateKey
	kid  string
}

func newRSAKey(t testing.TB, kid string) signingKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{priv: k, kid: kid}
}

func (k signingKey) public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: &k.priv.PublicKey, KeyID: k.kid, Algorithm: "RS256", Use: "sig"}
}

// sign makes a compact JWS of claims with alg and the key, with kid in the
// header unless kid is empty.
func sign(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	opts := &jose.SignerOptions{}
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts.WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// unsigned builds a token with an arbitrary header and an empty signature.
func unsigned(header, claims map[string]any) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "."
}

// validClaims is what Keycloak puts in an access token, issued at testNow.
func validClaims() map[string]any {
	return map[string]any{
		"iss":                testIssuer,
		"sub":                "user-1",
		"sid":                "sess-1",
		"typ":                "Bearer",
		"azp":                "web",
		"aud":                []any{"orders-api", "account"},
		"exp":                testNow.Add(5 * time.Minute).Unix(),
		"iat":                testNow.Unix(),
		"auth_time":          testNow.Add(-time.Minute).Unix(),
		"jti":                "jti-1",
		"acr":                "1",
		"scope":              "openid profile stepup",
		"preferred_username": "alice",
		"email":              "alice@example.com",
		"realm_access":       map[string]any{"roles": []any{"user", "stepup-admin"}},
		"resource_access":    map[string]any{"account": map[string]any{"roles": []any{"view-profile"}}},
		"stepup": []any{
			map[string]any{"sid": "sess-1", "acr": "2", "amr": []any{"pin"}, "iat": testNow.Unix() - 10, "exp": testNow.Unix() + 3600},
			map[string]any{"sid": "sess-1", "acr": "2"}, // malformed: ignored
		},
	}
}

func with(claims map[string]any, k string, v any) map[string]any {
	if v == nil {
		delete(claims, k)
	} else {
		claims[k] = v
	}
	return claims
}

func TestVerify(t *testing.T) {
	t.Parallel()
	good := newRSAKey(t, "k1")
	other := newRSAKey(t, "k1") // same kid, different key: a forger's
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&good.priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	keys := NewStaticKeySet(good.public(), jose.JSONWebKey{Key: &ecKey.PublicKey, KeyID: "ec1", Use: "sig"},
		jose.JSONWebKey{Key: &newRSAKey(t, "enc1").priv.PublicKey, KeyID: "enc1", Use: "enc"})

	tests := []struct {
		name    string
		cfg     func(*Config)
		token   func() string
		wantErr error
	}{
		{name: "valid", token: func() string { return sign(t, jose.RS256, good.priv, "k1", validClaims()) }},
		{name: "valid within skew after exp", token: func() string {
			return sign(t, jose.RS256, good.priv, "k1", with(validClaims(), "exp", testNow.Add(-20*time.Second).Unix()))
		}},
		{name: "wrong key same kid", token: func() string { return sign(t, jose.RS256, other.priv, "k1", validClaims()) }, wantErr: ErrInvalidSignature},
		{name: "alg none", token: func() string {
			return unsigned(map[string]any{"alg": "none", "kid": "k1"}, validClaims())
		}, wantErr: ErrInvalidAlgorithm},
		{name: "HS256 keyed with the RSA public key", token: func() string {
			return sign(t, jose.HS256, pubPEM, "k1", validClaims())
		}, wantErr: ErrInvalidAlgorithm},
		{name: "HS256 keyed with the RSA public key, RS256 header", token: func() string {
			// A forger signs with HMAC but claims RS256: the RSA check fails.
			hs := sign(t, jose.HS256, pubPEM, "k1", validClaims())
			parts := strings.Split(hs, ".")
			h, _ := json.Marshal(map[string]any{"alg": "RS256", "kid": "k1"})
			return base64.RawURLEncoding.EncodeToString(h) + "." + parts[1] + "." + parts[2]
		}, wantErr: ErrInvalidSignature},
		{name: "ES256 not allowed by default", token: func() string { return sign(t, jose.ES256, ecKey, "ec1", validClaims()) }, wantErr: ErrInvalidAlgorithm},
		{name: "ES256 allowed", cfg: func(c *Config) { c.AllowedAlgs = []string{"RS256", "ES256"} },
			token: func() string { return sign(t, jose.ES256, ecKey, "ec1", validClaims()) }},
		{name: "RS256 header with EC key", cfg: func(c *Config) { c.AllowedAlgs = []string{"RS256", "ES256"} },
			token: func() string {
				es := sign(t, jose.ES256, ecKey, "ec1", validClaims())
				parts := strings.Split(es, ".")
				h, _ := json.Marshal(map[string]any{"alg": "RS256", "kid": "ec1"})
				return base64.RawURLEncoding.EncodeToString(h) + "." + parts[1] + "." + parts[2]
			}, wantErr: ErrInvalidAlgorithm},
		{name: "enc key is not a signing key", token: func() string { return sign(t, jose.RS256, good.priv, "enc1", validClaims()) }, wantErr: ErrUnknownKey},
		{name: "wrong issuer", token: func() string {
			return sign(t, jose.RS256, good.priv, "k1", with(validClaims(), "iss", "https://evil.example.com/realms/demo"))
		}, wantErr: ErrInvalidIssuer},
		{name: "expired", token: func() string {
			return sign(t, jose.RS256, good.priv, "k1", with(validClaims(), "exp", testNow.Add(-time.Minute).Unix()))
		}, wantErr: ErrExpired},
		{name: "no exp", token: func() string { return sign(t, jose.RS256, good.priv, "k1", with(validClaims(), "exp", nil)) }, wantErr: ErrExpired},
		{name: "exp not a number", token: func() string { return sign(t, jose.RS256, good.priv, "k1", with(validClaims(), "exp", "soon")) }, wantErr: ErrMalformed},
		{name: "not yet valid", token: func() string {
			return sign(t, jose.RS256, good.priv, "k1", with(validClaims(), "nbf", testNow.Add(time.Minute).Unix()))
		}, wantErr: ErrNotYetValid},
		{name: "issued in the future", token: func() string {
			return sign(t, jose.RS256, good.priv, "k1", with(validClaims(), "iat", testNow.Add(time.Minute).Unix()))
		}, wantErr: ErrNotYetValid},
		{name: "issued in the future within skew", token: func() string {
			return sign(t, jose.RS256, good.priv, "k1", with(validClaims(), "iat", testNow.Add(20*time.Second).Unix()))
		}},
		{name: "id token", token: func() string { return sign(t, jose.RS256, good.priv, "k1", with(validClaims(), "typ", "ID")) }, wantErr: ErrInvalidType},
		{name: "no typ", token: func() string { return sign(t, jose.RS256, good.priv, "k1", with(validClaims(), "typ", nil)) }, wantErr: ErrInvalidType},
		{name: "wrong audience", cfg: func(c *Config) { c.Audiences = []string{"billing-api"} },
			token: func() string { return sign(t, jose.RS256, good.priv, "k1", validClaims()) }, wantErr: ErrInvalidAudience},
		{name: "audience from aud", cfg: func(c *Config) { c.Audiences = []string{"billing-api", "orders-api"} },
			token: func() string { return sign(t, jose.RS256, good.priv, "k1", validClaims()) }},
		{name: "audience from azp", cfg: func(c *Config) { c.Audiences = []string{"web"} },
			token: func() string { return sign(t, jose.RS256, good.priv, "k1", with(validClaims(), "aud", nil)) }},
		{name: "aud as a string", cfg: func(c *Config) { c.Audiences = []string{"orders-api"} },
			token: func() string { return sign(t, jose.RS256, good.priv, "k1", with(validClaims(), "aud", "orders-api")) }},
		{name: "unknown kid", token: func() string { return sign(t, jose.RS256, good.priv, "k9", validClaims()) }, wantErr: ErrUnknownKey},
		{name: "missing kid", token: func() string { return sign(t, jose.RS256, good.priv, "", validClaims()) }, wantErr: ErrUnknownKey},
		{name: "garbage", token: func() string { return "not.a.token" }, wantErr: ErrMalformed},
		{name: "two parts", token: func() string { return "abc.def" }, wantErr: ErrMalformed},
		{name: "JSON serialization", token: func() string { return `{"payload":"e30","signatures":[]}` }, wantErr: ErrMalformed},
		{name: "oversized", token: func() string { return strings.Repeat("a", maxTokenBytes+1) }, wantErr: ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := Config{Issuer: testIssuer, Now: func() time.Time { return testNow }}
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			v, err := NewVerifier(keys, cfg)
			if err != nil {
				t.Fatal(err)
			}
			c, err := v.Verify(context.Background(), tc.token())
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if c != nil {
					t.Fatalf("claims returned with an error: %+v", c)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if c.Subject != "user-1" || c.Issuer != testIssuer {
				t.Fatalf("claims = %+v", c)
			}
		})
	}
}

func TestVerifyClaims(t *testing.T) {
	t.Parallel()
	k := newRSAKey(t, "k1")
	v, err := NewVerifier(NewStaticKeySet(k.public()), Config{Issuer: testIssuer, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(context.Background(), sign(t, jose.RS256, k.priv, "k1", validClaims()))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"sub", c.Subject, "user-1"},
		{"sid", c.SessionID, "sess-1"},
		{"acr", c.ACR, "1"},
		{"azp", c.AZP, "web"},
		{"aud", strings.Join(c.Audience, ","), "orders-api,account"},
		{"scopes", strings.Join(c.Scopes, ","), "openid,profile,stepup"},
		{"realm roles", strings.Join(c.RealmRoles, ","), "user,stepup-admin"},
		{"client roles", strings.Join(c.ClientRoles["account"], ","), "view-profile"},
		{"username", c.PreferredUsername, "alice"},
		{"email", c.Email, "alice@example.com"},
		{"exp", c.ExpiresAt.Unix(), testNow.Add(5 * time.Minute).Unix()},
		{"iat", c.IssuedAt.Unix(), testNow.Unix()},
		{"auth_time", c.AuthTime.Unix(), testNow.Add(-time.Minute).Unix()},
		{"stepup entries", len(c.StepUp), 1},
		{"stepup amr", strings.Join(c.StepUp[0].AMR, ","), "pin"},
		{"has scope", c.HasScope("stepup"), true},
		{"has role", c.HasRealmRole("stepup-admin"), true},
		{"raw", c.Raw["jti"], "jti-1"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestSessionStateFallbackAndNestedClaim(t *testing.T) {
	t.Parallel()
	k := newRSAKey(t, "k1")
	v, err := NewVerifier(NewStaticKeySet(k.public()), Config{
		Issuer: testIssuer, Now: func() time.Time { return testNow }, StepUpClaim: `ext.step\.up`,
	})
	if err != nil {
		t.Fatal(err)
	}
	claims := validClaims()
	delete(claims, "sid")
	claims["session_state"] = "sess-24"
	claims["ext"] = map[string]any{"step.up": []any{`{"sid":"sess-24","acr":"2","amr":["totp"],"iat":1699999990,"exp":1700003600}`}}
	c, err := v.Verify(context.Background(), sign(t, jose.RS256, k.priv, "k1", claims))
	if err != nil {
		t.Fatal(err)
	}
	if c.SessionID != "sess-24" {
		t.Errorf("SessionID = %q, want session_state", c.SessionID)
	}
	if len(c.StepUp) != 1 || c.StepUp[0].SID != "sess-24" {
		t.Errorf("StepUp = %+v, want the nested entry", c.StepUp)
	}
}

func TestNewVerifierRefusesUnsafeConfig(t *testing.T) {
	t.Parallel()
	keys := NewStaticKeySet()
	tests := []struct {
		name string
		keys KeySet
		cfg  Config
	}{
		{"no issuer", keys, Config{}},
		{"no key set", nil, Config{Issuer: testIssuer}},
		{"none", keys, Config{Issuer: testIssuer, AllowedAlgs: []string{"none"}}},
		{"HS256", keys, Config{Issuer: testIssuer, AllowedAlgs: []string{"RS256", "HS256"}}},
		{"unknown", keys, Config{Issuer: testIssuer, AllowedAlgs: []string{"RS1"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := NewVerifier(tc.keys, tc.cfg); !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
		})
	}
}

func TestStaticKeySetIgnoresKeysWithoutKid(t *testing.T) {
	t.Parallel()
	k := newRSAKey(t, "")
	ks := NewStaticKeySet(k.public(), jose.JSONWebKey{Key: []byte("secret"), KeyID: "hmac"}, jose.JSONWebKey{Key: k.priv, KeyID: "priv"})
	if _, err := ks.Key(context.Background(), ""); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("empty kid: err = %v", err)
	}
	if _, err := ks.Key(context.Background(), "hmac"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("symmetric key returned: err = %v", err)
	}
	got, err := ks.Key(context.Background(), "priv")
	if err != nil {
		t.Fatal(err)
	}
	if !got.IsPublic() {
		t.Error("private key not reduced to its public half")
	}
}
