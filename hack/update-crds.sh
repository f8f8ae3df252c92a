#!/usr/bin/env bash
# Renders crds/*.yaml (and the Helm chart's copies) from the API models in operator/signalbox_api.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$HACK_DIR/lib/python.sh"
ensure_venv
"$PY" -m signalbox_api.crds "$REPO_ROOT/crds" "$REPO_ROOT/charts/signalbox/files/crds"
"$PY" -m signalbox_api.reference >"$REPO_ROOT/crds/reference.md"
