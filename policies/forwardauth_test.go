package policies

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestForwardAuth(t *testing.T) {
	t.Parallel()
	now := time.Unix(1700000000, 0)
	ti := newTestIssuer(t)
	p, err := Parse([]byte(`
levels: ["1", "2"]
rules:
  - name: admin-host
    match: {hosts: ["admin.example.com"]}
    require: {acr: "2"}
  - name: writes
    match: {methods: [POST, PUT, PATCH, DELETE], paths: ["/api/**"]}
    require: {acr: "2", max_age: 300}
  - name: reads
    match: {methods: [GET]}
    require: {acr: "1"}
default: deny
`))
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAuthorizer(context.Background(), Config{Issuer: ti.issuer, Policy: p,
		Now: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	h := a.ForwardAuth(ForwardAuthOptions{PathPrefix: "/v1/authz"})

	plain := "Bearer " + ti.sign(t, ti.claims(now, "s1"))
	c := ti.claims(now, "s1")
	c["stepup"] = stepUpClaim(StepUpEntry{SID: "s1", ACR: "2", AMR: []string{"totp", "pin"}, IAT: now.Unix() - 10, EXP: now.Unix() + 600})
	stepped := "Bearer " + ti.sign(t, c)
	const challenge = `Bearer realm="test", error="insufficient_user_authentication", error_description="authentication level 2 within the last 5m is required", acr_values="2", max_age=300`

	tests := []struct {
		name       string
		method     string
		target     string
		headers    map[string]string
		wantStatus int
		wantWWW    string
		wantACR    string
	}{
		{"nginx read", "GET", "/v1/authz", map[string]string{"X-Original-Method": "GET", "X-Original-URI": "/api/orders?x=1", "Authorization": plain}, 200, "", "1"},
		{"nginx write needs step-up", "GET", "/v1/authz", map[string]string{"X-Original-Method": "POST", "X-Original-URI": "/api/orders", "Authorization": plain}, 401, challenge, ""},
		{"nginx subrequest method when no X-Original-Method", "POST", "/v1/authz", map[string]string{"X-Original-URI": "/api/orders", "Authorization": plain}, 401, challenge, ""},
		{"nginx write after step-up", "GET", "/v1/authz", map[string]string{"X-Original-Method": "POST", "X-Original-URI": "/api/orders", "Authorization": stepped}, 200, "", "2"},
		{"nginx raw uri with dot segments", "GET", "/v1/authz", map[string]string{"X-Original-Method": "DELETE", "X-Original-URI": "/static/../api/orders/1", "Authorization": plain}, 401, challenge, ""},
		{"nginx encoded slash", "GET", "/v1/authz", map[string]string{"X-Original-Method": "GET", "X-Original-URI": "/api%2forders", "Authorization": plain}, 403, "", ""},
		{"nginx host rule", "GET", "/v1/authz", map[string]string{"X-Original-Method": "GET", "X-Original-URI": "/", "X-Original-Host": "admin.example.com", "Authorization": plain}, 401, `Bearer realm="test", error="insufficient_user_authentication", error_description="authentication level 2 is required", acr_values="2"`, ""},
		{"unknown host with a host rule is denied", "GET", "/v1/authz", map[string]string{"X-Original-Method": "GET", "X-Original-URI": "/", "Authorization": plain}, 403, "", ""},
		{"traefik read", "GET", "/v1/authz", map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/api/orders", "X-Forwarded-Host": "shop.example.com", "X-Forwarded-Proto": "https", "Authorization": plain}, 200, "", "1"},
		{"traefik write", "GET", "/v1/authz", map[string]string{"X-Forwarded-Method": "PATCH", "X-Forwarded-Uri": "/api/orders/7", "X-Forwarded-Host": "shop.example.com", "Authorization": plain}, 401, challenge, ""},
		{"traefik admin host", "GET", "/v1/authz", map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/", "X-Forwarded-Host": "ADMIN.example.com:443", "Authorization": stepped}, 200, "", "2"},
		{"envoy read", "GET", "/v1/authz/api/orders?page=2", map[string]string{"Authorization": plain}, 200, "", "1"},
		{"envoy write", "DELETE", "/v1/authz/api/orders/1", map[string]string{"Authorization": plain}, 401, challenge, ""},
		{"envoy prefix is a segment", "GET", "/v1/authzapi/orders", map[string]string{"Authorization": plain}, 403, "", ""},
		{"no original request", "GET", "/v1/authz", map[string]string{"Authorization": plain}, 403, "", ""},
		{"no token", "GET", "/v1/authz", map[string]string{"X-Original-Method": "POST", "X-Original-URI": "/api/orders"}, 401, `Bearer realm="test"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.target, nil)
			r.Host = "shop.example.com"
			if strings.HasPrefix(tt.name, "nginx") || strings.HasPrefix(tt.name, "unknown") {
				r.Host = "sidecar:8080" // nginx's subrequest goes to the sidecar
				if _, ok := tt.headers["X-Original-Host"]; !ok && strings.HasPrefix(tt.name, "nginx") {
					r.Header.Set("X-Original-Host", "shop.example.com")
				}
			}
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			if tt.name == "unknown host with a host rule is denied" {
				r.Host = ""
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", w.Code, tt.wantStatus, w.Body)
			}
			if got := w.Header().Get("WWW-Authenticate"); got != tt.wantWWW {
				t.Errorf("WWW-Authenticate\n got %s\nwant %s", got, tt.wantWWW)
			}
			if tt.wantStatus == 200 {
				if got := w.Header().Get(HeaderAuthSubject); got != "alice-id" {
					t.Errorf("X-Auth-Subject %q", got)
				}
				if got := w.Header().Get(HeaderAuthACR); got != tt.wantACR {
					t.Errorf("X-Auth-Acr %q, want %q", got, tt.wantACR)
				}
				if got := w.Header().Get(HeaderAuthSession); got != "s1" {
					t.Errorf("X-Auth-Session %q", got)
				}
				if tt.wantACR == "2" && w.Header().Get(HeaderAuthAMR) != "pin,totp" {
					t.Errorf("X-Auth-Amr %q, want pin,totp", w.Header().Get(HeaderAuthAMR))
				}
			}
			if w.Header().Get("Cache-Control") != "no-store" {
				t.Error("forward-auth answer is cacheable")
			}
		})
	}
}
