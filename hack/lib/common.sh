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
