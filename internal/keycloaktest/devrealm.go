package keycloaktest

import _ "embed"

//go:embed devrealm.json
var devRealm []byte

// DevRealmName is the realm DevRealm describes.
const DevRealmName = "stepup-dev"

// DevRealm returns a fresh copy of the embedded realm export used by
// `stepup-bridge dev` and by tests: realm "stepup-dev" with the clients
// stepup-login (confidential, secret "stepup-login-secret", direct grants
// and standard flow, redirects to http://127.0.0.1:*), stepup-bridge-admin
// (confidential, secret "stepup-bridge-admin-secret", service account with
// realm-management view-users, manage-users, view-realm, manage-realm,
// view-clients, manage-clients) and demo-api (bearer-only); users
// alice/alice, bob/bob and carol/carol (carol holds realm role
// "stepup-admin"); Keycloak 26's default user profile with unmanaged
// attributes off, so the step-up attribute is not declared until
// provisioning adds it. The caller owns the returned slice.
func DevRealm() []byte {
	return append([]byte(nil), devRealm...)
}
