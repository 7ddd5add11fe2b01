package policies

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// benchPolicy has 50 path rules before the ones the benchmarks hit, so
// the numbers show the cost of a realistic first-match scan.
func benchPolicy(b *testing.B) *Policy {
	b.Helper()
	var sb strings.Builder
	sb.WriteString("levels: [\"1\", \"2\", \"3\"]\nrules:\n")
	for i := range 50 {
		fmt.Fprintf(&sb, "  - name: r%d\n    match: {methods: [POST, PUT], paths: [\"/svc%d/**/items/*\", \"/svc%d/admin/**\"]}\n    require: {acr: \"3\", max_age: 1m}\n", i, i, i)
	}
	sb.WriteString(`  - name: profile-writes
    match: {methods: [POST, PUT, PATCH, DELETE], paths: ["/api/profile/**"], scopes: ["profile:write"]}
    require: {acr: "2", max_age: 5m, factors: [totp, pin, backup_code, flash_call]}
  - name: reads
    match: {methods: [GET, HEAD]}
    require: {acr: "1"}
default: deny
`)
	p, err := Parse([]byte(sb.String()))
	if err != nil {
		b.Fatal(err)
	}
	return p
}

func BenchmarkDecide(b *testing.B) {
	p := benchPolicy(b)
	now := time.Unix(1700000000, 0)
	f := &Facts{Subject: "alice", SessionID: "s1", ACR: "1", AuthTime: now.Add(-time.Hour),
		Scopes: []string{"openid", "profile", "profile:write"},
		StepUp: []StepUpEntry{
			{SID: "s0", ACR: "2", AMR: []string{"sms"}, IAT: now.Unix() - 60, EXP: now.Unix() + 3600},
			{SID: "s1", ACR: "2", AMR: []string{"pin"}, IAT: now.Unix() - 60, EXP: now.Unix() + 3600},
		}}
	cases := []struct {
		name string
		req  Request
		want Outcome
	}{
		{"write-after-50-rules", Request{Method: "POST", Host: "api", Path: "/api/profile/42/email"}, Allow},
		{"read-after-51-rules", Request{Method: "GET", Host: "api", Path: "/api/orders/7"}, Allow},
		{"default-deny", Request{Method: "DELETE", Host: "api", Path: "/other/x/y/z"}, Deny},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d := p.Decide(c.req, f, now); d.Outcome != c.want {
					b.Fatalf("outcome %v", d.Outcome)
				}
			}
		})
	}
}

func BenchmarkNormalizePath(b *testing.B) {
	for _, in := range []string{"/api/profile/42/email", "/api/x/../profile/%34%32//email?q=1"} {
		b.Run(in, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := NormalizePath(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkMiddleware(b *testing.B) {
	ti := newTestIssuer(b)
	now := time.Now()
	c := ti.claims(now, "s1")
	c["stepup"] = stepUpClaim(StepUpEntry{SID: "s1", ACR: "2", AMR: []string{"pin"}, IAT: now.Unix(), EXP: now.Unix() + 600})
	tok := "Bearer " + ti.sign(b, c)
	mw, err := Middleware(b.Context(), Config{Issuer: ti.issuer, Audiences: []string{"orders-api"}, Policy: benchPolicy(b)})
	if err != nil {
		b.Fatal(err)
	}
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	r := httptest.NewRequest("GET", "/api/orders/7", nil)
	r.Header.Set("Authorization", tok)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusNoContent {
			b.Fatalf("status %d", w.Code)
		}
	}
}
