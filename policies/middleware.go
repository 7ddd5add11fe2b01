package policies

import (
	"context"
	"net/http"
)

// Middleware returns net/http middleware enforcing the policy on every
// request, in the style of go-oidc: build it once at start-up.
//
//	mw, err := policies.Middleware(ctx, policies.Config{
//		Issuer:    "https://sso.example.com/realms/acme",
//		Audiences: []string{"orders-api"},
//		Source:    fileSource, // or Policy: p, or nothing for the built-in default
//	})
//	http.ListenAndServe(":8080", mw(mux))
//
// Requests that pass reach next with an Info in their context
// (FromContext). Refusals are answered here: 401 with a Bearer challenge
// for a missing or invalid token, 403 insufficient_scope, 401
// insufficient_user_authentication with acr_values and max_age (RFC 9470),
// 403 access_denied for a default deny or a path that cannot be matched
// safely, 503 when the signing keys cannot be fetched. CORS preflight
// requests carry no token: answer them before this middleware.
func Middleware(ctx context.Context, cfg Config) (func(http.Handler) http.Handler, error) {
	a, err := NewAuthorizer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return a.Middleware, nil
}

// Middleware wraps next with the Authorizer's decision; see the
// package-level Middleware.
func (a *Authorizer) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, perr := NormalizePath(r.URL.EscapedPath())
		req := Request{Method: r.Method, Host: r.Host, Path: p}
		res := a.decide(r.Context(), r.Header.Values("Authorization"), req, perr)
		if res.Status != http.StatusOK {
			res.Write(w)
			return
		}
		next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), res.Info)))
	})
}
