// Package phone normalises and validates phone numbers as E.164, the form
// every delivery provider expects and the only form stored.
//
// Normalize accepts what people type ("+49 (170) 123-4567", "0049 170
// 1234567") and returns "+491701234567", or ErrInvalid. It never guesses a
// country: a number without "+" or "00" in front is refused, because a
// national number means something different in every country and a flash
// call to the wrong one costs money and leaks a code.
package phone

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid: the input is not a phone number in international form.
var ErrInvalid = errors.New("phone: not a valid international number")

// Length bounds of an E.164 number, in digits after the "+" (ITU-T E.164
// allows at most 15; fewer than 8 is no reachable mobile number anywhere).
const (
	MinDigits = 8
	MaxDigits = 15
)

// maxInput bounds the raw input, so a megabyte of spaces is refused early.
const maxInput = 64

// Normalize returns s in E.164 form ("+" and 8 to 15 digits, the first not
// 0). Spaces, dashes, dots and parentheses are dropped; a leading "00" is
// read as "+". Letters and any other character are refused, as is a "+"
// anywhere but in front.
func Normalize(s string) (string, error) {
	if len(s) > maxInput {
		return "", fmt.Errorf("%w: longer than %d characters", ErrInvalid, maxInput)
	}
	var b strings.Builder
	b.Grow(len(s))
	plus := false
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')' || r == '\u00a0':
		case r == '+':
			if plus || b.Len() > 0 {
				return "", fmt.Errorf("%w: '+' must come first", ErrInvalid)
			}
			plus = true
		default:
			return "", fmt.Errorf("%w: unexpected character %q", ErrInvalid, r)
		}
	}
	digits := b.String()
	if !plus {
		if !strings.HasPrefix(digits, "00") {
			return "", fmt.Errorf("%w: must start with + or 00 and the country code", ErrInvalid)
		}
		digits = digits[2:]
	}
	if len(digits) < MinDigits || len(digits) > MaxDigits {
		return "", fmt.Errorf("%w: %d digits, want %d to %d", ErrInvalid, len(digits), MinDigits, MaxDigits)
	}
	if digits[0] == '0' {
		return "", fmt.Errorf("%w: country codes do not start with 0", ErrInvalid)
	}
	return "+" + digits, nil
}

// Valid reports whether s is already in the form Normalize returns.
func Valid(s string) bool {
	n, err := Normalize(s)
	return err == nil && n == s
}

// twoDigit are the country codes of two digits; 1 and 7 are the only ones
// of one digit, and every other code has three (ITU-T E.164 zones).
var twoDigit = "20 27 30 31 32 33 34 36 39 40 41 43 44 45 46 47 48 49 51 52 53 54 55 56 57 58 " +
	"60 61 62 63 64 65 66 81 82 84 86 90 91 92 93 94 95 98"

// CountryCode returns the country calling code of an E.164 number without
// the "+" ("49" for +491701234567), or "" if e164 is not valid.
func CountryCode(e164 string) string {
	if !Valid(e164) {
		return ""
	}
	d := e164[1:]
	switch {
	case d[0] == '1' || d[0] == '7':
		return d[:1]
	case isTwoDigit(d[:2]):
		return d[:2]
	default:
		return d[:3]
	}
}

func isTwoDigit(cc string) bool {
	for f := range strings.FieldsSeq(twoDigit) {
		if f == cc {
			return true
		}
	}
	return false
}

// Mask hides all but the country code and the last two digits, for showing
// where a code went: "+49 *** *** 67". Invalid input masks to "***".
func Mask(e164 string) string {
	cc := CountryCode(e164)
	if cc == "" {
		return "***"
	}
	return "+" + cc + " *** *** " + e164[len(e164)-2:]
}
