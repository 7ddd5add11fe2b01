// Package perf measures the whole sidecar and checks how it behaves when
// its dependencies fail. Its tests and benchmarks start the real wiring
// (internal/app) against the Keycloak-compatible server of
// internal/keycloaktest, everything on loopback:
//
//   - benchmarks (go test -run '^$' -bench . ./internal/perf): forward-auth
//     decisions against bare token verification, step-up verification per
//     factor, login through the sidecar against a direct password grant,
//     and the storage footprint of pending challenges and factor records;
//   - fault tests (go test ./internal/perf): Keycloak unreachable or slow,
//     a flood of tokens with unknown key ids, shutdown under load, a
//     brute-force run against one account, and a PostgreSQL restart in the
//     middle of step-ups (on a private cluster the test starts itself).
//
// The non-test part, Start, runs a sidecar outside a test for the load
// scripts in scripts/ (wrk against /v1/authz); cmd/perfsidecar is its
// command. docs/performance.md holds the numbers and the commands.
package perf
