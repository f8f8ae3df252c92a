#!/usr/bin/env bash
# Renders the Argo CD health scripts (charts/signalbox/argocd/*-health.lua) and argocd-cm-patch.yaml
# from the Lua sources in charts/signalbox/argocd/src/. tests/unit/hack/test_argocd_health.py fails
# when they drift.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$HACK_DIR/lib/python.sh"
ensure_venv
"$PY" "$HACK_DIR/argocd_health.py" write
log "charts/signalbox/argocd is up to date"
