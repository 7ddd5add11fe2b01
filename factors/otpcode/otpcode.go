// Package otpcode is the SMS and e-mail one-time-code factor: one package,
// two factor instances (factors.SMS, factors.Email) differing in channel,
// destination and sender.
//
// A code is 6 digits from crypto/rand (uniform), lives at most 5 minutes,
// is accepted once, and is stored only as an HMAC under the server pepper
// (delivery/challenge). Messages are text/template templates over .Code,
// .Minutes and .Issuer, with built-in defaults.
//
// SMS is never offered first (a PSTN channel, like flash calls): it needs
// another active factor outside flash call and SMS. E-mail may be a
// user's first factor.
//
// The destination is enrolled with BeginEnrolment (EnrolRequest.Destination
// carries the phone number or e-mail address; pending), a Challenge and
// ConfirmEnrolment with the code received.
package otpcode

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/mail"
	"strings"
	"text/template"
	"time"

	"github.com/stepup-bridge/stepup-bridge/config"
	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/factors/delivery"
	"github.com/stepup-bridge/stepup-bridge/factors/delivery/challenge"
	deliverylog "github.com/stepup-bridge/stepup-bridge/factors/delivery/log"
	"github.com/stepup-bridge/stepup-bridge/factors/delivery/smtp"
	"github.com/stepup-bridge/stepup-bridge/factors/delivery/webhook"
	"github.com/stepup-bridge/stepup-bridge/factors/phone"
	"github.com/stepup-bridge/stepup-bridge/internal/keyring"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// CodeLength is the number of digits of every code.
const CodeLength = 6

// MaxTTL is the longest a code may live, whatever the configuration says.
const MaxTTL = 5 * time.Minute

// Built-in templates.
const (
	DefaultSMSTemplate   = "{{.Code}} is your {{.Issuer}} verification code. It expires in {{.Minutes}} minutes."
	DefaultEmailTemplate = "Your {{.Issuer}} verification code is\n\n    {{.Code}}\n\nIt expires in {{.Minutes}} minutes. If you did not ask for it, someone may know your password: change it.\n"
	DefaultSubject       = "Your {{.Issuer}} verification code"
)

// Config configures New.
type Config struct {
	// Factor is factors.SMS or factors.Email.
	Factor string
	// TTL of a code. Defaults to MaxTTL; at most MaxTTL.
	TTL time.Duration
	// ResendCooldown between two sends of one challenge. Defaults to 30s.
	ResendCooldown time.Duration
	// MaxAttempts per challenge. Defaults to 5.
	MaxAttempts int
	// SendsPerUserPerHour and SendsPerDestinationPerHour cap sends.
	// Default to 5 each.
	SendsPerUserPerHour, SendsPerDestinationPerHour int
	// Level is the acr a success grants. Defaults to "2".
	Level string
	// Template is the message body and Subject the e-mail subject, both
	// text/template over .Code, .Minutes and .Issuer. Empty uses the
	// built-in ones.
	Template, Subject string
	// Issuer names the service in messages. Defaults to "stepup-bridge".
	Issuer string
	// Sender delivers the messages. Required.
	Sender delivery.MessageSender
	// Others lists the user's active factors; required for SMS.
	Others challenge.ActiveLister
	// Credentials, Counters, Keyring and Pepper are required.
	Credentials store.Credentials
	Counters    store.Counters
	Keyring     *keyring.Keyring
	Pepper      *keyring.Pepper
	// Metrics counts sends; nil counts nothing.
	Metrics *delivery.Metrics
	// Now and Rand default to time.Now and crypto/rand.
	Now  func() time.Time
	Rand io.Reader
}

// Factor is one one-time-code factor: factors.Challenger, factors.Enroller
// and factors.Resetter. Safe for concurrent use.
type Factor struct {
	*challenge.Engine
}

var (
	_ factors.Challenger = (*Factor)(nil)
	_ factors.Enroller   = (*Factor)(nil)
	_ factors.Resetter   = (*Factor)(nil)
)

// New checks cfg (templates included) and builds the factor.
func New(cfg Config) (*Factor, error) {
	var channel, defTemplate string
	var normalize func(string) (string, error)
	var mask func(string) string
	switch cfg.Factor {
	case factors.SMS:
		channel, defTemplate, normalize, mask = delivery.ChannelSMS, DefaultSMSTemplate, phone.Normalize, phone.Mask
	case factors.Email:
		channel, defTemplate, normalize, mask = delivery.ChannelEmail, DefaultEmailTemplate, NormalizeEmail, MaskEmail
	default:
		return nil, fmt.Errorf("otpcode: factor %q is neither %s nor %s", cfg.Factor, factors.SMS, factors.Email)
	}
	if cfg.TTL == 0 {
		cfg.TTL = MaxTTL
	}
	if cfg.TTL < 0 || cfg.TTL > MaxTTL {
		return nil, fmt.Errorf("otpcode: TTL %s is outside (0, %s]", cfg.TTL, MaxTTL)
	}
	if cfg.ResendCooldown == 0 {
		cfg.ResendCooldown = 30 * time.Second
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.SendsPerUserPerHour == 0 {
		cfg.SendsPerUserPerHour = 5
	}
	if cfg.SendsPerDestinationPerHour == 0 {
		cfg.SendsPerDestinationPerHour = 5
	}
	if cfg.Issuer == "" {
		cfg.Issuer = "stepup-bridge"
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Sender == nil {
		return nil, errors.New("otpcode: a sender is required")
	}
	if cfg.Template == "" {
		cfg.Template = defTemplate
	}
	if cfg.Subject == "" {
		cfg.Subject = DefaultSubject
	}
	body, err := template.New("body").Option("missingkey=error").Parse(cfg.Template)
	if err != nil {
		return nil, fmt.Errorf("otpcode: %s template: %w", cfg.Factor, err)
	}
	subject, err := template.New("subject").Option("missingkey=error").Parse(cfg.Subject)
	if err != nil {
		return nil, fmt.Errorf("otpcode: %s subject: %w", cfg.Factor, err)
	}
	d := &deliverer{sender: cfg.Sender, channel: channel, body: body, subject: subject, rand: cfg.Rand,
		data: messageData{Minutes: int((cfg.TTL + time.Minute - 1) / time.Minute), Issuer: cfg.Issuer}}
	// Render once now, so a broken template fails at start, not at the
	// first user's sign-in.
	if _, err := d.render("000000"); err != nil {
		return nil, fmt.Errorf("otpcode: %s: %w", cfg.Factor, err)
	}
	e, err := challenge.New(challenge.Config{
		Factor: cfg.Factor, Channel: channel, Level: cfg.Level, CodeLength: CodeLength,
		TTL: cfg.TTL, Cooldown: cfg.ResendCooldown, MaxAttempts: cfg.MaxAttempts,
		SendsPerUserPerHour: cfg.SendsPerUserPerHour, SendsPerDestinationPerHour: cfg.SendsPerDestinationPerHour,
		Others: cfg.Others, Credentials: cfg.Credentials, Counters: cfg.Counters, Keyring: cfg.Keyring, Pepper: cfg.Pepper,
		Normalize: normalize, Mask: mask, Deliverer: d, Metrics: cfg.Metrics, Now: cfg.Now, Rand: cfg.Rand,
	})
	if err != nil {
		return nil, fmt.Errorf("otpcode: %w", err)
	}
	return &Factor{Engine: e}, nil
}

// messageData is what templates see.
type messageData struct {
	Code    string
	Minutes int
	Issuer  string
}

type deliverer struct {
	sender        delivery.MessageSender
	channel       string
	body, subject *template.Template
	data          messageData
	rand          io.Reader
}

func (d *deliverer) Provider() string { return d.sender.Provider() }

func (d *deliverer) render(code string) (delivery.Message, error) {
	data := d.data
	data.Code = code
	var b, s bytes.Buffer
	if err := d.body.Execute(&b, data); err != nil {
		return delivery.Message{}, fmt.Errorf("rendering the template: %w", err)
	}
	if !strings.Contains(b.String(), code) {
		return delivery.Message{}, errors.New("the template does not show {{.Code}}")
	}
	m := delivery.Message{Channel: d.channel, Body: b.String()}
	if d.channel == delivery.ChannelEmail {
		if err := d.subject.Execute(&s, data); err != nil {
			return delivery.Message{}, fmt.Errorf("rendering the subject: %w", err)
		}
		m.Subject = strings.Join(strings.Fields(s.String()), " ") // one line, always
	}
	return m, nil
}

func (d *deliverer) Deliver(ctx context.Context, dest string) (challenge.Sent, error) {
	code, err := NewCode(d.rand)
	if err != nil {
		return challenge.Sent{}, err
	}
	m, err := d.render(code)
	if err != nil {
		return challenge.Sent{}, fmt.Errorf("otpcode: %w", err)
	}
	var id [16]byte
	if _, err := io.ReadFull(d.rand, id[:]); err != nil {
		return challenge.Sent{}, fmt.Errorf("otpcode: random message id: %w", err)
	}
	m.To, m.ID = dest, hex.EncodeToString(id[:])
	if err := d.sender.Send(ctx, m); err != nil {
		return challenge.Sent{}, err
	}
	return challenge.Sent{Code: code}, nil
}

func (d *deliverer) CheckRemote(context.Context, challenge.Remote, string, string) (bool, error) {
	return false, errors.New("otpcode: codes are checked locally")
}

// NewCode returns CodeLength uniformly random digits from r.
func NewCode(r io.Reader) (string, error) {
	const limit = 4294000000 // the largest multiple of 10^6 below 2^32: no modulo bias
	var b [4]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return "", fmt.Errorf("otpcode: random code: %w", err)
		}
		if n := binary.BigEndian.Uint32(b[:]); n < limit {
			return fmt.Sprintf("%06d", n%1000000), nil
		}
	}
}

// NormalizeEmail accepts a bare address ("Ann@Example.org"), lower-cases
// its domain, and refuses display names, control characters and non-ASCII
// addresses.
func NormalizeEmail(s string) (string, error) {
	if len(s) > 254 || strings.ContainsAny(s, "<>\r\n\t ") {
		return "", errors.New("not a plain e-mail address")
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return "", errors.New("not a plain e-mail address")
	}
	for _, r := range s {
		if r <= 32 || r > 126 {
			return "", errors.New("only ASCII e-mail addresses are supported")
		}
	}
	at := strings.LastIndexByte(s, '@')
	return s[:at] + "@" + strings.ToLower(s[at+1:]), nil
}

// MaskEmail shows the first character and the domain: "a***@example.com".
func MaskEmail(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 1 {
		return "***"
	}
	return addr[:1] + "***" + addr[at:]
}

// SenderOptions are what SenderFromConfig needs besides the config.
type SenderOptions struct {
	// Client sends webhook requests. Defaults to delivery.NewHTTPClient().
	Client *http.Client
	// Logger receives the log sender's output. Defaults to slog.Default().
	Logger *slog.Logger
	// Now and Rand default to time.Now and crypto/rand.
	Now  func() time.Time
	Rand io.Reader
}

// SenderFromConfig builds the sender named by factors.<factor>.sender.
// smtp is for e-mail only; log is refused unless cfg.DevMode is set.
func SenderFromConfig(cfg config.Config, factor string, opts SenderOptions) (delivery.MessageSender, error) {
	var otc config.OneTimeCode
	switch factor {
	case factors.SMS:
		otc = cfg.Factors.SMS
	case factors.Email:
		otc = cfg.Factors.Email
	default:
		return nil, fmt.Errorf("otpcode: unknown factor %q", factor)
	}
	policy := delivery.PolicyFromConfig(cfg.Delivery)
	switch otc.Sender {
	case webhook.Name:
		return webhook.New(webhook.Config{URL: otc.Webhook.URL, Secret: otc.Webhook.Secret.Reveal(),
			Policy: policy, Client: opts.Client, Now: opts.Now, Rand: opts.Rand})
	case smtp.Name:
		if factor != factors.Email {
			return nil, fmt.Errorf("otpcode: sender smtp is for e-mail only")
		}
		s := otc.SMTP
		return smtp.New(smtp.Config{Host: s.Host, Port: s.Port, TLS: s.TLS, Username: s.Username,
			Password: s.Password.Reveal(), From: s.From, Policy: policy, Now: opts.Now, Rand: opts.Rand})
	case deliverylog.Name:
		return deliverylog.New(deliverylog.Config{DevMode: cfg.DevMode, Logger: opts.Logger, Rand: opts.Rand})
	default:
		return nil, fmt.Errorf("otpcode: unknown %s sender %q", factor, otc.Sender)
	}
}

// ConfigFrom maps factors.<factor> onto a Config; the caller adds the
// sender, stores, keys and (for SMS) Others.
func ConfigFrom(cfg config.Config, factor string) Config {
	otc := cfg.Factors.Email
	if factor == factors.SMS {
		otc = cfg.Factors.SMS
	}
	return Config{Factor: factor, TTL: otc.TTL, ResendCooldown: otc.ResendCooldown, MaxAttempts: cfg.StepUp.MaxAttempts,
		SendsPerUserPerHour: otc.SendsPerUserPerHour, SendsPerDestinationPerHour: otc.SendsPerDestinationPerHour,
		Level: cfg.StepUp.Level, Template: otc.Template, Subject: otc.Subject, Issuer: cfg.Factors.TOTP.Issuer}
}
