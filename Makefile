# Two commands do all set-up: `make run` and `make test` create .venv when it is missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/.dagster_home

.PHONY: install system-packages run test lint ui validate home bench clean serve

install: $(VENV)/.installed

# Reinstall only when the dependency list changes.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python scripts/check_versions.py
	touch $@

# The instance folder: dagster.yaml is copied in so the instance uses the repo's settings.
home:
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

run: install home
	$(BIN)/taxi-assets run

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# PostgreSQL and Chromium from Debian, for the Postgres-instance and browser tests.
system-packages:
	bash scripts/install_system_packages.sh

# Three workers on two cores, whole files each: the live-service file spends most of its
# time waiting on the daemon's loops, so it takes a worker of its own while two others keep
# both cores busy with the rest. `.venv/bin/python -m pytest` alone runs everything serially.
test: lint system-packages
	$(BIN)/python -m pytest -n 3 --dist loadfile --durations=25

validate: install home
	$(BIN)/dagster definitions validate -w workspace.yaml

# The guidance API and live map on http://127.0.0.1:8000 over the latest forecast tick.
serve: install
	$(BIN)/taxi-assets serve

ui: install home
	$(BIN)/dagster dev -w workspace.yaml

bench: install
	$(BIN)/python bench/bench_simulator.py
	$(BIN)/python bench/bench_data_path.py
	$(BIN)/python bench/calibrate_drift.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
