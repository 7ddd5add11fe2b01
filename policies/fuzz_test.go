package policies

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/", "/api/profile", "/a/../b", "//x//y/", "/a%2fb", "/%zz", "/a?b#c", "/a/./b/", "/%2e%2e/x", "\x00", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		p, err := NormalizePath(in)
		if err != nil {
			return
		}
		if !strings.HasPrefix(p, "/") {
			t.Fatalf("NormalizePath(%q) = %q does not start with /", in, p)
		}
		if p != "/" && (strings.Contains(p, "//") || strings.HasSuffix(p, "/")) {
			t.Fatalf("NormalizePath(%q) = %q has empty segments", in, p)
		}
		for _, seg := range strings.Split(p, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("NormalizePath(%q) = %q keeps a dot segment", in, p)
			}
		}
		if strings.ContainsAny(p, "\\\x00?#") {
			t.Fatalf("NormalizePath(%q) = %q has a forbidden character", in, p)
		}
		// Idempotent: a normalized path normalizes to itself (once its
		// percent signs are escaped again).
		again, err := NormalizePath(strings.ReplaceAll(p, "%", "%25"))
		if err == nil && again != p {
			t.Fatalf("not idempotent: %q -> %q -> %q", in, p, again)
		}
	})
}

func FuzzPathMatch(f *testing.F) {
	f.Add("/api/**", "/api/x/y")
	f.Add("/a/*/c/**/z", "/a/b/c/z")
	f.Add("/**/x/**", "/x")
	f.Fuzz(func(t *testing.T, pattern, reqPath string) {
		pp, err := compilePath(pattern)
		if err != nil {
			return
		}
		p, err := NormalizePath(reqPath)
		if err != nil {
			return
		}
		got := pp.match(p)
		if want := refMatch(pp.segs, splitPath(p)); got != want && !pp.literal {
			t.Fatalf("match(%q, %q) = %v, reference says %v", pattern, p, got, want)
		}
		if pp.literal && got != (p == pattern) {
			t.Fatalf("literal match(%q, %q) = %v", pattern, p, got)
		}
	})
}

func splitPath(p string) []string {
	if p == "/" {
		return nil
	}
	return strings.Split(p[1:], "/")
}

// refMatch is an obviously correct (exponential) reference matcher.
func refMatch(pat, segs []string) bool {
	if len(pat) == 0 {
		return len(segs) == 0
	}
	switch pat[0] {
	case "**":
		for i := 0; i <= len(segs); i++ {
			if refMatch(pat[1:], segs[i:]) {
				return true
			}
		}
		return false
	case "*":
		return len(segs) > 0 && segs[0] != "" && refMatch(pat[1:], segs[1:])
	}
	return len(segs) > 0 && segs[0] == pat[0] && refMatch(pat[1:], segs[1:])
}

func FuzzBearerAndChallenge(f *testing.F) {
	f.Add("Bearer abc.def.ghi", "desc")
	f.Add("bearer  x", "a\"b\\c")
	f.Add("Basic Zm9v", "\r\n")
	f.Fuzz(func(t *testing.T, header, desc string) {
		tok, err := bearerToken([]string{header})
		if err == nil {
			if tok == "" || strings.ContainsAny(tok, " \t\r\n\"") {
				t.Fatalf("bearerToken(%q) = %q", header, tok)
			}
		}
		ch := Challenge{Realm: desc, Error: "invalid_token", ErrorDescription: desc, ACRValues: []string{desc}}
		s := ch.String()
		if !utf8.ValidString(s) || strings.ContainsAny(s, "\r\n\x00") {
			t.Fatalf("challenge %q is not one header line", s)
		}
		// Every quoted value must be closed: quotes come in pairs and no
		// value contains a backslash.
		if strings.Count(s, `"`)%2 != 0 || strings.Contains(s, `\`) {
			t.Fatalf("challenge %q has an unbalanced or escaped quote", s)
		}
	})
}

func FuzzParse(f *testing.F) {
	f.Add(policyV1)
	f.Add(evalPolicy)
	f.Add(mwPolicy)
	f.Fuzz(func(t *testing.T, data string) {
		p, err := Parse([]byte(data))
		if err != nil {
			return
		}
		_ = p.Decide(Request{Method: "POST", Path: "/api/profile/x"}, &Facts{ACR: "1"}, t0)
	})
}
