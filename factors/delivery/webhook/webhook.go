// Package webhook delivers flash calls, SMS and e-mails through a JSON
// POST to a gateway the operator runs, signed so the gateway can tell the
// request came from the sidecar and is fresh.
//
// Request (every kind):
//
//	POST <url>
//	Content-Type: application/json
//	X-Stepup-Signature: t=<unix seconds>,v1=<hex HMAC-SHA-256(secret, t + "." + body)>
//	Idempotency-Key: <id>
//
//	{"type":"flash_call","id":"<id>","to":"+E164","code_length":4}
//	{"type":"sms","id":"<id>","to":"+E164","text":"..."}
//	{"type":"email","id":"<id>","to":"a@example.com","subject":"...","text":"..."}
//
// Reply: any 2xx. For flash_call the reply must be JSON naming the full
// calling number the gateway used, {"cli":"+E164"} (and optionally its own
// "call_id"); the last code_length digits of it are the code. docs/delivery.md
// has the whole contract.
package webhook

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/stepup-bridge/stepup-bridge/factors/delivery"
	"github.com/stepup-bridge/stepup-bridge/factors/phone"
)

// Name is the provider name in config, metrics and errors.
const Name = "webhook"

// MinSecretBytes is the shortest accepted signing secret.
const MinSecretBytes = 16

// Kinds of request, the "type" field.
const (
	TypeFlashCall = "flash_call"
	TypeSMS       = "sms"
	TypeEmail     = "email"
)

// Config configures New.
type Config struct {
	// URL receives the POSTs; https, or http for a gateway on the same host.
	URL string
	// Secret keys the signature; at least MinSecretBytes bytes.
	Secret string
	// CodeLength is how many trailing digits of the calling number the user
	// types (flash calls only; told to the gateway). Defaults to 4.
	CodeLength int
	// Policy bounds each call (timeout, retries, backoff).
	Policy delivery.Policy
	// Client sends the requests. Defaults to delivery.NewHTTPClient().
	Client *http.Client
	// Now stamps the signature. Defaults to time.Now.
	Now func() time.Time
	// Rand makes request ids for flash calls. Defaults to crypto/rand.
	Rand io.Reader
}

// Provider is the webhook provider: a delivery.CallStarter and a
// delivery.MessageSender. Safe for concurrent use.
type Provider struct {
	url    string
	secret []byte
	digits int
	policy delivery.Policy
	client *http.Client
	now    func() time.Time
	rand   io.Reader
}

var (
	_ delivery.CallStarter   = (*Provider)(nil)
	_ delivery.MessageSender = (*Provider)(nil)
)

// New checks cfg and builds the provider.
func New(cfg Config) (*Provider, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("webhook: URL %q is not an http(s) URL", cfg.URL)
	}
	if len(cfg.Secret) < MinSecretBytes {
		return nil, fmt.Errorf("webhook: secret must have at least %d bytes", MinSecretBytes)
	}
	p := &Provider{url: cfg.URL, secret: []byte(cfg.Secret), digits: cfg.CodeLength,
		policy: cfg.Policy, client: cfg.Client, now: cfg.Now, rand: cfg.Rand}
	if p.digits <= 0 {
		p.digits = 4
	}
	if p.client == nil {
		p.client = delivery.NewHTTPClient()
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.rand == nil {
		p.rand = rand.Reader
	}
	return p, nil
}

// Provider implements delivery.CallStarter and delivery.MessageSender.
func (p *Provider) Provider() string { return Name }

// Request is the JSON body of every webhook request.
type Request struct {
	Type       string `json:"type"`
	ID         string `json:"id"`
	To         string `json:"to"`
	CodeLength int    `json:"code_length,omitempty"`
	Subject    string `json:"subject,omitempty"`
	Text       string `json:"text,omitempty"`
}

// CallReply is the JSON reply to a flash_call request.
type CallReply struct {
	CLI    string `json:"cli"`
	CallID string `json:"call_id,omitempty"`
}

func (p *Provider) post(ctx context.Context, op string, req Request) (delivery.HTTPReply, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return delivery.HTTPReply{}, fmt.Errorf("webhook: encoding request: %w", err)
	}
	return delivery.DoHTTP(ctx, p.client, p.policy, delivery.RetryIfNotSent, delivery.HTTPRequest{
		Provider: Name, Op: op, Method: http.MethodPost, URL: p.url, Body: body,
		Prepare: func(r *http.Request, body []byte) error {
			r.Header.Set(delivery.SignatureHeader, delivery.Sign(p.secret, p.now(), body))
			r.Header.Set("Idempotency-Key", req.ID)
			r.Header.Set("User-Agent", "stepup-bridge")
			return nil
		},
	}, parseError)
}

func parseError(b []byte) (string, string) {
	var e struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &e) != nil {
		return "", ""
	}
	return e.Error, e.Message
}

// StartCall asks the gateway for a flash call to the E.164 number to and
// returns the calling number it used. Never repeated after a timeout or
// 5xx; the Idempotency-Key lets a gateway drop a duplicate anyway.
func (p *Provider) StartCall(ctx context.Context, to string) (delivery.Call, error) {
	const op = "start call"
	if !phone.Valid(to) {
		return delivery.Call{}, fmt.Errorf("webhook: %s: destination is not E.164", op)
	}
	id, err := p.newID()
	if err != nil {
		return delivery.Call{}, err
	}
	reply, err := p.post(ctx, op, Request{Type: TypeFlashCall, ID: id, To: to, CodeLength: p.digits})
	if err != nil {
		return delivery.Call{}, err
	}
	var cr CallReply
	if err := json.Unmarshal(reply.Body, &cr); err != nil {
		return delivery.Call{}, delivery.Malformed(Name, op, reply.Status, err)
	}
	if !phone.Valid(cr.CLI) || len(cr.CLI)-1 < p.digits {
		return delivery.Call{}, delivery.Malformed(Name, op, reply.Status, errors.New(`reply lacks "cli" as an E.164 number`))
	}
	callID := cr.CallID
	if callID == "" {
		callID = id
	}
	return delivery.Call{ID: callID, CLI: cr.CLI}, nil
}

// Send posts an SMS or e-mail for the gateway to deliver. Never repeated
// after a timeout or 5xx; m.ID is the Idempotency-Key.
func (p *Provider) Send(ctx context.Context, m delivery.Message) error {
	const op = "send"
	req := Request{ID: m.ID, To: m.To, Text: m.Body}
	switch m.Channel {
	case delivery.ChannelSMS:
		if !phone.Valid(m.To) {
			return fmt.Errorf("webhook: %s: destination is not E.164", op)
		}
		req.Type = TypeSMS
	case delivery.ChannelEmail:
		req.Type, req.Subject = TypeEmail, m.Subject
	default:
		return fmt.Errorf("webhook: %s: unknown channel %q", op, m.Channel)
	}
	if req.ID == "" {
		id, err := p.newID()
		if err != nil {
			return err
		}
		req.ID = id
	}
	_, err := p.post(ctx, op, req)
	return err
}

func (p *Provider) newID() (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(p.rand, b[:]); err != nil {
		return "", fmt.Errorf("webhook: random request id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
