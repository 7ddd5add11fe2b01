// Package otpcore is what the TOTP and HOTP factors share: the sealed
// secret record, code parsing, code computation (RFC 4226 through
// pquerna/otp) and the enrolment QR code.
package otpcore

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"

	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/internal/keyring"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// SecretSize is the size of generated secrets: 160 bits, RFC 4226's
// recommendation and what authenticator apps expect for SHA1.
const SecretSize = 20

// maxInput bounds what ParseCode reads.
const maxInput = 32

// QRSize is the width and height of enrolment QR codes, in pixels.
const QRSize = 256

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Secret is the plaintext of a stored TOTP/HOTP credential: the key and the
// parameters it was enrolled with, so a later change of configuration does
// not break existing authenticators.
type Secret struct {
	Key       []byte `json:"key"`
	Algorithm string `json:"alg"`
	Digits    int    `json:"digits"`
	// Period in seconds (TOTP only).
	Period uint `json:"period,omitempty"`
	// Issuer and Account name the entry in the app; kept so a pending
	// enrolment's URI and QR code can be shown again until confirmed.
	Issuer  string `json:"issuer,omitempty"`
	Account string `json:"account,omitempty"`
}

// NewKey draws a SecretSize-byte key from rnd.
func NewKey(rnd io.Reader) ([]byte, error) {
	k := make([]byte, SecretSize)
	if _, err := io.ReadFull(rnd, k); err != nil {
		return nil, fmt.Errorf("reading randomness: %w", err)
	}
	return k, nil
}

// Seal encrypts s for userID and factor.
func Seal(kr *keyring.Keyring, userID, factor string, s Secret) ([]byte, error) {
	pt, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("%s: encoding secret: %w", factor, err)
	}
	ct, err := kr.Encrypt(pt, keyring.Binding{UserID: userID, Factor: factor})
	if err != nil {
		return nil, fmt.Errorf("%s: sealing secret: %w", factor, err)
	}
	return ct, nil
}

// Open decrypts what Seal made for userID and factor.
func Open(kr *keyring.Keyring, userID, factor string, data []byte) (Secret, error) {
	pt, err := kr.Decrypt(data, keyring.Binding{UserID: userID, Factor: factor})
	if err != nil {
		return Secret{}, fmt.Errorf("%s: opening secret of %s: %w", factor, userID, err)
	}
	var s Secret
	if err := json.Unmarshal(pt, &s); err != nil {
		return Secret{}, fmt.Errorf("%s: decoding secret of %s: %w", factor, userID, err)
	}
	if len(s.Key) == 0 || (s.Digits != 6 && s.Digits != 8) {
		return Secret{}, fmt.Errorf("%s: stored secret of %s is malformed", factor, userID)
	}
	if _, err := ParseAlgorithm(s.Algorithm); err != nil {
		return Secret{}, fmt.Errorf("%s: stored secret of %s: %w", factor, userID, err)
	}
	return s, nil
}

// SameKey compares the keys of two secrets in constant time.
func SameKey(a, b Secret) bool { return subtle.ConstantTimeCompare(a.Key, b.Key) == 1 }

// ParseAlgorithm maps SHA1, SHA256, SHA512 to pquerna's values.
func ParseAlgorithm(s string) (otp.Algorithm, error) {
	switch s {
	case "SHA1", "":
		return otp.AlgorithmSHA1, nil
	case "SHA256":
		return otp.AlgorithmSHA256, nil
	case "SHA512":
		return otp.AlgorithmSHA512, nil
	}
	return 0, fmt.Errorf("unknown algorithm %q (SHA1, SHA256, SHA512)", s)
}

// ParseCode reads a code as typed: white space anywhere is dropped (apps
// show "123 456"), then exactly digits ASCII digits must remain.
func ParseCode(input string, digits int) (string, bool) {
	if len(input) > maxInput {
		return "", false
	}
	var b strings.Builder
	for _, r := range input {
		switch {
		case r == ' ' || r == '\t' || r == '\n' || r == '\r':
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			return "", false
		}
	}
	if b.Len() != digits {
		return "", false
	}
	return b.String(), true
}

// Code computes the RFC 4226 code of s at counter.
func Code(s Secret, counter uint64) (string, error) {
	alg, err := ParseAlgorithm(s.Algorithm)
	if err != nil {
		return "", err
	}
	d := otp.DigitsSix
	if s.Digits == 8 {
		d = otp.DigitsEight
	}
	return hotp.GenerateCodeCustom(b32.EncodeToString(s.Key), counter, hotp.ValidateOpts{Digits: d, Algorithm: alg})
}

// Match computes the codes of s at every counter in [from, to] and
// compares each with code in constant time, without stopping early. It
// returns the matching counters, lowest first.
func Match(s Secret, code string, from, to uint64) ([]uint64, error) {
	var out []uint64
	for c := from; c <= to; c++ {
		want, err := Code(s, c)
		if err != nil {
			return nil, err
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			out = append(out, c)
		}
		if c == to { // to may be MaxUint64
			break
		}
	}
	return out, nil
}

// KeySecret decodes the base32 secret of a generated key.
func KeySecret(k *otp.Key) ([]byte, error) {
	raw, err := b32.DecodeString(strings.ToUpper(strings.TrimRight(k.Secret(), "=")))
	if err != nil {
		return nil, fmt.Errorf("decoding generated secret: %w", err)
	}
	return raw, nil
}

// QRPNG renders uri as a PNG QR code of QRSize pixels.
func QRPNG(k *otp.Key) ([]byte, error) {
	img, err := k.Image(QRSize, QRSize)
	if err != nil {
		return nil, fmt.Errorf("rendering QR code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("encoding QR PNG: %w", err)
	}
	return buf.Bytes(), nil
}

// DigitsOf maps 6 or 8 to pquerna's value.
func DigitsOf(n int) (otp.Digits, error) {
	switch n {
	case 6:
		return otp.DigitsSix, nil
	case 8:
		return otp.DigitsEight, nil
	}
	return 0, fmt.Errorf("digits must be 6 or 8, not %d", n)
}

// StorePending creates the pending credential of factor for userID or
// replaces a pending one; an active one gives factors.ErrAlreadyEnrolled.
func StorePending(ctx context.Context, creds store.Credentials, factor, userID, label string, data []byte, now time.Time) error {
	cid := factors.CredentialID(factor, userID)
	for range 2 {
		err := creds.CreateCredential(ctx, store.Credential{
			ID: cid, UserID: userID, Factor: factor, Status: store.StatusPending,
			Label: label, Data: data, CreatedAt: now, UpdatedAt: now,
		})
		if err == nil {
			return nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("%s: storing pending secret of %s: %w", factor, userID, err)
		}
		_, err = creds.UpdateCredential(ctx, cid, func(c store.Credential) (store.Credential, error) {
			if c.Status != store.StatusPending {
				return c, fmt.Errorf("%s: %s has an active authenticator: %w", factor, userID, factors.ErrAlreadyEnrolled)
			}
			c.Label, c.Data, c.Counter, c.UpdatedAt = label, data, 0, now
			c.Failures, c.LockedUntil = 0, time.Time{}
			return c, nil
		})
		if err == nil || errors.Is(err, factors.ErrAlreadyEnrolled) {
			return err
		}
		if !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%s: replacing pending secret of %s: %w", factor, userID, err)
		}
		// Removed between our create and update: try again.
	}
	return fmt.Errorf("%s: storing pending secret of %s: concurrent changes", factor, userID)
}

// CredentialStatus reports a TOTP/HOTP credential as a factors.Status.
func CredentialStatus(ctx context.Context, creds store.Credentials, factor, userID string) (factors.Status, error) {
	st := factors.Status{Factor: factor, State: factors.StateNone}
	c, err := creds.GetCredential(ctx, factors.CredentialID(factor, userID))
	if errors.Is(err, store.ErrNotFound) {
		return st, nil
	}
	if err != nil {
		return factors.Status{}, fmt.Errorf("%s: loading credential of %s: %w", factor, userID, err)
	}
	st.State = factors.StatePending
	if c.Status == store.StatusActive {
		st.State = factors.StateActive
	}
	st.CredentialID, st.Label, st.CreatedAt, st.LastUsedAt = c.ID, c.Label, c.CreatedAt, c.LastUsedAt
	return st, nil
}
