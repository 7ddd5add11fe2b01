package policies

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ErrInvalidPolicy is wrapped by every error Parse, Load and Compile return
// for a policy that must not be used. The message names the rule (index and
// name) and the field at fault.
var ErrInvalidPolicy = errors.New("policies: invalid policy")

// maxPolicyBytes bounds a policy file, so a wrong path (a log file, a
// device) cannot exhaust memory.
const maxPolicyBytes = 1 << 20

// File is the policy file as written in YAML. It is the source form: Compile
// turns it into a Policy, which is what the middleware evaluates.
//
// The model is meant to grow (who must enrol at login, trusted devices):
// new top-level keys and new rule fields are added here, and because
// parsing is strict an older binary refuses a file using a newer field
// instead of silently ignoring a requirement.
type File struct {
	// Levels are the acr values this deployment knows, weakest first
	// (Keycloak's password login gives "1"). A token acr that is not listed
	// ranks below every level.
	Levels []string `yaml:"levels"`
	// Rules are tried in order; the first whose match selects the request
	// decides it.
	Rules []RuleSpec `yaml:"rules"`
	// Default decides requests no rule selects: "deny" (403) or "allow"
	// (any valid token passes). Required: there is no implicit default.
	Default string `yaml:"default"`
}

// RuleSpec is one rule as written in YAML.
type RuleSpec struct {
	// Name identifies the rule in errors, logs, metrics and the X-Auth-Rule
	// header. Optional but recommended; names must be unique.
	Name string `yaml:"name"`
	// Match selects the requests the rule decides.
	Match MatchSpec `yaml:"match"`
	// Require is what a token must show for a selected request.
	Require RequireSpec `yaml:"require"`
}

// MatchSpec selects requests. Every non-empty list must match (AND across
// lists, OR within a list); an empty list matches anything.
type MatchSpec struct {
	// Methods are HTTP methods, case-insensitive (GET, POST, ...).
	Methods []string `yaml:"methods"`
	// Paths are patterns over the cleaned request path: "/api/profile/**".
	// A segment "*" matches exactly one non-empty segment, "**" any number
	// of segments (zero included, so "/a/**" matches "/a"); other segments
	// match literally and case-sensitively.
	Paths []string `yaml:"paths"`
	// Hosts are request hosts, case-insensitive, without port; a leading
	// "*." matches one or more labels ("*.example.com" matches
	// "api.example.com" but not "example.com").
	Hosts []string `yaml:"hosts"`
	// Scopes do NOT select the request. Once the rule is selected by
	// methods, paths and hosts, the token must carry at least one of these
	// scopes, or the answer is 403 insufficient_scope. Selecting by scope
	// would let a token lacking the scope fall through to a weaker rule.
	Scopes []string `yaml:"scopes"`
}

// RequireSpec is what a token must show for a request the rule selected.
type RequireSpec struct {
	// ACR is the least level (one of File.Levels). Empty means any valid
	// token (then MaxAge and Factors must be empty too).
	ACR string `yaml:"acr"`
	// MaxAge is how recent the authentication at that level must be: a Go
	// duration ("5m") or whole seconds (300). For a step-up entry it is
	// measured from the entry's iat, for Keycloak's own acr from auth_time.
	// Zero means no freshness requirement. Whole seconds only, because
	// RFC 9470's max_age is in seconds.
	MaxAge Duration `yaml:"max_age"`
	// Factors, if set, are the amr methods accepted: an authentication
	// counts only if its amr names one of them.
	Factors []string `yaml:"factors"`
	// TrustedDevice says whether a level obtained at a login that skipped
	// the second factor thanks to a trusted device (a step-up entry whose
	// amr names AMRTrustedDevice) counts for this rule. Absent or true: it
	// counts like any factor. false: only a freshly proven factor counts
	// (payment changes, factor management); the client steps up. Needs
	// require.acr.
	TrustedDevice *bool `yaml:"trusted_device"`
}

// Duration is a time.Duration that reads from YAML either as a Go duration
// string ("5m", "90s") or as an integer number of seconds (300).
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration like 5m or a number of seconds", n.Line)
	}
	v, err := parseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	if secs, err := strconv.ParseInt(s, 10, 64); err == nil {
		if secs < 0 || secs > math.MaxInt64/int64(time.Second) {
			return 0, fmt.Errorf("%d seconds out of range", secs)
		}
		return time.Duration(secs) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is neither a duration like 5m nor a number of seconds", s)
	}
	return d, nil
}

// MarshalYAML implements yaml.Marshaler, writing a Go duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Parse reads a policy file strictly (unknown fields and trailing documents
// are errors) and compiles it.
func Parse(data []byte) (*Policy, error) {
	f, err := decodeFile(data)
	if err != nil {
		return nil, err
	}
	return Compile(f)
}

func decodeFile(data []byte) (File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return File{}, fmt.Errorf("%w: empty file", ErrInvalidPolicy)
		}
		return File{}, fmt.Errorf("%w: %v", ErrInvalidPolicy, err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return File{}, fmt.Errorf("%w: more than one YAML document", ErrInvalidPolicy)
	}
	return f, nil
}

// Load reads and parses the policy file at path.
func Load(path string) (*Policy, error) {
	data, err := readPolicyFile(path)
	if err != nil {
		return nil, err
	}
	p, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

func readPolicyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("policies: reading policy: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPolicyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("policies: reading %s: %w", path, err)
	}
	if len(data) > maxPolicyBytes {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrInvalidPolicy, path, maxPolicyBytes)
	}
	return data, nil
}

// AMRTrustedDevice is the amr value of a step-up entry written for a login
// that skipped the second factor because the device was trusted
// (internal/devices). A rule with require.trusted_device: false ignores
// such entries.
const AMRTrustedDevice = "trusted_device"

// Known amr values accepted in require.factors: the bridge's own factors
// and the values Keycloak's AMR mapper and RFC 8176 use.
var knownFactors = []string{
	// stepup-bridge factors, and the marker of a login that skipped the
	// factor on a trusted device
	"totp", "hotp", "pin", "backup_code", "flash_call", "sms", "email", AMRTrustedDevice,
	// RFC 8176 and Keycloak's AMR mapper
	"pwd", "otp", "hwk", "swk", "mfa", "mca", "sc", "kba", "fpt", "face", "iris",
	"retina", "vbm", "geo", "tel", "user", "rba", "wia", "webauthn", "passkey",
}

// KnownFactors returns the amr values require.factors accepts. The caller
// owns the returned slice.
func KnownFactors() []string { return slices.Clone(knownFactors) }

var knownMethods = []string{
	"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
}

// Compile validates f and builds the Policy the middleware evaluates. All
// problems are reported at once (joined), each naming the rule by index and
// name and the field, e.g.
//
//	policies: invalid policy: rules[2] "profile-writes": require.acr: "3" is not in levels
func Compile(f File) (*Policy, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidPolicy}, args...)...))
	}
	p := &Policy{levels: make(map[string]int, len(f.Levels)), src: f}
	if len(f.Levels) == 0 {
		bad("levels: at least one level is required")
	}
	for i, l := range f.Levels {
		switch {
		case l == "":
			bad("levels[%d]: empty", i)
		case !validToken(l):
			bad("levels[%d]: %q has characters not allowed in acr_values", i, l)
		default:
			if _, dup := p.levels[l]; dup {
				bad("levels[%d]: %q listed twice", i, l)
			}
			p.levels[l] = i
		}
	}
	p.levelNames = slices.Clone(f.Levels)
	switch f.Default {
	case "deny":
	case "allow":
		p.defaultAllow = true
	case "":
		bad("default: required (deny or allow)")
	default:
		bad("default: %q, want deny or allow", f.Default)
	}
	names := map[string]int{}
	for i, rs := range f.Rules {
		where := fmt.Sprintf("rules[%d]", i)
		if rs.Name != "" {
			where = fmt.Sprintf("rules[%d] %q", i, rs.Name)
			if j, dup := names[rs.Name]; dup {
				bad("%s: name: already used by rules[%d]", where, j)
			}
			names[rs.Name] = i
		}
		r, rerrs := compileRule(i, rs, p.levels)
		for _, e := range rerrs {
			bad("%s: %s", where, e)
		}
		p.rules = append(p.rules, r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

func compileRule(index int, rs RuleSpec, levels map[string]int) (*Rule, []string) {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	r := &Rule{Index: index, Name: rs.Name, label: rs.Name, level: -1}
	if r.label == "" {
		r.label = "#" + strconv.Itoa(index)
	}
	for i, m := range rs.Match.Methods {
		mu := strings.ToUpper(strings.TrimSpace(m))
		if !slices.Contains(knownMethods, mu) {
			bad("match.methods[%d]: %q is not an HTTP method", i, m)
			continue
		}
		if !slices.Contains(r.methods, mu) {
			r.methods = append(r.methods, mu)
		}
	}
	for i, s := range rs.Match.Paths {
		pat, err := compilePath(s)
		if err != nil {
			bad("match.paths[%d]: %v", i, err)
			continue
		}
		r.paths = append(r.paths, pat)
	}
	for i, h := range rs.Match.Hosts {
		hp, err := compileHost(h)
		if err != nil {
			bad("match.hosts[%d]: %v", i, err)
			continue
		}
		r.hosts = append(r.hosts, hp)
	}
	for i, s := range rs.Match.Scopes {
		if s == "" || !validScopeToken(s) {
			bad("match.scopes[%d]: %q is not a valid scope token", i, s)
			continue
		}
		r.scopes = append(r.scopes, s)
	}
	req := rs.Require
	if req.ACR != "" {
		lvl, ok := levels[req.ACR]
		if !ok {
			bad("require.acr: %q is not in levels", req.ACR)
		}
		r.acr, r.level = req.ACR, lvl
	}
	maxAge := time.Duration(req.MaxAge)
	switch {
	case maxAge < 0:
		bad("require.max_age: negative")
	case maxAge%time.Second != 0:
		bad("require.max_age: %s is not a whole number of seconds", maxAge)
	case maxAge > 0 && req.ACR == "":
		bad("require.max_age: needs require.acr")
	}
	r.maxAge = maxAge
	if len(req.Factors) > 0 && req.ACR == "" {
		bad("require.factors: needs require.acr")
	}
	for i, f := range req.Factors {
		if !slices.Contains(knownFactors, f) {
			bad("require.factors[%d]: unknown factor %q (known: %s)", i, f, strings.Join(knownFactors, ", "))
			continue
		}
		if !slices.Contains(r.factors, f) {
			r.factors = append(r.factors, f)
		}
	}
	if req.TrustedDevice != nil && !*req.TrustedDevice {
		switch {
		case req.ACR == "":
			bad("require.trusted_device: false needs require.acr")
		case slices.Contains(r.factors, AMRTrustedDevice):
			bad("require.trusted_device: false contradicts require.factors listing %s", AMRTrustedDevice)
		}
		r.freshFactorOnly = true
	}
	return r, errs
}

// validToken reports whether s may appear in a quoted WWW-Authenticate
// parameter without escaping and is a single acr value (RFC 6750 NQSCHAR
// minus space).
func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return s != ""
}

// validScopeToken: RFC 6749 scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
func validScopeToken(s string) bool { return validToken(s) }
