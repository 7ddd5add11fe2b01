// Package flashcall is the flash-call factor: the user's phone gets a
// missed call, and the last digits of the calling number (4 by default)
// are the code.
//
// The provider (delivery.CallStarter) either tells the full calling number
// (webhook, log: the code is known here and kept only as a peppered hash),
// or, like Sinch, only a CLI filter such as "(.*)70123(.*)": then the
// factor completes the number from the filter and the typed digits, checks
// it against the filter, and lets the provider decide (only a SUCCESSFUL
// report verifies).
//
// A phone number is enrolled with BeginEnrolment (EnrolRequest.Destination
// carries it; pending), a Challenge (the first call) and ConfirmEnrolment
// with its digits. A flash call is never offered first: enrolment,
// challenge and verification are refused while the user has no active
// factor outside flash call and SMS (challenge.ErrNeedsOtherFactor); the
// factor learns what else is active from Config.Others, normally the
// Registry (challenge.ActiveFunc breaks the construction cycle).
package flashcall

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/stepup-bridge/stepup-bridge/config"
	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/factors/delivery"
	"github.com/stepup-bridge/stepup-bridge/factors/delivery/challenge"
	deliverylog "github.com/stepup-bridge/stepup-bridge/factors/delivery/log"
	"github.com/stepup-bridge/stepup-bridge/factors/delivery/sinch"
	"github.com/stepup-bridge/stepup-bridge/factors/delivery/webhook"
	"github.com/stepup-bridge/stepup-bridge/factors/phone"
	"github.com/stepup-bridge/stepup-bridge/internal/keyring"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// Limits the factor enforces whatever the configuration says.
const (
	MaxTTL         = 2 * time.Minute
	MaxAttemptsCap = 3
)

// Config configures New. Zero durations and counts take the documented
// defaults of config.FlashCall.
type Config struct {
	// Digits the user types. Defaults to 4; 3 to 6.
	Digits int
	// TTL of one call's code. Defaults to 2 minutes; at most MaxTTL.
	TTL time.Duration
	// MaxAttempts per challenge. Defaults to 3; at most MaxAttemptsCap.
	MaxAttempts int
	// ResendCooldown between two calls of one challenge. Defaults to 30s.
	ResendCooldown time.Duration
	// SendsPerUserPerHour and SendsPerDestinationPerHour cap calls.
	// Default to 5 each.
	SendsPerUserPerHour, SendsPerDestinationPerHour int
	// Level is the acr a success grants. Defaults to "2".
	Level string
	// Provider places the calls. Required.
	Provider delivery.CallStarter
	// Others lists the user's active factors (the Registry). Required.
	Others challenge.ActiveLister
	// Credentials, Counters, Keyring and Pepper are required.
	Credentials store.Credentials
	Counters    store.Counters
	Keyring     *keyring.Keyring
	Pepper      *keyring.Pepper
	// Metrics counts calls; nil counts nothing.
	Metrics *delivery.Metrics
	// Now and Rand default to time.Now and crypto/rand.
	Now  func() time.Time
	Rand io.Reader
}

// Factor is the flash-call factor: factors.Challenger and factors.Enroller
// (and Resetter). Safe for concurrent use.
type Factor struct {
	*challenge.Engine
}

var (
	_ factors.Challenger = (*Factor)(nil)
	_ factors.Enroller   = (*Factor)(nil)
	_ factors.Resetter   = (*Factor)(nil)
)

// New checks cfg and builds the factor.
func New(cfg Config) (*Factor, error) {
	if cfg.Digits == 0 {
		cfg.Digits = 4
	}
	if cfg.Digits < 3 || cfg.Digits > 6 {
		return nil, fmt.Errorf("flashcall: %d digits is outside 3..6", cfg.Digits)
	}
	if cfg.TTL == 0 {
		cfg.TTL = MaxTTL
	}
	if cfg.TTL < 0 || cfg.TTL > MaxTTL {
		return nil, fmt.Errorf("flashcall: TTL %s is outside (0, %s]", cfg.TTL, MaxTTL)
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = MaxAttemptsCap
	}
	if cfg.MaxAttempts < 0 || cfg.MaxAttempts > MaxAttemptsCap {
		return nil, fmt.Errorf("flashcall: %d attempts is outside 1..%d", cfg.MaxAttempts, MaxAttemptsCap)
	}
	if cfg.ResendCooldown == 0 {
		cfg.ResendCooldown = 30 * time.Second
	}
	if cfg.SendsPerUserPerHour == 0 {
		cfg.SendsPerUserPerHour = 5
	}
	if cfg.SendsPerDestinationPerHour == 0 {
		cfg.SendsPerDestinationPerHour = 5
	}
	if cfg.Provider == nil {
		return nil, errors.New("flashcall: a provider is required")
	}
	e, err := challenge.New(challenge.Config{
		Factor: factors.FlashCall, Channel: delivery.ChannelCall, Level: cfg.Level, CodeLength: cfg.Digits,
		TTL: cfg.TTL, Cooldown: cfg.ResendCooldown, MaxAttempts: cfg.MaxAttempts,
		SendsPerUserPerHour: cfg.SendsPerUserPerHour, SendsPerDestinationPerHour: cfg.SendsPerDestinationPerHour,
		Others: cfg.Others, Credentials: cfg.Credentials, Counters: cfg.Counters, Keyring: cfg.Keyring, Pepper: cfg.Pepper,
		Normalize: phone.Normalize, Mask: phone.Mask,
		Deliverer: &deliverer{p: cfg.Provider, digits: cfg.Digits},
		Metrics:   cfg.Metrics, Now: cfg.Now, Rand: cfg.Rand,
	})
	if err != nil {
		return nil, fmt.Errorf("flashcall: %w", err)
	}
	return &Factor{Engine: e}, nil
}

// deliverer adapts a CallStarter to the challenge engine.
type deliverer struct {
	p      delivery.CallStarter
	digits int
}

func (d *deliverer) Provider() string { return d.p.Provider() }

func (d *deliverer) Deliver(ctx context.Context, dest string) (challenge.Sent, error) {
	call, err := d.p.StartCall(ctx, dest)
	if err != nil {
		return challenge.Sent{}, err
	}
	if call.CLI != "" {
		if !phone.Valid(call.CLI) || len(call.CLI)-1 < d.digits {
			return challenge.Sent{}, delivery.Malformed(d.p.Provider(), "start call", 0, errors.New("calling number is not E.164"))
		}
		return challenge.Sent{Code: call.CLI[len(call.CLI)-d.digits:]}, nil
	}
	if _, ok := d.p.(delivery.CallReporter); !ok || call.CLIFilter == "" || call.ID == "" {
		return challenge.Sent{}, delivery.Malformed(d.p.Provider(), "start call", 0, errors.New("neither a calling number nor a CLI filter to report against"))
	}
	p, err := parseFilter(call.CLIFilter)
	if err == nil {
		err = p.check(d.digits)
	}
	if err != nil {
		// The call rings, but no typed digits could ever be checked.
		return challenge.Sent{}, delivery.Malformed(d.p.Provider(), "start call", 0, err)
	}
	return challenge.Sent{CallID: call.ID, CLIFilter: call.CLIFilter}, nil
}

func (d *deliverer) CheckRemote(ctx context.Context, r challenge.Remote, dest, code string) (bool, error) {
	rep, ok := d.p.(delivery.CallReporter)
	if !ok {
		return false, errors.New("flashcall: provider cannot confirm calls")
	}
	p, err := parseFilter(r.CLIFilter)
	if err != nil {
		return false, err
	}
	full, err := p.complete(dest, code)
	if errors.Is(err, errNoMatch) {
		return false, nil // a wrong code, and no report spent on it
	}
	if err != nil {
		return false, err
	}
	return rep.ReportCall(ctx, r.CallID, full)
}

// ProviderOptions are what ProviderFromConfig needs besides the config.
type ProviderOptions struct {
	// Client sends HTTP requests. Defaults to delivery.NewHTTPClient().
	Client *http.Client
	// Logger receives the log provider's output. Defaults to slog.Default().
	Logger *slog.Logger
	// Now and Rand default to time.Now and crypto/rand.
	Now  func() time.Time
	Rand io.Reader
}

// ProviderFromConfig builds the provider named by factors.flash_call.provider.
// The log provider is refused unless cfg.DevMode is set.
func ProviderFromConfig(cfg config.Config, opts ProviderOptions) (delivery.CallStarter, error) {
	fc := cfg.Factors.FlashCall
	policy := delivery.PolicyFromConfig(cfg.Delivery)
	switch fc.Provider {
	case sinch.Name:
		return sinch.New(sinch.Config{BaseURL: fc.Sinch.BaseURL, AppKey: fc.Sinch.AppKey, AppSecret: fc.Sinch.AppSecret.Reveal(),
			Policy: policy, Client: opts.Client, Now: opts.Now})
	case webhook.Name:
		return webhook.New(webhook.Config{URL: fc.Webhook.URL, Secret: fc.Webhook.Secret.Reveal(), CodeLength: fc.Digits,
			Policy: policy, Client: opts.Client, Now: opts.Now, Rand: opts.Rand})
	case deliverylog.Name:
		return deliverylog.New(deliverylog.Config{DevMode: cfg.DevMode, Logger: opts.Logger, Rand: opts.Rand})
	default:
		return nil, fmt.Errorf("flashcall: unknown provider %q (sinch, webhook, log)", fc.Provider)
	}
}

// ConfigFrom maps factors.flash_call onto a Config; the caller adds the
// provider, stores, keys and Others.
func ConfigFrom(cfg config.Config) Config {
	fc := cfg.Factors.FlashCall
	return Config{Digits: fc.Digits, TTL: fc.TTL, MaxAttempts: fc.MaxAttempts, ResendCooldown: fc.ResendCooldown,
		SendsPerUserPerHour: fc.SendsPerUserPerHour, SendsPerDestinationPerHour: fc.SendsPerDestinationPerHour,
		Level: cfg.StepUp.Level}
}
