# A thin index of the hack/ scripts. `make help` lists the targets.
.DEFAULT_GOAL := help

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

demo: ## Run the local demo of the whole system (Ctrl-C stops it)
	hack/demo.sh

test: ## Install everything and run every check and test
	hack/test.sh

test-unit: ## Unit tests: no network, no cluster (tests/unit)
	hack/test.sh unit

test-dataplane: ## The router with fakes, Redis and real inference servers; no API server (tests/dataplane)
	hack/test.sh dataplane

test-controlplane: ## A real kube-apiserver + etcd: operator, CRDs, chart (tests/controlplane)
	hack/test.sh controlplane

test-e2e: ## A real node running the chart (tests/e2e; Linux, root)
	hack/test.sh e2e

lint: ## The lock, ruff, mypy --strict, import-linter, ShellCheck and the CRDs
	hack/test.sh lint

update-lock: ## Refresh uv.lock (newest versions pyproject.toml allows) and the images' requirements
	hack/update-lock.sh

verify-lock: ## Check uv.lock against pyproject.toml, and the images' requirements against uv.lock
	hack/verify-lock.sh

update-crds: ## Render crds/ from the models
	hack/update-crds.sh

verify-crds: ## Check crds/ against the models
	hack/verify-crds.sh

cluster-up: ## Start a local kube-apiserver + etcd
	hack/cluster.sh up

cluster-down: ## Stop it
	hack/cluster.sh down

.PHONY: help demo test test-unit test-dataplane test-controlplane test-e2e lint update-lock verify-lock update-crds verify-crds cluster-up cluster-down
