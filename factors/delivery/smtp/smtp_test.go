package smtp

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	gosasl "github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/stepup-bridge/stepup-bridge/factors/delivery"
)

// testCert makes a self-signed certificate for 127.0.0.1 and smtp.test.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "smtp.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"smtp.test"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

type received struct {
	from, to string
	data     []byte
	authed   string
	tls      bool
}

// backend is a go-smtp backend recording what it accepts.
type backend struct {
	mu        sync.Mutex
	msgs      []received
	rcptFails int           // answer 451 to this many RCPTs first
	dataDelay time.Duration // wait before answering the end of DATA
	rcpts     int
}

type session struct {
	be  *backend
	cur received
}

func (b *backend) NewSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	_, isTLS := c.TLSConnectionState()
	return &session{be: b, cur: received{tls: isTLS}}, nil
}

func (s *session) AuthMechanisms() []string { return []string{gosasl.Plain} }

func (s *session) Auth(mech string) (gosasl.Server, error) {
	return gosasl.NewPlainServer(func(identity, user, pass string) error {
		if user != "mailer" || pass != "s3cret-pass" {
			return &gosmtp.SMTPError{Code: 535, EnhancedCode: gosmtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
		}
		s.cur.authed = user
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *gosmtp.MailOptions) error { s.cur.from = from; return nil }

func (s *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	s.be.mu.Lock()
	defer s.be.mu.Unlock()
	s.be.rcpts++
	if s.be.rcptFails > 0 {
		s.be.rcptFails--
		return &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	}
	s.cur.to = to
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.be.mu.Lock()
	delay := s.be.dataDelay
	s.be.mu.Unlock()
	time.Sleep(delay)
	s.cur.data = b
	s.be.mu.Lock()
	s.be.msgs = append(s.be.msgs, s.cur)
	s.be.mu.Unlock()
	return nil
}

func (s *session) Reset()        {}
func (s *session) Logout() error { return nil }

// serve starts a go-smtp server on loopback; implicit wraps the listener
// in TLS; withTLS offers STARTTLS.
func serve(t *testing.T, be *backend, withTLS, implicit, insecureAuth bool) (port int, pool *x509.CertPool) {
	t.Helper()
	cert, pool := testCert(t)
	s := gosmtp.NewServer(be)
	s.Domain = "smtp.test"
	s.AllowInsecureAuth = insecureAuth
	s.ReadTimeout, s.WriteTimeout = 5*time.Second, 5*time.Second
	if withTLS {
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if implicit {
		l = tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{cert}})
	}
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return l.Addr().(*net.TCPAddr).Port, pool
}

func msg(to string) delivery.Message {
	return delivery.Message{Channel: delivery.ChannelEmail, To: to, Subject: "Your code: 123456 ✓", Body: "Your code is 123456.\nIt expires in 5 minutes.", ID: "0123abcd"}
}

func TestSendModes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                    string
		mode                    string
		withTLS, implicit, auth bool
	}{
		{"starttls with auth", TLSStartTLS, true, false, true},
		{"implicit tls with auth", TLSImplicit, false, true, true},
		{"none on loopback with auth", TLSNone, false, false, true},
		{"starttls without auth", TLSStartTLS, true, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			be := &backend{}
			port, pool := serve(t, be, tt.withTLS, tt.implicit, tt.mode == TLSNone)
			cfg := Config{Host: "127.0.0.1", Port: port, TLS: tt.mode, From: "Sign-in <no-reply@example.com>",
				TLSConfig: &tls.Config{RootCAs: pool}, Policy: delivery.Policy{Timeout: 5 * time.Second},
				Now: func() time.Time { return time.Unix(1700000000, 0).UTC() }}
			if tt.auth {
				cfg.Username, cfg.Password = "mailer", "s3cret-pass"
			}
			s, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Send(context.Background(), msg("Ann <ann@example.org>")); err != nil {
				t.Fatal(err)
			}
			be.mu.Lock()
			defer be.mu.Unlock()
			if len(be.msgs) != 1 {
				t.Fatalf("server got %d messages", len(be.msgs))
			}
			got := be.msgs[0]
			if got.from != "no-reply@example.com" || got.to != "ann@example.org" {
				t.Fatalf("envelope %q -> %q", got.from, got.to)
			}
			if tt.auth != (got.authed == "mailer") {
				t.Fatalf("authed = %q", got.authed)
			}
			if tt.mode != TLSNone && !got.tls {
				t.Fatal("message went over plain text")
			}
			m, err := mail.ReadMessage(strings.NewReader(string(got.data)))
			if err != nil {
				t.Fatal(err)
			}
			subj, err := new(mimeDecoder).decode(m.Header.Get("Subject"))
			if err != nil || subj != "Your code: 123456 ✓" {
				t.Fatalf("subject %q (%v)", subj, err)
			}
			for k, want := range map[string]string{
				"Date": "Tue, 14 Nov 2023 22:13:20 +0000", "Message-Id": "<0123abcd@example.com>", "Mime-Version": "1.0",
				"Content-Transfer-Encoding": "quoted-printable", "To": "\"Ann\" <ann@example.org>",
			} {
				if got := m.Header.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			body, _ := io.ReadAll(quotedprintable.NewReader(m.Body))
			if string(body) != "Your code is 123456.\r\nIt expires in 5 minutes.\r\n" {
				t.Fatalf("body %q", body)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	t.Run("starttls required but not offered", func(t *testing.T) {
		t.Parallel()
		be := &backend{}
		port, _ := serve(t, be, false, false, true)
		s, _ := New(Config{Host: "127.0.0.1", Port: port, From: "a@example.com", Policy: delivery.Policy{Timeout: time.Second}})
		err := s.Send(context.Background(), msg("b@example.org"))
		if !errors.Is(err, delivery.ErrProviderRejected) || len(be.msgs) != 0 {
			t.Fatalf("err = %v, msgs = %d", err, len(be.msgs))
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		t.Parallel()
		be := &backend{}
		port, pool := serve(t, be, true, false, false)
		s, _ := New(Config{Host: "127.0.0.1", Port: port, From: "a@example.com", Username: "mailer", Password: "nope",
			TLSConfig: &tls.Config{RootCAs: pool}, Policy: delivery.Policy{Timeout: time.Second, Retries: 2, Sleep: func(context.Context, time.Duration) error { return nil }}})
		err := s.Send(context.Background(), msg("b@example.org"))
		var pe *delivery.ProviderError
		if !errors.Is(err, delivery.ErrProviderRejected) || !errors.As(err, &pe) || pe.Status != 535 {
			t.Fatalf("err = %v, want rejected 535", err)
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		t.Parallel()
		be := &backend{}
		port, _ := serve(t, be, true, false, false)
		s, _ := New(Config{Host: "127.0.0.1", Port: port, From: "a@example.com", Policy: delivery.Policy{Timeout: time.Second}})
		if err := s.Send(context.Background(), msg("b@example.org")); !errors.Is(err, delivery.ErrProviderRejected) {
			t.Fatalf("err = %v, want rejected", err)
		}
	})
	t.Run("auth plain never in clear to a remote host", func(t *testing.T) {
		t.Parallel()
		a := &plainAuth{user: "u", pass: "p", host: "smtp.example.com"}
		if _, _, err := a.Start(&serverInfo{Name: "smtp.example.com", TLS: false}); !errors.Is(err, errAuthInsecure) {
			t.Fatalf("err = %v", err)
		}
		if _, resp, err := a.Start(&serverInfo{Name: "smtp.example.com", TLS: true}); err != nil || string(resp) != "\x00u\x00p" {
			t.Fatalf("over TLS: %q, %v", resp, err)
		}
	})
	for name, m := range map[string]delivery.Message{
		"to with newline":      {Channel: delivery.ChannelEmail, To: "a@example.org\r\nBcc: x@evil.test", Body: "x"},
		"subject with newline": {Channel: delivery.ChannelEmail, To: "a@example.org", Subject: "hi\r\nBcc: x@evil.test", Body: "x"},
		"not an address":       {Channel: delivery.ChannelEmail, To: "nobody", Body: "x"},
		"sms channel":          {Channel: delivery.ChannelSMS, To: "a@example.org", Body: "x"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			be := &backend{}
			port, pool := serve(t, be, true, false, false)
			s, _ := New(Config{Host: "127.0.0.1", Port: port, From: "a@example.com", TLSConfig: &tls.Config{RootCAs: pool}})
			if err := s.Send(context.Background(), m); err == nil {
				t.Fatal("sent")
			}
			if len(be.msgs) != 0 {
				t.Fatal("server got a message")
			}
		})
	}
}

func TestRetries(t *testing.T) {
	t.Parallel()
	t.Run("4xx before data is repeated", func(t *testing.T) {
		t.Parallel()
		be := &backend{rcptFails: 1}
		port, pool := serve(t, be, true, false, false)
		s, _ := New(Config{Host: "127.0.0.1", Port: port, From: "a@example.com", TLSConfig: &tls.Config{RootCAs: pool},
			Policy: delivery.Policy{Timeout: 5 * time.Second, Retries: 2, Sleep: func(context.Context, time.Duration) error { return nil }}})
		if err := s.Send(context.Background(), msg("b@example.org")); err != nil {
			t.Fatal(err)
		}
		if be.rcpts != 2 || len(be.msgs) != 1 {
			t.Fatalf("rcpts = %d, msgs = %d", be.rcpts, len(be.msgs))
		}
	})
	t.Run("no answer after data is not repeated", func(t *testing.T) {
		t.Parallel()
		be := &backend{dataDelay: 1500 * time.Millisecond}
		port, pool := serve(t, be, true, false, false)
		s, _ := New(Config{Host: "127.0.0.1", Port: port, From: "a@example.com", TLSConfig: &tls.Config{RootCAs: pool},
			Policy: delivery.Policy{Timeout: 500 * time.Millisecond, Retries: 2, Sleep: func(context.Context, time.Duration) error { return nil }}})
		err := s.Send(context.Background(), msg("b@example.org"))
		if !errors.Is(err, delivery.ErrProviderUnavailable) {
			t.Fatalf("err = %v, want unavailable", err)
		}
		time.Sleep(1500 * time.Millisecond)
		be.mu.Lock()
		defer be.mu.Unlock()
		if be.rcpts != 1 {
			t.Fatalf("rcpts = %d: the message was sent again after it was handed over", be.rcpts)
		}
	})
	t.Run("connection refused is repeated then unavailable", func(t *testing.T) {
		t.Parallel()
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		var waits int
		s, _ := New(Config{Host: "127.0.0.1", Port: port, From: "a@example.com",
			Policy: delivery.Policy{Timeout: time.Second, Retries: 2, Sleep: func(context.Context, time.Duration) error { waits++; return nil }}})
		if err := s.Send(context.Background(), msg("b@example.org")); !errors.Is(err, delivery.ErrProviderUnavailable) || waits != 2 {
			t.Fatalf("err = %v, waits = %d", err, waits)
		}
	})
}

func TestNewRefuses(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]Config{
		"no host":             {From: "a@example.com"},
		"none to remote host": {Host: "smtp.example.com", TLS: TLSNone, From: "a@example.com"},
		"unknown tls":         {Host: "smtp.example.com", TLS: "ssl", From: "a@example.com"},
		"bad from":            {Host: "smtp.example.com", From: "a@example.com\r\nBcc: b@x"},
		"bad port":            {Host: "smtp.example.com", Port: 70000, From: "a@example.com"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := New(cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
