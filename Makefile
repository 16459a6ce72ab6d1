# StreamDuck developer entry point. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= $(shell bash scripts/find-python.sh)

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	@test -x "$(PYTHON)" || { echo "python3.13 not found (PATH or pyenv 3.13.0)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt -e ".[local]"
	touch $(VENV)/.runtime-installed $@

# What `make demo` needs: the app's requirements and the `local` extra, no test or lint tools.
$(VENV)/.runtime-installed: requirements.txt pyproject.toml
	@test -x "$(PYTHON)" || { echo "python3.13 not found (PATH or pyenv 3.13.0)"; exit 1; }
	@echo "==> [1/3] virtualenv $(VENV) ($(PYTHON))"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "==> [2/3] StreamDuck with the local extra (runtime only; make venv adds the test tools)"
	$(PY) -m pip install --disable-pip-version-check --progress-bar off -e ".[local]"
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create .venv with runtime + dev dependencies

.PHONY: demo
demo: $(VENV)/.runtime-installed ## Main job on embedded defaults: local DuckDB, chDB, the demo's own Redis
	@echo "==> [3/3] redis-server (apt-get when missing), then the demo"
	bash scripts/services.sh install redis
	$(PY) -m shared demo $(ARGS)

.PHONY: demo-stop
demo-stop: ## Stop the Redis `make demo` left running (its data stays under .streamduck/redis)
	$(PY) -m shared demo --stop

.PHONY: lint
lint: venv ## ruff + mypy --strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

.PHONY: test
test: venv ## Whole test suite: installs and starts local services, runs every test, stops them
	bash scripts/test.sh

.PHONY: package-size
package-size: ## Install requirements.txt as the Functions remote build does; fail above 450 MB (LIMIT_MB=...)
	PYTHON="$(PYTHON)" bash scripts/package-size.sh requirements.txt $(LIMIT_MB)

.PHONY: test-unit
test-unit: venv ## Tests that need no service (not marked integration), no service started: under a minute
	$(PY) -m pytest -m "not integration" -n 2 $(ARGS)

.PHONY: services-up
services-up: venv ## Install and start Redis, Kafka, Azurite, PostgreSQL, Kafka Connect on 127.0.0.1 (env in .services/env)
	bash scripts/services.sh install
	bash scripts/services.sh start

.PHONY: services-down
services-down: ## Stop the local services started by services-up
	bash scripts/services.sh stop

.PHONY: bench
bench: venv ## Benchmarks: Event Hubs -> DuckDB, Kafka enrichment, the dev host on Kafka, cold start (print JSON)
	$(PY) -m bench.eventhubs_ingest
	bash scripts/services.sh install redis kafka && bash scripts/services.sh start redis kafka
	source .services/env && $(PY) -m bench.engagement_enrich
	source .services/env && $(PY) -m bench.devhost_kafka
	source .services/env && $(PY) -m bench.cold_start
