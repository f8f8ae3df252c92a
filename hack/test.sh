#!/usr/bin/env bash
# The one test command: installs everything it needs (virtualenv, Python dependencies, the
# kube-apiserver and etcd binaries, redis-server, llama.cpp's server and Ollama, and helm, promtool,
# the Argo CD health and dashboard checkers and prometheus-operator's CRDs for the chart's tests),
# runs the static checks, then unit and integration tests (real inference servers included).
#
#   hack/test.sh              everything; the end-to-end tests too whenever a node can start
#   hack/test.sh unit         unit tests only (no cluster)
#   hack/test.sh e2e          only the end-to-end tests on a real node (hack/node.sh)
#   PYTEST_ARGS="-k crd" hack/test.sh
#
# A node (tests/e2e) needs Linux, root and network namespaces; its Debian packages (containerd,
# runc, the CNI plugins, socat, buildah, mmdebstrap) are installed here when missing.
# SIGNALBOX_E2E=0 skips the end-to-end tests.
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

# node_unavailable: prints why a node cannot start here (and succeeds), or installs the Debian
# packages a node needs when they are missing and fails (a node can start).
node_unavailable() {
  [[ "${SIGNALBOX_E2E:-}" != 0 ]] || { echo "SIGNALBOX_E2E=0"; return 0; }
  [[ "$(uname -s)" == Linux ]] || { echo "a node needs Linux"; return 0; }
  [[ "$(id -u)" == 0 ]] || { echo "a node needs root (network namespaces, mounts, containers)"; return 0; }
  local packages=() tool
  for tool in containerd:containerd runc:runc socat:socat nsenter:util-linux ip:iproute2 \
    iptables:iptables buildah:buildah mmdebstrap:mmdebstrap; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || packages+=("${tool#*:}")
  done
  [[ -x /usr/lib/cni/bridge || -x /opt/cni/bin/bridge ]] || packages+=(containernetworking-plugins)
  if ((${#packages[@]} > 0)); then
    command -v apt-get >/dev/null 2>&1 || { echo "missing ${packages[*]} and there is no apt-get"; return 0; }
    log "the node's Debian packages: ${packages[*]}"
    { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}"; } >/dev/null 2>&1 ||
      { echo "apt-get install ${packages[*]} failed"; return 0; }
  fi
  local probe="sbx-probe-$$"
  ip netns add "$probe" 2>/dev/null || { echo "network namespaces cannot be made here"; return 0; }
  ip netns delete "$probe"
  return 1
}

e2e() {
  log "pytest tests/e2e (a real node; the first run builds its binaries and images)"
  local start=$SECONDS rc
  # shellcheck disable=SC2086
  SIGNALBOX_E2E=1 "$PY" -m pytest tests/e2e ${PYTEST_ARGS:-} && rc=0 || rc=$?
  log "end-to-end suite took $((SECONDS - start))s"
  return "$rc"
}

if [[ "$what" == e2e ]]; then
  if why="$(node_unavailable)"; then die "no node can start here: $why"; fi
  e2e
  exit
fi

paths=(tests/unit)
[[ "$what" == unit ]] || paths+=(tests/integration)
log "pytest ${paths[*]}"
# shellcheck disable=SC2086
"$PY" -m pytest "${paths[@]}" ${PYTEST_ARGS:-} && rc=0 || rc=$?
if [[ "$what" == all ]]; then
  if why="$(node_unavailable)"; then
    log "end-to-end tests skipped: $why"
  else
    e2e || rc=1
  fi
fi
exit "$rc"
