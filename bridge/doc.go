// Package bridge is the sidecar's only way to Keycloak: primary login
// (password grant, refresh, logout, revoke), the service account's admin
// calls (users, roles, groups, and the objects plan/apply provisions), the
// write-back of step-up entries into the user attribute, and access-token
// verification (internal/token with the realm's issuer and JWKS).
//
// gocloak is used in one file, keycloak.go, and nowhere else in the
// project; that file lists the gocloak gaps and their workarounds. The rest
// of the package and its callers see the bridge's own narrow types and
// sentinel errors:
//
//	Keycloak answer                         bridge error          HTTP layer (internal/server)
//	404                                     ErrNotFound           404 (admin API)
//	409                                     ErrConflict           409
//	unreachable, timeout, 5xx, 429          ErrUnavailable        503, never allow
//	403 (service account lacks a role)      ErrForbidden          503, logged with the call
//	400                                     ErrBadRequest         503, logged with Keycloak's message
//	password grant: wrong password,         ErrInvalidCredentials 401 invalid_grant, the same body
//	  unknown user, brute-force lock                                for both rows: "Invalid user credentials"
//	password grant: "Account disabled"      ErrAccountDisabled
//	password grant: "not fully set up"      ErrAccountNotSetUp    400, may be shown (password was right)
//	refresh: invalid_grant                  ErrInvalidGrant       400 invalid_grant, log in again
//	invalid_client, unauthorized_client     ErrClientConfig       503, logged
//
// Every failure is an *Error carrying the operation, Keycloak's status,
// OAuth error code and message (never a token or secret); errors.Is
// matches the sentinel.
//
// # Step-up write-back
//
// WriteStepUp serialises the read-modify-write of one user across
// replicas with the store lease "kcuser:<id>", because Keycloak's admin API
// has no compare-and-swap and replaces the whole attribute map. The PUT
// carries every attribute and root field it read, except enabled (a PUT
// with enabled true unlocks a brute-force-locked user) and the read-only
// fields; values already stored that are not valid step-up JSON are
// removed rather than written back (Keycloak's JSON mapper fails every
// token request of a user holding invalid JSON). The user is read back
// afterwards, and ErrAttributeDropped reports a realm whose user profile
// does not declare the attribute.
package bridge
