// Package token verifies Keycloak access tokens and reads the step-up
// entries the bridge writes back into them.
//
// It is the one verifier of the project: the bridge uses it for the tokens
// clients present to the sidecar, and the resource-server middleware in
// policies uses it on its own, which is why this package depends on nothing
// but go-jose and the standard library.
//
// The picture, in the spirit of coreos/go-oidc:
//
//	keys := token.NewRemoteKeySet(ctx, issuer+"/protocol/openid-connect/certs", token.KeySetOptions{})
//	v, err := token.NewVerifier(keys, token.Config{Issuer: issuer, Audiences: []string{"orders-api"}})
//	claims, err := v.Verify(ctx, raw) // signature, alg, iss, exp, nbf, iat, aud/azp, typ
//
// Verify never returns claims together with an error. Every error wraps one
// of the sentinel errors below, so the HTTP layer can answer 401 for a bad
// token and 503 (never allow) when the key set cannot be fetched
// (ErrKeySetUnavailable).
//
// Step-up entries are the compact JSON objects the bridge stores in a
// multivalued user attribute and a Keycloak mapper copies into the access
// token (DESIGN.md, "Claims written back"). Entries that do not parse are
// dropped, never trusted.
package token
