# A thin index of the hack/ scripts. `make help` lists the targets.
.DEFAULT_GOAL := help

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

demo: ## Run the local demo of the whole system (Ctrl-C stops it)
	hack/demo.sh

test: ## Install everything and run every check and test
	hack/test.sh

test-unit: ## Unit tests only (no cluster)
	hack/test.sh unit

lint: ## ruff, mypy --strict, import-linter
	hack/verify-lint.sh

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

.PHONY: help demo test test-unit lint update-lock verify-lock update-crds verify-crds cluster-up cluster-down
