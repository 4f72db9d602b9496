# PACER Dashboard developer commands. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_DIR ?= $(CURDIR)/.run
export RUN_DIR

.PHONY: help install services services-down up down test test-fast lint format bench screenshots

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# The Debian packages of scripts/os-packages.txt first (python3-venv, Chromium, PostgreSQL,
# RabbitMQ, the libraries .venv's binaries link against): scripts/os_packages.py derives it.
$(VENV)/.installed: pyproject.toml scripts/os-packages.txt
	@command -v python3 >/dev/null || { echo "python3 is required"; exit 1; }
	scripts/ensure-apt.sh -f scripts/os-packages.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed  ## create .venv with every dependency (idempotent)

services:  ## start private PostgreSQL + RabbitMQ under .run/ and write .run/env
	scripts/services.sh start

services-down:  ## stop the private PostgreSQL + RabbitMQ
	scripts/services.sh stop

up: install  ## run the whole dashboard with demo PACER traffic; prints the URL
	scripts/up.sh

down:  ## stop everything `make up` started
	scripts/down.sh

test: install  ## start services, run every test (unit, integration, browser)
	scripts/test.sh

test-fast: install  ## the unit tests only: no PostgreSQL, RabbitMQ or browser, in seconds
	$(VENV)/bin/pytest -m unit -q -n auto  # one pytest-xdist worker per core

lint: install  ## ruff format --check + ruff check + layer contracts (.importlinter) + dependency scan
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache --no-logo
	scripts/audit.sh

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install  ## benchmarks in bench/ (not part of make test)
	scripts/bench.sh
