#!/usr/bin/env bash
# Static checks: ruff (lint + format), mypy --strict, import-linter layer contracts, and
# ShellCheck on the hack/ scripts (installed from Debian's packages when missing).
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$HACK_DIR/lib/python.sh"
ensure_venv
cd "$REPO_ROOT" || exit 1
log "ruff"; "$VENV/bin/ruff" check . && "$VENV/bin/ruff" format --check .
log "mypy --strict"; "$VENV/bin/mypy"
log "import-linter"; "$VENV/bin/lint-imports"
if ! command -v shellcheck >/dev/null 2>&1; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log "installing shellcheck"
    { apt-get install -y shellcheck || { apt-get update && apt-get install -y shellcheck; }; } >/dev/null
  else
    die "shellcheck is not installed (apt-get install shellcheck)"
  fi
fi
log "shellcheck"; shellcheck hack/*.sh hack/lib/*.sh .ci/run
