package delivery

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Webhook signature. Every webhook request carries
//
//	X-Stepup-Signature: t=<unix seconds>,v1=<hex HMAC-SHA-256>
//
// where the HMAC is keyed with the shared webhook secret (its bytes as
// configured) over the decimal timestamp, a ".", and the raw request body.
// A receiver recomputes it, compares in constant time, and refuses a
// timestamp too far from its own clock (VerifySignature does all three).
const (
	SignatureHeader = "X-Stepup-Signature"
	// DefaultSignatureTolerance is the age VerifySignature accepts by
	// default, either side of the receiver's clock.
	DefaultSignatureTolerance = 5 * time.Minute
)

// ErrBadSignature: a webhook signature header is missing, malformed,
// stale or does not match.
var ErrBadSignature = errors.New("delivery: bad webhook signature")

// Sign returns the X-Stepup-Signature value of body sent at t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// VerifySignature checks a X-Stepup-Signature header for body, as a
// receiver written in Go would: the signature must match one v1 value and
// the timestamp must be within tolerance of now (DefaultSignatureTolerance
// if tolerance is 0).
func VerifySignature(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultSignatureTolerance
	}
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return fmt.Errorf("%w: malformed element %q", ErrBadSignature, part)
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			b, err := hex.DecodeString(v)
			if err != nil {
				return fmt.Errorf("%w: v1 is not hex", ErrBadSignature)
			}
			sigs = append(sigs, b)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: missing or malformed timestamp", ErrBadSignature)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: timestamp %s outside tolerance %s", ErrBadSignature, d, tolerance)
	}
	want := mac(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return fmt.Errorf("%w: no matching v1 signature", ErrBadSignature)
}
