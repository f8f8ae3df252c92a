# shellcheck shell=bash
# The project's virtualenv, filled from uv.lock and nothing else. Source after common.sh.
#
# uv (pinned with hashes in hack/lib/uv-requirements.txt, installed once into $SIGNALBOX_CACHE)
# resolves pyproject.toml's ranges into uv.lock: every package, every platform's wheel hashes.
# `uv sync --frozen` then installs exactly the lock, never a newer release; hack/update-lock.sh
# refreshes the lock and hack/verify-lock.sh fails when the lock and pyproject.toml disagree.
VENV="${SIGNALBOX_VENV:-$REPO_ROOT/.venv}"
PY="$VENV/bin/python"
UV_VERSION="$(sed -n 's/^uv==\([0-9.]*\).*/\1/p' "$HACK_DIR/lib/uv-requirements.txt")"
UV="$SIGNALBOX_CACHE/uv-$UV_VERSION/bin/uv"

# ensure_uv: installs the pinned uv once (in a virtualenv of its own, by pip, hashes required)
# and puts it first on PATH.
ensure_uv() {
  if [[ ! -x "$UV" ]]; then
    local home="$SIGNALBOX_CACHE/uv-$UV_VERSION"
    command -v python3 >/dev/null || die "python3 (>= 3.11) is not installed"
    log "installing uv $UV_VERSION into $home (once)"
    rm -rf "$home"
    python3 -m venv "$home" || die "could not create a virtualenv (on Debian: apt-get install python3-venv)"
    "$home/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
      --require-hashes -r "$HACK_DIR/lib/uv-requirements.txt" ||
      die "pip could not install uv $UV_VERSION"
  fi
  export PATH="${UV%/uv}:$PATH" UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT="$VENV"
}

# ensure_venv: the virtualenv holds exactly uv.lock's packages (the product, its client extra and
# the dev tools), reinstalled only when the lock or pyproject.toml changed since the last sync.
ensure_venv() {
  ensure_uv
  local stamp="$VENV/.signalbox-synced"
  if [[ -x "$PY" && -f "$stamp" && ! "$REPO_ROOT/uv.lock" -nt "$stamp" &&
    ! "$REPO_ROOT/pyproject.toml" -nt "$stamp" ]]; then
    return
  fi
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "Python >= 3.11 is required"
  log "installing the Python dependencies from uv.lock into $VENV"
  (cd "$REPO_ROOT" && "$UV" sync --quiet --locked --all-extras --reinstall-package signalbox --python "$(command -v python3)") ||
    die "uv sync failed (uv.lock out of date? hack/update-lock.sh refreshes it)"
  touch "$stamp"
}
