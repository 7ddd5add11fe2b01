// Package devices issues and checks trusted-device credentials: "trust this
// device for N days" at the end of a login or step-up with a second factor.
//
// A credential is a bearer token the client keeps (a Secure, HttpOnly,
// SameSite=Strict cookie on the hosted pages, an opaque string for API
// clients):
//
//	sbd1.<id>.<secret>     id: 128 random bits (public, for listing and revoking)
//	                       secret: 256 random bits
//
// The store keeps only HMAC-SHA-256(key, id, user, secret) with a key derived
// from the server pepper, so a leaked table yields no usable token, and a
// token only ever matches the user it was issued to. A check compares in
// constant time and enforces, server-side, that the device is not revoked,
// not expired and presented by the same kind of device (the label derived
// from the User-Agent). The token never appears in logs, errors or the audit
// trail.
//
// A device credential is only ever a substitute for the SECOND factor of a
// login that already passed the password (internal/stepup decides); on its
// own it grants nothing. Every trust, use (and refused use) and revocation is
// audited: device.trusted, device.used, device.refused, device.revoked.
package devices
