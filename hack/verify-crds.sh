#!/usr/bin/env bash
# Fails when crds/*.yaml differ from what the models render (run hack/update-crds.sh).
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$HACK_DIR/lib/python.sh"
ensure_venv
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
"$PY" -m signalbox_api.crds "$tmp" >/dev/null
for f in "$tmp"/*.yaml; do
  diff -u "$REPO_ROOT/crds/$(basename "$f")" "$f" || die "crds/$(basename "$f") is stale; run hack/update-crds.sh"
done
log "CRDs are up to date"
