# shellcheck shell=bash
# The project's virtualenv: created and filled on first use, reused afterwards.
# Source after common.sh.
VENV="${SIGNALBOX_VENV:-$REPO_ROOT/.venv}"
PY="$VENV/bin/python"

ensure_venv() {
  local stamp="$VENV/.signalbox-installed"
  if [[ ! -x "$PY" ]]; then
    command -v python3 >/dev/null || die "python3 (>= 3.11) is not installed"
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "Python >= 3.11 is required"
    log "creating the virtualenv in $VENV"
    python3 -m venv "$VENV" || die "could not create a virtualenv (on Debian: apt-get install python3-venv)"
  fi
  if [[ ! -f "$stamp" || "$REPO_ROOT/pyproject.toml" -nt "$stamp" ]]; then
    log "installing Python dependencies into $VENV"
    "$PY" -m pip install --quiet --upgrade pip >/dev/null
    "$PY" -m pip install --quiet -e "${REPO_ROOT}[dev]" || die "pip install failed"
    touch "$stamp"
  fi
}
