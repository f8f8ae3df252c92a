# shellcheck shell=bash disable=SC2034
# Small helpers shared by the hack/ scripts. Source, do not execute.
set -o errexit -o nounset -o pipefail

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_ROOT="$(cd "$HACK_DIR/.." && pwd)"
# shellcheck source=versions.sh
source "$HACK_DIR/lib/versions.sh"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

need_go() {
  command -v go >/dev/null 2>&1 || die "Go is not installed (needed to build the control plane from the Go module proxy); install Go >= 1.26 and retry"
}

# use_kubectl: puts the kubectl built for the pinned Kubernetes version (hack/build-binaries.sh;
# built once, then cached) first on PATH, so that client and API server are the same version
# whatever kubectl the machine has, or none.
use_kubectl() {
  local built
  built="$("$HACK_DIR/build-binaries.sh" kubectl | awk '{print $2}')" || die "could not build kubectl"
  PATH="$(dirname "$built"):$PATH"
  export PATH
}

# policies_caught_up PYTHON [KUBECTL-ARGS...]: waits (up to 30 s) until every RoutingPolicy's
# status agrees with its providers' (hack/policy_caught_up.py), so that what a demo prints next
# is the operator's settled view, not the moment between two status writes.
policies_caught_up() {
  local py="$1"
  shift
  for _ in $(seq 60); do
    kubectl "$@" get llmp,llmrp -o json 2>/dev/null | "$py" "$HACK_DIR/policy_caught_up.py" && return 0
    sleep 0.5
  done
  log "the RoutingPolicy status has not caught up with its providers after 30 s"
}
