#!/usr/bin/env bash
# Refreshes uv.lock from pyproject.toml's ranges (the newest releases they allow; pass uv's own
# options to narrow it, e.g. --upgrade-package openai) and renders the images' requirements from it.
#
# usage: hack/update-lock.sh [uv lock options...]   (no options: upgrade everything)
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$HACK_DIR/lib/python.sh"
source "$HACK_DIR/lib/lock.sh"
ensure_uv
cd "$REPO_ROOT" || exit 1
(($# > 0)) || set -- --upgrade
"$UV" lock "$@"
render_image_requirements "$REPO_ROOT/hack/images"
log "uv.lock and hack/images/requirements*.txt rendered; run make test before committing them"
