#!/usr/bin/env bash
# Fails when uv.lock no longer satisfies pyproject.toml, or when the images' requirements
# (hack/images/requirements*.txt) differ from what uv.lock renders.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$HACK_DIR/lib/python.sh"
source "$HACK_DIR/lib/lock.sh"
ensure_uv
cd "$REPO_ROOT" || exit 1
"$UV" lock --check --quiet || die "uv.lock does not match pyproject.toml; run hack/update-lock.sh"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
render_image_requirements "$tmp"
for f in "$tmp"/*.txt; do
  diff -u "hack/images/$(basename "$f")" "$f" ||
    die "hack/images/$(basename "$f") is stale; run hack/update-lock.sh"
done
log "uv.lock matches pyproject.toml, and the images' requirements match uv.lock"
