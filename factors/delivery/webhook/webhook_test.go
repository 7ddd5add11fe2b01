package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/factors/delivery"
)

const secret = "webhook-secret-0123456789"

// gateway is a receiver written from the documented contract alone: it
// checks the signature with its own HMAC code.
type gateway struct {
	mu       sync.Mutex
	got      []Request
	headers  []http.Header
	answer   func(Request) (int, string, time.Duration)
	badSig   int
	requests int
}

func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	g.mu.Lock()
	g.requests++
	g.mu.Unlock()
	sig := r.Header.Get("X-Stepup-Signature")
	var ts, v1 string
	for _, part := range strings.Split(sig, ",") {
		if v, ok := strings.CutPrefix(part, "t="); ok {
			ts = v
		}
		if v, ok := strings.CutPrefix(part, "v1="); ok {
			v1 = v
		}
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "." + string(body)))
	sec, _ := strconv.ParseInt(ts, 10, 64)
	if !hmac.Equal([]byte(v1), []byte(hex.EncodeToString(m.Sum(nil)))) || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		g.mu.Lock()
		g.badSig++
		g.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":"bad_signature","message":"signature does not match"}`)
		return
	}
	var req Request
	if err := json.Unmarshal(body, &req); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	g.mu.Lock()
	g.got = append(g.got, req)
	g.headers = append(g.headers, r.Header.Clone())
	answer := g.answer
	g.mu.Unlock()
	status, reply, delay := 200, `{"cli":"+4930123456789"}`, time.Duration(0)
	if answer != nil {
		status, reply, delay = answer(req)
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	w.WriteHeader(status)
	io.WriteString(w, reply)
}

func setup(t *testing.T, sec string) (*gateway, *Provider) {
	t.Helper()
	g := &gateway{}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	p, err := New(Config{URL: srv.URL, Secret: sec, CodeLength: 4, Client: srv.Client(),
		Policy: delivery.Policy{Timeout: 200 * time.Millisecond, Retries: 2, Backoff: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	return g, p
}

func TestFlashCall(t *testing.T) {
	t.Parallel()
	g, p := setup(t, secret)
	call, err := p.StartCall(context.Background(), "+491701234567")
	if err != nil {
		t.Fatal(err)
	}
	if call.CLI != "+4930123456789" || call.ID == "" {
		t.Fatalf("call = %+v", call)
	}
	if len(g.got) != 1 || g.got[0].Type != TypeFlashCall || g.got[0].To != "+491701234567" || g.got[0].CodeLength != 4 {
		t.Fatalf("gateway got %+v", g.got)
	}
	if g.headers[0].Get("Idempotency-Key") != g.got[0].ID {
		t.Fatal("Idempotency-Key is not the request id")
	}
}

func TestMessages(t *testing.T) {
	t.Parallel()
	g, p := setup(t, secret)
	ctx := context.Background()
	if err := p.Send(ctx, delivery.Message{Channel: delivery.ChannelSMS, To: "+491701234567", Body: "Code 123456", ID: "abc"}); err != nil {
		t.Fatal(err)
	}
	if err := p.Send(ctx, delivery.Message{Channel: delivery.ChannelEmail, To: "a@example.com", Subject: "Code", Body: "Code 654321"}); err != nil {
		t.Fatal(err)
	}
	if g.got[0].Type != TypeSMS || g.got[0].Text != "Code 123456" || g.got[0].ID != "abc" {
		t.Fatalf("sms = %+v", g.got[0])
	}
	if g.got[1].Type != TypeEmail || g.got[1].Subject != "Code" || g.got[1].ID == "" {
		t.Fatalf("email = %+v", g.got[1])
	}
	if err := p.Send(ctx, delivery.Message{Channel: delivery.ChannelSMS, To: "0170 123", Body: "x"}); err == nil {
		t.Fatal("SMS to a non-E.164 number was sent")
	}
}

func TestWrongSecretRefusedByReceiver(t *testing.T) {
	t.Parallel()
	g, p := setup(t, "another-secret-0123456789")
	_, err := p.StartCall(context.Background(), "+491701234567")
	var pe *delivery.ProviderError
	if !errors.Is(err, delivery.ErrProviderRejected) || !errors.As(err, &pe) || pe.Code != "bad_signature" {
		t.Fatalf("err = %v, want rejected bad_signature", err)
	}
	if g.badSig != 1 {
		t.Fatalf("receiver saw %d bad signatures", g.badSig)
	}
}

func TestFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		status    int
		reply     string
		delay     time.Duration
		wantKind  error
		wantTries int
	}{
		{"5xx not repeated", 502, `{"error":"upstream"}`, 0, delivery.ErrProviderUnavailable, 1},
		{"timeout not repeated", 200, `{"cli":"+4930123456789"}`, time.Second, delivery.ErrProviderUnavailable, 1},
		{"malformed json", 200, `{"cli":`, 0, delivery.ErrProviderRejected, 1},
		{"cli not E.164", 200, `{"cli":"030 1234"}`, 0, delivery.ErrProviderRejected, 1},
		{"no cli", 200, `{}`, 0, delivery.ErrProviderRejected, 1},
		{"4xx", 422, `{"error":"unroutable","message":"no route to +49"}`, 0, delivery.ErrProviderRejected, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g, p := setup(t, secret)
			g.answer = func(Request) (int, string, time.Duration) { return tt.status, tt.reply, tt.delay }
			_, err := p.StartCall(context.Background(), "+491701234567")
			if !errors.Is(err, tt.wantKind) {
				t.Fatalf("err = %v, want %v", err, tt.wantKind)
			}
			g.mu.Lock()
			defer g.mu.Unlock()
			if g.requests != tt.wantTries {
				t.Fatalf("requests = %d, want %d", g.requests, tt.wantTries)
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]Config{
		"short secret": {URL: "https://gw.example/x", Secret: "short"},
		"no url":       {Secret: secret},
		"not http":     {URL: "file:///etc/passwd", Secret: secret},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := New(cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
