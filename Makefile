# Every install step lives here: a fresh clone needs only python3 (3.11+) and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install browser run check schema test-fast test bench bench-claim bench-engine bench-bpmn bench-ingest bench-reconcile bench-work bench-reports bench-archive bench-migration bench-scale clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## browser: Debian's Chromium for the dashboard test (tests/test_dashboard.py), unless one is there
CHROMIUM ?= $(shell command -v chromium 2>/dev/null)
browser:
ifeq ($(CHROMIUM),)
	@echo "installing Debian's chromium for the dashboard test"
	@SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); export DEBIAN_FRONTEND=noninteractive; \
	  $$SUDO apt-get install -y -q --no-install-recommends chromium fonts-liberation >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q --no-install-recommends chromium fonts-liberation >/dev/null; }
endif

## run: the service on its embedded default (PostgreSQL started for you, migrated, served)
run: install
	$(BIN)/bridge up

## check: the gate (ruff and mypy, configured in pyproject.toml); .ci/run runs it before the tests
check: install
	$(BIN)/ruff check bridge tests bench
	$(BIN)/mypy

## schema: schema.sql, the schema the migrations make, in one file (tests/test_schema.py checks it is current)
schema: install
	$(BIN)/python -m bridge.db.schema_dump

## test-fast: the tests that need neither PostgreSQL nor the engine (parsers, folds, policies), in seconds
test-fast: install
	$(BIN)/pytest -m "not needs_postgres and not needs_engine"

## test: the whole test suite against real parts (docker compose is built once, with Go, to check our compose file)
test: install browser
	COMPOSE_CLI="$$(tools/compose-cli/build || echo)" $(BIN)/pytest

## bench: benchmarks that print tables (not part of the test suite)
bench: bench-claim bench-engine bench-bpmn bench-ingest bench-reconcile bench-work bench-reports bench-archive bench-migration bench-scale

bench-claim: install
	$(BIN)/python -m bench.claim_throughput

bench-engine: install
	$(BIN)/python -m bench.engine_emitter

bench-bpmn: install
	$(BIN)/python -m bench.bpmn_parse

bench-ingest: install
	$(BIN)/python -m bench.webhook_ingest

bench-reconcile: install
	$(BIN)/python -m bench.reconcile_backfill

bench-work: install
	$(BIN)/python -m bench.work_throughput

bench-reports: install
	$(BIN)/python -m bench.reports

bench-archive: install
	$(BIN)/python -m bench.archive

bench-migration: install
	$(BIN)/python -m bench.migration

bench-scale: install
	$(BIN)/python -m bench.scale

clean:
	rm -rf $(VENV) .bridge-data .pytest_cache
