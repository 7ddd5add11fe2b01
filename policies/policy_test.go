package policies

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Unix(1700000000, 0)

func mustLoad(t *testing.T, path string) *Policy {
	t.Helper()
	p, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	return p
}

func TestMatchPrecedence(t *testing.T) {
	t.Parallel()
	p := mustLoad(t, filepath.Join("testdata", "example.yaml"))
	tests := []struct {
		name     string
		req      Request
		wantRule string // "" = no rule
		wantOK   bool
	}{
		{"host rule wins over everything", Request{"GET", "admin.example.com", "/api/profile/x"}, "admin", true},
		{"host with port and case", Request{"POST", "Admin.Example.COM:8443", "/"}, "admin", true},
		{"other host falls through", Request{"GET", "api.example.com", "/api/profile"}, "reads", true},
		{"unknown host with a host rule first is indeterminate", Request{"GET", "", "/api/profile"}, "admin", false},
		{"profile write", Request{"POST", "api.example.com", "/api/profile/42/email"}, "profile-writes", true},
		{"** matches zero segments", Request{"DELETE", "api.example.com", "/api/profile"}, "profile-writes", true},
		{"lower-case method is the same method", Request{"post", "api.example.com", "/api/profile/1"}, "profile-writes", true},
		{"prefix is not a segment match", Request{"POST", "api.example.com", "/api/profilex/1"}, "", true},
		{"* is one segment", Request{"POST", "api.example.com", "/api/orders/7/items"}, "orders", true},
		{"* is not two segments", Request{"POST", "api.example.com", "/api/orders/7/8/items"}, "", true},
		{"* needs a segment", Request{"POST", "api.example.com", "/api/orders//items"}, "", true},
		{"literal pattern", Request{"POST", "api.example.com", "/api/orders"}, "orders", true},
		{"method not listed", Request{"PUT", "api.example.com", "/api/orders"}, "", true},
		{"unnamed rule", Request{"OPTIONS", "api.example.com", "/api/x/y"}, "#4", true},
		{"no rule", Request{"TRACE", "api.example.com", "/"}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := p.Match(tt.req)
			got := ""
			if r != nil {
				got = r.Label()
			}
			if got != tt.wantRule || ok != tt.wantOK {
				t.Errorf("Match(%+v) = %q, %v; want %q, %v", tt.req, got, ok, tt.wantRule, tt.wantOK)
			}
		})
	}
}

func TestPathPatterns(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern string
		path    string
		want    bool
	}{
		{"/", "/", true},
		{"/", "/a", false},
		{"/**", "/", true},
		{"/**", "/a/b/c", true},
		{"/a/**", "/a", true},
		{"/a/**", "/ab", false},
		{"/a/**/z", "/a/z", true},
		{"/a/**/z", "/a/b/c/z", true},
		{"/a/**/z", "/a/b/c/y", false},
		{"/a/**/z/**", "/a/b/z/c", true},
		{"/a/*/c", "/a/b/c", true},
		{"/a/*/c", "/a/c", false},
		{"/a/*", "/a/", false},
		{"/a/*", "/a/b", true},
		{"/a/*", "/a/b/c", false},
		{"/*/*/**", "/a", false},
		{"/*/*/**", "/a/b", true},
		{"/a/b", "/a/b", true},
		{"/a/b", "/a/B", false},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+" "+tt.path, func(t *testing.T) {
			pp, err := compilePath(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			if got := pp.match(tt.path); got != tt.want {
				t.Errorf("match(%q, %q) = %v, want %v", tt.pattern, tt.path, got, tt.want)
			}
		})
	}
}

func TestNormalizePath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"", "/", false},
		{"/", "/", false},
		{"/api/profile?x=1", "/api/profile", false},
		{"/api/profile#frag", "/api/profile", false},
		{"/api/./profile/", "/api/profile", false},
		{"//api//profile", "/api/profile", false},
		{"/api/x/../profile", "/api/profile", false},
		{"/../../api/profile", "/api/profile", false},
		{"/api/%70rofile", "/api/profile", false},
		{"/api/%2e%2e/admin", "/admin", false},
		{"/api%2Fprofile", "", true},
		{"/api%2fprofile", "", true},
		{"/api%5Cprofile", "", true},
		{"/api\\profile", "", true},
		{"/api/%00", "", true},
		{"/api/%zz", "", true},
		{"http://evil/api", "", true},
		{"api/profile", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := NormalizePath(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrBadRequestTarget) {
					t.Fatalf("NormalizePath(%q) = %q, %v; want ErrBadRequestTarget", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("NormalizePath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestValidationErrorsNameRuleAndField(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		want []string // substrings that must all appear
	}{
		{"unknown top-level field", "levels: [\"1\"]\ndefault: deny\nenrol: everyone\n", []string{"field enrol not found"}},
		{"unknown rule field", "levels: [\"1\"]\ndefault: deny\nrules:\n  - name: r\n    requires: {acr: \"1\"}\n", []string{"field requires not found"}},
		{"unknown match field", "levels: [\"1\"]\ndefault: deny\nrules:\n  - name: r\n    match: {path: [/a]}\n", []string{"field path not found"}},
		{"acr not a level", "levels: [\"1\"]\ndefault: deny\nrules:\n  - name: w\n    require: {acr: \"2\"}\n", []string{`rules[0] "w"`, "require.acr", `"2" is not in levels`}},
		{"unnamed rule index", "levels: [\"1\"]\ndefault: deny\nrules:\n  - require: {acr: \"1\"}\n  - require: {acr: \"9\"}\n", []string{"rules[1]: require.acr"}},
		{"bad method", "levels: [\"1\"]\ndefault: deny\nrules:\n  - name: m\n    match: {methods: [GETT]}\n", []string{`rules[0] "m"`, "match.methods[0]", "GETT"}},
		{"bad path", "levels: [\"1\"]\ndefault: deny\nrules:\n  - name: p\n    match: {paths: [/a/b*]}\n", []string{`rules[0] "p"`, "match.paths[0]"}},
		{"relative path", "levels: [\"1\"]\ndefault: deny\nrules:\n  - name: p\n    match: {paths: [/ok, a/b]}\n", []string{`rules[0] "p"`, "match.paths[1]", "must start with /"}},
		{"trailing slash", "levels: [\"1\"]\ndefault: deny\nrules:\n  - name: p\n    match: {paths: [/a/]}\n", []string{"match.paths[0]", "must not end with /"}},
		{"bad host", "levels: [\"1\"]\ndefault: deny\nrules:\n  - name: h\n    match: {hosts: [\"a.*.com\"]}\n", []string{`rules[0] "h"`, "match.hosts[0]"}},
		{"bad scope", "levels: [\"1\"]\ndefault: deny\nrules:\n  - name: s\n    match: {scopes: [\"a b\"]}\n", []string{`rules[0] "s"`, "match.scopes[0]"}},
		{"unknown factor", "levels: [\"1\",\"2\"]\ndefault: deny\nrules:\n  - name: f\n    require: {acr: \"2\", factors: [pin, carrier_pigeon]}\n", []string{`rules[0] "f"`, "require.factors[1]", "carrier_pigeon"}},
		{"max_age bad", "levels: [\"1\"]\ndefault: deny\nrules:\n  - name: a\n    require: {acr: \"1\", max_age: soon}\n", []string{"soon"}},
		{"max_age fraction", "levels: [\"1\"]\ndefault: deny\nrules:\n  - name: a\n    require: {acr: \"1\", max_age: 1500ms}\n", []string{`rules[0] "a"`, "require.max_age", "whole number of seconds"}},
		{"max_age negative", "levels: [\"1\"]\ndefault: deny\nrules:\n  - name: a\n    require: {acr: \"1\", max_age: -5m}\n", []string{"require.max_age: negative"}},
		{"max_age without acr", "levels: [\"1\"]\ndefault: deny\nrules:\n  - name: a\n    require: {max_age: 5m}\n", []string{`rules[0] "a"`, "require.max_age: needs require.acr"}},
		{"trusted_device false without acr", "levels: [\"1\"]\ndefault: deny\nrules:\n  - name: d\n    require: {trusted_device: false}\n", []string{`rules[0] "d"`, "require.trusted_device: false needs require.acr"}},
		{"trusted_device false contradicts factors", "levels: [\"1\"]\ndefault: deny\nrules:\n  - name: d\n    require: {acr: \"1\", factors: [trusted_device], trusted_device: false}\n", []string{`rules[0] "d"`, "contradicts require.factors"}},
		{"duplicate name", "levels: [\"1\"]\ndefault: deny\nrules:\n  - name: x\n  - name: x\n", []string{`rules[1] "x": name: already used by rules[0]`}},
		{"no levels", "default: deny\n", []string{"levels: at least one"}},
		{"duplicate level", "levels: [\"1\", \"1\"]\ndefault: deny\n", []string{"levels[1]"}},
		{"level with quote", "levels: ['a\"b']\ndefault: deny\n", []string{"levels[0]"}},
		{"default missing", "levels: [\"1\"]\n", []string{"default: required"}},
		{"default wrong", "levels: [\"1\"]\ndefault: maybe\n", []string{`default: "maybe"`}},
		{"empty file", "", []string{"empty file"}},
		{"two documents", "levels: [\"1\"]\ndefault: deny\n---\nlevels: [\"2\"]\n", []string{"more than one YAML document"}},
		{"several errors at once", "levels: [\"1\"]\ndefault: deny\nrules:\n  - name: a\n    require: {acr: \"5\"}\n  - name: b\n    match: {methods: [FOO]}\n", []string{`rules[0] "a": require.acr`, `rules[1] "b": match.methods[0]`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Errorf("error %v does not wrap ErrInvalidPolicy", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseAcceptsSecondsAndDurations(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want time.Duration
	}{{"300", 5 * time.Minute}, {"5m", 5 * time.Minute}, {"1h30m", 90 * time.Minute}, {"0", 0}} {
		t.Run(tt.in, func(t *testing.T) {
			p, err := Parse([]byte("levels: [\"1\"]\ndefault: deny\nrules:\n  - require: {acr: \"1\", max_age: " + tt.in + "}\n"))
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Rules()[0].maxAge; got != tt.want {
				t.Errorf("max_age %s = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestDefaultPolicy(t *testing.T) {
	t.Parallel()
	p := Default()
	if p.DefaultAllow() {
		t.Error("built-in policy must default to deny")
	}
	reads := &Facts{Subject: "u", SessionID: "s", ACR: "1", AuthTime: t0.Add(-time.Hour)}
	for _, tt := range []struct {
		method string
		facts  *Facts
		want   Outcome
	}{
		{"GET", reads, Allow},
		{"HEAD", reads, Allow},
		{"POST", reads, InsufficientAuthentication},
		{"DELETE", reads, InsufficientAuthentication},
		{"OPTIONS", reads, Deny},
		{"TRACE", reads, Deny},
		{"PATCH", &Facts{SessionID: "s", ACR: "1", StepUp: []StepUpEntry{{SID: "s", ACR: "2", AMR: []string{"pin"}, IAT: t0.Add(-4 * time.Minute).Unix(), EXP: t0.Add(time.Hour).Unix()}}}, Allow},
		{"PATCH", &Facts{SessionID: "s", ACR: "1", StepUp: []StepUpEntry{{SID: "s", ACR: "2", AMR: []string{"pin"}, IAT: t0.Add(-6 * time.Minute).Unix(), EXP: t0.Add(time.Hour).Unix()}}}, InsufficientAuthentication},
		{"GET", &Facts{ACR: "0"}, InsufficientAuthentication},
	} {
		t.Run(tt.method, func(t *testing.T) {
			d := p.Decide(Request{Method: tt.method, Host: "h", Path: "/x"}, tt.facts, t0)
			if d.Outcome != tt.want {
				t.Errorf("%s: outcome %v (%s), want %v", tt.method, d.Outcome, d.Reason, tt.want)
			}
		})
	}
}

func TestExampleFilesInDocsParse(t *testing.T) {
	t.Parallel()
	// testdata/*.yaml that are meant to be valid must stay valid.
	matches, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil || len(matches) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, m := range matches {
		if strings.Contains(m, "invalid") {
			continue
		}
		if _, err := Load(m); err != nil {
			t.Errorf("%s: %v", m, err)
		}
	}
	if _, err := os.Stat(filepath.Join("testdata", "does-not-exist.yaml")); err == nil {
		t.Fatal("unexpected file")
	}
	if _, err := Load(filepath.Join("testdata", "does-not-exist.yaml")); err == nil {
		t.Error("Load of a missing file succeeded")
	}
}
