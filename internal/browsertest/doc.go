// Package browsertest drives the hosted pages in headless Chromium
// (chromedp) against a whole sidecar on loopback: the Keycloak-compatible
// server with the dev realm, the sidecar with SQLite, and a small
// "application" on another origin that starts the flows and receives the
// browser back at its allow-listed return_to.
//
// Chromium is looked up at /usr/bin/chromium (or $STEPUP_CHROMIUM). Without
// it the tests skip, saying so, unless CI=true, where they fail. Screenshots
// of every step go to $STEPUP_TEST_ARTIFACTS (default: the test's temp
// dir); the log says where.
package browsertest
