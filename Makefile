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

.PHONY: demo test lint typecheck pytest bench clean collector

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "chainmap-otel needs Python >= 3.11 (found " + sys.version.split()[0] + "); set PYTHON=/path/to/python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/chainmap demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check chainmap_otel tests benchmarks
	$(BIN)/ruff format --check chainmap_otel tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/processor_overhead.py
	$(BIN)/python benchmarks/export_throughput.py
	$(BIN)/python benchmarks/ingest_throughput.py
	$(BIN)/python benchmarks/analysis_scale.py
	$(BIN)/python benchmarks/distro_memory.py

# otelcol-chainmap, the Collector distribution the tests run (collector-config/README.md):
# built once from the Go module proxy, again only when its module changes.
collector: $(COLLECTOR)

$(COLLECTOR): $(COLLECTOR_MODULE)/go.mod $(COLLECTOR_MODULE)/go.sum $(COLLECTOR_MODULE)/main.go
	@command -v $(GO) >/dev/null 2>&1 || { echo "make collector: the Go toolchain (go) is not on PATH" >&2; exit 1; }
	mkdir -p $(@D)
	cd $(COLLECTOR_MODULE) && $(GO) build -trimpath -buildvcs=false -ldflags='-s -w' -o $(abspath $@).tmp .
	mv $@.tmp $@

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .build
