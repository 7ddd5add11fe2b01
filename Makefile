# The one test command is `make test`; .ci/run installs what it needs first.
GO                  ?= go
STATICCHECK_VERSION := v0.8.2
HELM_VERSION        := v3.19.0
BIN                 := $(CURDIR)/bin

.PHONY: test lint fmt-check vet staticcheck unit tools bench run-dev

test: lint tools unit

lint: fmt-check vet staticcheck

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# -race on every package: most of them are concurrent (store, bridge, server).
unit:
	HELM_BIN=$(BIN)/helm $(GO) test -race -count=1 -timeout 20m ./...

tools: $(BIN)/helm

$(BIN)/helm:
	GOBIN=$(BIN) $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

run-dev:
	$(GO) run ./cmd/stepup-bridge dev

# Load test of /v1/authz with wrk on loopback, bounded in time; skips when wrk
# is absent. Numbers and commands: docs/performance.md.
.PHONY: bench-load
bench-load:
	bash internal/perf/scripts/load.sh
