#!/usr/bin/env bash
# Fails when crds/*.yaml or the chart's copies differ from what the models render.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$HACK_DIR/lib/python.sh"
ensure_venv
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/crds" "$tmp/chart"
"$PY" -m signalbox_api.crds "$tmp/crds" "$tmp/chart" >/dev/null
for f in "$tmp"/crds/*.yaml; do
  name="$(basename "$f")"
  diff -u "$REPO_ROOT/crds/$name" "$f" || die "crds/$name is stale; run hack/update-crds.sh"
  diff -u "$REPO_ROOT/charts/signalbox/files/crds/$name" "$tmp/chart/$name" \
    || die "charts/signalbox/files/crds/$name is stale; run hack/update-crds.sh"
done
log "CRDs are up to date (crds/ and the Helm chart)"
