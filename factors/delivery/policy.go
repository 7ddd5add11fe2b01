package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/stepup-bridge/stepup-bridge/config"
)

// Policy bounds the calls to one provider. The zero value means the
// documented defaults.
type Policy struct {
	// Timeout bounds one try. Defaults to 5 seconds.
	Timeout time.Duration
	// Retries is how many times a failed try may be repeated (see Retry
	// for which failures). Negative means none. Zero means none too: set it
	// from config.Delivery.Retries.
	Retries int
	// Backoff is the wait before the first repetition; it doubles for each
	// further one. Defaults to 200 milliseconds.
	Backoff time.Duration
	// Sleep waits d or until ctx is done; tests pass a recorder. Defaults
	// to a timer.
	Sleep func(ctx context.Context, d time.Duration) error
}

// PolicyFromConfig reads delivery.timeout, retries and backoff.
func PolicyFromConfig(c config.Delivery) Policy {
	return Policy{Timeout: c.Timeout, Retries: c.Retries, Backoff: c.Backoff}
}

func (p Policy) withDefaults() Policy {
	if p.Timeout <= 0 {
		p.Timeout = 5 * time.Second
	}
	if p.Retries < 0 {
		p.Retries = 0
	}
	if p.Backoff <= 0 {
		p.Backoff = 200 * time.Millisecond
	}
	if p.Sleep == nil {
		p.Sleep = sleep
	}
	return p
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Retry says which failed tries of an operation may be repeated.
type Retry int

const (
	// RetryIfNotSent repeats a try only when its request provably never
	// reached the provider. For operations that start something paid.
	RetryIfNotSent Retry = iota
	// RetryIdempotent also repeats tries that timed out or were answered
	// 429 or 5xx. Only for operations whose repetition changes nothing.
	RetryIdempotent
)

// Do runs try until it succeeds, fails in a way mode does not repeat, or
// the retries are spent. Each try gets a context bounded by p.Timeout. An
// error of try that is no *ProviderError is returned as it is.
func (p Policy) Do(ctx context.Context, mode Retry, try func(ctx context.Context) error) error {
	p = p.withDefaults()
	wait := p.Backoff
	for i := 0; ; i++ {
		tctx, cancel := context.WithTimeout(ctx, p.Timeout)
		err := try(tctx)
		cancel()
		if err == nil {
			return nil
		}
		if i >= p.Retries || !retryable(err, mode) || ctx.Err() != nil {
			return err
		}
		if serr := p.Sleep(ctx, wait); serr != nil {
			return err
		}
		wait *= 2
	}
}

func retryable(err error, mode Retry) bool {
	var pe *ProviderError
	if !errors.As(err, &pe) {
		return false
	}
	if pe.NotSent {
		return true
	}
	return mode == RetryIdempotent && pe.Kind == ErrProviderUnavailable
}

// NotSentError reports whether err (from dialling or sending a request)
// shows the request never left: the connection could not be opened.
func NotSentError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// maxReply bounds a provider reply read into memory.
const maxReply = 64 << 10

// HTTPRequest is one provider call over HTTP.
type HTTPRequest struct {
	// Provider and Op name the call in errors.
	Provider, Op string
	// Method and URL of the request.
	Method, URL string
	// Body is sent as application/json when not nil.
	Body []byte
	// Prepare sets headers on each try's request (authentication, a fresh
	// signature timestamp). Optional.
	Prepare func(r *http.Request, body []byte) error
}

// HTTPReply is a provider's answer with a 2xx status.
type HTTPReply struct {
	Status int
	Body   []byte
}

// ErrorBody parses a non-2xx reply body into the provider's code and
// message; it may return empty strings.
type ErrorBody func(body []byte) (code, message string)

// DoHTTP sends req with client under p and mode, and returns the first 2xx
// reply. Transport failures, timeouts, 408, 429 and 5xx are
// ErrProviderUnavailable; other statuses are ErrProviderRejected with what
// parseErr finds in the body.
func DoHTTP(ctx context.Context, client *http.Client, p Policy, mode Retry, req HTTPRequest, parseErr ErrorBody) (HTTPReply, error) {
	var reply HTTPReply
	err := p.Do(ctx, mode, func(ctx context.Context) error {
		var body io.Reader
		if req.Body != nil {
			body = bytes.NewReader(req.Body)
		}
		r, err := http.NewRequestWithContext(ctx, req.Method, req.URL, body)
		if err != nil {
			return fmt.Errorf("delivery: %s %s: building request: %w", req.Provider, req.Op, err)
		}
		if req.Body != nil {
			r.Header.Set("Content-Type", "application/json")
		}
		r.Header.Set("Accept", "application/json")
		if req.Prepare != nil {
			if err := req.Prepare(r, req.Body); err != nil {
				return fmt.Errorf("delivery: %s %s: preparing request: %w", req.Provider, req.Op, err)
			}
		}
		resp, err := client.Do(r)
		if err != nil {
			pe := Unavailable(req.Provider, req.Op, 0, err)
			pe.NotSent = NotSentError(err)
			return pe
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxReply+1))
		if err != nil {
			return Unavailable(req.Provider, req.Op, resp.StatusCode, fmt.Errorf("reading reply: %w", err))
		}
		if len(b) > maxReply {
			return Malformed(req.Provider, req.Op, resp.StatusCode, fmt.Errorf("reply larger than %d bytes", maxReply))
		}
		switch s := resp.StatusCode; {
		case s >= 200 && s < 300:
			reply = HTTPReply{Status: s, Body: b}
			return nil
		case s == http.StatusRequestTimeout || s == http.StatusTooManyRequests || s >= 500:
			pe := Unavailable(req.Provider, req.Op, s, nil)
			if parseErr != nil {
				code, msg := parseErr(b)
				pe.Code, pe.Message = truncate(code, 64), truncate(msg, 200)
			}
			return pe
		default:
			var code, msg string
			if parseErr != nil {
				code, msg = parseErr(b)
			}
			return Rejected(req.Provider, req.Op, s, code, msg)
		}
	})
	return reply, err
}

// NewHTTPClient returns a client for provider calls: no cookie jar, no
// redirects followed (a provider that redirects a signed POST is
// misconfigured, and following would resend it), TLS 1.2 at least.
func NewHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConfig()
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
