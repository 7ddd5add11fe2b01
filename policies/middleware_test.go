package policies

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const mwPolicy = `
levels: ["1", "2"]
rules:
  - name: profile-writes
    match: {methods: [POST, PUT, PATCH, DELETE], paths: ["/api/profile/**"], scopes: ["profile:write"]}
    require: {acr: "2", max_age: 5m, factors: [totp, pin, backup_code, flash_call]}
  - name: reads
    match: {methods: [GET, HEAD]}
    require: {acr: "1"}
default: deny
`

type seen struct {
	info *Info
	ok   bool
}

func newResourceServer(t *testing.T, ti *testIssuer, now time.Time, m *Metrics) (*httptest.Server, chan seen) {
	t.Helper()
	p, err := Parse([]byte(mwPolicy))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	mw, err := Middleware(ctx, Config{
		Issuer: ti.issuer, Audiences: []string{"orders-api"}, Policy: p,
		Now: func() time.Time { return now }, Metrics: m, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan seen, 1)
	backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info, ok := FromContext(r.Context())
		got <- seen{info, ok}
		_, _ = io.WriteString(w, "backend")
	})
	srv := httptest.NewServer(mw(backend))
	t.Cleanup(srv.Close)
	return srv, got
}

func TestMiddleware(t *testing.T) {
	t.Parallel()
	now := time.Unix(1700000000, 0)
	ti := newTestIssuer(t)
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	srv, got := newResourceServer(t, ti, now, m)

	plain := ti.sign(t, ti.claims(now, "s1"))
	writer := ti.claims(now, "s1")
	writer["scope"] = "openid profile:write"
	writerTok := ti.sign(t, writer)
	stepped := ti.claims(now, "s1")
	stepped["scope"] = "openid profile:write"
	stepped["stepup"] = stepUpClaim(StepUpEntry{SID: "s1", ACR: "2", AMR: []string{"pin"}, IAT: now.Add(-time.Minute).Unix(), EXP: now.Add(time.Hour).Unix()})
	steppedTok := ti.sign(t, stepped)
	otherSession := ti.claims(now, "s2")
	otherSession["scope"] = "openid profile:write"
	otherSession["stepup"] = stepped["stepup"]
	otherSessionTok := ti.sign(t, otherSession)
	expired := ti.claims(now.Add(-time.Hour), "s1")
	expiredTok := ti.sign(t, expired)
	wrongAud := ti.claims(now, "s1")
	wrongAud["aud"], wrongAud["azp"] = "other-api", "other"
	wrongAudTok := ti.sign(t, wrongAud)
	forgedKey := newTestIssuer(t) // same kid, different key
	forgedTok := signWith(t, forgedKey.key, ti.kid, stepped)

	const insufficient = `Bearer realm="test", error="insufficient_user_authentication", error_description="authentication level 2 within the last 5m with one of totp, pin, backup_code, flash_call is required", acr_values="2", max_age=300`
	const invalid = `Bearer realm="test", error="invalid_token", error_description="the access token is invalid or expired"`

	tests := []struct {
		name       string
		method     string
		path       string
		auth       []string
		wantStatus int
		wantWWW    string
		wantError  string
		wantLevel  string
		wantAMR    []string
	}{
		{"no token", "GET", "/api/profile", nil, 401, `Bearer realm="test"`, "invalid_token", "", nil},
		{"basic auth is no token", "GET", "/api/profile", []string{"Basic YTpi"}, 401, `Bearer realm="test"`, "invalid_token", "", nil},
		{"garbage token", "GET", "/api/profile", []string{"Bearer abc.def.ghi"}, 401, invalid, "invalid_token", "", nil},
		{"token with a space", "GET", "/api/profile", []string{"Bearer abc def"}, 401, invalid, "invalid_token", "", nil},
		{"two headers", "GET", "/api/profile", []string{"Bearer " + plain, "Bearer " + plain}, 401, invalid, "invalid_token", "", nil},
		{"expired token", "GET", "/api/profile", []string{"Bearer " + expiredTok}, 401, invalid, "invalid_token", "", nil},
		{"wrong audience", "GET", "/api/profile", []string{"Bearer " + wrongAudTok}, 401, invalid, "invalid_token", "", nil},
		{"forged signature learns nothing of the policy", "POST", "/api/profile/x", []string{"Bearer " + forgedTok}, 401, invalid, "invalid_token", "", nil},
		{"read at level 1", "GET", "/api/profile", []string{"Bearer " + plain}, 200, "", "", "1", nil},
		{"scheme is case-insensitive", "HEAD", "/api/profile", []string{"bearer " + plain}, 200, "", "", "1", nil},
		{"write without scope", "POST", "/api/profile/x", []string{"Bearer " + plain}, 403, `Bearer realm="test", error="insufficient_scope", error_description="the access token lacks a required scope", scope="profile:write"`, "insufficient_scope", "", nil},
		{"write at level 1", "POST", "/api/profile/x", []string{"Bearer " + writerTok}, 401, insufficient, "insufficient_user_authentication", "", nil},
		{"step-up of another session", "POST", "/api/profile/x", []string{"Bearer " + otherSessionTok}, 401, insufficient, "insufficient_user_authentication", "", nil},
		{"write after step-up", "POST", "/api/profile/x", []string{"Bearer " + steppedTok}, 200, "", "", "2", []string{"pin"}},
		{"dot segments cannot dodge the rule", "POST", "/api/other/../profile/x", []string{"Bearer " + writerTok}, 401, insufficient, "insufficient_user_authentication", "", nil},
		{"double slash cannot dodge the rule", "POST", "//api//profile/x", []string{"Bearer " + writerTok}, 401, insufficient, "insufficient_user_authentication", "", nil},
		{"encoded slash is refused", "POST", "/api%2Fprofile/x", []string{"Bearer " + steppedTok}, 403, "", "access_denied", "", nil},
		{"encoded slash without token is 401", "POST", "/api%2Fprofile/x", nil, 401, `Bearer realm="test"`, "invalid_token", "", nil},
		{"default deny", "DELETE", "/api/orders/1", []string{"Bearer " + steppedTok}, 403, "", "access_denied", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if req.URL.RequestURI() != tt.path {
				t.Fatalf("client would send %q, not %q", req.URL.RequestURI(), tt.path)
			}
			for _, a := range tt.auth {
				req.Header.Add("Authorization", a)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d (body %s)", resp.StatusCode, tt.wantStatus, body)
			}
			if www := resp.Header.Get("WWW-Authenticate"); www != tt.wantWWW {
				t.Errorf("WWW-Authenticate\n got %s\nwant %s", www, tt.wantWWW)
			}
			if tt.wantStatus == 200 {
				s := <-got
				if !s.ok || s.info.Subject != "alice-id" || s.info.SessionID != "s1" || s.info.Level != tt.wantLevel || !slices.Equal(s.info.AMR, tt.wantAMR) {
					t.Errorf("context info %+v (ok %v), want alice-id/s1 level %s amr %v", s.info, s.ok, tt.wantLevel, tt.wantAMR)
				}
				return
			}
			select {
			case <-got:
				t.Fatal("refused request reached the backend")
			default:
			}
			var eb map[string]any
			if err := json.Unmarshal(body, &eb); err != nil {
				t.Fatalf("body %q is not JSON: %v", body, err)
			}
			if eb["error"] != tt.wantError {
				t.Errorf("body error %v, want %s", eb["error"], tt.wantError)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if tt.wantError == ErrorInsufficientUserAuthentication && (eb["acr_values"] != "2" || eb["max_age"] != float64(300)) {
				t.Errorf("body %s lacks acr_values/max_age", body)
			}
		})
	}
	if n := testutil.ToFloat64(m.decisions.WithLabelValues("profile-writes", "insufficient_user_authentication")); n != 4 {
		t.Errorf("insufficient_user_authentication decisions for profile-writes = %v, want 4", n)
	}
	if n := testutil.ToFloat64(m.decisions.WithLabelValues("none", "invalid_token")); n != 6 {
		t.Errorf("invalid_token decisions = %v, want 6", n)
	}
	if n := testutil.ToFloat64(m.decisions.WithLabelValues("reads", "allow")); n != 2 {
		t.Errorf("reads allow decisions = %v, want 2", n)
	}
}

func TestMiddlewareKeySetUnavailableIs503(t *testing.T) {
	t.Parallel()
	ti := newTestIssuer(t)
	now := time.Unix(1700000000, 0)
	tok := ti.sign(t, ti.claims(now, "s1"))
	ti.srv.Close() // Keycloak is down
	srv, got := newResourceServer(t, ti, now, nil)
	req, _ := http.NewRequest("GET", srv.URL+"/api/profile", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", resp.StatusCode)
	}
	select {
	case <-got:
		t.Fatal("request reached the backend")
	default:
	}
}

func TestMiddlewareConfigErrors(t *testing.T) {
	t.Parallel()
	if _, err := Middleware(context.Background(), Config{}); err == nil {
		t.Error("Middleware without Verifier or Issuer succeeded")
	}
}

func TestChallengeQuoting(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ch   Challenge
		want string
	}{
		{"bare", Challenge{}, "Bearer"},
		{"realm", Challenge{Realm: "acme"}, `Bearer realm="acme"`},
		{"quote and backslash replaced", Challenge{Realm: `a"b\c`, Error: "invalid_token"}, `Bearer realm="a?b?c", error="invalid_token"`},
		{"newline replaced", Challenge{ErrorDescription: "x\r\ny"}, `Bearer error_description="x??y"`},
		{"non-ASCII replaced", Challenge{ErrorDescription: "é"}, `Bearer error_description="??"`},
		{"rfc 9470", Challenge{Realm: "r", Error: "insufficient_user_authentication", ErrorDescription: "d", ACRValues: []string{"2", "3"}, MaxAge: 300},
			`Bearer realm="r", error="insufficient_user_authentication", error_description="d", acr_values="2 3", max_age=300`},
		{"scope", Challenge{Error: "insufficient_scope", Scope: []string{"a", "b"}}, `Bearer error="insufficient_scope", scope="a b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.ch.String(); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}
