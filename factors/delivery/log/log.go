// Package log is the development provider: it "delivers" flash calls, SMS
// and e-mails by writing them, code included, to a logger. It refuses to be
// built outside dev mode (`stepup-bridge dev`), because anyone who can read
// the logs could then pass the factor.
package log

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"

	"github.com/stepup-bridge/stepup-bridge/factors/delivery"
	"github.com/stepup-bridge/stepup-bridge/factors/phone"
)

// Name is the provider name in config, metrics and errors.
const Name = "log"

// Config configures New.
type Config struct {
	// DevMode must be true (config.Config.DevMode); New refuses otherwise.
	DevMode bool
	// Logger receives the deliveries. Defaults to slog.Default().
	Logger *slog.Logger
	// Rand picks the calling numbers of flash calls. Defaults to crypto/rand.
	Rand io.Reader
}

// Provider writes deliveries to a logger. Safe for concurrent use.
type Provider struct {
	log  *slog.Logger
	rand io.Reader
}

var (
	_ delivery.CallStarter   = (*Provider)(nil)
	_ delivery.MessageSender = (*Provider)(nil)
)

// New builds the provider, or fails with delivery.ErrDevOnly outside dev
// mode.
func New(cfg Config) (*Provider, error) {
	if !cfg.DevMode {
		return nil, delivery.ErrDevOnly
	}
	p := &Provider{log: cfg.Logger, rand: cfg.Rand}
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.rand == nil {
		p.rand = rand.Reader
	}
	return p, nil
}

// Provider implements delivery.CallStarter and delivery.MessageSender.
func (p *Provider) Provider() string { return Name }

// StartCall invents a calling number (+1555 and seven random digits) and
// logs it; its last digits are the code.
func (p *Provider) StartCall(ctx context.Context, to string) (delivery.Call, error) {
	if !phone.Valid(to) {
		return delivery.Call{}, fmt.Errorf("log: start call: destination is not E.164")
	}
	var b [7]byte
	if _, err := io.ReadFull(p.rand, b[:]); err != nil {
		return delivery.Call{}, fmt.Errorf("log: random calling number: %w", err)
	}
	cli := []byte("+1555")
	for _, x := range b {
		cli = append(cli, '0'+x%10)
	}
	p.log.WarnContext(ctx, "DEV MODE flash call (not placed): the code is the last digits of the calling number",
		"to", to, "calling_number", string(cli))
	return delivery.Call{ID: string(cli), CLI: string(cli)}, nil
}

// Send logs m, code included.
func (p *Provider) Send(ctx context.Context, m delivery.Message) error {
	p.log.WarnContext(ctx, "DEV MODE message (not sent)", "channel", m.Channel, "to", m.To,
		"subject", m.Subject, "body", m.Body)
	return nil
}
