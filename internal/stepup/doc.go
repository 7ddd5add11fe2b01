// Package stepup runs the sidecar's two flows on top of the bridge
// (Keycloak), the factors and the store.
//
// Step-up (RFC 9470): a resource server answered 401
// insufficient_user_authentication; the client opens a challenge with the
// user's Keycloak access token, the user proves a factor, and the sidecar
// writes a step-up entry for the token's Keycloak session (sid) back into
// Keycloak. A refreshed token carries it.
//
//	CreateChallenge  token verified, sid required   -> challenge (id shown once; stored hashed)
//	VerifyChallenge  same user and session, attempt counted first,
//	                 factor verified (single use), challenge consumed,
//	                 entry written under the user's lease, tokens refreshed if asked
//
// A challenge whose factor was verified but whose write-back failed
// (Keycloak down: 503) stays "verified": calling VerifyChallenge again
// retries the write-back without asking for the code again, so a proof
// (a spent backup code) is never lost.
//
// Login with MFA before any session: Login does the password grant; when
// the user must pass a second factor, the Keycloak tokens are encrypted
// into a pending-login challenge and only an mfa_token leaves the sidecar.
// LoginMFA verifies the factor, writes the step-up entry and releases
// refreshed tokens. A pending login that fails too often is logged out of
// Keycloak at once; one that expires is logged out by Sweep.
//
// Trusted devices (Config.Devices): after a verified factor (LoginMFA or
// VerifyChallenge with TrustDevice) the client receives a device credential
// once. A later Login carrying it, for the same user and kind of device,
// still needs the password, but skips the second factor: the entry written
// has amr ["trusted_device"], so a policy rule with
// require.trusted_device: false does not count it and the client must
// step up with a real factor. Any doubt about the device (unknown, expired,
// revoked, another user's or another kind of device, or the store failing)
// asks for the factor as if no credential had been sent.
package stepup
