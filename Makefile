# Moorage: the README's two commands are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# command:Debian package, for the tools the end-to-end and scanner tests drive
DEB_TOOLS := skopeo:skopeo docker-registry:docker-registry go:golang-go openssl:openssl chromium:chromium

.PHONY: run test deps test-deps system-deps services lint typecheck pytest bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,granian]'
	touch $@

deps: $(VENV)/.installed

## Start the registry on the embedded default (SQLite + files under ./moorage-data, 127.0.0.1:5000).
run: deps
	$(VENV)/bin/moorage serve $(ARGS)

## Debian tools the end-to-end tests drive (installed only when missing).
system-deps:
	@missing=""; for t in $(DEB_TOOLS); do command -v $${t%%:*} >/dev/null || missing="$$missing $${t#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null; \
	fi

## PostgreSQL and Redis, started when they are installed but not running.
services:
	@bash scripts/ensure-services.sh

lint: deps
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

typecheck: deps
	$(VENV)/bin/mypy

pytest: deps system-deps services
	$(PY) -m pytest $(PYTEST_ARGS)

## Everything CI runs: lint, types, the whole test suite on SQLite and PostgreSQL.
test: deps system-deps services lint typecheck pytest

bench: deps
	$(PY) bench/run_regbench.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache moorage-data
