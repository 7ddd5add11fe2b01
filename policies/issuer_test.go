package policies

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// testIssuer is a Keycloak stand-in for the tests: an RSA key, a JWKS
// endpoint at /realms/test/protocol/openid-connect/certs, and a minter of
// access tokens shaped like Keycloak's.
type testIssuer struct {
	srv    *httptest.Server
	key    *rsa.PrivateKey
	kid    string
	issuer string
}

func newTestIssuer(t testing.TB) *testIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ti := &testIssuer{key: key, kid: "test-key"}
	jwks := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: ti.kid, Algorithm: "RS256", Use: "sig"}}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /realms/test/protocol/openid-connect/certs", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(jwks)
	})
	ti.srv = httptest.NewServer(mux)
	t.Cleanup(ti.srv.Close)
	ti.issuer = ti.srv.URL + "/realms/test"
	return ti
}

// claims returns Keycloak-like access-token claims for alice in session
// sid, issued at now with acr "1"; callers adjust them.
func (ti *testIssuer) claims(now time.Time, sid string) map[string]any {
	return map[string]any{
		"iss": ti.issuer, "sub": "alice-id", "aud": "orders-api", "azp": "web",
		"typ": "Bearer", "sid": sid, "acr": "1", "scope": "openid profile",
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "auth_time": now.Add(-time.Hour).Unix(),
		"jti": "j-" + sid, "preferred_username": "alice",
	}
}

func (ti *testIssuer) sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	return signWith(t, ti.key, ti.kid, claims)
}

func signWith(t testing.TB, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithHeader("kid", kid).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// stepUpClaim is the claim value Keycloak's JSON mapper produces for the
// given entries.
func stepUpClaim(entries ...StepUpEntry) []any {
	out := make([]any, 0, len(entries))
	for _, e := range entries {
		var m map[string]any
		_ = json.Unmarshal([]byte(e.Marshal()), &m)
		out = append(out, m)
	}
	return out
}

// newHTTPServer serves h on a loopback port for the test's lifetime and
// returns its base URL.
func newHTTPServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
