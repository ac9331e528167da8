# taxistream — see README.md. `make run` runs the demo pipeline locally; `make test` runs every test,
# including the real peers (Runtime Interface Emulator, kinesis-mock, the KPL aggregation module for Node),
# which `make tools` installs into the project's own folders.

SHELL := /bin/bash
GO ?= go
FUNCTIONS := ingest process replay compact
RIE_VERSION := v0.0.0-20261030222936-bef5c4ba774d
STATICCHECK_VERSION := v0.8.2
TOOLS_BIN := $(CURDIR)/.tools/bin
NODE_DIR := $(CURDIR)/tools/node
LAMBDA_BUILD := GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath -ldflags "-s -w"

export TAXISTREAM_RIE := $(TOOLS_BIN)/aws-lambda-rie
STATICCHECK := $(TOOLS_BIN)/staticcheck
export TAXISTREAM_NODE_MODULES := $(NODE_DIR)/node_modules
export CHROMIUM ?= /usr/bin/chromium

.PHONY: all build build-native build-IngestFunction build-ProcessFunction build-ReplayFunction build-CompactFunction \
	run test test-unit bench lint tools staticcheck chromium report-png clean sam-build invoke-IngestFunction invoke-ProcessFunction invoke-ReplayFunction \
	invoke-CompactFunction

all: build

# --- SAM's makefile builder (BuildMethod: makefile) calls these with ARTIFACTS_DIR set.
build-IngestFunction:
	$(LAMBDA_BUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/ingest
build-ProcessFunction:
	$(LAMBDA_BUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/process
build-ReplayFunction:
	$(LAMBDA_BUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/replay
build-CompactFunction:
	$(LAMBDA_BUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/compact

# All four functions for Lambda (linux/arm64) into bin/<fn>/bootstrap.
build:
	@for fn in $(FUNCTIONS); do \
		echo "building bin/$$fn/bootstrap (linux/arm64)"; \
		$(LAMBDA_BUILD) -o bin/$$fn/bootstrap ./functions/$$fn || exit 1; \
	done

# The same functions for this machine, for the Runtime Interface Emulator tests.
build-native:
	@for fn in $(FUNCTIONS); do \
		CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath -o bin/native/$$fn/bootstrap ./functions/$$fn || exit 1; \
	done

# The real peers: the Lambda Runtime Interface Emulator (Go module), the Node packages
# (kinesis-local = kinesis-mock, aws-kinesis-agg = the official KPL aggregation module, DuckDB and
# hyparquet, playwright-core) and Debian's chromium, which playwright-core drives for the run report's
# browser test (no browser download); and staticcheck (Go module) for `make lint`, reinstalled when the
# installed binary is not the pinned version.
tools: $(TAXISTREAM_RIE) staticcheck $(NODE_DIR)/node_modules/.installed chromium

# Debian's chromium, installed with apt-get when it is missing (as root, e.g. in CI). Where it cannot be
# installed the browser test skips, and fails under CI=true.
chromium:
	@if [ -x "$(CHROMIUM)" ] || command -v chromium >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian's chromium (apt-get)"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; \
	else \
		echo "chromium is not installed and apt-get cannot install it here (needs root): the report's browser test will skip (and fail under CI=true)"; \
	fi

$(TAXISTREAM_RIE):
	GOBIN=$(TOOLS_BIN) $(GO) install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$(RIE_VERSION)

staticcheck:
	@$(STATICCHECK) -version 2>/dev/null | grep -qF '($(STATICCHECK_VERSION:v%=%))' || \
		GOBIN=$(TOOLS_BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

$(NODE_DIR)/node_modules/.installed: $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund
	touch $@

# The demo: generated data through the whole pipeline on the embedded local cloud, limits on.
# It builds the CLI first (saying so: on a fresh machine the first build takes a minute or two).
run:
	@echo "building bin/taxistream (the first build on a fresh machine takes a minute or two)..."
	@$(GO) build -o bin/taxistream ./cmd/taxistream
	./bin/taxistream local --demo

# Every test. Unit tests need nothing; the peer tests use what `tools` and `build-native` installed.
test: tools build-native
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 9m ./...

test-unit:
	$(GO) test ./...

# The README's screenshot of the run report (docs/report.png): the demo's report, checked in chromium
# by the browser test's script, then photographed.
report-png: tools
	$(GO) run ./cmd/taxistream local --demo --quiet --summary-json .taxistream/summary.json
	cd $(NODE_DIR) && node report-check.mjs --report $(CURDIR)/.taxistream/report.html --summary $(CURDIR)/.taxistream/summary.json \
		--screenshot $(CURDIR)/.taxistream/report-full.png --viewport-shot $(CURDIR)/docs/report.png --shot-height 1500

bench: build-native
	$(GO) run ./cmd/taxistream bench

# gofmt, go vet and staticcheck (pinned, installed by `tools`); CI runs it before the tests.
lint: staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...
	@# cfn-lint, as `sam validate --lint` runs it: any error, warning or informational finding fails.
	@if command -v cfn-lint >/dev/null; then cfn-lint template.yaml && echo "cfn-lint: template.yaml clean"; \
	elif [ "$$CI" = true ]; then echo "cfn-lint is required when CI=true (pip install cfn-lint)"; exit 1; \
	else echo "cfn-lint not installed; skipped"; fi

# `sam local invoke` against the deployed stack (needs sam and Docker; neither runs on the build
# machines here). events/env.json sets the variables that `sam local` would resolve to resources that do
# not exist (README: "Local invoke with SAM"); samconfig.toml names it too. Another event:
# make invoke-IngestFunction EVENT=events/s3-put-gz.json; another env-vars file: SAM_ENV_VARS=...
SAM_ENV_VARS ?= events/env.json
sam-build:
	sam build
invoke-IngestFunction: EVENT ?= events/s3-put.json
invoke-IngestFunction: sam-build
	sam local invoke IngestFunction --event $(EVENT) --env-vars $(SAM_ENV_VARS)
invoke-ProcessFunction: EVENT ?= events/kinesis.json
invoke-ProcessFunction: sam-build
	sam local invoke ProcessFunction --event $(EVENT) --env-vars $(SAM_ENV_VARS)
invoke-ReplayFunction: EVENT ?= events/replay.json
invoke-ReplayFunction: sam-build
	sam local invoke ReplayFunction --event $(EVENT) --env-vars $(SAM_ENV_VARS)
invoke-CompactFunction: EVENT ?= events/compact.json
invoke-CompactFunction: sam-build
	sam local invoke CompactFunction --event $(EVENT) --env-vars $(SAM_ENV_VARS)

clean:
	rm -rf bin .aws-sam .taxistream
