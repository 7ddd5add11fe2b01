package keycloaktest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"math/big"
	"time"
)

// Keys as Keycloak's generated RSA key providers make them
// (services/src/main/java/org/keycloak/keys/GeneratedRsaKeyProviderFactory.java,
// GeneratedRsaEncKeyProviderFactory.java): 2048-bit RSA with a self-signed
// certificate whose subject is the realm name; the kid is the SHA-256
// thumbprint of the public key (org.keycloak.common.util.KeyUtils.createKeyId).

func (s *Server) newKey(realmName string) (*signingKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generating RSA key: %w", err)
	}
	now := s.now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixMilli()),
		Subject:      pkix.Name{CommonName: realmName},
		Issuer:       pkix.Name{CommonName: realmName},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.AddDate(10, 0, 0),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return nil, fmt.Errorf("self-signing key certificate: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("encoding public key: %w", err)
	}
	sum := sha256.Sum256(pub)
	return &signingKey{kid: base64.RawURLEncoding.EncodeToString(sum[:]), priv: priv, cert: der}, nil
}

// generateKeys creates the signing and encryption keys in parallel: RSA key
// generation dominates realm creation time.
func (s *Server) generateKeys(r *realm) error {
	var enc *signingKey
	var encErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		enc, encErr = s.newKey(r.name)
	}()
	sig, err := s.newKey(r.name)
	<-done
	if err == nil {
		err = encErr
	}
	if err != nil {
		return fmt.Errorf("realm %s: %w", r.name, err)
	}
	r.keys = []*signingKey{sig}
	r.encKey = enc
	r.hmacKey = make([]byte, 64)
	if _, err := s.rand.Read(r.hmacKey); err != nil {
		return fmt.Errorf("realm %s: hmac key: %w", r.name, err)
	}
	return nil
}

type jwk struct {
	Kid     string   `json:"kid"`
	Kty     string   `json:"kty"`
	Alg     string   `json:"alg"`
	Use     string   `json:"use"`
	N       string   `json:"n"`
	E       string   `json:"e"`
	X5c     []string `json:"x5c"`
	X5t     string   `json:"x5t"`
	X5tS256 string   `json:"x5t#S256"`
}

// toJWK builds the JWKS entry (services/src/main/java/org/keycloak/protocol/oidc/endpoints/...
// OIDCLoginProtocolService.certs via JWKBuilder.rsa).
func (k *signingKey) toJWK(alg, use string) jwk {
	s1 := sha1.Sum(k.cert)
	s256 := sha256.Sum256(k.cert)
	return jwk{
		Kid: k.kid, Kty: "RSA", Alg: alg, Use: use,
		N:       base64.RawURLEncoding.EncodeToString(k.priv.N.Bytes()),
		E:       base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.priv.E)).Bytes()),
		X5c:     []string{base64.StdEncoding.EncodeToString(k.cert)},
		X5t:     base64.RawURLEncoding.EncodeToString(s1[:]),
		X5tS256: base64.RawURLEncoding.EncodeToString(s256[:]),
	}
}

func (r *realm) jwks() []jwk {
	out := make([]jwk, 0, len(r.keys)+1)
	for _, k := range r.keys {
		out = append(out, k.toJWK("RS256", "sig"))
	}
	if r.encKey != nil {
		out = append(out, r.encKey.toJWK("RSA-OAEP", "enc"))
	}
	return out
}
