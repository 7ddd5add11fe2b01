package otpcore

import (
	"strings"
	"testing"
)

// RFC 4226 Appendix D: secret "12345678901234567890", counters 0..9.
func TestRFC4226Vectors(t *testing.T) {
	t.Parallel()
	s := Secret{Key: []byte("12345678901234567890"), Algorithm: "SHA1", Digits: 6}
	want := []string{"755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"}
	for counter, w := range want {
		got, err := Code(s, uint64(counter))
		if err != nil || got != w {
			t.Errorf("counter %d: %q, %v; want %q", counter, got, err, w)
		}
	}
}

// RFC 6238 Appendix B: 8 digits, 30-second steps, one seed per algorithm.
func TestRFC6238Vectors(t *testing.T) {
	t.Parallel()
	seeds := map[string][]byte{
		"SHA1":   []byte("12345678901234567890"),
		"SHA256": []byte("12345678901234567890123456789012"),
		"SHA512": []byte("1234567890123456789012345678901234567890123456789012345678901234"),
	}
	for _, tc := range []struct {
		unix                 int64
		sha1, sha256, sha512 string
	}{
		{59, "94287082", "46119246", "90693936"},
		{1111111109, "07081804", "68084774", "25091201"},
		{1111111111, "14050471", "67062674", "99943326"},
		{1234567890, "89005924", "91819424", "93441116"},
		{2000000000, "69279037", "90698825", "38618901"},
		{20000000000, "65353130", "77737706", "47863826"},
	} {
		for alg, want := range map[string]string{"SHA1": tc.sha1, "SHA256": tc.sha256, "SHA512": tc.sha512} {
			s := Secret{Key: seeds[alg], Algorithm: alg, Digits: 8, Period: 30}
			got, err := Code(s, uint64(tc.unix)/30)
			if err != nil || got != want {
				t.Errorf("%s at %d: %q, %v; want %q", alg, tc.unix, got, err, want)
			}
		}
	}
}

func TestMatchLooksAtWholeWindow(t *testing.T) {
	t.Parallel()
	s := Secret{Key: []byte("12345678901234567890"), Algorithm: "SHA1", Digits: 6}
	got, err := Match(s, "969429", 0, 9)
	if err != nil || len(got) != 1 || got[0] != 3 {
		t.Fatalf("Match = %v, %v; want [3]", got, err)
	}
	if got, _ := Match(s, "969429", 4, 9); len(got) != 0 {
		t.Fatalf("Match outside the window = %v", got)
	}
	if got, _ := Match(s, "969429", 3, 3); len(got) != 1 {
		t.Fatalf("single-value window = %v", got)
	}
}

func TestParseCode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in     string
		digits int
		want   string
		ok     bool
	}{
		{"123456", 6, "123456", true},
		{"123 456", 6, "123456", true},
		{" 123456\n", 6, "123456", true},
		{"12345678", 8, "12345678", true},
		{"12345", 6, "", false},
		{"1234567", 6, "", false},
		{"12345a", 6, "", false},
		{"123-456", 6, "", false},
		{"１２３４５６", 6, "", false},
		{"", 6, "", false},
		{strings.Repeat(" ", 40) + "123456", 6, "", false},
	} {
		got, ok := ParseCode(tc.in, tc.digits)
		if ok != tc.ok || got != tc.want {
			t.Errorf("ParseCode(%q, %d) = %q, %v; want %q, %v", tc.in, tc.digits, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzParseCode(f *testing.F) {
	for _, s := range []string{"123456", "123 456", "12345678", "", "abc", "\u0663\u0664"} {
		f.Add(s, 6)
	}
	f.Fuzz(func(t *testing.T, in string, digits int) {
		got, ok := ParseCode(in, digits)
		if !ok {
			return
		}
		if len(got) != digits {
			t.Fatalf("ParseCode(%q, %d) = %q: wrong length", in, digits, got)
		}
		for i := range len(got) {
			if got[i] < '0' || got[i] > '9' {
				t.Fatalf("ParseCode(%q) = %q: not digits", in, got)
			}
		}
		if again, ok := ParseCode(got, digits); !ok || again != got {
			t.Fatalf("ParseCode not idempotent on %q", got)
		}
	})
}
