// Package keyring encrypts factor secrets at rest and keys the pepper HMAC.
//
// Encryption is AES-256-GCM under named keys: the first key of the ring
// encrypts, every key decrypts, and each ciphertext names the key that made
// it, so an operator rotates by putting a new key first and keeping the old
// one until every record was rewritten (NeedsRotation tells which).
//
// A ciphertext is bound to where it belongs through GCM's additional data:
// Binding{UserID, Factor}. A row copied to another user, or a TOTP secret
// moved into an HOTP record, fails to decrypt instead of silently working.
//
// Wire format, version 1:
//
//	0x01 | len(keyID) (1 byte) | keyID | nonce (12 bytes) | GCM ciphertext and tag
//
// The version byte and key id are authenticated too (they are part of the
// additional data), so neither can be swapped.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/stepup-bridge/stepup-bridge/config"
)

// Errors callers branch on.
var (
	// ErrDecrypt: the ciphertext is malformed, was tampered with, is bound
	// to another user or factor, or was made by a key not in the ring. The
	// causes are deliberately not told apart.
	ErrDecrypt = errors.New("keyring: cannot decrypt")
	// ErrUnknownKey: the ciphertext names a key id the ring does not hold
	// (a key was removed too early). Wrapped together with ErrDecrypt.
	ErrUnknownKey = errors.New("keyring: unknown key id")
)

const (
	formatV1  = 0x01
	nonceSize = 12
	keySize   = 32
	adPrefix  = "stepup-bridge/keyring/v1"
)

// Key is one named AES-256 key.
type Key struct {
	// ID names the key inside every ciphertext; 1..255 bytes.
	ID string
	// Key is 32 bytes. The ring copies it.
	Key []byte
}

// Binding is what a ciphertext belongs to. Decryption succeeds only with
// the Binding used for encryption.
type Binding struct {
	UserID string
	Factor string
}

// ad encodes the binding unambiguously (length-prefixed fields), together
// with the format version and key id of the ciphertext.
func (b Binding) ad(keyID string) []byte {
	var out []byte
	for _, s := range []string{adPrefix, keyID, b.UserID, b.Factor} {
		out = binary.BigEndian.AppendUint32(out, uint32(len(s)))
		out = append(out, s...)
	}
	return out
}

// Keyring holds the encryption keys. It is safe for concurrent use and
// immutable after New.
type Keyring struct {
	primary string
	aeads   map[string]cipher.AEAD
	rand    io.Reader
}

// Options tune New. The zero value is what production uses.
type Options struct {
	// Rand is the nonce source. Defaults to crypto/rand.Reader; tests may
	// pin it, nothing else should.
	Rand io.Reader
}

// New builds a ring from keys; keys[0] encrypts. It refuses an empty ring,
// keys that are not 32 bytes and duplicate ids.
func New(keys []Key, opts Options) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("keyring: no keys")
	}
	r := &Keyring{primary: keys[0].ID, aeads: make(map[string]cipher.AEAD, len(keys)), rand: opts.Rand}
	if r.rand == nil {
		r.rand = rand.Reader
	}
	for i, k := range keys {
		if len(k.ID) == 0 || len(k.ID) > 255 {
			return nil, fmt.Errorf("keyring: key %d: id must be 1..255 bytes", i)
		}
		if len(k.Key) != keySize {
			return nil, fmt.Errorf("keyring: key %q: %d bytes, want %d", k.ID, len(k.Key), keySize)
		}
		if _, dup := r.aeads[k.ID]; dup {
			return nil, fmt.Errorf("keyring: duplicate key id %q", k.ID)
		}
		block, err := aes.NewCipher(append([]byte(nil), k.Key...))
		if err != nil {
			return nil, fmt.Errorf("keyring: key %q: %w", k.ID, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("keyring: key %q: %w", k.ID, err)
		}
		r.aeads[k.ID] = aead
	}
	return r, nil
}

// FromConfig builds the ring from secrets.encryption_keys (first encrypts).
func FromConfig(cfg config.Config) (*Keyring, error) {
	parsed, err := cfg.ParsedEncryptionKeys()
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	keys := make([]Key, len(parsed))
	for i, k := range parsed {
		keys[i] = Key{ID: k.ID, Key: k.Key}
	}
	return New(keys, Options{})
}

// PrimaryKeyID is the id of the key that encrypts.
func (r *Keyring) PrimaryKeyID() string { return r.primary }

// Encrypt seals plaintext for b under the primary key with a fresh random
// nonce. The result is a new slice the caller owns.
func (r *Keyring) Encrypt(plaintext []byte, b Binding) ([]byte, error) {
	aead := r.aeads[r.primary]
	out := make([]byte, 0, 2+len(r.primary)+nonceSize+len(plaintext)+aead.Overhead())
	out = append(out, formatV1, byte(len(r.primary)))
	out = append(out, r.primary...)
	nonce := make([]byte, nonceSize)
	if _, err := io.ReadFull(r.rand, nonce); err != nil {
		return nil, fmt.Errorf("keyring: reading nonce: %w", err)
	}
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plaintext, b.ad(r.primary)), nil
}

// Decrypt opens a ciphertext made by Encrypt with the same Binding. Every
// failure wraps ErrDecrypt.
func (r *Keyring) Decrypt(ciphertext []byte, b Binding) ([]byte, error) {
	keyID, rest, err := parseHeader(ciphertext)
	if err != nil {
		return nil, err
	}
	aead, ok := r.aeads[keyID]
	if !ok {
		return nil, fmt.Errorf("%w: %w %q", ErrDecrypt, ErrUnknownKey, keyID)
	}
	if len(rest) < nonceSize+aead.Overhead() {
		return nil, fmt.Errorf("%w: too short", ErrDecrypt)
	}
	pt, err := aead.Open(nil, rest[:nonceSize], rest[nonceSize:], b.ad(keyID))
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed", ErrDecrypt)
	}
	return pt, nil
}

// KeyID returns the id of the key that made ciphertext.
func KeyID(ciphertext []byte) (string, error) {
	id, _, err := parseHeader(ciphertext)
	return id, err
}

// NeedsRotation reports whether ciphertext was made by a key other than the
// primary one, so its owner should decrypt and encrypt it again the next
// time it writes the record. Malformed input reports false.
func (r *Keyring) NeedsRotation(ciphertext []byte) bool {
	id, err := KeyID(ciphertext)
	return err == nil && id != r.primary
}

func parseHeader(c []byte) (keyID string, rest []byte, err error) {
	if len(c) < 2 || c[0] != formatV1 {
		return "", nil, fmt.Errorf("%w: unknown format", ErrDecrypt)
	}
	n := int(c[1])
	if n == 0 || len(c) < 2+n {
		return "", nil, fmt.Errorf("%w: truncated key id", ErrDecrypt)
	}
	return string(c[2 : 2+n]), c[2+n:], nil
}

// Pepper is the server-side HMAC-SHA-256 key for short secrets (backup
// codes, delivered one-time codes): a stolen database alone does not allow
// an offline search. Safe for concurrent use.
type Pepper struct {
	key []byte
}

// MinPepperBytes is the shortest pepper accepted.
const MinPepperBytes = 32

// NewPepper copies key, which must hold at least MinPepperBytes bytes.
func NewPepper(key []byte) (*Pepper, error) {
	if len(key) < MinPepperBytes {
		return nil, fmt.Errorf("keyring: pepper has %d bytes, want at least %d", len(key), MinPepperBytes)
	}
	return &Pepper{key: append([]byte(nil), key...)}, nil
}

// PepperFromConfig decodes secrets.pepper.
func PepperFromConfig(cfg config.Config) (*Pepper, error) {
	b, err := cfg.PepperBytes()
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	return NewPepper(b)
}

// MAC returns HMAC-SHA-256(pepper, parts[0] || parts[1] || ...). The parts
// are concatenated as they are: callers must make the split unambiguous
// (fixed-length salts first).
func (p *Pepper) MAC(parts ...[]byte) []byte {
	m := hmac.New(sha256.New, p.key)
	for _, b := range parts {
		m.Write(b)
	}
	return m.Sum(nil)
}

// Equal compares two MACs in constant time.
func Equal(a, b []byte) bool { return hmac.Equal(a, b) }
