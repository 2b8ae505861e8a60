# Two commands for a fresh machine: `make run` and `make test`. Everything else is a helper.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum requirements.lock | cut -d' ' -f1)
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: manage install run test lint typecheck fmt bench lock migrate clean chaos audit

install: $(STAMP)

$(STAMP): requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing locked dependencies into $(VENV)/ ..."
	@($(VENV)/bin/pip install -q uv && $(VENV)/bin/uv pip install -q --python $(PY) -r requirements.lock) \
		|| $(VENV)/bin/pip install -q -r requirements.lock
	@rm -f $(VENV)/.installed-* && touch $@

## run: embedded PostgreSQL + Redis when DATABASE_URL / REDIS_URL are unset, migrations, demo data,
## web + Celery worker + beat. Ctrl-C stops everything.
run: install
	@PORT=$(PORT) $(PY) -m scripts.services run

## test: the whole suite against PostgreSQL and Redis (from the environment, or the embedded pair).
## The suite runs on TEST_WORKERS pytest-xdist processes (one per core, at most 8), a test module per
## process at a time; TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= auto
test: install
	@$(PY) -m scripts.services exec -- $(PY) -m pytest \
		$(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --maxprocesses 8 --dist loadfile) $(PYTEST_ARGS)

## chaos: the fault suite at full size on loopback (Redis stopped, PostgreSQL sessions killed and a private
## PostgreSQL server restarted under a booking load, Celery workers SIGKILLed mid-reconciliation and
## mid-webhook fan-out, two beats with the active one SIGKILLed); prints a table.
## Its short variant runs with `make test` (tests/chaos).
chaos: install
	@CHAOS_SCALE=full $(PY) -m scripts.services exec -- $(PY) -m pytest tests/chaos tests/operations/test_many_instances.py -p no:cacheprovider -q -s

## audit: known vulnerabilities of the locked dependencies (pip-audit, in a venv of its own under var/,
## reading PyPI's advisory data; AUDIT_SERVICE=osv for OSV). Fails on a finding and, with --strict, on a
## package it could not check, so an unreachable advisory service is never a silent pass.
AUDIT_SERVICE ?= pypi
audit:
	@test -x var/audit/bin/pip-audit || ($(PYTHON) -m venv var/audit && var/audit/bin/pip install -q pip-audit)
	var/audit/bin/pip-audit --requirement requirements.lock --no-deps --disable-pip --strict \
		--vulnerability-service $(AUDIT_SERVICE) --progress-spinner off

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy apps config

fmt: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## manage: any manage.py command with the development settings and servers (the embedded pair, or
## DATABASE_URL/REDIS_URL), e.g. make manage ARGS="issue_api_client --facility 0101001 --scopes bookings:write"
manage: install
	@DJANGO_SETTINGS_MODULE=$${DJANGO_SETTINGS_MODULE:-config.settings.dev} $(PY) -m scripts.services exec -- $(PY) manage.py $(ARGS)

bench: install
	@$(PY) -m scripts.services exec --database cer_bench -- $(PY) -m bench.run $(if $(QUICK),--quick,)

migrate: install
	@DJANGO_SETTINGS_MODULE=$${DJANGO_SETTINGS_MODULE:-config.settings.dev} $(PY) -m scripts.services exec -- $(PY) manage.py migrate

## lock: re-resolve requirements.lock from pyproject.toml (needs network access to PyPI).
lock: install
	$(VENV)/bin/uv pip compile pyproject.toml --extra embedded --extra dev --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

## restore-drill: dump a populated database, restore it into a new one and check it (docs/operations.md).
.PHONY: restore-drill
restore-drill: install
	@$(PY) -m scripts.services exec -- $(PY) -m scripts.restore_drill
