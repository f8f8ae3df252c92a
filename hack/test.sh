#!/usr/bin/env bash
# The one test command: installs everything it needs (virtualenv, Python dependencies, the
# kube-apiserver and etcd binaries, llama.cpp's server and Ollama), runs the static checks, then
# unit and integration tests (the integration tests include real inference servers).
#
#   hack/test.sh              everything
#   hack/test.sh unit         unit tests only (no cluster)
#   PYTEST_ARGS="-k crd" hack/test.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$HACK_DIR/lib/python.sh"
cd "$REPO_ROOT" || exit 1
what="${1:-all}"

ensure_venv
if [[ "$what" != unit ]]; then
  log "control-plane binaries (built once from the Go module proxy, then cached in $SIGNALBOX_CACHE)"
  "$HACK_DIR/build-binaries.sh" kube-apiserver etcd >/dev/null
  log "inference servers: llama.cpp's server and Ollama (built once, then cached in $SIGNALBOX_CACHE)"
  "$HACK_DIR/build-inference.sh" llama-cpp ollama >/dev/null
  "$HACK_DIR/verify-lint.sh"
  "$HACK_DIR/verify-crds.sh"
fi

paths=(tests/unit)
[[ "$what" == unit ]] || paths+=(tests/integration)
log "pytest ${paths[*]}"
# shellcheck disable=SC2086
"$PY" -m pytest "${paths[@]}" ${PYTEST_ARGS:-}
