// Package charttest checks the deployment artefacts: the Helm chart in
// charts/stepup-bridge, and the container image and compose stack in
// docs/deploy.
//
// The chart tests run the real helm binary (HELM_BIN, else <repo>/bin/helm,
// else helm on PATH; `make tools` builds it) for lint, schema validation and
// rendering, then parse the rendered manifests and check what a platform
// team relies on: pod hardening, probes, secrets by reference only, a config
// that the sidecar's own loader accepts, roll-on-change annotations and the
// HA objects. The compose tests parse compose.yaml, the realm import and the
// Dockerfile, and run Debian's docker-compose as an offline validator when
// it is installed.
//
// The package has no non-test code besides this comment.
package charttest
