package delivery

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// noSleep records the backoff waits instead of sleeping.
type noSleep struct{ waits []time.Duration }

func (n *noSleep) sleep(_ context.Context, d time.Duration) error {
	n.waits = append(n.waits, d)
	return nil
}

func TestDoHTTPStatusesAndRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		mode      Retry
		statuses  []int // answered in turn; the last repeats
		wantTries int
		wantKind  error
		wantWaits []time.Duration
	}{
		{"ok first", RetryIfNotSent, []int{200}, 1, nil, nil},
		{"paid call not repeated after 503", RetryIfNotSent, []int{503, 200}, 1, ErrProviderUnavailable, nil},
		{"idempotent repeated after 503", RetryIdempotent, []int{503, 502, 200}, 3, nil, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}},
		{"idempotent gives up after retries", RetryIdempotent, []int{500}, 3, ErrProviderUnavailable, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}},
		{"429 is unavailable", RetryIdempotent, []int{429, 200}, 2, nil, []time.Duration{100 * time.Millisecond}},
		{"400 is rejected, never repeated", RetryIdempotent, []int{400, 200}, 1, ErrProviderRejected, nil},
		{"401 is rejected", RetryIdempotent, []int{401}, 1, ErrProviderRejected, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				i := int(n.Add(1)) - 1
				s := tt.statuses[min(i, len(tt.statuses)-1)]
				w.WriteHeader(s)
				fmt.Fprintf(w, `{"errorCode":"E%d","message":"status %d"}`, s, s)
			}))
			defer srv.Close()
			ns := &noSleep{}
			p := Policy{Timeout: time.Second, Retries: 2, Backoff: 100 * time.Millisecond, Sleep: ns.sleep}
			_, err := DoHTTP(context.Background(), srv.Client(), p, tt.mode, HTTPRequest{
				Provider: "test", Op: "op", Method: http.MethodPost, URL: srv.URL, Body: []byte(`{}`),
			}, func(b []byte) (string, string) { return "code", string(b) })
			if got := int(n.Load()); got != tt.wantTries {
				t.Errorf("tries = %d, want %d", got, tt.wantTries)
			}
			if tt.wantKind == nil && err != nil {
				t.Fatalf("err = %v", err)
			}
			if tt.wantKind != nil {
				if !errors.Is(err, tt.wantKind) {
					t.Fatalf("err = %v, want %v", err, tt.wantKind)
				}
				var pe *ProviderError
				if !errors.As(err, &pe) || pe.Status == 0 || pe.Code != "code" {
					t.Fatalf("err = %#v, want a *ProviderError with status and code", err)
				}
			}
			if fmt.Sprint(ns.waits) != fmt.Sprint(tt.wantWaits) {
				t.Errorf("waits = %v, want %v", ns.waits, tt.wantWaits)
			}
		})
	}
}

func TestDoHTTPTimeoutIsUnavailableAndNotRepeatedForPaidCalls(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	p := Policy{Timeout: 50 * time.Millisecond, Retries: 3, Sleep: (&noSleep{}).sleep}
	start := time.Now()
	_, err := DoHTTP(context.Background(), srv.Client(), p, RetryIfNotSent, HTTPRequest{Provider: "test", Op: "op", Method: http.MethodPost, URL: srv.URL, Body: []byte(`{}`)}, nil)
	if !errors.Is(err, ErrProviderUnavailable) {
		t.Fatalf("err = %v, want ErrProviderUnavailable", err)
	}
	if n.Load() != 1 {
		t.Fatalf("tries = %d, want 1 (a timed-out paid call may already ring)", n.Load())
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %s, the timeout is 50ms", d)
	}
}

func TestDoHTTPConnectionRefusedIsRepeated(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	ns := &noSleep{}
	p := Policy{Timeout: time.Second, Retries: 2, Backoff: 10 * time.Millisecond, Sleep: ns.sleep}
	_, err = DoHTTP(context.Background(), &http.Client{}, p, RetryIfNotSent, HTTPRequest{Provider: "test", Op: "op", Method: http.MethodPost, URL: "http://" + addr, Body: []byte(`{}`)}, nil)
	var pe *ProviderError
	if !errors.As(err, &pe) || !pe.NotSent || !errors.Is(err, ErrProviderUnavailable) {
		t.Fatalf("err = %v, want not-sent unavailable", err)
	}
	if len(ns.waits) != 2 {
		t.Fatalf("waits = %v, want 2 retries of a request that never left", ns.waits)
	}
}

func TestSignatureIndependentCheck(t *testing.T) {
	t.Parallel()
	secret := []byte("0123456789abcdef-secret")
	body := []byte(`{"type":"sms","to":"+491701234567"}`)
	at := time.Unix(1700000000, 0)
	h := Sign(secret, at, body)
	// Recompute as a receiver in another language would.
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("1700000000." + string(body)))
	if want := "t=1700000000,v1=" + hex.EncodeToString(m.Sum(nil)); h != want {
		t.Fatalf("Sign = %q, want %q", h, want)
	}
	tests := []struct {
		name   string
		header string
		body   []byte
		now    time.Time
		ok     bool
	}{
		{"fresh", h, body, at.Add(time.Minute), true},
		{"stale", h, body, at.Add(10 * time.Minute), false},
		{"from the future", h, body, at.Add(-10 * time.Minute), false},
		{"body changed", h, []byte(`{"type":"sms","to":"+491700000000"}`), at, false},
		{"timestamp changed", strings.Replace(h, "t=1700000000", "t=1700000001", 1), body, at, false},
		{"two signatures, one good", h + ",v1=00", body, at, true},
		{"no v1", "t=1700000000", body, at, false},
		{"garbage", "nonsense", body, at, false},
		{"not hex", "t=1700000000,v1=zz", body, at, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := VerifySignature(secret, tt.header, tt.body, tt.now, 0)
			if (err == nil) != tt.ok {
				t.Fatalf("VerifySignature = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadSignature) {
				t.Fatalf("err = %v, want ErrBadSignature", err)
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.Sent("sinch", ChannelCall, nil)
	m.Sent("sinch", ChannelCall, Unavailable("sinch", "start call", 503, nil))
	m.Sent("sinch", ChannelCall, Rejected("sinch", "start call", 400, "", ""))
	m.Suppressed("sinch", ChannelCall)
	for outcome, want := range map[string]float64{OutcomeSuccess: 1, OutcomeUnavailable: 1, OutcomeRejected: 1, OutcomeCooldown: 1, OutcomeError: 0} {
		if got := testutil.ToFloat64(m.sends.WithLabelValues("sinch", ChannelCall, outcome)); got != want {
			t.Errorf("%s = %v, want %v", outcome, got, want)
		}
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Fatal("registering twice on one Registerer succeeded")
	}
	var nilM *Metrics
	nilM.Sent("x", "y", nil) // must not panic
}
