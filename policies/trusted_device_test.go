package policies

import (
	"strings"
	"testing"
	"time"
)

// TestTrustedDeviceSwitch: a level obtained on a trusted device counts for
// rules that do not say otherwise, and not for rules with
// require.trusted_device: false, whose 401 says a fresh factor is needed.
func TestTrustedDeviceSwitch(t *testing.T) {
	t.Parallel()
	p, err := Parse([]byte(`
levels: ["1", "2"]
rules:
  - name: payments
    match: {paths: ["/payments/**"]}
    require: {acr: "2", trusted_device: false}
  - name: explicit
    match: {paths: ["/explicit/**"]}
    require: {acr: "2", trusted_device: true}
  - name: profile
    match: {paths: ["/profile/**"]}
    require: {acr: "2", max_age: 1h}
  - name: listed
    match: {paths: ["/listed/**"]}
    require: {acr: "2", factors: [pin]}
default: deny
`))
	if err != nil {
		t.Fatal(err)
	}
	device := []StepUpEntry{entry("s1", "2", time.Minute, time.Hour, AMRTrustedDevice)}
	both := append([]StepUpEntry{entry("s1", "2", 2*time.Minute, time.Hour, "pin")}, device...)
	tests := []struct {
		name   string
		path   string
		stepUp []StepUpEntry
		want   Outcome
	}{
		{"trusted device counts by default", "/profile/x", device, Allow},
		{"trusted_device: true counts", "/explicit/x", device, Allow},
		{"fresh factor only ignores it", "/payments/x", device, InsufficientAuthentication},
		{"fresh factor only takes a real factor", "/payments/x", both, Allow},
		{"factors list without it ignores it", "/listed/x", device, InsufficientAuthentication},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &Facts{Subject: "alice", SessionID: "s1", ACR: "1", StepUp: tt.stepUp}
			d := p.Decide(Request{Method: "POST", Path: tt.path}, f, t0)
			if d.Outcome != tt.want {
				t.Fatalf("Decide = %v (%s), want %v", d.Outcome, d.Reason, tt.want)
			}
			if d.Outcome == InsufficientAuthentication && tt.path == "/payments/x" && !strings.Contains(d.Reason, "trusted device does not count") {
				t.Fatalf("reason %q does not say a trusted device does not count", d.Reason)
			}
		})
	}
	if !p.Rules()[0].FreshFactorOnly() || p.Rules()[1].FreshFactorOnly() || p.Rules()[2].FreshFactorOnly() {
		t.Fatal("FreshFactorOnly does not follow require.trusted_device")
	}
}
