#!/usr/bin/env bash
# The one test command: installs everything it needs (virtualenv, Python dependencies, the
# kube-apiserver and etcd binaries, redis-server, llama.cpp's server and Ollama, and helm, promtool,
# the Argo CD health and dashboard checkers and prometheus-operator's CRDs for the chart's tests;
# with a node, its binaries and images), side by side, runs the static checks, then unit and
# integration tests (real inference servers included), then the end-to-end tests.
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

# in_background NAME COMMAND...: runs a first build beside the others, its output kept in a log
# that finished() shows if it fails. Builds that wait on the network or the disk (the images, the
# Go modules' downloads) then overlap with the ones that keep both cores busy compiling.
declare -A build_pids build_logs
in_background() {
  local name="$1"
  shift
  build_logs[$name]="$(mktemp)"
  "$@" >/dev/null 2>"${build_logs[$name]}" &
  build_pids[$name]=$!
}

# finished NAME: waits for a background build, showing its latest line each minute; prints what
# it built, or fails with its whole log.
finished() {
  local name="$1" pid="${build_pids[$1]}" rc=0 waited=0
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    ((++waited % 60)) || log "$name: $(tail -n 1 "${build_logs[$name]}" | sed 's/^==> //')"
  done
  wait "$pid" || rc=$?
  grep -E '^==> (built|base image|.* image size)' "${build_logs[$name]}" >&2 || true
  ((rc == 0)) || { cat "${build_logs[$name]}" >&2; die "building $name failed"; }
  rm -f "${build_logs[$name]}"
}
trap 'kill "${build_pids[@]}" 2>/dev/null || true' EXIT

e2e() {
  log "pytest tests/e2e (a real node: hack/node.sh)"
  local start=$SECONDS rc
  # shellcheck disable=SC2086
  SIGNALBOX_E2E=1 "$PY" -m pytest tests/e2e ${PYTEST_ARGS:-} && rc=0 || rc=$?
  log "end-to-end suite took $((SECONDS - start))s"
  return "$rc"
}

ensure_venv
node=""
if [[ "$what" != unit ]]; then
  if why="$(node_unavailable)"; then
    [[ "$what" != e2e ]] || die "no node can start here: $why"
    log "end-to-end tests will be skipped: $why"
  else
    node=1
  fi

  # First builds, cached in $SIGNALBOX_CACHE: the control plane, the chart's checkers and the
  # inference servers; with a node, its binaries and images too (the images, which mostly wait on
  # the disk, build at low priority beside everything else, the tests included).
  log "first builds (from the Go module proxy, PyPI and Debian; once, then cached in $SIGNALBOX_CACHE)"
  kube=(kube-apiserver) tools=(etcd helm promtool argocd-health dashboard-check monitoring-crds)
  if [[ -n "$node" ]]; then
    kube+=(kubelet kube-controller-manager kube-scheduler kube-proxy) tools+=(coredns)
    in_background images nice -n 10 ionice -c 2 -n 7 "$HACK_DIR/node-images.sh"
  fi
  in_background kube "$HACK_DIR/build-binaries.sh" "${kube[@]}"
  in_background tools "$HACK_DIR/build-binaries.sh" "${tools[@]}"
  in_background inference "$HACK_DIR/build-inference.sh" llama-cpp ollama
  if ! command -v redis-server >/dev/null 2>&1; then
    log "redis-server (Debian package; the shared-limit tests start their own on loopback)"
    [[ "$(id -u)" == 0 ]] || die "redis-server is not installed: apt-get install redis-server"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  fi
  start=$SECONDS
  finished kube
  finished tools
  finished inference
  log "binaries and inference servers ready after $((SECONDS - start))s"
  "$HACK_DIR/verify-lock.sh"
  "$HACK_DIR/verify-lint.sh"
  "$HACK_DIR/verify-crds.sh"
fi

if [[ "$what" == e2e ]]; then
  finished images
  e2e
  exit
fi

paths=(tests/unit)
[[ "$what" == unit ]] || paths+=(tests/integration)
log "pytest ${paths[*]}"
# shellcheck disable=SC2086
"$PY" -m pytest "${paths[@]}" ${PYTEST_ARGS:-} && rc=0 || rc=$?
if [[ -n "$node" && "$what" == all ]]; then
  finished images
  e2e || rc=1
fi
exit "$rc"
