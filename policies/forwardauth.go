package policies

import (
	"errors"
	"net/http"
	"strings"
)

// Headers forward auth reads from the proxy and writes back.
const (
	// nginx auth_request (set with proxy_set_header in the auth location).
	HeaderOriginalMethod = "X-Original-Method"
	HeaderOriginalURI    = "X-Original-URI"
	HeaderOriginalHost   = "X-Original-Host"
	// Traefik forwardAuth (set by Traefik itself).
	HeaderForwardedMethod = "X-Forwarded-Method"
	HeaderForwardedURI    = "X-Forwarded-Uri"
	HeaderForwardedHost   = "X-Forwarded-Host"

	// Answers on 200, for the proxy to pass upstream.
	HeaderAuthSubject = "X-Auth-Subject"
	HeaderAuthACR     = "X-Auth-Acr"
	HeaderAuthAMR     = "X-Auth-Amr"
	HeaderAuthSession = "X-Auth-Session"
	HeaderAuthRule    = "X-Auth-Rule"
)

// ForwardAuthOptions tune the forward-auth handler.
type ForwardAuthOptions struct {
	// PathPrefix is where the handler is mounted, e.g. "/v1/authz". Envoy's
	// ext_authz (HTTP) sends the original path appended to its
	// path_prefix, so a request to PathPrefix + "/api/orders" is decided
	// for "/api/orders" with the request's own method and Host. Empty
	// disables that mode.
	PathPrefix string
}

var errNoOriginal = errors.New("forward auth: no original request (X-Original-URI, X-Forwarded-Uri or a path under the prefix)")

// ForwardAuth returns the handler a reverse proxy asks before passing a
// request on (mount it at PathPrefix and PathPrefix + "/" for every
// method: nginx sends its subrequest with the original method, Envoy
// uses the original method too). It gives the same decision as
// Middleware for the original request, read from, in this order:
//
//   - nginx auth_request: X-Original-URI (the raw $request_uri),
//     X-Original-Method (else the subrequest's own method, which nginx
//     copies from the original), X-Original-Host (else X-Forwarded-Host);
//   - Traefik forwardAuth: X-Forwarded-Uri, X-Forwarded-Method,
//     X-Forwarded-Host;
//   - Envoy ext_authz HTTP: the request path below PathPrefix, the
//     request method and Host.
//
// The Authorization header is the client's, forwarded by the proxy.
// Answers: 200 with X-Auth-Subject, X-Auth-Acr, X-Auth-Amr (comma
// separated), X-Auth-Session and X-Auth-Rule; or the same 401/403 (with
// WWW-Authenticate and JSON body) Middleware gives; 503 when the keys
// cannot be fetched (nginx turns it into a 500: still no access).
//
// Every header above is trusted as the proxy's statement of the original
// request: this endpoint must be reachable by the proxy only, never by
// clients, and the proxy must overwrite (not append to) the X-Original-*
// and X-Forwarded-* headers and strip client-sent X-Auth-* headers before
// the upstream.
func (a *Authorizer) ForwardAuth(opts ForwardAuthOptions) http.Handler {
	prefix := strings.TrimSuffix(opts.PathPrefix, "/")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, perr := originalRequest(r, prefix)
		res := a.decide(r.Context(), r.Header.Values("Authorization"), req, perr)
		w.Header().Set("Cache-Control", "no-store")
		if res.Status != http.StatusOK {
			res.Write(w)
			return
		}
		h := w.Header()
		h.Set(HeaderAuthSubject, headerSafe(res.Info.Subject))
		h.Set(HeaderAuthACR, headerSafe(res.Info.Level))
		h.Set(HeaderAuthAMR, headerSafe(strings.Join(res.Info.AMR, ",")))
		h.Set(HeaderAuthSession, headerSafe(res.Info.SessionID))
		h.Set(HeaderAuthRule, headerSafe(res.Info.Rule))
		w.WriteHeader(http.StatusOK)
	})
}

// originalRequest reads the original request's method, host and path from
// the proxy's headers (see ForwardAuth).
func originalRequest(r *http.Request, prefix string) (Request, error) {
	single := func(name string) (string, bool) {
		v := r.Header.Values(name)
		if len(v) == 0 {
			return "", false
		}
		return v[0], true
	}
	host := func(names ...string) string {
		for _, n := range names {
			if v, ok := single(n); ok {
				// A proxy chain may have appended: the first is the client-facing host.
				v, _, _ = strings.Cut(v, ",")
				return strings.TrimSpace(v)
			}
		}
		return ""
	}
	if uri, ok := single(HeaderOriginalURI); ok {
		m, ok := single(HeaderOriginalMethod)
		if !ok {
			m = r.Method
		}
		p, err := NormalizePath(uri)
		return Request{Method: m, Host: host(HeaderOriginalHost, HeaderForwardedHost), Path: p}, err
	}
	if uri, ok := single(HeaderForwardedURI); ok {
		m, ok := single(HeaderForwardedMethod)
		if !ok {
			m = r.Method
		}
		p, err := NormalizePath(uri)
		return Request{Method: m, Host: host(HeaderForwardedHost), Path: p}, err
	}
	if prefix != "" {
		esc := r.URL.EscapedPath()
		if rest, ok := strings.CutPrefix(esc, prefix); ok && strings.HasPrefix(rest, "/") {
			p, err := NormalizePath(rest)
			return Request{Method: r.Method, Host: r.Host, Path: p}, err
		}
	}
	return Request{Method: r.Method}, errNoOriginal
}

// headerSafe drops characters that cannot appear in a header value.
func headerSafe(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return strings.Map(func(r rune) rune {
				if r < 0x20 || r == 0x7f {
					return -1
				}
				return r
			}, s)
		}
	}
	return s
}
