package flashcall

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/stepup-bridge/stepup-bridge/factors/phone"
)

// ErrUnsupportedFilter: a provider's CLI filter has a shape the sidecar
// cannot complete from the typed digits.
var ErrUnsupportedFilter = errors.New("flashcall: unsupported CLI filter")

// errNoMatch: the typed digits do not fit the filter (a wrong code).
var errNoMatch = errors.New("flashcall: digits do not fit the CLI filter")

// pattern is a parsed CLI filter: an optional leading wildcard (the
// provider leaves open how the handset shows the country part), a literal
// run of digits, and the tail the code fills.
type pattern struct {
	re        *regexp.Regexp
	leadWild  bool
	plus      bool
	literal   string
	tailCount int // exact tail length, 0 when open
}

var (
	leadWilds = []string{"(.*)", ".*", "(.+)", ".+"}
	tailRe    = regexp.MustCompile(`^(?:\(?(?:\.|\\d|\[0-9\])(?:\*|\+|\{(\d)\})\)?)?$`)
)

// parseFilter reads the filter shapes Sinch documents ("(.*)70123(.*)")
// and plain prefixes ("+4670123", "^\+4670123\d{4}$").
func parseFilter(filter string) (pattern, error) {
	re, err := regexp.Compile(filter)
	if err != nil && !strings.HasPrefix(filter, "+") {
		return pattern{}, fmt.Errorf("%w: %v", ErrUnsupportedFilter, err)
	}
	p := pattern{re: re}
	s := strings.TrimSuffix(strings.TrimPrefix(filter, "^"), "$")
	for _, w := range leadWilds {
		if rest, ok := strings.CutPrefix(s, w); ok {
			p.leadWild, s = true, rest
			break
		}
	}
	switch {
	case strings.HasPrefix(s, `\+`):
		p.plus, s = true, s[2:]
	case strings.HasPrefix(s, "+"):
		p.plus, s = true, s[1:]
	}
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	p.literal, s = s[:i], s[i:]
	m := tailRe.FindStringSubmatch(s)
	if m == nil || p.literal == "" {
		return pattern{}, fmt.Errorf("%w: %q", ErrUnsupportedFilter, filter)
	}
	if m[1] != "" {
		p.tailCount, _ = strconv.Atoi(m[1])
	}
	if p.plus && p.leadWild {
		return pattern{}, fmt.Errorf("%w: %q", ErrUnsupportedFilter, filter)
	}
	return p, nil
}

// check reports whether a filter can be completed with n typed digits.
func (p pattern) check(n int) error {
	if p.tailCount != 0 && p.tailCount != n {
		return fmt.Errorf("%w: it leaves %d digits open, the user types %d", ErrUnsupportedFilter, p.tailCount, n)
	}
	return nil
}

// complete returns the full calling number the filter and the typed digits
// describe, in E.164. When the filter leaves the front open (a leading
// wildcard and no "+"), the literal is taken as the national part and the
// country code is the called number's: flash-call pools call from numbers
// of the destination's country, and the handset shows them nationally or
// internationally, which is what the wildcard allows.
func (p pattern) complete(dest, digits string) (string, error) {
	if err := p.check(len(digits)); err != nil {
		return "", err
	}
	full := "+" + p.literal + digits
	if p.leadWild && !p.plus {
		cc := phone.CountryCode(dest)
		if cc == "" {
			return "", fmt.Errorf("%w: destination has no country code", ErrUnsupportedFilter)
		}
		full = "+" + cc + p.literal + digits
	}
	if !phone.Valid(full) {
		return "", errNoMatch
	}
	if p.re != nil && !p.re.MatchString(full) && !p.re.MatchString(full[1:]) {
		return "", errNoMatch
	}
	return full, nil
}
