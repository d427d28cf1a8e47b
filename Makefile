# Every install step lives here: a fresh clone needs only python3 (3.11+) and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test bench bench-claim bench-engine bench-bpmn bench-ingest bench-reconcile bench-work clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## run: the service on its embedded default (PostgreSQL started for you, migrated, served)
run: install
	$(BIN)/bridge up

## test: the whole test suite against real parts
test: install
	$(BIN)/pytest

## bench: benchmarks that print tables (not part of the test suite)
bench: bench-claim bench-engine bench-bpmn bench-ingest bench-reconcile bench-work

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

clean:
	rm -rf $(VENV) .bridge-data .pytest_cache
