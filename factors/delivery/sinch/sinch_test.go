package sinch

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/factors/delivery"
)

const (
	testKey    = "669E367E-6BBA-48AB-AF15-266871C28135"
	testSecret = "BeIukql3pTKJ8RGL5zo0DA=="
)

// TestSignatureVector checks the signature against the worked example in
// Sinch's documentation of signed requests.
func TestSignatureVector(t *testing.T) {
	t.Parallel()
	key, _ := base64.StdEncoding.DecodeString(testSecret)
	body := []byte(`{"event":"ace","callid":"822aa4b7-05b4-4d83-87c7-1f835ee0b6f6_257","timestamp":"2014-09-24T10:59:41Z","version":1}`)
	got := Signature(key, "POST", body, "application/json", "2014-09-24T10:59:41Z", "/sinch/callback/ace")
	if want := "Tg6fMyo8mj9pYfWQ9ssbx3Tc1BNC87IEygAfLbJqZb4="; got != want {
		t.Fatalf("Signature = %s, want %s", got, want)
	}
}

// fakeSinch answers as the Verification API does, checking every
// request's authentication independently of the code under test.
type fakeSinch struct {
	t        *testing.T
	mu       sync.Mutex
	basic    bool
	calls    map[string]string // verification id -> calling number
	reported []string
	// override, if set, answers instead (status, body, delay).
	override func(r *http.Request) (int, string, time.Duration)
	requests int
}

func (f *fakeSinch) checkAuth(r *http.Request, body []byte) bool {
	if f.basic {
		u, p, ok := r.BasicAuth()
		return ok && u == testKey && p == testSecret
	}
	auth := r.Header.Get("Authorization")
	ts := r.Header.Get("x-timestamp")
	if _, err := time.Parse(time.RFC3339, ts); err != nil {
		return false
	}
	key, _ := base64.StdEncoding.DecodeString(testSecret)
	sum := md5.Sum(body)
	sts := strings.Join([]string{r.Method, base64.StdEncoding.EncodeToString(sum[:]), r.Header.Get("Content-Type"), "x-timestamp:" + ts, r.URL.Path}, "\n")
	m := hmac.New(sha256.New, key)
	m.Write([]byte(sts))
	return auth == "Application "+testKey+":"+base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func (f *fakeSinch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.requests++
	override := f.override
	f.mu.Unlock()
	if override != nil {
		status, b, delay := override(r)
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		w.WriteHeader(status)
		io.WriteString(w, b)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if !f.checkAuth(r, body) {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"errorCode":40100,"message":"Invalid authorization header","reference":"ref"}`)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/verification/v1/verifications":
		var req struct {
			Identity struct{ Type, Endpoint string }
			Method   string
		}
		if json.Unmarshal(body, &req) != nil || req.Identity.Type != "number" || req.Method != "flashCall" {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"errorCode":40001,"message":"Invalid request"}`)
			return
		}
		if strings.HasPrefix(req.Identity.Endpoint, "+999") {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"errorCode":40003,"message":"Invalid identity or number"}`)
			return
		}
		id := fmt.Sprintf("1%09d", len(f.calls)+1)
		f.calls[id] = "+4670123" + fmt.Sprintf("%04d", 1000+len(f.calls))
		fmt.Fprintf(w, `{"id":%q,"method":"flashcall","flashCall":{"cliFilter":"(.*)70123(.*)","interceptionTimeout":45,"reportTimeout":75,"denyCallAfter":0},"_links":[{"rel":"status","href":"https://x/verification/v1/verifications/id/%s","method":"GET"}]}`, id, id)
	case r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/verification/v1/verifications/id/"):
		id := strings.TrimPrefix(r.URL.Path, "/verification/v1/verifications/id/")
		cli, ok := f.calls[id]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"errorCode":40400,"message":"Verification not found"}`)
			return
		}
		var rep struct {
			Method    string
			FlashCall struct{ CLI string }
		}
		if json.Unmarshal(body, &rep) != nil || rep.Method != "flashCall" {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"errorCode":40001,"message":"Invalid request"}`)
			return
		}
		f.reported = append(f.reported, rep.FlashCall.CLI)
		status := "FAIL"
		if rep.FlashCall.CLI == cli {
			status = "SUCCESSFUL"
		}
		fmt.Fprintf(w, `{"id":%q,"method":"flashcall","status":%q,"reason":"","callComplete":true}`, id, status)
	default:
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"errorCode":40400,"message":"Not found"}`)
	}
}

func newFake(t *testing.T, basic bool) (*fakeSinch, *httptest.Server) {
	t.Helper()
	f := &fakeSinch{t: t, basic: basic, calls: map[string]string{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func newProvider(t *testing.T, srv *httptest.Server, auth Auth, secret string) *Provider {
	t.Helper()
	p, err := New(Config{BaseURL: srv.URL, AppKey: testKey, AppSecret: secret, Auth: auth,
		Policy: delivery.Policy{Timeout: 200 * time.Millisecond, Retries: 2, Backoff: time.Millisecond}, Client: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStartAndReport(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		auth Auth
	}{{"signed", AuthSigned}, {"basic", AuthBasic}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, srv := newFake(t, tc.auth == AuthBasic)
			p := newProvider(t, srv, tc.auth, testSecret)
			ctx := context.Background()
			call, err := p.StartCall(ctx, "+46701111111")
			if err != nil {
				t.Fatal(err)
			}
			if call.ID == "" || call.CLIFilter != "(.*)70123(.*)" || call.CLI != "" {
				t.Fatalf("call = %+v", call)
			}
			ok, err := p.ReportCall(ctx, call.ID, "+46701239999")
			if err != nil || ok {
				t.Fatalf("wrong number: ok=%v err=%v, want false, nil", ok, err)
			}
			ok, err = p.ReportCall(ctx, call.ID, f.calls[call.ID])
			if err != nil || !ok {
				t.Fatalf("right number: ok=%v err=%v, want true", ok, err)
			}
			ok, err = p.ReportCall(ctx, "1999999999", f.calls[call.ID])
			if err != nil || ok {
				t.Fatalf("unknown verification: ok=%v err=%v, want false, nil", ok, err)
			}
		})
	}
}

func TestWrongSecretIsRejected(t *testing.T) {
	t.Parallel()
	_, srv := newFake(t, false)
	p := newProvider(t, srv, AuthSigned, base64.StdEncoding.EncodeToString([]byte("another secret")))
	_, err := p.StartCall(context.Background(), "+46701111111")
	var pe *delivery.ProviderError
	if !errors.Is(err, delivery.ErrProviderRejected) || !errors.As(err, &pe) || pe.Status != 401 || pe.Code != "40100" {
		t.Fatalf("err = %v, want rejected 401 code 40100", err)
	}
}

func TestProviderFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		status    int
		body      string
		delay     time.Duration
		report    bool
		wantKind  error
		wantTries int
	}{
		{"start 503 not repeated", 503, `{"errorCode":50300,"message":"busy"}`, 0, false, delivery.ErrProviderUnavailable, 1},
		{"start slow beyond timeout not repeated", 200, `{}`, 2 * time.Second, false, delivery.ErrProviderUnavailable, 1},
		{"start malformed JSON", 200, `{"id":"1","flashCall":`, 0, false, delivery.ErrProviderRejected, 1},
		{"start reply without filter", 200, `{"id":"1","flashCall":{}}`, 0, false, delivery.ErrProviderRejected, 1},
		{"start filter not a regexp", 200, `{"id":"1","flashCall":{"cliFilter":"(("}}`, 0, false, delivery.ErrProviderRejected, 1},
		{"start refused number", 400, `{"errorCode":40003,"message":"Invalid identity"}`, 0, false, delivery.ErrProviderRejected, 1},
		{"report 500 repeated then given up", 500, `oops`, 0, true, delivery.ErrProviderUnavailable, 3},
		{"report slow repeated then given up", 200, `{}`, 2 * time.Second, true, delivery.ErrProviderUnavailable, 3},
		{"report ERROR status", 200, `{"id":"1","status":"ERROR","reason":"Internal error"}`, 0, true, delivery.ErrProviderUnavailable, 1},
		{"report unknown status", 200, `{"id":"1","status":"MAYBE"}`, 0, true, delivery.ErrProviderRejected, 1},
		{"report malformed JSON", 200, `not json`, 0, true, delivery.ErrProviderRejected, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, srv := newFake(t, false)
			f.override = func(*http.Request) (int, string, time.Duration) { return tt.status, tt.body, tt.delay }
			p := newProvider(t, srv, AuthSigned, testSecret)
			var err error
			if tt.report {
				var ok bool
				ok, err = p.ReportCall(context.Background(), "1", "+46701231234")
				if ok {
					t.Fatal("a failed report verified")
				}
			} else {
				_, err = p.StartCall(context.Background(), "+46701111111")
			}
			if !errors.Is(err, tt.wantKind) {
				t.Fatalf("err = %v, want %v", err, tt.wantKind)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.requests != tt.wantTries {
				t.Fatalf("requests = %d, want %d", f.requests, tt.wantTries)
			}
		})
	}
}

func TestReportStatuses(t *testing.T) {
	t.Parallel()
	for _, status := range []string{"FAIL", "DENIED", "ABORTED", "PENDING"} {
		t.Run(status, func(t *testing.T) {
			t.Parallel()
			f, srv := newFake(t, false)
			f.override = func(*http.Request) (int, string, time.Duration) {
				return 200, `{"id":"1","method":"flashcall","status":"` + status + `","reason":"Expired"}`, 0
			}
			ok, err := newProvider(t, srv, AuthSigned, testSecret).ReportCall(context.Background(), "1", "+46701231234")
			if ok || err != nil {
				t.Fatalf("ok=%v err=%v, want false, nil", ok, err)
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]Config{
		"no key":            {AppSecret: testSecret},
		"no secret":         {AppKey: testKey},
		"secret not base64": {AppKey: testKey, AppSecret: "not base64!"},
		"bad url":           {AppKey: testKey, AppSecret: testSecret, BaseURL: "ftp://x"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := New(cfg); err == nil {
				t.Fatal("New accepted it")
			}
		})
	}
	if _, err := New(Config{AppKey: testKey, AppSecret: "plain", Auth: AuthBasic}); err != nil {
		t.Fatalf("basic auth needs no base64 secret: %v", err)
	}
}

func TestStartRefusesNonE164(t *testing.T) {
	t.Parallel()
	f, srv := newFake(t, false)
	if _, err := newProvider(t, srv, AuthSigned, testSecret).StartCall(context.Background(), "0701234567"); err == nil {
		t.Fatal("StartCall accepted a national number")
	}
	if f.requests != 0 {
		t.Fatal("a request was sent")
	}
}
