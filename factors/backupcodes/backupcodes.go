// Package backupcodes implements backup codes: a set of single-use codes a
// user prints or stores, for when the other factors are out of reach.
//
// A code is 10 characters of Crockford base32 (0-9, A-Z without I, L, O,
// U), 50 random bits, shown grouped as XXXXX-XXXXX. Input is normalised:
// case, spaces and dashes do not matter, and the look-alikes I, L (-> 1)
// and O (-> 0) are read as Crockford reads them.
//
// At rest a set is ONE credential whose Data holds, per code, a random
// 16-byte salt, HMAC-SHA-256(pepper, salt || normalised code) and the time
// it was used; nothing else. The pepper is a server secret, so the database
// alone does not allow an offline search of the 2^50 codes, and checking a
// set of 10 costs microseconds.
//
// Verify compares the MAC against every code of the set in constant time,
// without an early exit that would tell which position matched, then
// consumes the code through store.Credentials.UpdateCredential, whose
// updater re-checks that it is still unused: of concurrent verifications of
// one code, across replicas, exactly one succeeds and the others get
// factors.ErrReplay.
package backupcodes

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode"

	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/internal/keyring"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// Capabilities.
var (
	_ factors.Factor   = (*Factor)(nil)
	_ factors.Enroller = (*Factor)(nil)
	_ factors.Resetter = (*Factor)(nil)
)

const (
	// Alphabet is Crockford's base32 alphabet: no I, L, O, U.
	Alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	// CodeLength is the number of characters of a code (50 bits).
	CodeLength = 10
	// maxInput bounds what Normalize reads, so a huge input costs nothing.
	maxInput = 64
	saltSize = 16
)

// Config tunes the factor. Zero values mean the documented defaults.
type Config struct {
	// Count of codes per set. Defaults to 10.
	Count int
	// LowWatermark: at or below this many unused codes Status reports Low.
	// Defaults to 3.
	LowWatermark int
	// Level is the acr value a success grants. Defaults to "2".
	Level string
	// Label of new credentials. Defaults to "Backup codes".
	Label string
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Rand is the source of codes and salts. Defaults to crypto/rand.
	Rand io.Reader
}

// Factor is the backup-code factor. Safe for concurrent use.
type Factor struct {
	cfg    Config
	creds  store.Credentials
	pepper *keyring.Pepper
}

// New returns the factor. creds and pepper are required.
func New(cfg Config, creds store.Credentials, pepper *keyring.Pepper) (*Factor, error) {
	if creds == nil || pepper == nil {
		return nil, errors.New("backupcodes: credentials store and pepper are required")
	}
	if cfg.Count == 0 {
		cfg.Count = 10
	}
	if cfg.Count < 1 || cfg.Count > 100 {
		return nil, fmt.Errorf("backupcodes: count %d is outside 1..100", cfg.Count)
	}
	if cfg.LowWatermark == 0 {
		cfg.LowWatermark = 3
	}
	if cfg.Level == "" {
		cfg.Level = "2"
	}
	if cfg.Label == "" {
		cfg.Label = "Backup codes"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	return &Factor{cfg: cfg, creds: creds, pepper: pepper}, nil
}

// Name is factors.BackupCode.
func (f *Factor) Name() string { return factors.BackupCode }

// storedSet is the credential's Data.
type storedSet struct {
	Codes []storedCode `json:"codes"`
}

type storedCode struct {
	Salt   []byte    `json:"salt"`
	MAC    []byte    `json:"mac"`
	UsedAt time.Time `json:"used_at,omitzero"`
}

func decode(data []byte) (storedSet, error) {
	var s storedSet
	if err := json.Unmarshal(data, &s); err != nil {
		return storedSet{}, fmt.Errorf("backupcodes: decoding stored set: %w", err)
	}
	for i, c := range s.Codes {
		if len(c.Salt) != saltSize || len(c.MAC) != 32 {
			return storedSet{}, fmt.Errorf("backupcodes: stored code %d is malformed", i)
		}
	}
	return s, nil
}

func (s storedSet) remaining() int {
	n := 0
	for _, c := range s.Codes {
		if c.UsedAt.IsZero() {
			n++
		}
	}
	return n
}

// Normalize turns user input into the canonical 10-character code: it
// drops spaces and dashes, upper-cases, maps I and L to 1 and O to 0, and
// reports false for anything else that is not in Alphabet or for the wrong
// length.
func Normalize(input string) (string, bool) {
	if len(input) > maxInput {
		return "", false
	}
	var out [CodeLength]byte
	n := 0
	for _, r := range input {
		if unicode.IsSpace(r) || unicode.Is(unicode.Pd, r) {
			continue
		}
		if r >= 'a' && r <= 'z' {
			r -= 'a' - 'A'
		}
		switch r {
		case 'I', 'L':
			r = '1'
		case 'O':
			r = '0'
		}
		if r > unicode.MaxASCII || !isAlphabet(byte(r)) || n == CodeLength {
			return "", false
		}
		out[n] = byte(r)
		n++
	}
	if n != CodeLength {
		return "", false
	}
	return string(out[:]), true
}

func isAlphabet(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z' && c != 'I' && c != 'L' && c != 'O' && c != 'U')
}

// Format groups a normalised code for display: XXXXX-XXXXX.
func Format(code string) string {
	if len(code) != CodeLength {
		return code
	}
	return code[:5] + "-" + code[5:]
}

// newSet draws n codes and their salts and returns the codes formatted for
// display together with the Data to store.
func (f *Factor) newSet(n int) ([]string, []byte, error) {
	codes := make([]string, n)
	set := storedSet{Codes: make([]storedCode, n)}
	raw := make([]byte, CodeLength)
	for i := range n {
		if _, err := io.ReadFull(f.cfg.Rand, raw); err != nil {
			return nil, nil, fmt.Errorf("backupcodes: reading randomness: %w", err)
		}
		code := make([]byte, CodeLength)
		for j, b := range raw {
			// 256 is a multiple of 32: masking to 5 bits is unbiased.
			code[j] = Alphabet[b&31]
		}
		salt := make([]byte, saltSize)
		if _, err := io.ReadFull(f.cfg.Rand, salt); err != nil {
			return nil, nil, fmt.Errorf("backupcodes: reading randomness: %w", err)
		}
		set.Codes[i] = storedCode{Salt: salt, MAC: f.pepper.MAC(salt, code)}
		codes[i] = Format(string(code))
	}
	data, err := json.Marshal(set)
	if err != nil {
		return nil, nil, fmt.Errorf("backupcodes: encoding set: %w", err)
	}
	return codes, data, nil
}

// Generate creates a new set of Count codes for userID, replacing any
// previous set atomically (one row update: the old codes stop working in
// the same transaction the new ones start). It returns the codes formatted
// for display, to show exactly once.
func (f *Factor) Generate(ctx context.Context, userID string) (codes []string, credentialID string, replaced bool, err error) {
	codes, data, err := f.newSet(f.cfg.Count)
	if err != nil {
		return nil, "", false, err
	}
	id := factors.CredentialID(factors.BackupCode, userID)
	replace := func(c store.Credential) (store.Credential, error) {
		c.Data = data
		c.Status = store.StatusActive
		c.UpdatedAt = f.cfg.Now()
		c.Failures = 0
		c.LockedUntil = time.Time{}
		return c, nil
	}
	// Two tries: a concurrent first generation may create the row between
	// our update and our create.
	for range 2 {
		_, err = f.creds.UpdateCredential(ctx, id, replace)
		if err == nil {
			return codes, id, true, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, "", false, fmt.Errorf("backupcodes: replacing set of %s: %w", userID, err)
		}
		now := f.cfg.Now()
		err = f.creds.CreateCredential(ctx, store.Credential{
			ID: id, UserID: userID, Factor: factors.BackupCode, Status: store.StatusActive,
			Label: f.cfg.Label, Data: data, CreatedAt: now, UpdatedAt: now,
		})
		if err == nil {
			return codes, id, false, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return nil, "", false, fmt.Errorf("backupcodes: storing set of %s: %w", userID, err)
		}
	}
	return nil, "", false, fmt.Errorf("backupcodes: storing set of %s: %w", userID, err)
}

// BeginEnrolment generates (or regenerates) the set; see Generate. The set
// is active at once. req is not used.
func (f *Factor) BeginEnrolment(ctx context.Context, userID string, _ factors.EnrolRequest) (factors.Enrolment, error) {
	codes, id, replaced, err := f.Generate(ctx, userID)
	if err != nil {
		return factors.Enrolment{}, err
	}
	return factors.Enrolment{Factor: factors.BackupCode, CredentialID: id, Codes: codes, Replaced: replaced}, nil
}

// ConfirmEnrolment has nothing to confirm: a set is active when generated.
// It returns factors.ErrAlreadyEnrolled, or factors.ErrNotEnrolled when
// there is no set.
func (f *Factor) ConfirmEnrolment(ctx context.Context, userID, _ string) (factors.Result, error) {
	if _, err := f.load(ctx, userID); err != nil {
		return factors.Result{}, err
	}
	return factors.Result{}, fmt.Errorf("backupcodes: set is active when generated: %w", factors.ErrAlreadyEnrolled)
}

func (f *Factor) load(ctx context.Context, userID string) (store.Credential, error) {
	c, err := f.creds.GetCredential(ctx, factors.CredentialID(factors.BackupCode, userID))
	if errors.Is(err, store.ErrNotFound) {
		return store.Credential{}, fmt.Errorf("backupcodes: %s has no set: %w", userID, factors.ErrNotEnrolled)
	}
	if err != nil {
		return store.Credential{}, fmt.Errorf("backupcodes: loading set of %s: %w", userID, err)
	}
	return c, nil
}

// match returns the position of the code whose MAC equals the MAC of norm,
// looking at every code in constant time, and whether any matched.
func (f *Factor) match(set storedSet, norm string) (pos int, ok bool) {
	found := 0
	for i, c := range set.Codes {
		eq := subtle.ConstantTimeCompare(f.pepper.MAC(c.Salt, []byte(norm)), c.MAC)
		pos = subtle.ConstantTimeSelect(eq, i, pos)
		found |= eq
	}
	return pos, found == 1
}

// Verify checks code against userID's set and consumes it. A code of the
// set that was already used gives factors.ErrReplay; a malformed or unknown
// code factors.ErrInvalidCode.
func (f *Factor) Verify(ctx context.Context, userID, code string) (factors.Result, error) {
	norm, ok := Normalize(code)
	if !ok {
		return factors.Result{}, fmt.Errorf("backupcodes: malformed code: %w", factors.ErrInvalidCode)
	}
	c, err := f.load(ctx, userID)
	if err != nil {
		return factors.Result{}, err
	}
	set, err := decode(c.Data)
	if err != nil {
		return factors.Result{}, err
	}
	pos, ok := f.match(set, norm)
	if !ok {
		return factors.Result{}, fmt.Errorf("backupcodes: no such code: %w", factors.ErrInvalidCode)
	}
	if !set.Codes[pos].UsedAt.IsZero() {
		return factors.Result{}, fmt.Errorf("backupcodes: code used before: %w", factors.ErrReplay)
	}
	want := set.Codes[pos].MAC
	now := f.cfg.Now()
	_, err = f.creds.UpdateCredential(ctx, c.ID, func(c store.Credential) (store.Credential, error) {
		cur, err := decode(c.Data)
		if err != nil {
			return c, err
		}
		// The set may have been regenerated since we read it.
		if pos >= len(cur.Codes) || subtle.ConstantTimeCompare(cur.Codes[pos].MAC, want) != 1 {
			return c, fmt.Errorf("backupcodes: set replaced meanwhile: %w", factors.ErrInvalidCode)
		}
		if !cur.Codes[pos].UsedAt.IsZero() {
			return c, fmt.Errorf("backupcodes: code used concurrently: %w", factors.ErrReplay)
		}
		cur.Codes[pos].UsedAt = now
		data, err := json.Marshal(cur)
		if err != nil {
			return c, fmt.Errorf("backupcodes: encoding set: %w", err)
		}
		c.Data = data
		c.LastUsedAt = now
		c.UpdatedAt = now
		return c, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return factors.Result{}, fmt.Errorf("backupcodes: set removed meanwhile: %w", factors.ErrNotEnrolled)
	}
	if err != nil {
		if errors.Is(err, factors.ErrInvalidCode) || errors.Is(err, factors.ErrReplay) {
			return factors.Result{}, err
		}
		return factors.Result{}, fmt.Errorf("backupcodes: consuming code of %s: %w", userID, err)
	}
	return factors.Result{Method: factors.BackupCode, Level: f.cfg.Level, At: now, CredentialID: c.ID}, nil
}

// Status reports the set: active while codes remain (StateExhausted when
// none does), the number remaining and Low at or below the watermark.
func (f *Factor) Status(ctx context.Context, userID string) (factors.Status, error) {
	st := factors.Status{Factor: factors.BackupCode, State: factors.StateNone}
	c, err := f.load(ctx, userID)
	if errors.Is(err, factors.ErrNotEnrolled) {
		return st, nil
	}
	if err != nil {
		return factors.Status{}, err
	}
	set, err := decode(c.Data)
	if err != nil {
		return factors.Status{}, err
	}
	n := set.remaining()
	st.State = factors.StateActive
	if n == 0 {
		st.State = factors.StateExhausted
	}
	st.CredentialID, st.Label = c.ID, c.Label
	st.CreatedAt, st.LastUsedAt = c.CreatedAt, c.LastUsedAt
	st.Remaining = &n
	st.Low = n <= f.cfg.LowWatermark
	return st, nil
}

// Reset removes userID's set. See factors.Resetter for who may call it.
func (f *Factor) Reset(ctx context.Context, userID string) error {
	err := f.creds.DeleteCredential(ctx, factors.CredentialID(factors.BackupCode, userID))
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("backupcodes: %s has no set: %w", userID, factors.ErrNotEnrolled)
	}
	if err != nil {
		return fmt.Errorf("backupcodes: removing set of %s: %w", userID, err)
	}
	return nil
}
