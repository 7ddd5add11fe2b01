package policies

import (
	"slices"
	"testing"
	"time"
)

const evalPolicy = `
levels: ["1", "2", "3"]
rules:
  - name: strong
    match: {paths: ["/strong/**"]}
    require: {acr: "3"}
  - name: fresh
    match: {paths: ["/fresh/**"]}
    require: {acr: "2", max_age: 5m}
  - name: factors
    match: {paths: ["/factors/**"]}
    require: {acr: "2", max_age: 5m, factors: [pin, totp]}
  - name: scoped
    match: {paths: ["/scoped/**"], scopes: ["orders:write", "admin"]}
    require: {acr: "1"}
  - name: anytoken
    match: {paths: ["/open/**"]}
default: deny
`

func entry(sid, acr string, iatAgo, expIn time.Duration, amr ...string) StepUpEntry {
	return StepUpEntry{SID: sid, ACR: acr, AMR: amr, IAT: t0.Add(-iatAgo).Unix(), EXP: t0.Add(expIn).Unix()}
}

func TestDecideEffectiveLevel(t *testing.T) {
	t.Parallel()
	p, err := Parse([]byte(evalPolicy))
	if err != nil {
		t.Fatal(err)
	}
	base := func(mod func(f *Facts)) *Facts {
		f := &Facts{Subject: "alice", SessionID: "s1", ACR: "1", AuthTime: t0.Add(-time.Hour), Scopes: []string{"openid", "profile"}}
		if mod != nil {
			mod(f)
		}
		return f
	}
	tests := []struct {
		name      string
		path      string
		facts     *Facts
		want      Outcome
		wantLevel string
		wantAMR   []string
	}{
		{"level 1 token on fresh rule", "/fresh/a", base(nil), InsufficientAuthentication, "", nil},
		{"fresh step-up entry", "/fresh/a", base(func(f *Facts) { f.StepUp = []StepUpEntry{entry("s1", "2", time.Minute, time.Hour, "pin")} }), Allow, "2", []string{"pin"}},
		{"max_age boundary is inclusive", "/fresh/a", base(func(f *Facts) { f.StepUp = []StepUpEntry{entry("s1", "2", 5*time.Minute, time.Hour, "pin")} }), Allow, "2", []string{"pin"}},
		{"entry too old for max_age", "/fresh/a", base(func(f *Facts) {
			f.StepUp = []StepUpEntry{entry("s1", "2", 5*time.Minute+time.Second, time.Hour, "pin")}
		}), InsufficientAuthentication, "", nil},
		{"entry of another session", "/fresh/a", base(func(f *Facts) { f.StepUp = []StepUpEntry{entry("s2", "2", time.Minute, time.Hour, "pin")} }), InsufficientAuthentication, "", nil},
		{"token without sid ignores entries", "/fresh/a", base(func(f *Facts) {
			f.SessionID = ""
			f.StepUp = []StepUpEntry{{SID: "", ACR: "2", IAT: t0.Unix(), EXP: t0.Add(time.Hour).Unix()}}
		}), InsufficientAuthentication, "", nil},
		{"expired entry", "/fresh/a", base(func(f *Facts) { f.StepUp = []StepUpEntry{entry("s1", "2", time.Minute, 0, "pin")} }), InsufficientAuthentication, "", nil},
		{"entry below required level", "/strong/a", base(func(f *Facts) { f.StepUp = []StepUpEntry{entry("s1", "2", time.Minute, time.Hour, "pin")} }), InsufficientAuthentication, "2", []string{"pin"}},
		{"highest entry wins", "/strong/a", base(func(f *Facts) {
			f.StepUp = []StepUpEntry{entry("s1", "2", time.Minute, time.Hour, "pin"), entry("s1", "3", 2*time.Minute, time.Hour, "totp")}
		}), Allow, "3", []string{"pin", "totp"}},
		{"unknown entry acr does not count", "/fresh/a", base(func(f *Facts) { f.StepUp = []StepUpEntry{entry("s1", "9", time.Minute, time.Hour, "pin")} }), InsufficientAuthentication, "", nil},
		{"keycloak acr counts like ours", "/strong/a", base(func(f *Facts) { f.ACR = "3" }), Allow, "3", nil},
		{"keycloak acr fresh by auth_time", "/fresh/a", base(func(f *Facts) { f.ACR, f.AuthTime = "2", t0.Add(-time.Minute) }), Allow, "2", nil},
		{"keycloak acr stale by auth_time", "/fresh/a", base(func(f *Facts) { f.ACR, f.AuthTime = "2", t0.Add(-10*time.Minute) }), InsufficientAuthentication, "", nil},
		{"keycloak acr without auth_time fails max_age", "/fresh/a", base(func(f *Facts) { f.ACR, f.AuthTime = "2", time.Time{} }), InsufficientAuthentication, "", nil},
		{"factor accepted", "/factors/a", base(func(f *Facts) { f.StepUp = []StepUpEntry{entry("s1", "2", time.Minute, time.Hour, "totp")} }), Allow, "2", []string{"totp"}},
		{"factor not accepted", "/factors/a", base(func(f *Facts) { f.StepUp = []StepUpEntry{entry("s1", "2", time.Minute, time.Hour, "sms")} }), InsufficientAuthentication, "", nil},
		{"factor rule ignores keycloak acr without amr", "/factors/a", base(func(f *Facts) { f.ACR, f.AuthTime = "3", t0 }), InsufficientAuthentication, "", nil},
		{"factor rule accepts keycloak amr", "/factors/a", base(func(f *Facts) { f.ACR, f.AuthTime, f.AMR = "2", t0, []string{"pwd", "totp"} }), Allow, "2", []string{"pwd", "totp"}},
		{"scope present", "/scoped/x", base(func(f *Facts) { f.Scopes = append(f.Scopes, "admin") }), Allow, "1", nil},
		{"scope missing", "/scoped/x", base(nil), InsufficientScope, "", nil},
		{"scope checked before level", "/scoped/x", base(func(f *Facts) { f.ACR = "0" }), InsufficientScope, "", nil},
		{"rule without acr admits any token", "/open/x", base(func(f *Facts) { f.ACR = "" }), Allow, "", nil},
		{"default deny", "/elsewhere", base(nil), Deny, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := p.Decide(Request{Method: "POST", Host: "api", Path: tt.path}, tt.facts, t0)
			if d.Outcome != tt.want {
				t.Fatalf("outcome %v (%s), want %v", d.Outcome, d.Reason, tt.want)
			}
			if d.Level != tt.wantLevel {
				t.Errorf("level %q, want %q", d.Level, tt.wantLevel)
			}
			if !slices.Equal(d.AMR, tt.wantAMR) {
				t.Errorf("amr %v, want %v", d.AMR, tt.wantAMR)
			}
			if d.Outcome == InsufficientAuthentication && d.RequiredACR == "" {
				t.Error("insufficient authentication without a required acr")
			}
		})
	}
}

func TestDecideDefaultAllowStillReportsLevel(t *testing.T) {
	t.Parallel()
	p, err := Parse([]byte("levels: [\"1\", \"2\"]\ndefault: allow\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := p.Decide(Request{Method: "GET", Path: "/"}, &Facts{SessionID: "s", ACR: "1", StepUp: []StepUpEntry{entry("s", "2", time.Hour, time.Hour, "pin")}}, t0)
	if d.Outcome != Allow || d.Level != "2" || d.RuleLabel() != "default" {
		t.Errorf("got %+v, want allow at level 2 by default", d)
	}
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	p, err := Parse([]byte(evalPolicy))
	if err != nil {
		t.Fatal(err)
	}
	d := p.Decide(Request{Method: "POST", Path: "/factors/x"}, &Facts{ACR: "1"}, t0)
	want := "authentication level 2 within the last 5m with one of pin, totp is required"
	if d.Reason != want {
		t.Errorf("reason %q, want %q", d.Reason, want)
	}
}
