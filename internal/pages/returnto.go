package pages

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ErrReturnToRefused: a return_to URL is not on the allow-list (or is not a
// plain absolute http(s) URL). Nothing is revealed about the list.
var ErrReturnToRefused = errors.New("pages: return_to is not allowed")

// maxReturnTo bounds a return_to URL.
const maxReturnTo = 2048

// allowEntry is one parsed allow-list entry: an exact origin and a path
// prefix.
type allowEntry struct {
	scheme, host, path string
}

// ReturnToList is the allow-list of URLs the pages may send a browser back
// to. Each entry is an absolute http(s) URL without userinfo, query or
// fragment; a URL matches when its scheme and host (with port) are exactly
// the entry's and its path starts with the entry's path at a segment
// boundary. The zero value allows nothing. Safe for concurrent use.
type ReturnToList struct {
	entries []allowEntry
}

// ParseReturnToList checks and parses the allow-list entries.
func ParseReturnToList(entries []string) (ReturnToList, error) {
	var l ReturnToList
	for _, raw := range entries {
		u, err := url.Parse(raw)
		if err != nil {
			return ReturnToList{}, fmt.Errorf("pages: return_to allow-list entry %q: %w", raw, err)
		}
		if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" ||
			u.Fragment != "" || u.Opaque != "" || strings.ContainsAny(raw, "\\ \t\r\n") {
			return ReturnToList{}, fmt.Errorf("pages: return_to allow-list entry %q must be an absolute http(s) URL without userinfo, query or fragment", raw)
		}
		p := u.EscapedPath()
		if p == "" {
			p = "/"
		}
		if hasDotSegment(p) {
			return ReturnToList{}, fmt.Errorf("pages: return_to allow-list entry %q has a dot segment", raw)
		}
		l.entries = append(l.entries, allowEntry{scheme: u.Scheme, host: strings.ToLower(u.Host), path: p})
	}
	return l, nil
}

// Origins returns the origins (scheme://host) of the entries: the sites
// allowed to post the entry forms.
func (l ReturnToList) Origins() []string {
	out := make([]string, 0, len(l.entries))
	for _, e := range l.entries {
		out = append(out, e.scheme+"://"+e.host)
	}
	return out
}

// Check returns the URL to redirect to, re-serialised from its parsed form
// so that what is checked is what is sent, or ErrReturnToRefused. It
// refuses relative and scheme-relative URLs ("//evil"), other schemes
// ("javascript:"), backslashes, control characters, userinfo ("a@evil"),
// dot segments and percent-encoded slashes or dots in the path, and any
// origin or path not on the list.
func (l ReturnToList) Check(raw string) (string, error) {
	if raw == "" || len(raw) > maxReturnTo {
		return "", ErrReturnToRefused
	}
	for _, c := range raw {
		if c <= 0x20 || c == 0x7f || c == '\\' || c > 0x7e {
			return "", ErrReturnToRefused
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.User != nil || u.Host == "" {
		return "", ErrReturnToRefused
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return "", ErrReturnToRefused
	}
	// The raw text must start with exactly what was parsed, so no parser
	// disagreement (a browser's and Go's) can move the host.
	if !strings.HasPrefix(raw, u.Scheme+"://"+u.Host) {
		return "", ErrReturnToRefused
	}
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	lp := strings.ToLower(p)
	if hasDotSegment(p) || strings.Contains(lp, "%2f") || strings.Contains(lp, "%5c") || strings.Contains(lp, "%2e") || strings.Contains(p, "//") {
		return "", ErrReturnToRefused
	}
	host := strings.ToLower(u.Host)
	for _, e := range l.entries {
		if e.scheme != u.Scheme || e.host != host {
			continue
		}
		if p == e.path || strings.HasPrefix(p, strings.TrimSuffix(e.path, "/")+"/") {
			u.Fragment = ""
			u.RawFragment = ""
			return u.String(), nil
		}
	}
	return "", ErrReturnToRefused
}

func hasDotSegment(p string) bool {
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}
