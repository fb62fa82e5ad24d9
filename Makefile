# Maestro Conductor: the two commands a fresh clone needs are `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: demo test venv install install-dev migrate run lint typecheck bench requirements clean-var services

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

## demo: set up the embedded default (SQLite + filesystem broker under var/), load and
## publish the example workflow, and start the server.
demo: $(VENV)/.installed
	$(PY) manage.py migrate --noinput -v 0
	$(PY) manage.py mc_demo --url http://$(HOST):$(PORT)
	$(PY) manage.py runserver $(HOST):$(PORT)

## test: the whole suite against PostgreSQL and Redis on localhost.
test: $(VENV)/.installed-dev
	$(VENV)/bin/pytest

migrate: $(VENV)/.installed
	$(PY) manage.py migrate

run: $(VENV)/.installed
	$(PY) manage.py runserver $(HOST):$(PORT)

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(VENV)/bin/mypy mc_project workflows receipts

bench: $(VENV)/.installed-dev
	$(PY) -m bench.bench_manifest_validate

## requirements: re-pin requirements/*.txt from requirements/*.in
requirements: $(VENV)/.installed-dev
	$(PIP) install -q pip-tools
	cd requirements && ../$(VENV)/bin/pip-compile -q --strip-extras --no-header --no-emit-index-url --no-emit-find-links -o base.txt base.in
	cd requirements && ../$(VENV)/bin/pip-compile -q --strip-extras --no-header --no-emit-index-url --no-emit-find-links -o dev.txt dev.in

services:
	bash .ci/services

clean-var:
	rm -rf var/
