package policies

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"
)

// ErrBadRequestTarget is wrapped by NormalizePath for a request path that
// cannot be matched safely (encoded slashes, NUL, invalid escapes). Such a
// request is denied: a backend might read the path differently than the
// policy does.
var ErrBadRequestTarget = errors.New("policies: request path cannot be matched safely")

// Policy is a compiled, immutable policy. Safe for concurrent use; swap a
// whole Policy to change it (see Source).
type Policy struct {
	levels       map[string]int
	levelNames   []string
	rules        []*Rule
	defaultAllow bool
	src          File
}

// Rule is one compiled rule. Read-only after Compile.
type Rule struct {
	// Index is the rule's position in the file, from 0.
	Index int
	// Name is the rule's name as written (may be empty).
	Name string

	label   string
	methods []string
	paths   []pathPattern
	hosts   []hostPattern
	scopes  []string
	acr     string
	level   int // index in levels; -1 = no level required
	maxAge  time.Duration
	factors []string
	// freshFactorOnly: require.trusted_device false.
	freshFactorOnly bool
}

// FreshFactorOnly reports whether the rule ignores levels obtained on a
// trusted device (require.trusted_device: false).
func (r *Rule) FreshFactorOnly() bool { return r.freshFactorOnly }

// Label is the rule's name, or "#<index>" for an unnamed rule. It is what
// metrics and logs show.
func (r *Rule) Label() string { return r.label }

// Levels returns the acr values, weakest first. The caller owns the slice.
func (p *Policy) Levels() []string { return slices.Clone(p.levelNames) }

// Rules returns the compiled rules in evaluation order. The slice is a
// copy; the rules are shared and read-only.
func (p *Policy) Rules() []*Rule { return slices.Clone(p.rules) }

// DefaultAllow reports whether requests that no rule selects are allowed.
func (p *Policy) DefaultAllow() bool { return p.defaultAllow }

// Spec returns the source form the policy was compiled from.
func (p *Policy) Spec() File { return p.src }

// Request is what a rule is matched against. Path must already be
// normalized (NormalizePath); Host may carry a port, which is ignored;
// Method is compared upper-cased.
type Request struct {
	Method string
	Host   string
	Path   string
}

// Match returns the first rule selecting req, or nil if none does (then
// DefaultAllow decides). A rule with hosts never selects a request whose
// host is unknown (empty); Match then reports ok=false so the caller
// denies rather than letting the request fall through to a weaker rule.
func (p *Policy) Match(req Request) (rule *Rule, ok bool) {
	req.Method = upperASCII(req.Method)
	host := normalizeHost(req.Host)
	for _, r := range p.rules {
		if len(r.methods) > 0 && !slices.Contains(r.methods, req.Method) {
			continue
		}
		if len(r.paths) > 0 && !matchAnyPath(r.paths, req.Path) {
			continue
		}
		if len(r.hosts) > 0 {
			if host == "" {
				return r, false
			}
			if !matchAnyHost(r.hosts, host) {
				continue
			}
		}
		return r, true
	}
	return nil, true
}

// pathPattern is a precompiled path glob: a list of segments, each literal,
// "*" (one segment) or "**" (any number).
type pathPattern struct {
	raw  string
	segs []string
	// prefix is the literal part before the first wildcard, with a
	// trailing slash ("/api/profile/" for "/api/profile/**"): a cheap
	// first test. "/api/profile" itself is checked by exact.
	prefix string
	// exact is prefix without its slash when the pattern may match zero
	// segments after it ("/a/**"), else "".
	exact string
	// literal is set when the pattern has no wildcard: one string compare.
	literal bool
}

func compilePath(s string) (pathPattern, error) {
	if !strings.HasPrefix(s, "/") {
		return pathPattern{}, fmt.Errorf("%q must start with /", s)
	}
	if s != "/" && strings.HasSuffix(s, "/") {
		return pathPattern{}, fmt.Errorf("%q must not end with / (request paths are cleaned; use /** for a subtree)", s)
	}
	p := pathPattern{raw: s, literal: true}
	if s == "/" {
		return p, nil
	}
	for i, seg := range strings.Split(s[1:], "/") {
		switch {
		case seg == "":
			return pathPattern{}, fmt.Errorf("%q has an empty segment", s)
		case seg == "." || seg == "..":
			return pathPattern{}, fmt.Errorf("%q has a dot segment", s)
		case seg == "*" || seg == "**":
			p.literal = false
		case strings.Contains(seg, "*"):
			return pathPattern{}, fmt.Errorf("%q segment %d: * and ** must be whole segments", s, i+1)
		case strings.ContainsAny(seg, "?#%"):
			return pathPattern{}, fmt.Errorf("%q segment %d: ? # %% are not allowed (patterns match decoded paths)", s, i+1)
		}
		p.segs = append(p.segs, seg)
	}
	if !p.literal {
		var b strings.Builder
		b.WriteByte('/')
		for _, seg := range p.segs {
			if seg == "*" || seg == "**" {
				break
			}
			b.WriteString(seg)
			b.WriteByte('/')
		}
		p.prefix = b.String()
		if p.prefix != "/" {
			p.exact = strings.TrimSuffix(p.prefix, "/")
		}
	}
	return p, nil
}

func matchAnyPath(ps []pathPattern, reqPath string) bool {
	for i := range ps {
		if ps[i].match(reqPath) {
			return true
		}
	}
	return false
}

func (p *pathPattern) match(reqPath string) bool {
	if p.literal {
		return reqPath == p.raw
	}
	if !strings.HasPrefix(reqPath, p.prefix) && reqPath != p.exact {
		return false
	}
	rest := reqPath
	if len(rest) > 0 && rest[0] == '/' {
		rest = rest[1:]
	}
	return matchSegs(p.segs, rest)
}

// matchSegs matches pattern segments against the remaining path (segments
// separated by '/', no leading slash; "" means no segments left). It works
// on the string without splitting, so matching allocates nothing.
func matchSegs(segs []string, rest string) bool {
	for len(segs) > 0 {
		seg := segs[0]
		if seg == "**" {
			if len(segs) == 1 {
				return true
			}
			// Try every split point: "**" swallows 0..n segments.
			for {
				if matchSegs(segs[1:], rest) {
					return true
				}
				if rest == "" {
					return false
				}
				i := strings.IndexByte(rest, '/')
				if i < 0 {
					rest = ""
				} else {
					rest = rest[i+1:]
				}
			}
		}
		if rest == "" {
			return false
		}
		var head string
		if i := strings.IndexByte(rest, '/'); i < 0 {
			head, rest = rest, ""
		} else {
			head, rest = rest[:i], rest[i+1:]
			if rest == "" {
				// A trailing slash would leave an empty segment; cleaned
				// paths have none, so treat it as a mismatch.
				return false
			}
		}
		if head == "" || (seg != "*" && seg != head) {
			return false
		}
		segs = segs[1:]
	}
	return rest == ""
}

// hostPattern is an exact host or a "*." suffix.
type hostPattern struct {
	exact  string
	suffix string // ".example.com" for "*.example.com"
}

func compileHost(h string) (hostPattern, error) {
	h = strings.ToLower(strings.TrimSpace(h))
	if h == "" {
		return hostPattern{}, errors.New("empty host")
	}
	if strings.ContainsAny(h, "/:@ ") && net.ParseIP(strings.Trim(h, "[]")) == nil {
		return hostPattern{}, fmt.Errorf("%q: a host name without scheme, port or path", h)
	}
	if strings.HasPrefix(h, "*.") {
		rest := h[1:]
		if strings.Contains(rest, "*") || len(rest) < 2 {
			return hostPattern{}, fmt.Errorf("%q: only a leading *. is allowed", h)
		}
		return hostPattern{suffix: rest}, nil
	}
	if strings.Contains(h, "*") {
		return hostPattern{}, fmt.Errorf("%q: only a leading *. is allowed", h)
	}
	return hostPattern{exact: strings.Trim(h, "[]")}, nil
}

func matchAnyHost(hs []hostPattern, host string) bool {
	for _, h := range hs {
		if h.suffix != "" {
			if len(host) > len(h.suffix) && strings.HasSuffix(host, h.suffix) {
				return true
			}
		} else if host == h.exact {
			return true
		}
	}
	return false
}

// normalizeHost lower-cases host and drops a port and IPv6 brackets.
func normalizeHost(host string) string {
	host = strings.TrimSpace(host)
	if host == "" {
		return ""
	}
	if strings.IndexByte(host, ':') >= 0 {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
	}
	host = strings.Trim(host, "[]")
	host = strings.TrimSuffix(host, ".")
	return strings.ToLower(host)
}

// NormalizePath turns a request target as a client sent it (a raw path,
// optionally with a query, as in nginx's $request_uri or Traefik's
// X-Forwarded-Uri) into the path rules are matched against: query and
// fragment dropped, percent-escapes decoded, dot segments resolved and
// repeated slashes merged, always starting with "/".
//
// Paths a backend could read differently are refused with
// ErrBadRequestTarget rather than guessed at: encoded slashes or
// backslashes (%2F, %5C), NUL or other control characters, invalid escapes,
// and absolute-form targets ("http://host/path") are not accepted.
func NormalizePath(target string) (string, error) {
	if i := strings.IndexAny(target, "?#"); i >= 0 {
		target = target[:i]
	}
	if target == "" {
		return "/", nil
	}
	if target[0] != '/' {
		return "", fmt.Errorf("%w: %q does not start with /", ErrBadRequestTarget, truncate(target))
	}
	if strings.Contains(target, "%") {
		lower := strings.ToLower(target)
		if strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") {
			return "", fmt.Errorf("%w: encoded slash in %q", ErrBadRequestTarget, truncate(target))
		}
		dec, err := url.PathUnescape(target)
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrBadRequestTarget, err)
		}
		target = dec
	}
	return cleanDecodedPath(target)
}

// cleanDecodedPath cleans an already decoded path (r.URL.Path).
func cleanDecodedPath(p string) (string, error) {
	if p == "" {
		return "/", nil
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return "", fmt.Errorf("%w: control character or backslash in path", ErrBadRequestTarget)
		}
	}
	if p[0] != '/' {
		p = "/" + p
	}
	if !needsClean(p) {
		return p, nil
	}
	return path.Clean(p), nil
}

// needsClean reports whether path.Clean would change p (which starts with
// '/'), so the common case allocates nothing.
func needsClean(p string) bool {
	if len(p) > 1 && p[len(p)-1] == '/' {
		return true
	}
	for i := 0; i < len(p); i++ {
		if p[i] != '/' {
			continue
		}
		rest := p[i+1:]
		if strings.HasPrefix(rest, "/") || rest == "." || rest == ".." ||
			strings.HasPrefix(rest, "./") || strings.HasPrefix(rest, "../") {
			return true
		}
	}
	return false
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
