#!/usr/bin/env bash
# Fails when crds/*.yaml, the chart's copies or the field reference (crds/reference.md) differ
# from what the models render.
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
"$PY" -m signalbox_api.reference >"$tmp/README.md"
diff -u "$REPO_ROOT/crds/reference.md" "$tmp/README.md" \
  || die "crds/reference.md (the field reference) is stale; run hack/update-crds.sh"
log "CRDs and their field reference are up to date (crds/ and the Helm chart)"
