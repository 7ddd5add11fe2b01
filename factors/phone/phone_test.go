package phone

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{"plain", "+491701234567", "+491701234567", false},
		{"spaces dashes parens", "+49 (170) 123-45 67", "+491701234567", false},
		{"double zero", "0049 170 1234567", "+491701234567", false},
		{"dots", "+1.415.555.0100", "+14155550100", false},
		{"paren before plus", "(+44) 20 7946 0018", "+442079460018", false},
		{"shortest", "+12345678", "+12345678", false},
		{"longest", "+123456789012345", "+123456789012345", false},
		{"too short", "+1234567", "", true},
		{"too long", "+1234567890123456", "", true},
		{"national", "0170 1234567", "", true},
		{"letters", "+49 170 CALLME", "", true},
		{"plus inside", "+49+1701234567", "", true},
		{"plus after digits", "49+1701234567", "", true},
		{"country code zero", "+0491701234567", "", true},
		{"empty", "", "", true},
		{"only plus", "+", "", true},
		{"unicode digits", "+٤٩١٧٠١٢٣٤٥٦٧", "", true},
		{"newline", "+491701234567\n", "", true},
		{"huge", "+49" + strings.Repeat(" ", 100) + "1701234567", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Normalize(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("Normalize(%q) = %q, %v; want ErrInvalid", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Normalize(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestCountryCodeAndMask(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, cc, mask string }{
		{"+14155550100", "1", "+1 *** *** 00"},
		{"+79161234567", "7", "+7 *** *** 67"},
		{"+491701234567", "49", "+49 *** *** 67"},
		{"+46701234567", "46", "+46 *** *** 67"},
		{"+3538612345678", "353", "+353 *** *** 78"},
		{"+972541234567", "972", "+972 *** *** 67"},
		{"not a number", "", "***"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			if got := CountryCode(tt.in); got != tt.cc {
				t.Errorf("CountryCode(%q) = %q, want %q", tt.in, got, tt.cc)
			}
			if got := Mask(tt.in); got != tt.mask {
				t.Errorf("Mask(%q) = %q, want %q", tt.in, got, tt.mask)
			}
		})
	}
}

// FuzzNormalize checks the invariants of every accepted number: E.164
// shape, idempotence, and that no digit was invented or reordered.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"+491701234567", "0049 (170) 123-4567", "+1 415 555 0100", "abc", "++1", "00", "+0123456789", "+٤٩"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Normalize(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if !strings.HasPrefix(n, "+") || len(n) < 1+MinDigits || len(n) > 1+MaxDigits || n[1] == '0' {
			t.Fatalf("Normalize(%q) = %q: not E.164", s, n)
		}
		for _, r := range n[1:] {
			if r < '0' || r > '9' {
				t.Fatalf("Normalize(%q) = %q: non-digit", s, n)
			}
		}
		again, err := Normalize(n)
		if err != nil || again != n {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", s, n, again, err)
		}
		var digits strings.Builder
		for _, r := range s {
			if r >= '0' && r <= '9' {
				digits.WriteRune(r)
			}
		}
		d := digits.String()
		if !strings.HasSuffix(d, n[1:]) || (d != n[1:] && d != "00"+n[1:]) {
			t.Fatalf("Normalize(%q) = %q changed the digits %q", s, n, d)
		}
		if cc := CountryCode(n); cc == "" || !strings.HasPrefix(n[1:], cc) {
			t.Fatalf("CountryCode(%q) = %q", n, cc)
		}
	})
}
