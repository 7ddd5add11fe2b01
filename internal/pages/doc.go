// Package pages serves the sidecar's hosted HTML pages: login with a second
// factor, step-up, and factor enrolment. They are plain html/template pages
// with an embedded stylesheet; they need no JavaScript and load nothing from
// elsewhere, under a strict Content-Security-Policy.
//
// The pages drive the same flows as the JSON API (internal/stepup) and the
// factor Registry directly; they add what a browser needs on top:
//
//	login    POST /pages/login           password grant; a pending login's mfa_token goes
//	                                     into a short-lived HttpOnly SameSite=Strict cookie,
//	                                     never a Keycloak token
//	         GET|POST /pages/login/mfa   choose the factor, enter the code
//	         POST /pages/login/deliver   start a delivery (call, SMS, e-mail)
//	stepup   POST /pages/stepup          entry from the application: its access token in the
//	                                     form body, return_to on the allow-list
//	         POST /pages/stepup/challenge, /pages/stepup/verify
//	factors  POST /pages/factors         entry from the application, as step-up
//	         POST /pages/factors/enrol, /pages/factors/confirm,
//	         POST /pages/factors/backup-codes.txt (download, text/plain attachment)
//
// Every POST that changes state carries a CSRF token: an HMAC of a random
// value held in an HttpOnly SameSite=Strict cookie (signed double submit),
// and its Origin (or Sec-Fetch-Site) must be the sidecar's own. The entry
// POSTs come from the application's origin, which must be the origin of an
// allow-listed return_to; they change nothing and are authenticated by the
// access token they carry, not by anything ambient.
//
// After a hosted login the Keycloak tokens are not handed to the browser:
// see docs/pages.md for why and for what the application does instead.
package pages
