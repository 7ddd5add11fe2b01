package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/config"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// pingStore is a store whose only used method is Ping; the server skeleton
// calls nothing else.
type pingStore struct {
	store.Store
	err atomic.Value // error
}

func (p *pingStore) Ping(context.Context) error {
	if e, ok := p.err.Load().(error); ok && e != nil {
		return e
	}
	return nil
}

func newTestServer(t *testing.T, mutate func(*config.Config)) (*Server, *pingStore) {
	t.Helper()
	cfg := config.Default()
	cfg.Listen.Addr = "127.0.0.1:0"
	cfg.Listen.MaxBodyBytes = 1024
	if mutate != nil {
		mutate(&cfg)
	}
	st := &pingStore{}
	s, err := New(Options{Config: cfg, Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return s, st
}

func decodeError(t *testing.T, body io.Reader) apiError {
	t.Helper()
	var e apiError
	if err := json.NewDecoder(body).Decode(&e); err != nil {
		t.Fatalf("error body is not JSON: %v", err)
	}
	if e.Code == "" || e.Description == "" {
		t.Fatalf("error body lacks error or error_description: %+v", e)
	}
	return e
}

func TestHealthAndReadiness(t *testing.T) {
	s, st := newTestServer(t, nil)
	h := s.Handler()

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != 200 {
		t.Fatalf("healthz = %d", rec.Code)
	}

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != 200 {
		t.Fatalf("readyz with a healthy store = %d", rec.Code)
	}

	st.err.Store(errors.New("connection refused"))
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("readyz with a failing store = %d, want 503", rec.Code)
	}
	var body struct {
		Ready  bool              `json:"ready"`
		Checks map[string]string `json:"checks"`
	}
	if err := json.NewDecoder(rec.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if body.Ready || body.Checks["store"] != "unavailable" {
		t.Fatalf("readyz body = %+v", body)
	}
	if strings.Contains(rec.Body.String(), "connection refused") {
		t.Fatal("readyz leaks the error text")
	}

	// healthz stays up when a dependency is down: liveness must not restart pods for a Keycloak outage.
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != 200 {
		t.Fatalf("healthz with a failing store = %d", rec.Code)
	}
}

func TestReadinessExtraChecks(t *testing.T) {
	cfg := config.Default()
	var fail atomic.Bool
	s, err := New(Options{Config: cfg, Store: &pingStore{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Checks: []Check{{Name: "keycloak", Check: func(context.Context) error {
			if fail.Load() {
				return errors.New("down")
			}
			return nil
		}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		fail bool
		want int
	}{{false, 200}, {true, 503}, {false, 200}} {
		fail.Store(tc.fail)
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		if rec.Code != tc.want {
			t.Fatalf("keycloak failing=%v: readyz = %d, want %d", tc.fail, rec.Code, tc.want)
		}
	}
}

func TestErrorsAreJSON(t *testing.T) {
	s, _ := newTestServer(t, nil)
	s.Handle("POST /echo", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v struct {
			Name string `json:"name"`
		}
		if err := decodeJSON(r, &v); err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, 200, v)
	}))
	s.Handle("GET /panic", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	s.Handle("GET /store-down", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, errUnavailable("the store"))
	}))

	tests := []struct {
		name, method, path, ctype, body string
		wantStatus                      int
		wantCode                        string
	}{
		{"unknown route", "GET", "/nope", "", "", 404, "not_found"},
		{"malformed json", "POST", "/echo", "application/json", "{", 400, "invalid_request"},
		{"unknown field", "POST", "/echo", "application/json", `{"name":"a","admin":true}`, 400, "invalid_request"},
		{"trailing data", "POST", "/echo", "application/json", `{"name":"a"}{}`, 400, "invalid_request"},
		{"wrong content type", "POST", "/echo", "text/plain", `{"name":"a"}`, 415, "invalid_request"},
		{"oversized body", "POST", "/echo", "application/json", `{"name":"` + strings.Repeat("a", 2000) + `"}`, 413, "invalid_request"},
		{"panic", "GET", "/panic", "", "", 500, "server_error"},
		{"dependency down", "GET", "/store-down", "", "", 503, "temporarily_unavailable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			if rec.Code != tc.wantStatus {
				t.Fatalf("status = %d, want %d (%s)", rec.Code, tc.wantStatus, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type = %q", ct)
			}
			if e := decodeError(t, rec.Body); e.Code != tc.wantCode {
				t.Fatalf("error = %q, want %q", e.Code, tc.wantCode)
			}
			if tc.wantStatus == 503 && rec.Header().Get("Retry-After") == "" {
				t.Fatal("503 without Retry-After")
			}
		})
	}

	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/echo", strings.NewReader(`{"name":"ok"}`))
	req.Header.Set("Content-Type", "application/json")
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"ok"`) {
		t.Fatalf("valid body: %d %s", rec.Code, rec.Body)
	}
}

func TestRequestIDAndMetrics(t *testing.T) {
	s, _ := newTestServer(t, nil)
	h := s.Handler()

	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/healthz", nil)
	req.Header.Set("X-Request-Id", "abc-123")
	h.ServeHTTP(rec, req)
	if got := rec.Header().Get("X-Request-Id"); got != "abc-123" {
		t.Fatalf("request id not propagated: %q", got)
	}
	rec = httptest.NewRecorder()
	req = httptest.NewRequest("GET", "/healthz", nil)
	req.Header.Set("X-Request-Id", "bad id\nwith newline")
	h.ServeHTTP(rec, req)
	if got := rec.Header().Get("X-Request-Id"); got == "" || strings.ContainsAny(got, " \n") {
		t.Fatalf("unsafe request id accepted or none assigned: %q", got)
	}

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`stepup_http_requests_total{code="200",method="GET",route="GET /healthz"} 2`,
		`stepup_http_request_duration_seconds_bucket{code="200",route="GET /healthz"`,
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestClientIP(t *testing.T) {
	s, _ := newTestServer(t, func(c *config.Config) { c.Listen.TrustedProxies = []string{"10.0.0.0/8"} })
	tests := []struct {
		name, remote, xff, want string
	}{
		{"direct client", "203.0.113.5:1234", "", "203.0.113.5"},
		{"untrusted peer cannot spoof", "203.0.113.5:1234", "198.51.100.1", "203.0.113.5"},
		{"trusted proxy", "10.1.2.3:1234", "198.51.100.1", "198.51.100.1"},
		{"chain of proxies", "10.1.2.3:1234", "198.51.100.1, 10.9.9.9", "198.51.100.1"},
		{"spoofed left-most ignored", "10.1.2.3:1234", "1.1.1.1, 198.51.100.7", "198.51.100.7"},
		{"garbage header", "10.1.2.3:1234", "not-an-ip", "10.1.2.3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/", nil)
			req.RemoteAddr = tc.remote
			if tc.xff != "" {
				req.Header.Set("X-Forwarded-For", tc.xff)
			}
			if got := s.clientIP(req); got != tc.want {
				t.Fatalf("clientIP = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestGracefulShutdown: a request in flight when the context ends still
// gets its full answer, and new connections are refused afterwards.
func TestGracefulShutdown(t *testing.T) {
	s, _ := newTestServer(t, nil)
	started := make(chan struct{})
	release := make(chan struct{})
	s.Handle("GET /slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		writeJSON(w, 200, map[string]string{"done": "yes"})
	}))
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()

	url := "http://" + s.Addr()
	type result struct {
		status int
		body   string
		err    error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.Get(url + "/slow")
		if err != nil {
			res <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		res <- result{status: resp.StatusCode, body: string(b)}
	}()
	<-started
	cancel() // SIGTERM arrives while /slow is in flight
	time.Sleep(50 * time.Millisecond)
	close(release)

	r := <-res
	if r.err != nil || r.status != 200 || !strings.Contains(r.body, "yes") {
		t.Fatalf("in-flight request: %+v", r)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := http.Get(url + "/healthz"); err == nil {
		t.Fatal("server still accepts connections after shutdown")
	}
}
