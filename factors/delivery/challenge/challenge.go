// Package challenge keeps the state of a delivered challenge (a flash call,
// an SMS or an e-mail code) with the user's credential, and enforces its
// rules, the same for every delivering factor:
//
//   - A Challenge while an earlier one is still open (not expired, not used,
//     attempts left) and within the cool-down returns the same Delivery and
//     sends nothing: a page refresh never buys a second paid call. After the
//     cool-down a new code is sent, and the earlier codes of the challenge
//     stay valid until they expire.
//   - Every send counts against a per-user and a per-destination budget in
//     store.Counters (fixed one-hour windows), before anything is sent.
//   - Codes are kept only as HMAC-SHA-256 under the server pepper (with a
//     random salt each) inside the credential's record, which is encrypted
//     at rest with the keyring; comparison is constant time.
//   - A challenge takes at most MaxAttempts answers, counted atomically
//     before the code is looked at, and is consumed by the first right one.
//   - A provider failure leaves the challenge as it was before the call.
//   - A restricted factor (flash call, SMS: PSTN channels) is never a user's
//     only factor: enrolment, challenge and verification are refused while
//     the user has no active factor outside the restricted set.
//
// The factor packages (flashcall, otpcode) build an Engine with a Deliverer
// that knows their provider, and expose its methods as factors.Challenger
// and factors.Enroller.
package challenge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/factors/delivery"
	"github.com/stepup-bridge/stepup-bridge/internal/keyring"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// Errors callers branch on. Each is returned wrapped together with the
// factors sentinel that decides its HTTP status and failure-budget
// treatment (ErrInvalidCode, ErrInvalidInput).
var (
	// ErrNoChallenge: no code was sent, or every code sent has expired.
	// Comes with factors.ErrInvalidCode.
	ErrNoChallenge = errors.New("challenge: no open challenge, request a new code")
	// ErrAttemptsSpent: the challenge took all its attempts; a new one must
	// be requested. Comes with factors.ErrInvalidCode.
	ErrAttemptsSpent = errors.New("challenge: no attempts left, request a new code")
	// ErrNeedsOtherFactor: a restricted factor (flash call, SMS) cannot be
	// a user's only factor. Comes with a *factors.InputError.
	ErrNeedsOtherFactor = errors.New("challenge: this factor needs another active factor first")
)

// Restricted are the factors that are never offered first: the public
// telephone network is a restricted authenticator (NIST SP 800-63B 5.1.3.3).
var restricted = []string{factors.FlashCall, factors.SMS}

// IsRestricted reports whether factor is never offered first.
func IsRestricted(factor string) bool { return slices.Contains(restricted, factor) }

// ActiveLister tells which factors of a user are active.
// *factors.Registry satisfies it.
type ActiveLister interface {
	Active(ctx context.Context, userID string) ([]string, error)
}

// ActiveFunc adapts a function to ActiveLister, for wiring a factor before
// the Registry that lists it exists:
//
//	var reg *factors.Registry
//	others := challenge.ActiveFunc(func(ctx context.Context, u string) ([]string, error) { return reg.Active(ctx, u) })
type ActiveFunc func(ctx context.Context, userID string) ([]string, error)

// Active implements ActiveLister.
func (f ActiveFunc) Active(ctx context.Context, userID string) ([]string, error) {
	return f(ctx, userID)
}

// Sent is what a Deliverer delivered: either a code known here (hashed by
// the Engine, never stored) or a provider reference checked remotely.
type Sent struct {
	// Code is the code the user will type, when it is known here.
	Code string
	// CallID and CLIFilter identify a flash call whose code only the
	// provider can confirm (Code empty).
	CallID    string
	CLIFilter string
}

// Remote is a delivered code the provider must confirm.
type Remote struct {
	CallID    string
	CLIFilter string
}

// Deliverer sends codes for one factor.
type Deliverer interface {
	// Provider names the provider for metrics.
	Provider() string
	// Deliver sends a new code to dest. Errors should be
	// *delivery.ProviderError.
	Deliver(ctx context.Context, dest string) (Sent, error)
	// CheckRemote asks the provider whether code answers r (sent to dest).
	// Only called for codes delivered without Code. A false result with a
	// nil error is a wrong code.
	CheckRemote(ctx context.Context, r Remote, dest, code string) (bool, error)
}

// Config configures New. Every field without a default is required.
type Config struct {
	// Factor is the factor name; Channel the delivery channel.
	Factor, Channel string
	// Level is the acr a success grants. Defaults to "2".
	Level string
	// CodeLength is how many digits the user types.
	CodeLength int
	// TTL of one delivered code.
	TTL time.Duration
	// Cooldown is the least time between two sends of one challenge.
	Cooldown time.Duration
	// MaxAttempts per challenge.
	MaxAttempts int
	// SendsPerUserPerHour and SendsPerDestinationPerHour cap sends.
	SendsPerUserPerHour, SendsPerDestinationPerHour int
	// Others lists a user's active factors; required when Factor is
	// restricted (IsRestricted).
	Others ActiveLister
	// Credentials keep the records; Counters the send budgets.
	Credentials store.Credentials
	Counters    store.Counters
	// Keyring encrypts records; Pepper keys the code hashes.
	Keyring *keyring.Keyring
	Pepper  *keyring.Pepper
	// Normalize checks and normalises a destination given at enrolment;
	// its error is shown to the user. Mask hides a destination for display.
	Normalize func(string) (string, error)
	Mask      func(string) string
	// Deliverer sends codes.
	Deliverer Deliverer
	// Metrics counts sends; nil counts nothing.
	Metrics *delivery.Metrics
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Rand is the source of salts and ids. Defaults to crypto/rand.
	Rand io.Reader
}

// Engine implements the lifecycle of a delivering factor. Safe for
// concurrent use; every state change goes through UpdateCredential, so it
// holds across replicas.
type Engine struct {
	cfg Config
}

// New checks cfg.
func New(cfg Config) (*Engine, error) {
	var missing []string
	for name, ok := range map[string]bool{
		"Factor": cfg.Factor != "", "Channel": cfg.Channel != "", "CodeLength": cfg.CodeLength > 0,
		"TTL": cfg.TTL > 0, "MaxAttempts": cfg.MaxAttempts > 0, "SendsPerUserPerHour": cfg.SendsPerUserPerHour > 0,
		"SendsPerDestinationPerHour": cfg.SendsPerDestinationPerHour > 0, "Credentials": cfg.Credentials != nil,
		"Counters": cfg.Counters != nil, "Keyring": cfg.Keyring != nil, "Pepper": cfg.Pepper != nil,
		"Normalize": cfg.Normalize != nil, "Mask": cfg.Mask != nil, "Deliverer": cfg.Deliverer != nil,
		"Others": cfg.Others != nil || !IsRestricted(cfg.Factor),
	} {
		if !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, fmt.Errorf("challenge: %s: missing or invalid %s", cfg.Factor, strings.Join(missing, ", "))
	}
	if cfg.Cooldown < 0 {
		return nil, fmt.Errorf("challenge: %s: negative cool-down", cfg.Factor)
	}
	if cfg.Level == "" {
		cfg.Level = "2"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	return &Engine{cfg: cfg}, nil
}

// Name is the factor name.
func (e *Engine) Name() string { return e.cfg.Factor }

// record is a credential's Data, encrypted as a whole.
type record struct {
	Dest string `json:"dest"`
	Open *open  `json:"open,omitempty"`
}

type open struct {
	ID        string    `json:"id"`
	Session   string    `json:"session,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	LastSend  time.Time `json:"last_send"`
	Attempts  int       `json:"attempts"`
	Codes     []code    `json:"codes,omitempty"`
	// Sending is the id of a send in flight; while set, LastSend and
	// ExpiresAt already count it.
	Sending string `json:"sending,omitempty"`
}

type code struct {
	Salt      []byte    `json:"salt,omitempty"`
	MAC       []byte    `json:"mac,omitempty"`
	CallID    string    `json:"call_id,omitempty"`
	CLIFilter string    `json:"cli_filter,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (o *open) usable(now time.Time, maxAttempts int) bool {
	return o != nil && now.Before(o.ExpiresAt) && o.Attempts < maxAttempts
}

func (e *Engine) credID(userID string) string { return factors.CredentialID(e.cfg.Factor, userID) }

func (e *Engine) binding(userID string) keyring.Binding {
	return keyring.Binding{UserID: userID, Factor: e.cfg.Factor}
}

func (e *Engine) decode(c store.Credential) (record, error) {
	pt, err := e.cfg.Keyring.Decrypt(c.Data, e.binding(c.UserID))
	if err != nil {
		return record{}, fmt.Errorf("challenge: %s: decrypting record of %s: %w", e.cfg.Factor, c.UserID, err)
	}
	var r record
	if err := json.Unmarshal(pt, &r); err != nil {
		return record{}, fmt.Errorf("challenge: %s: decoding record of %s: %w", e.cfg.Factor, c.UserID, err)
	}
	return r, nil
}

func (e *Engine) encode(userID string, r record) ([]byte, error) {
	pt, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("challenge: %s: encoding record: %w", e.cfg.Factor, err)
	}
	ct, err := e.cfg.Keyring.Encrypt(pt, e.binding(userID))
	if err != nil {
		return nil, fmt.Errorf("challenge: %s: encrypting record: %w", e.cfg.Factor, err)
	}
	return ct, nil
}

// update runs fn on the decoded record of userID's credential and stores
// the result, in one store transaction.
func (e *Engine) update(ctx context.Context, userID string, fn func(c *store.Credential, r *record) error) (store.Credential, error) {
	c, err := e.cfg.Credentials.UpdateCredential(ctx, e.credID(userID), func(c store.Credential) (store.Credential, error) {
		r, err := e.decode(c)
		if err != nil {
			return c, err
		}
		if err := fn(&c, &r); err != nil {
			return c, err
		}
		if c.Data, err = e.encode(userID, r); err != nil {
			return c, err
		}
		c.UpdatedAt = e.cfg.Now()
		return c, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return c, fmt.Errorf("challenge: %s of %s: %w", e.cfg.Factor, userID, factors.ErrNotEnrolled)
	}
	return c, err
}

func (e *Engine) randomID() (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(e.cfg.Rand, b[:]); err != nil {
		return "", fmt.Errorf("challenge: random id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

func (e *Engine) mac(salt []byte, c string) []byte {
	return e.cfg.Pepper.MAC(salt, []byte(e.cfg.Factor+"\x00"+c))
}

// requireOthers refuses a restricted factor for a user without an active
// factor outside the restricted set.
func (e *Engine) requireOthers(ctx context.Context, userID string) error {
	if !IsRestricted(e.cfg.Factor) {
		return nil
	}
	active, err := e.cfg.Others.Active(ctx, userID)
	if err != nil {
		return fmt.Errorf("challenge: %s: listing active factors of %s: %w", e.cfg.Factor, userID, err)
	}
	for _, f := range active {
		if !IsRestricted(f) {
			return nil
		}
	}
	return fmt.Errorf("%w: %w", ErrNeedsOtherFactor,
		factors.InvalidInput("set up another factor first (an authenticator app, a PIN or backup codes): %s cannot be your only one", e.cfg.Factor))
}
