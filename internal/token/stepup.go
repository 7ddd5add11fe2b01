package token

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// MaxEntryLen is the longest marshalled entry Keycloak stores without a
// length validator on the attribute (2048 characters); the bridge refuses
// to write longer values.
const MaxEntryLen = 2048

// ErrInvalidEntry is wrapped by ParseStepUpEntry and StepUpEntry.Validate
// for an entry that must not be trusted or written.
var ErrInvalidEntry = errors.New("token: invalid step-up entry")

// StepUpEntry is one step-up proof, stored as one value of the step-up user
// attribute and carried in access tokens by the attribute mapper:
//
//	{"sid":"<keycloak session id>","acr":"2","amr":["pin"],"iat":1700000000,"exp":1700003600}
//
// An entry counts only for the session it names (SID), only until EXP, and
// a policy's max_age is measured from IAT. Times are Unix seconds.
type StepUpEntry struct {
	// SID is the Keycloak session id (the token's sid) the step-up belongs to.
	SID string `json:"sid"`
	// ACR is the level the step-up reached.
	ACR string `json:"acr"`
	// AMR lists the methods used (factor names: "pin", "totp", ...).
	AMR []string `json:"amr"`
	// IAT is when the step-up happened, Unix seconds.
	IAT int64 `json:"iat"`
	// EXP is when the entry stops counting, Unix seconds.
	EXP int64 `json:"exp"`
}

// Marshal returns the compact JSON of e, as stored in Keycloak. It is always
// valid JSON (a nil AMR is written as []; invalid UTF-8 in strings is
// replaced by json.Marshal), which matters because a value that is not
// valid JSON makes every token request of that user fail in Keycloak.
// Marshal does not check the fields: call Validate before writing.
func (e StepUpEntry) Marshal() string {
	if e.AMR == nil {
		e.AMR = []string{}
	}
	b, err := json.Marshal(e)
	if err != nil {
		// Unreachable: the struct holds only strings and integers.
		return "{}"
	}
	return string(b)
}

// Validate reports whether e is fit to be written and trusted: SID and ACR
// set, IAT and EXP positive with IAT < EXP, AMR entries non-empty, and the
// marshalled form at most MaxEntryLen.
func (e StepUpEntry) Validate() error {
	switch {
	case e.SID == "":
		return fmt.Errorf("%w: sid missing", ErrInvalidEntry)
	case e.ACR == "":
		return fmt.Errorf("%w: acr missing", ErrInvalidEntry)
	case e.IAT <= 0:
		return fmt.Errorf("%w: iat missing", ErrInvalidEntry)
	case e.EXP <= 0:
		return fmt.Errorf("%w: exp missing", ErrInvalidEntry)
	case e.EXP <= e.IAT:
		return fmt.Errorf("%w: exp %d not after iat %d", ErrInvalidEntry, e.EXP, e.IAT)
	}
	for _, m := range e.AMR {
		if m == "" {
			return fmt.Errorf("%w: empty amr value", ErrInvalidEntry)
		}
	}
	if n := len(e.Marshal()); n > MaxEntryLen {
		return fmt.Errorf("%w: %d characters, at most %d", ErrInvalidEntry, n, MaxEntryLen)
	}
	return nil
}

// Expired reports whether e no longer counts at now (now >= EXP).
func (e StepUpEntry) Expired(now time.Time) bool {
	return now.Unix() >= e.EXP
}

// ParseStepUpEntry parses one stored value. It is strict about types and
// lenient about extra fields: sid and acr must be strings, amr an array of
// strings (or absent), iat and exp integral numbers; the result must pass
// Validate. Anything else is an error wrapping ErrInvalidEntry.
func ParseStepUpEntry(s string) (StepUpEntry, error) {
	return parseEntryJSON([]byte(s))
}

func parseEntryJSON(b []byte) (StepUpEntry, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil || fields == nil {
		return StepUpEntry{}, fmt.Errorf("%w: not a JSON object", ErrInvalidEntry)
	}
	var e StepUpEntry
	var err error
	if e.SID, err = stringField(fields, "sid"); err != nil {
		return StepUpEntry{}, err
	}
	if e.ACR, err = stringField(fields, "acr"); err != nil {
		return StepUpEntry{}, err
	}
	if raw, ok := fields["amr"]; ok && !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		if err := json.Unmarshal(raw, &e.AMR); err != nil {
			return StepUpEntry{}, fmt.Errorf("%w: amr is not an array of strings", ErrInvalidEntry)
		}
	}
	if e.IAT, err = intField(fields, "iat"); err != nil {
		return StepUpEntry{}, err
	}
	if e.EXP, err = intField(fields, "exp"); err != nil {
		return StepUpEntry{}, err
	}
	if err := e.Validate(); err != nil {
		return StepUpEntry{}, err
	}
	return e, nil
}

func stringField(fields map[string]json.RawMessage, name string) (string, error) {
	raw, ok := fields[name]
	if !ok {
		return "", fmt.Errorf("%w: %s missing", ErrInvalidEntry, name)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%w: %s is not a string", ErrInvalidEntry, name)
	}
	return s, nil
}

func intField(fields map[string]json.RawMessage, name string) (int64, error) {
	raw, ok := fields[name]
	if !ok {
		return 0, fmt.Errorf("%w: %s missing", ErrInvalidEntry, name)
	}
	n, ok := numericDate(raw)
	if !ok {
		return 0, fmt.Errorf("%w: %s is not an integral number", ErrInvalidEntry, name)
	}
	return n, nil
}

// numericDate reads a JSON number that is integral (1700000000 or
// 1.7e9) and fits in an int64.
func numericDate(raw json.RawMessage) (int64, bool) {
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, false
	}
	if i, err := n.Int64(); err == nil {
		return i, true
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f) || f > 1<<62 || f < -(1<<62) {
		return 0, false
	}
	return int64(f), true
}

// ParseStepUpClaim reads the step-up entries from a decoded claim value, as
// encoding/json produces it. Keycloak's JSON mapper with multivalued on
// gives an array of objects; a single object, strings holding JSON, and
// arrays mixing both are tolerated too. Malformed entries are ignored,
// never trusted; nil and unknown shapes give no entries.
func ParseStepUpClaim(v any) []StepUpEntry {
	var out []StepUpEntry
	add := func(x any) {
		var b []byte
		switch t := x.(type) {
		case string:
			b = []byte(t)
		case map[string]any:
			var err error
			if b, err = json.Marshal(t); err != nil {
				return
			}
		default:
			return
		}
		if e, err := parseEntryJSON(b); err == nil {
			out = append(out, e)
		}
	}
	switch t := v.(type) {
	case []any:
		for _, x := range t {
			add(x)
		}
	case string:
		s := strings.TrimSpace(t)
		if strings.HasPrefix(s, "[") {
			var arr []any
			if err := json.Unmarshal([]byte(s), &arr); err == nil {
				for _, x := range arr {
					add(x)
				}
			}
			return out
		}
		add(t)
	default:
		add(t)
	}
	return out
}

// ParseStepUpValues parses attribute values as read from Keycloak's admin
// API (one compact JSON object each) and returns the valid entries and the
// number of values dropped because they did not parse. Dropped values must
// never be written back: Keycloak fails every token request of a user with
// an attribute value that is not valid JSON.
func ParseStepUpValues(values []string) (entries []StepUpEntry, dropped int) {
	for _, s := range values {
		e, err := ParseStepUpEntry(s)
		if err != nil {
			dropped++
			continue
		}
		entries = append(entries, e)
	}
	return entries, dropped
}

// PruneEntries drops the entries expired at now, removes exact duplicates,
// and keeps the newest max (by IAT, then EXP); max <= 0 keeps every
// unexpired entry. The result is ordered oldest first and is a new slice:
// entries is not modified.
func PruneEntries(entries []StepUpEntry, now time.Time, max int) []StepUpEntry {
	out := make([]StepUpEntry, 0, len(entries))
	seen := make(map[string]bool, len(entries))
	for _, e := range entries {
		if e.Expired(now) {
			continue
		}
		k := e.Marshal()
		if seen[k] {
			continue
		}
		seen[k] = true
		e.AMR = append([]string(nil), e.AMR...)
		out = append(out, e)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].IAT != out[j].IAT {
			return out[i].IAT < out[j].IAT
		}
		return out[i].EXP < out[j].EXP
	})
	if max > 0 && len(out) > max {
		out = out[len(out)-max:]
	}
	return out
}
