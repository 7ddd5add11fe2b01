// Package smtp sends e-mail codes through an SMTP submission server.
//
// TLS is STARTTLS (port 587, the default; the server must offer it), implicit
// TLS (port 465) or none, which is allowed only towards a loopback relay.
// AUTH PLAIN is used when a username is set, and only over TLS unless the
// server is on loopback. Messages are plain text in UTF-8, quoted-printable,
// with Date, Message-ID and MIME headers; addresses and subjects that could
// inject headers (CR, LF, other control characters) are refused.
package smtp

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/stepup-bridge/stepup-bridge/factors/delivery"
)

// Name is the provider name in config, metrics and errors.
const Name = "smtp"

// TLS modes, as config's factors.email.smtp.tls spells them.
const (
	TLSStartTLS = "starttls"
	TLSImplicit = "tls"
	TLSNone     = "none"
)

// Config configures New.
type Config struct {
	// Host and Port of the submission server. Port defaults to 587.
	Host string
	Port int
	// TLS is TLSStartTLS (default), TLSImplicit or TLSNone (loopback only).
	TLS string
	// Username and Password for AUTH PLAIN; empty Username sends no AUTH.
	Username string
	Password string
	// From is the envelope and header sender, an address with an optional
	// display name ("Sign-in <no-reply@example.com>").
	From string
	// HelloName is sent in EHLO. Defaults to "localhost".
	HelloName string
	// TLSConfig is cloned for the TLS session (tests add a root CA);
	// ServerName defaults to Host, MinVersion to TLS 1.2.
	TLSConfig *tls.Config
	// Policy bounds each try (timeout) and the retries.
	Policy delivery.Policy
	// Dial opens the TCP connection. Defaults to a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Now stamps the Date header. Defaults to time.Now.
	Now func() time.Time
	// Rand makes Message-IDs when the message has no ID. Defaults to
	// crypto/rand.
	Rand io.Reader
}

// Sender is the SMTP delivery.MessageSender. Safe for concurrent use: each
// Send opens its own connection.
type Sender struct {
	cfg      Config
	addr     string
	from     *mail.Address
	loopback bool
}

var _ delivery.MessageSender = (*Sender)(nil)

// New checks cfg and builds the sender.
func New(cfg Config) (*Sender, error) {
	if cfg.Host == "" || strings.ContainsAny(cfg.Host, " \r\n/") {
		return nil, errors.New("smtp: host is required")
	}
	if cfg.Port == 0 {
		cfg.Port = 587
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return nil, fmt.Errorf("smtp: %d is not a port", cfg.Port)
	}
	if cfg.TLS == "" {
		cfg.TLS = TLSStartTLS
	}
	loopback := isLoopback(cfg.Host)
	switch cfg.TLS {
	case TLSStartTLS, TLSImplicit:
	case TLSNone:
		if !loopback {
			return nil, fmt.Errorf("smtp: tls none is allowed only towards a loopback relay, not %q", cfg.Host)
		}
	default:
		return nil, fmt.Errorf("smtp: unknown tls mode %q (starttls, tls, none)", cfg.TLS)
	}
	from, err := parseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("smtp: from: %w", err)
	}
	if cfg.HelloName == "" {
		cfg.HelloName = "localhost"
	}
	if cfg.Dial == nil {
		var d net.Dialer
		cfg.Dial = d.DialContext
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	return &Sender{cfg: cfg, addr: net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)), from: from, loopback: loopback}, nil
}

// Provider implements delivery.MessageSender.
func (s *Sender) Provider() string { return Name }

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ErrBadAddress: an address or header value could inject headers or is not
// a plain ASCII mailbox.
var ErrBadAddress = errors.New("smtp: unusable address")

func parseAddress(s string) (*mail.Address, error) {
	if hasControl(s) {
		return nil, fmt.Errorf("%w: control characters", ErrBadAddress)
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadAddress, err)
	}
	for _, r := range a.Address {
		if r > 126 || r <= 32 || r == '<' || r == '>' {
			return nil, fmt.Errorf("%w: only plain ASCII addresses are supported", ErrBadAddress)
		}
	}
	return a, nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 32 || r == 127 {
			return true
		}
	}
	return false
}

// Send delivers m (Channel ChannelEmail) to m.To. A try is repeated only
// while the server has not taken the message (connection or TLS failures,
// a 4xx reply before the end of DATA); once the final "." was sent
// without a clear answer it is not, so the user never gets two mails.
func (s *Sender) Send(ctx context.Context, m delivery.Message) error {
	if m.Channel != delivery.ChannelEmail {
		return fmt.Errorf("smtp: cannot send channel %q", m.Channel)
	}
	to, err := parseAddress(m.To)
	if err != nil {
		return fmt.Errorf("smtp: to: %w", err)
	}
	msg, err := s.compose(to, m)
	if err != nil {
		return err
	}
	return s.cfg.Policy.Do(ctx, delivery.RetryIfNotSent, func(ctx context.Context) error {
		return s.try(ctx, to.Address, msg)
	})
}

// compose builds the whole message, CRLF line ends.
func (s *Sender) compose(to *mail.Address, m delivery.Message) ([]byte, error) {
	if hasControl(m.Subject) {
		return nil, fmt.Errorf("smtp: subject: %w: control characters", ErrBadAddress)
	}
	id := m.ID
	if id == "" || strings.ContainsAny(id, "<>@ \r\n") {
		var b [16]byte
		if _, err := io.ReadFull(s.cfg.Rand, b[:]); err != nil {
			return nil, fmt.Errorf("smtp: random message id: %w", err)
		}
		id = hex.EncodeToString(b[:])
	}
	domain := s.from.Address[strings.LastIndexByte(s.from.Address, '@')+1:]
	var buf bytes.Buffer
	h := func(k, v string) { buf.WriteString(k + ": " + v + "\r\n") }
	h("From", s.from.String())
	h("To", to.String())
	h("Subject", mime.QEncoding.Encode("utf-8", m.Subject))
	h("Date", s.cfg.Now().Format(time.RFC1123Z))
	h("Message-ID", "<"+id+"@"+domain+">")
	h("MIME-Version", "1.0")
	h("Content-Type", `text/plain; charset="utf-8"`)
	h("Content-Transfer-Encoding", "quoted-printable")
	h("Auto-Submitted", "auto-generated")
	buf.WriteString("\r\n")
	body := strings.ReplaceAll(strings.ReplaceAll(m.Body, "\r\n", "\n"), "\r", "\n")
	qp := quotedprintable.NewWriter(&buf)
	if _, err := qp.Write([]byte(strings.ReplaceAll(body, "\n", "\r\n"))); err != nil {
		return nil, fmt.Errorf("smtp: encoding body: %w", err)
	}
	if err := qp.Close(); err != nil {
		return nil, fmt.Errorf("smtp: encoding body: %w", err)
	}
	if !bytes.HasSuffix(buf.Bytes(), []byte("\r\n")) {
		buf.WriteString("\r\n")
	}
	return buf.Bytes(), nil
}

// try is one SMTP transaction. handedOver turns true once the final "."
// has been written: from then on a failure without a clear reply is not
// repeated.
func (s *Sender) try(ctx context.Context, rcpt string, msg []byte) (err error) {
	handedOver := false
	stage := "connect"
	defer func() {
		if err != nil {
			err = s.classify(stage, handedOver, err)
		}
	}()
	conn, err := s.cfg.Dial(ctx, "tcp", s.addr)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	tlsCfg := s.tlsConfig()
	if s.cfg.TLS == TLSImplicit {
		stage = "tls handshake"
		tc := tls.Client(conn, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return err
		}
		conn = tc
	}
	stage = "greeting"
	c, err := smtp.NewClient(conn, s.cfg.Host)
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	stage = "ehlo"
	if err := c.Hello(s.cfg.HelloName); err != nil {
		return err
	}
	if s.cfg.TLS == TLSStartTLS {
		stage = "starttls"
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return errNoStartTLS
		}
		if err := c.StartTLS(tlsCfg); err != nil {
			return err
		}
	}
	if s.cfg.Username != "" {
		stage = "auth"
		if ok, mechs := c.Extension("AUTH"); !ok || !containsFold(strings.Fields(mechs), "PLAIN") {
			return errNoAuthPlain
		}
		if err := c.Auth(&plainAuth{user: s.cfg.Username, pass: s.cfg.Password, host: s.cfg.Host, loopback: s.loopback}); err != nil {
			return err
		}
	}
	stage = "mail from"
	if err := c.Mail(s.from.Address); err != nil {
		return err
	}
	stage = "rcpt to"
	if err := c.Rcpt(rcpt); err != nil {
		return err
	}
	stage = "data"
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	handedOver = true
	stage = "end of data"
	if err := w.Close(); err != nil {
		return err
	}
	stage = "quit"
	_ = c.Quit() // the message is accepted; a failed QUIT changes nothing
	return nil
}

var (
	errNoStartTLS  = errors.New("server does not offer STARTTLS")
	errNoAuthPlain = errors.New("server does not offer AUTH PLAIN")
)

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func (s *Sender) tlsConfig() *tls.Config {
	var c *tls.Config
	if s.cfg.TLSConfig != nil {
		c = s.cfg.TLSConfig.Clone()
	} else {
		c = &tls.Config{}
	}
	if c.ServerName == "" {
		c.ServerName = s.cfg.Host
	}
	if c.MinVersion < tls.VersionTLS12 {
		c.MinVersion = tls.VersionTLS12
	}
	return c
}

// classify turns a transaction failure into a *delivery.ProviderError.
func (s *Sender) classify(stage string, handedOver bool, err error) error {
	op := "send (" + stage + ")"
	var tp *textproto.Error
	var cv *tls.CertificateVerificationError
	switch {
	case errors.As(err, &tp) && tp.Code >= 400 && tp.Code < 500:
		// The server said it did not take the message: safe to repeat.
		pe := delivery.Unavailable(Name, op, tp.Code, nil)
		pe.Message, pe.NotSent = firstLine(tp.Msg), true
		return pe
	case errors.As(err, &tp):
		return delivery.Rejected(Name, op, tp.Code, "", firstLine(tp.Msg))
	case errors.Is(err, errNoStartTLS), errors.Is(err, errNoAuthPlain), errors.Is(err, errAuthInsecure), errors.As(err, &cv):
		pe := delivery.Rejected(Name, op, 0, "", "")
		pe.Err = err
		return pe
	case errors.As(err, new(*delivery.ProviderError)):
		return err
	default:
		pe := delivery.Unavailable(Name, op, 0, err)
		pe.NotSent = !handedOver
		return pe
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

var errAuthInsecure = errors.New("refusing AUTH PLAIN without TLS towards a non-loopback server")

// plainAuth is AUTH PLAIN (RFC 4616) that refuses to send the password
// over a connection that is neither TLS nor loopback.
type plainAuth struct {
	user, pass, host string
	loopback         bool
}

func (a *plainAuth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	if !server.TLS && !a.loopback {
		return "", nil, errAuthInsecure
	}
	if server.Name != a.host {
		return "", nil, errors.New("smtp: server name changed during AUTH")
	}
	return "PLAIN", []byte("\x00" + a.user + "\x00" + a.pass), nil
}

func (a *plainAuth) Next(_ []byte, more bool) ([]byte, error) {
	if more {
		return nil, errors.New("smtp: unexpected AUTH PLAIN challenge")
	}
	return nil, nil
}
