# Two entry points, both idempotent: `make repro` (install + dvc repro) and `make test`.
# Installs go into a project-local .venv, pinned by requirements.lock; a stamp file per
# requirement set means a second call installs nothing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --disable-pip-version-check -q -c requirements.lock
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: repro test lint deps install server server-stop
repro: $(VENV)/.installed-run
	$(BIN)/dvc repro

# 2 workers, whole files, longest first (tests/conftest.py); one torch/OpenMP thread each (and in the stages they
# start), unless OMP_NUM_THREADS says otherwise: 2 workers of 2 threads each on 2 cores ran the torch tests 1.2-1.5x slower.
test: $(VENV)/.installed-test
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder

install: $(VENV)/.installed-run

# The team's MLflow server (PostgreSQL + proxied artifacts, see README "Team setup"); state in .team-server/
server: $(VENV)/.installed-server
	$(BIN)/python -m pipeline.server start $(SERVER_ARGS)

server-stop:
	$(BIN)/python -m pipeline.server stop $(SERVER_ARGS)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-run: requirements.lock pyproject.toml | $(BIN)/python
	$(PIP) setuptools
	$(PIP) --no-build-isolation -e .
	@touch $@

$(VENV)/.installed-server: $(VENV)/.installed-run
	$(PIP) --no-build-isolation -e '.[server]'
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed-run
	$(PIP) --no-build-isolation -e '.[test]'
	@touch $@
