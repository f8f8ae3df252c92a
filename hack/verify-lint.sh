#!/usr/bin/env bash
# Static checks: ruff (lint + format), mypy --strict, import-linter layer contracts.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$HACK_DIR/lib/python.sh"
ensure_venv
cd "$REPO_ROOT"
log "ruff"; "$VENV/bin/ruff" check . && "$VENV/bin/ruff" format --check .
log "mypy --strict"; "$VENV/bin/mypy"
log "import-linter"; "$VENV/bin/lint-imports"
