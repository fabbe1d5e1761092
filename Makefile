# Rapport: `make up` runs the whole platform locally with demo data; `make test` runs the whole test suite.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

export RAPPORT_KAFKA_PORT ?= 9092
export RAPPORT_KAFKA_CONTROLLER_PORT ?= 9093
export RAPPORT_MONGO_PORT ?= 27017
# The one origin of `make up` (deploy/local/gateway.py: / intake, /scoring/, /referral/, /notify/); up.sh makes
# every RAPPORT_<SERVICE>_URL this origin plus the service's prefix.
export RAPPORT_ENTRY_PORT ?= 8000
export RAPPORT_INTAKE_PORT ?= 8001
export RAPPORT_SCORING_PORT ?= 8002
export RAPPORT_REFERRAL_PORT ?= 8003
export RAPPORT_NOTIFY_PORT ?= 8004
export RAPPORT_INTAKE_WORKER_PORT ?= 8101
export RAPPORT_SCORING_WORKER_PORT ?= 8102
export RAPPORT_REFERRAL_WORKER_PORT ?= 8103
export RAPPORT_NOTIFY_WORKER_PORT ?= 8104
export RAPPORT_KAFKA_BOOTSTRAP ?= 127.0.0.1:$(RAPPORT_KAFKA_PORT)
export RAPPORT_MONGO_URI ?= mongodb://127.0.0.1:$(RAPPORT_MONGO_PORT)/

.PHONY: setup browser up down test unit integration e2e faults bench lock

$(BIN)/.installed: pyproject.toml deploy/requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[local,test]' -c deploy/requirements.lock
	touch $@

# The virtualenv, the Kafka jars (Maven Central) and FerretDB (Go module proxy); each step runs once.
setup: $(BIN)/.installed
	$(BIN)/python deploy/local/runtime.py fetch-kafka
	$(BIN)/python deploy/local/runtime.py build-ferretdb

up: setup
	deploy/local/up.sh

down:
	deploy/local/down.sh

# Debian's Chromium, for the browser tests.
browser:
	deploy/local/install-browser.sh

# The tests start their own broker and database on free ports, so they run beside `make up`.
test: setup browser
	$(BIN)/pytest

unit: setup
	$(BIN)/pytest tests/unit

integration: setup
	$(BIN)/pytest tests/integration

e2e: setup
	$(BIN)/pytest tests/e2e

# The fault suite (also part of `make test`): broker restart, kill -9, rebalance, poison, database outage, replay.
faults: setup
	$(BIN)/pytest -s tests/faults

# Benchmarks (never timed tests): intake under load, alert latency, replay, matching, peak memory; each on a
# broker, database and platform of its own, next to a limit measured in the same run. Writes docs/benchmarks.md.
bench: setup
	$(BIN)/python deploy/bench/run.py

# Re-pin every Python package at the versions installed now (after a change to pyproject.toml).
lock: $(BIN)/.installed
	{ head -n 3 deploy/requirements.lock; $(BIN)/pip freeze --exclude-editable; } > deploy/requirements.lock.new
	mv deploy/requirements.lock.new deploy/requirements.lock
