#!/usr/bin/env bash
# The one test command: installs everything it needs (the virtualenv from uv.lock, the
# kube-apiserver and etcd binaries, redis-server, llama.cpp's server and Ollama, and helm, promtool,
# the Argo CD health and dashboard checkers and prometheus-operator's CRDs for the chart's tests;
# with a node, its binaries and images), runs the static checks, then each test folder in turn.
# Each folder says what it needs (tests/README.md):
#
#   hack/test.sh               everything: checks, unit, dataplane, controlplane, e2e (when a node
#                              can start here)
#   hack/test.sh unit          tests/unit: no network, no cluster (seconds)
#   hack/test.sh dataplane     tests/dataplane: the router, fakes, Redis and real inference
#                              servers on loopback; no API server
#   hack/test.sh controlplane  tests/controlplane: a real kube-apiserver + etcd, the chart's tools
#   hack/test.sh e2e           tests/e2e: a real node (hack/node.sh), the chart installed on it
#   hack/test.sh lint          the static checks alone (lock, ruff, mypy, import-linter, CRDs)
#   PYTEST_ARGS="-k crd" hack/test.sh controlplane
#
# Tests that mostly wait run side by side in pytest-xdist workers (UNIT_WORKERS, DATAPLANE_WORKERS,
# CONTROLPLANE_WORKERS; 0 runs a folder in one process). A node (tests/e2e) needs Linux, root and
# network namespaces; its Debian packages (containerd, runc, the CNI plugins, socat, buildah,
# mmdebstrap) are installed here when missing. SIGNALBOX_E2E=0 skips the end-to-end tests.
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

# suite FOLDER WORKERS: runs one test folder, in WORKERS pytest-xdist workers (0: one process).
suite() {
  local folder="$1" workers="$2" start=$SECONDS rc=0 parallel=()
  ((workers == 0)) || parallel=(-n "$workers" --dist loadgroup)
  log "pytest tests/$folder${parallel:+ (${workers} workers)}"
  # shellcheck disable=SC2086
  "$PY" -m pytest "tests/$folder" "${parallel[@]}" ${PYTEST_ARGS:-} || rc=$?
  log "tests/$folder took $((SECONDS - start))s"
  return "$rc"
}

e2e() {
  SIGNALBOX_E2E=1 suite e2e 0
}

ensure_venv
case "$what" in
  all | unit | dataplane | controlplane | e2e | lint) ;;
  *) die "unknown part: $what (all, unit, dataplane, controlplane, e2e or lint)" ;;
esac
if [[ "$what" == unit ]]; then
  suite unit "${UNIT_WORKERS:-2}"
  exit
fi

node=""
if [[ "$what" == all || "$what" == e2e ]]; then
  if why="$(node_unavailable)"; then
    [[ "$what" != e2e ]] || die "no node can start here: $why"
    log "end-to-end tests will be skipped: $why"
  else
    node=1
  fi
fi

# First builds, cached in $SIGNALBOX_CACHE, side by side: the control plane and the chart's
# checkers, the inference servers, and with a node its binaries and images (the images, which
# mostly wait on the disk, build at low priority beside everything else, the tests included).
log "first builds (from the Go module proxy, PyPI and Debian; once, then cached in $SIGNALBOX_CACHE)"
kube=() tools=()
[[ "$what" == lint ]] || tools=(jaeger) # where the tracing tests send spans and read them back
[[ "$what" == dataplane || "$what" == lint ]] ||
  kube=(kube-apiserver kubectl) tools+=(etcd helm promtool argocd-health dashboard-check monitoring-crds)
if [[ -n "$node" ]]; then
  kube+=(kubelet kube-controller-manager kube-scheduler kube-proxy) tools+=(coredns)
  in_background images nice -n 10 ionice -c 2 -n 7 "$HACK_DIR/node-images.sh"
fi
((${#kube[@]} == 0)) || in_background kube "$HACK_DIR/build-binaries.sh" "${kube[@]}"
((${#tools[@]} == 0)) || in_background tools "$HACK_DIR/build-binaries.sh" "${tools[@]}"
[[ "$what" == e2e || "$what" == lint ]] ||
  in_background inference "$HACK_DIR/build-inference.sh" llama-cpp ollama
if [[ "$what" != e2e && "$what" != lint ]] && ! command -v redis-server >/dev/null 2>&1; then
  log "redis-server (Debian package; the shared-limit tests start their own on loopback)"
  [[ "$(id -u)" == 0 ]] || die "redis-server is not installed: apt-get install redis-server"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi

rc=0
if [[ "$what" == all || "$what" == lint ]]; then
  "$HACK_DIR/verify-lock.sh"
  "$HACK_DIR/verify-lint.sh"
  "$HACK_DIR/verify-crds.sh"
  [[ "$what" == all ]] || exit 0
  suite unit "${UNIT_WORKERS:-2}" || rc=1  # needs none of the builds: runs while they finish
fi
start=$SECONDS
for name in kube tools inference; do
  [[ -z "${build_pids[$name]:-}" ]] || finished "$name"
done
log "binaries and inference servers ready after $((SECONDS - start))s"
[[ -z "${build_pids[kube]:-}" ]] || use_kubectl  # the tests' kubectl: the API server's version
if [[ "$what" == all || "$what" == dataplane ]]; then
  suite dataplane "${DATAPLANE_WORKERS:-4}" || rc=1
fi
if [[ "$what" == all || "$what" == controlplane ]]; then
  suite controlplane "${CONTROLPLANE_WORKERS:-3}" || rc=1
fi
if [[ -n "$node" ]]; then
  finished images
  e2e || rc=1
fi
exit "$rc"
