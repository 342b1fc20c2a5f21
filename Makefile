# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.chainmap-installed
DEMO_ARGS ?=
PYTEST_ARGS ?=

.PHONY: demo test lint typecheck pytest bench clean

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
	$(BIN)/python benchmarks/decode_cpu.py
	$(BIN)/python benchmarks/analysis_scale.py
	$(BIN)/python benchmarks/distro_memory.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
