# The README's commands. Every target creates .venv when it is missing and reuses it after.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export RETAIL_DATA_DIR ?= $(CURDIR)/data
# a data root on object storage (s3://...) keeps Dagster's home on this machine (README, "Cluster")
export DAGSTER_HOME ?= $(if $(findstring ://,$(RETAIL_DATA_DIR)),$(CURDIR)/.dagster_home,$(RETAIL_DATA_DIR)/dagster_home)
STAMP := $(VENV)/.installed

.PHONY: setup run test dev bench clean cold-snap chaos fuzz

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the package metadata changed, so a second `make run` is fast.
$(STAMP): $(BIN)/python pyproject.toml setup.py
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

dbt_project/target/manifest.json: $(STAMP) $(shell find dbt_project/models dbt_project/macros dbt_project/tests -type f) dbt_project/dbt_project.yml
	$(BIN)/retail prepare

setup: $(STAMP) dbt_project/target/manifest.json

run: setup
	@mkdir -p $(DAGSTER_HOME)
	@if [[ "$(RETAIL_DATA_DIR)" != *://* && ! -d "$(RETAIL_DATA_DIR)/landing" ]]; then $(BIN)/retail generate; fi
	$(BIN)/retail run

test: setup
	$(BIN)/python -m pytest

# Debian packages the e2e tests drive (Chromium for the UI test, PostgreSQL for the instance test);
# installed with apt-get (sudo when not root) unless already there. `make run` does not need them.
.PHONY: system-deps
test: system-deps
system-deps:
	@if [ -x /usr/bin/chromium ] && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "system-deps: chromium and postgresql already installed"; \
	else \
		if [ "$$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
			chromium fonts-liberation postgresql; \
	fi

dev: setup
	@mkdir -p $(DAGSTER_HOME)
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

bench: setup
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(RETAIL_DATA_DIR) dbt_project/target

# The cold-snap scenario end to end (generate, train, cold days arrive, drift retrains), with its lag.
cold-snap: setup
	$(BIN)/python -m pytest -q -s -m scenario retail_assets_tests/e2e/test_cold_snap.py -p no:logging 2>&1 | grep -E "cold snap:|passed|failed"

# Robustness runs longer than CI's: SIGKILL `retail run` N times at random points (each kill, then a rerun that
# must converge), and the landing-loader property tests with many more generated files.
CHAOS_KILLS ?= 6
FUZZ_EXAMPLES ?= 5000
chaos: setup
	RETAIL_CHAOS_KILLS=$(CHAOS_KILLS) $(BIN)/python -m pytest -q -s retail_assets_tests/e2e/test_chaos.py -p no:logging 2>&1 | grep -E "chaos:|passed|failed|Error"
fuzz: setup
	RETAIL_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q retail_assets_tests/core/ingest/test_fuzz.py
