#!/usr/bin/env bash
# The one test command: installs everything it needs (virtualenv, Python dependencies, the
# kube-apiserver and etcd binaries, redis-server, llama.cpp's server and Ollama, and helm, promtool,
# the Argo CD health and dashboard checkers and prometheus-operator's CRDs for the chart's tests),
# runs the static checks, then unit and integration tests (real inference servers included).
#
#   hack/test.sh              everything
#   hack/test.sh unit         unit tests only (no cluster)
#   hack/test.sh e2e          the end-to-end tests on a real node (hack/node.sh; needs root,
#                             containerd, runc, the CNI plugins, buildah and mmdebstrap)
#   PYTEST_ARGS="-k crd" hack/test.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$HACK_DIR/lib/python.sh"
cd "$REPO_ROOT" || exit 1
what="${1:-all}"

ensure_venv
if [[ "$what" != unit ]]; then
  log "control-plane binaries (built once from the Go module proxy, then cached in $SIGNALBOX_CACHE)"
  "$HACK_DIR/build-binaries.sh" kube-apiserver etcd >/dev/null
  log "the tools the chart's alerts, dashboard, Argo CD checks and manifests are tested in (cached too)"
  "$HACK_DIR/build-binaries.sh" helm promtool argocd-health dashboard-check monitoring-crds >/dev/null
  if ! command -v redis-server >/dev/null 2>&1; then
    log "redis-server (Debian package; the shared-limit tests start their own on loopback)"
    [[ "$(id -u)" == 0 ]] || die "redis-server is not installed: apt-get install redis-server"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  fi
  log "inference servers: llama.cpp's server and Ollama (built once, then cached in $SIGNALBOX_CACHE)"
  "$HACK_DIR/build-inference.sh" llama-cpp ollama >/dev/null
  "$HACK_DIR/verify-lint.sh"
  "$HACK_DIR/verify-crds.sh"
fi

if [[ "$what" == e2e ]]; then
  log "pytest tests/e2e (a real node; the first run builds its binaries and images)"
  start=$SECONDS
  # shellcheck disable=SC2086
  SIGNALBOX_E2E=1 "$PY" -m pytest tests/e2e ${PYTEST_ARGS:-} && rc=0 || rc=$?
  log "end-to-end suite took $((SECONDS - start))s"
  exit "$rc"
fi

paths=(tests/unit)
[[ "$what" == unit ]] || paths+=(tests/integration)
log "pytest ${paths[*]}"
# shellcheck disable=SC2086
"$PY" -m pytest "${paths[@]}" ${PYTEST_ARGS:-}
