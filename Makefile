# mlplacement developer entry points. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv install test test-unit test-integration lint fmt typecheck imports crds verify demo bench clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP) ## Create .venv with the package and its dev extras
install: $(STAMP) ## Same as venv

test: $(STAMP) ## Run the test suite (integration tests skip without KUBEBUILDER_ASSETS)
	$(BIN)/python -m pytest -q

test-integration: $(STAMP) ## Run only the integration tests against a real control plane
	$(BIN)/python -m pytest -q tests/integration

lint: $(STAMP) ## ruff check and format check
	$(BIN)/ruff check operator tests bench
	$(BIN)/ruff format --check operator tests bench

fmt: $(STAMP) ## Format and autofix
	$(BIN)/ruff format operator tests bench
	$(BIN)/ruff check --fix operator tests bench

typecheck: $(STAMP) ## mypy (strict for api and core)
	$(BIN)/mypy

imports: $(STAMP) ## Enforce the layering with import-linter
	$(BIN)/lint-imports

crds: $(STAMP) ## Regenerate crds/ from the API models
	$(BIN)/mlplacement crds --out crds

verify: $(STAMP) ## Regenerate everything generated and fail on any diff
	$(BIN)/mlplacement crds --out crds --check

demo: $(STAMP) ## Place examples/ on the embedded sample fleet, then simulate a day against baselines (plots in out/demo)
	$(BIN)/mlplacement demo
	@echo
	@echo "== A day on the sample fleet: the engine against baselines (examples/traces/steady-day.yaml) =="
	$(BIN)/mlplacement simulate --trace examples/traces/steady-day.yaml --out out/demo

bench: $(STAMP) ## Run the placement engine benchmark
	$(BIN)/python bench/engine.py

clean: ## Remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
