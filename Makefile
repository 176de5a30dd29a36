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

# The layering (import-linter's contracts in pyproject.toml) and ruff's lint and format checks; .ci/run runs
# them before the tests. `ruff format .` and `ruff check --fix .` mend most of what they find.
lint: $(VENV)/.installed-lint
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# dvc.yaml's code deps, generated from the imports: run after an import changed (the structure test says so).
deps: $(VENV)/.installed-run
	$(BIN)/python -c "from pipeline.project.provenance import write_stage_code; print(write_stage_code() or 'up to date')"

# The team's MLflow server (PostgreSQL + proxied artifacts, see docs/team.md); state in .team-server/
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

# the cluster extra too: the cluster tests start Ray clusters on loopback (tests/e2e/test_cluster.py)
$(VENV)/.installed-test: $(VENV)/.installed-run
	$(PIP) --no-build-isolation -e '.[test,cluster]'
	@touch $@

$(VENV)/.installed-lint: $(VENV)/.installed-run
	$(PIP) --no-build-isolation -e '.[lint]'
	@touch $@
