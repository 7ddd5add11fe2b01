package pin

import (
	"slices"
	"strings"

	"github.com/stepup-bridge/stepup-bridge/factors"
)

// maxInput bounds what the parsers read, so a huge input costs nothing.
const maxInput = 64

// commonPINs are among the most used PINs in published analyses of leaked
// PIN and passcode sets that the structural rules (one digit repeated,
// straight sequences, a repeated short pattern) do not already catch:
// keypad lines, years and number-word PINs.
var commonPINs = []string{
	// 4 digits
	"1004", "2000", "2001", "1122", "1313", "6969", "1998", "1999", "1990",
	"2580", "0852", "1470", "0741", "3690", "0963", "1379", "1397", "2468",
	"1357", "5683", "1007", "1224", "1225", "0007", "0070", "1123",
	// 6 digits
	"112233", "159753", "147258", "258369", "159357", "789456", "456123",
	"123654", "147852", "102030", "100200", "111222", "101010", "753951",
	"369258", "000007", "007007", "142536",
	// 8 digits
	"11223344", "12344321", "11112222", "20002000", "19901990",
}

// Rules say which PINs may be set. The zero value allows 4 to 8 digits
// with only the built-in refusals.
type Rules struct {
	// MinLength and MaxLength in digits. Default to 4 and 8.
	MinLength, MaxLength int
	// DenyList are further PINs refused (config factors.pin.deny_list).
	DenyList []string
}

func (r Rules) lengths() (int, int) {
	lo, hi := r.MinLength, r.MaxLength
	if lo == 0 {
		lo = 4
	}
	if hi == 0 {
		hi = 8
	}
	return lo, hi
}

// Check returns nil if pin may be set, or a *factors.InputError whose
// message tells the user why not: digits only, MinLength..MaxLength of
// them, not one digit repeated (1111), not a straight sequence up or down,
// wrapping around 9-0 (1234, 8901, 3210), not a short pattern repeated
// (1212, 123123), not a commonly used PIN, not on the deny list.
func (r Rules) Check(pin string) error {
	lo, hi := r.lengths()
	if len(pin) > maxInput || !allDigits(pin) {
		return factors.InvalidInput("PIN must contain digits only")
	}
	if len(pin) < lo || len(pin) > hi {
		return factors.InvalidInput("PIN must have %d to %d digits", lo, hi)
	}
	switch {
	case isSequence(pin, 0):
		return factors.InvalidInput("PIN must not repeat one digit")
	case isSequence(pin, 1), isSequence(pin, 9):
		return factors.InvalidInput("PIN must not be a sequence such as 1234 or 8901")
	case repeatsPattern(pin):
		return factors.InvalidInput("PIN must not repeat a short pattern such as 1212")
	case slices.Contains(commonPINs, pin), slices.Contains(r.DenyList, pin):
		return factors.InvalidInput("PIN is too common, choose another")
	}
	return nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isSequence reports whether each digit is the previous plus step, modulo
// 10 (step 0: one digit repeated; 1: ascending; 9: descending).
func isSequence(pin string, step byte) bool {
	for i := 1; i < len(pin); i++ {
		if (pin[i-1]-'0'+step)%10 != pin[i]-'0' {
			return false
		}
	}
	return true
}

// repeatsPattern reports whether pin has a period of at most half its
// length: 1212, 12121, 123123, 45454545.
func repeatsPattern(pin string) bool {
	for p := 1; p <= len(pin)/2; p++ {
		if pin[p:] == pin[:len(pin)-p] {
			return true
		}
	}
	return false
}

// parseDigits reads a PIN as entered for verification: surrounding white
// space is dropped, then only ASCII digits are accepted.
func parseDigits(input string) (string, bool) {
	if len(input) > maxInput {
		return "", false
	}
	s := strings.TrimSpace(input)
	if !allDigits(s) {
		return "", false
	}
	return s, true
}
