# shellcheck shell=bash
# The files made from uv.lock: the images install from these (pip --require-hashes), so an image
# gets exactly the versions the tests ran with. Source after python.sh.

# render_image_requirements DIR: writes DIR/requirements.txt (the product's runtime packages) and
# DIR/requirements-client.txt (the client extra, for the fake-provider test image) from uv.lock.
render_image_requirements() {
  local dir="$1" name extras
  for name in requirements requirements-client; do
    extras=()
    [[ "$name" == requirements ]] || extras=(--extra client)
    (cd "$REPO_ROOT" && "$UV" export --quiet --frozen --no-dev --no-emit-project --no-header \
      --format requirements-txt "${extras[@]}" --output-file "$dir/$name.txt") ||
      die "uv export failed"
  done
}
