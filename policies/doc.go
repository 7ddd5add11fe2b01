// Package policies decides, per request, whether an access token is strong
// enough, and answers as RFC 6750 and RFC 9470 say when it is not.
//
// A resource server imports it on its own (it depends only on
// internal/token, go-jose, yaml, fsnotify and the Prometheus client):
//
//	src, err := policies.NewFileSource("/etc/api/policy.yaml", policies.FileSourceOptions{})
//	go src.Watch(ctx, policies.WatchOptions{Signals: hup, Files: true})
//	mw, err := policies.Middleware(ctx, policies.Config{
//		Issuer:    "https://sso.example.com/realms/acme",
//		Audiences: []string{"orders-api"},
//		Source:    src,
//	})
//	http.ListenAndServe(":8080", mw(mux))
//
// and reads the caller in its handlers with policies.FromContext. Proxies
// (nginx auth_request, Traefik forwardAuth, Envoy ext_authz) ask the
// sidecar's /v1/authz instead, served by Authorizer.ForwardAuth.
//
// The picture of one decision:
//
//	Authorization: Bearer ...   missing            -> 401 Bearer realm="..."
//	        |                   invalid / expired  -> 401 error="invalid_token"
//	        |                   keys unreachable   -> 503 (never allow)
//	   first rule whose methods, paths and hosts select the request
//	        |                   none, default deny -> 403 access_denied
//	   rule scopes: the token has one?   no        -> 403 error="insufficient_scope", scope="..."
//	   effective level >= rule acr, fresh within max_age, amr in factors?
//	        |                   no                 -> 401 error="insufficient_user_authentication",
//	        |                                         acr_values="2", max_age=300
//	   allow: Info{Subject, SessionID, Level, AMR} in the context / X-Auth-* headers
//
// The effective level is the highest of Keycloak's own acr (fresh if
// auth_time is within max_age) and the step-up entries the bridge wrote
// for this token's session (sid equal, not expired, iat within max_age).
// See docs/policies.md for the file format and docs/proxies.md for proxy
// configuration.
package policies
