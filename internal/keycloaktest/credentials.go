package keycloaktest

import (
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"strconv"

	"golang.org/x/crypto/argon2"
)

// Password hashing as Keycloak's providers do it:
// server-spi-private/src/main/java/org/keycloak/credential/hash/Pbkdf2PasswordHashProvider.java
// (pbkdf2, pbkdf2-sha256, pbkdf2-sha512; key size 512 bits for sha512/sha256 variants, 512 for pbkdf2)
// and crypto/default/src/main/java/org/keycloak/crypto/hash/Argon2PasswordHashProvider.java.
// Passwords set through this server (admin API, plain "value" in an import)
// are stored as pbkdf2-sha256 with 1000 iterations: a real Keycloak can still
// verify such a credential (the iteration count travels in credentialData),
// and every login of every test stays cheap, also under the race detector
// where HMAC runs instrumented. Imported hashes keep their own parameters.

const (
	newHashAlgorithm  = "pbkdf2-sha256"
	newHashIterations = 1000
)

type secretData struct {
	Value                string              `json:"value"`
	Salt                 string              `json:"salt"`
	AdditionalParameters map[string][]string `json:"additionalParameters"`
}

type credentialData struct {
	HashIterations       int                 `json:"hashIterations"`
	Algorithm            string              `json:"algorithm"`
	AdditionalParameters map[string][]string `json:"additionalParameters"`
}

func (s *Server) credentialFromRep(rep credentialRep) (*passwordCredential, error) {
	switch {
	case rep.Value != "":
		return s.hashPassword(rep.Value)
	case rep.SecretData != "":
		var sd secretData
		var cd credentialData
		if err := json.Unmarshal([]byte(rep.SecretData), &sd); err != nil {
			return nil, fmt.Errorf("password secretData: %w", err)
		}
		if err := json.Unmarshal([]byte(rep.CredentialData), &cd); err != nil {
			return nil, fmt.Errorf("password credentialData: %w", err)
		}
		hash, err := base64.StdEncoding.DecodeString(sd.Value)
		if err != nil {
			return nil, fmt.Errorf("password hash: %w", err)
		}
		salt, err := base64.StdEncoding.DecodeString(sd.Salt)
		if err != nil {
			return nil, fmt.Errorf("password salt: %w", err)
		}
		return &passwordCredential{id: rep.ID, created: rep.CreatedDate, algorithm: cd.Algorithm,
			iterations: cd.HashIterations, salt: salt, hash: hash, params: cd.AdditionalParameters}, nil
	case rep.HashedSaltedValue != "":
		hash, err := base64.StdEncoding.DecodeString(rep.HashedSaltedValue)
		if err != nil {
			return nil, fmt.Errorf("password hash: %w", err)
		}
		salt, err := base64.StdEncoding.DecodeString(rep.Salt)
		if err != nil {
			return nil, fmt.Errorf("password salt: %w", err)
		}
		return &passwordCredential{id: rep.ID, created: rep.CreatedDate, algorithm: rep.Algorithm,
			iterations: rep.HashIterations, salt: salt, hash: hash}, nil
	}
	return nil, fmt.Errorf("password credential without value or hash")
}

func (s *Server) hashPassword(password string) (*passwordCredential, error) {
	salt := make([]byte, 16)
	if _, err := s.rand.Read(salt); err != nil {
		return nil, fmt.Errorf("password salt: %w", err)
	}
	pc := &passwordCredential{id: s.newID(), created: s.now().UnixMilli(), algorithm: newHashAlgorithm,
		iterations: newHashIterations, salt: salt}
	h, err := pc.derive(password)
	if err != nil {
		return nil, err
	}
	pc.hash = h
	return pc, nil
}

func (pc *passwordCredential) derive(password string) ([]byte, error) {
	var fn func() hash.Hash
	keyLen := len(pc.hash)
	switch pc.algorithm {
	case "pbkdf2":
		fn = sha1.New
	case "pbkdf2-sha256":
		fn = sha256.New
	case "pbkdf2-sha512":
		fn = sha512.New
	case "argon2":
		return pc.argon2(password)
	default:
		return nil, fmt.Errorf("password hash algorithm %q unsupported", pc.algorithm)
	}
	if keyLen == 0 {
		keyLen = 64 // DERIVED_KEY_SIZE 512 bits
	}
	return pbkdf2.Key(fn, password, pc.salt, pc.iterations, keyLen)
}

func (pc *passwordCredential) argon2(password string) ([]byte, error) {
	p := func(name string, def int) int {
		if v := pc.params[name]; len(v) > 0 {
			if n, err := strconv.Atoi(v[0]); err == nil {
				return n
			}
		}
		return def
	}
	if t := pc.params["type"]; len(t) > 0 && t[0] != "id" {
		return nil, fmt.Errorf("argon2 type %q unsupported", t[0])
	}
	keyLen := p("hashLength", 32)
	return argon2.IDKey([]byte(password), pc.salt, uint32(pc.iterations), uint32(p("memory", 7168)),
		uint8(p("parallelism", 1)), uint32(keyLen)), nil
}

// verify compares in constant time.
func (pc *passwordCredential) verify(password string) bool {
	if pc == nil {
		return false
	}
	h, err := pc.derive(password)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(h, pc.hash) == 1
}
