#!/usr/bin/env bash
# Builds the images a node runs, without Docker or a registry: buildah (vfs storage, chroot
# isolation) from operator/Dockerfile and router/Dockerfile, with their PYTHON_IMAGE build
# argument pointed at a Debian root filesystem made here by mmdebstrap (python3 from Debian
# bookworm, the same Python minor as the public default base); a fake-provider test image on top
# of the router's; and the node's static "pause" image. Each is written once as an OCI archive
# to $SIGNALBOX_CACHE/images/, named by a hash of its inputs, so an unchanged image is not
# rebuilt; hack/node.sh import NAME TAR... loads them into a node. Only the current archive of each
# image and the tagged images are kept: each run removes the older archives, the leftovers of an
# interrupted build and the untagged images (with vfs storage each layer is a
# full copy of its root filesystem, so keeping them filled the disk within a day of builds).
#
# usage: hack/node-images.sh [pause] [operator] [router] [fake-provider]
#        (no arguments: all four); prints one "name archive" line per image and, on stderr, the
#        build time and size of each image built.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

IMAGES="$SIGNALBOX_CACHE/images"
TAG="${SIGNALBOX_IMAGE_TAG:-dev}"
REPO_PREFIX="signalbox.local/signalbox-dev"
BASE_IMAGE="signalbox.local/python-base:bookworm"
B=(buildah --storage-driver vfs --root "$SIGNALBOX_CACHE/buildah/storage" --runroot "$SIGNALBOX_CACHE/buildah/run")

inputs_hash() {  # a hash of the files an image is built from
  (cd "$REPO_ROOT" && find "$@" -type f ! -path '*/__pycache__/*' -print0 | sort -z \
    | xargs -0 sha256sum) | sha256sum | cut -c1-12
}

human() { numfmt --to=iec --suffix=B "$1"; }

report() {  # report NAME ARCHIVE START
  log "built $1 in $((SECONDS - $3))s: archive $(human "$(stat -c %s "$2")")"
}

tidy() {  # tidy NAME ARCHIVE: drops NAME's older archives and the storage no tagged image uses
  local old
  for old in "$IMAGES/$1"-*.tar; do
    [[ "$old" == "$2" || ! -f "$old" ]] || rm -f "$old"
  done
  "${B[@]}" rm --all >/dev/null 2>&1 || true
  "${B[@]}" rmi --prune >/dev/null 2>&1 || true
}

need_buildah() {
  command -v buildah >/dev/null 2>&1 || die "buildah is not installed (apt-get install buildah mmdebstrap)"
}

build_pause() {
  local hash tar start=$SECONDS
  hash="$(inputs_hash hack/images/pause.c)"
  tar="$IMAGES/pause-$hash.tar"
  if [[ ! -f "$tar" ]]; then
    need_buildah
    command -v gcc >/dev/null 2>&1 || die "gcc is needed to build the pause image"
    local work ctr
    work="$(mktemp -d)"
    gcc -static -Os -o "$work/pause" "$REPO_ROOT/hack/images/pause.c" || die "could not compile pause"
    strip "$work/pause"
    ctr="$("${B[@]}" from scratch)"
    "${B[@]}" copy "$ctr" "$work/pause" /pause >/dev/null
    "${B[@]}" config --entrypoint '["/pause"]' --user 65535:65535 "$ctr"
    "${B[@]}" commit --rm -q "$ctr" signalbox.local/pause:1 >/dev/null
    "${B[@]}" push -q signalbox.local/pause:1 "oci-archive:$tar.tmp:signalbox.local/pause:1"
    mv "$tar.tmp" "$tar"
    rm -rf "$work"
    report pause "$tar" "$start"
  fi
  tidy pause "$tar"
  ln -sf "$(basename "$tar")" "$IMAGES/pause.tar"
  echo "pause $tar"
}

build_base() {  # the Debian root filesystem that stands in for python:3.11-slim-bookworm
  local rootfs="$IMAGES/python-base-bookworm.tar" start=$SECONDS
  if ! "${B[@]}" inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
    if [[ ! -f "$rootfs" ]]; then
      command -v mmdebstrap >/dev/null 2>&1 || die "mmdebstrap is not installed (apt-get install mmdebstrap)"
      log "making a Debian bookworm root filesystem with python3 (first time only)"
      rm -rf "$rootfs.tmp"
      mmdebstrap --quiet --variant=minbase --format=tar \
        --include=python3,python3-venv,python-is-python3,passwd,ca-certificates \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        bookworm "$rootfs.tmp" >&2 || die "mmdebstrap failed"
      mv "$rootfs.tmp" "$rootfs"
    fi
    local ctr
    ctr="$("${B[@]}" from scratch)"
    "${B[@]}" add "$ctr" "$rootfs" / >/dev/null
    "${B[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      --cmd python3 "$ctr"
    "${B[@]}" commit --rm -q "$ctr" "$BASE_IMAGE" >/dev/null
    log "base image $BASE_IMAGE ready in $((SECONDS - start))s"
  fi
}

build_dockerfile() {  # build_dockerfile NAME DOCKERFILE [BUILD ARGS...]
  local name="$1" dockerfile="$2" hash tar start=$SECONDS
  shift 2
  hash="$(inputs_hash "$dockerfile" pyproject.toml README.md hack/images/requirements*.txt operator router)"
  tar="$IMAGES/$name-$hash.tar"
  local ref="$REPO_PREFIX/$name:$TAG"
  if [[ ! -f "$tar" ]]; then
    need_buildah
    build_base
    log "building $ref from $dockerfile"
    # pip in the build trusts what the host's pip trusts (a host whose registry traffic passes
    # a proxy with its own CA): its config and CA bundle are mounted for RUN steps only.
    local mounts=()
    [[ ! -f /etc/pip.conf ]] || mounts+=(--volume /etc/pip.conf:/etc/pip.conf:ro)
    [[ ! -f /etc/ssl/certs/ca-certificates.crt ]] \
      || mounts+=(--volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
    "${B[@]}" rm --all >/dev/null 2>&1 || true
    (cd "$REPO_ROOT" && "${B[@]}" bud --quiet --isolation chroot --pull-never \
      "${mounts[@]}" --build-arg "PYTHON_IMAGE=$BASE_IMAGE" "$@" -f "$dockerfile" -t "$ref" . >&2) \
      || die "building $name failed"
    "${B[@]}" push -q "$ref" "oci-archive:$tar.tmp:$ref"
    mv "$tar.tmp" "$tar"
    report "$name" "$tar" "$start"
    log "$name image size: $("${B[@]}" images --format '{{.Size}}' "$ref" | head -1)"
  fi
  tidy "$name" "$tar"
  ln -sf "$(basename "$tar")" "$IMAGES/$name.tar"
  echo "$name $tar"
}

in_storage() {  # in_storage NAME: NAME's image is in buildah's storage, loaded from its archive if need be
  local ref="$REPO_PREFIX/$1:$TAG"
  "${B[@]}" inspect --type image "$ref" >/dev/null 2>&1 \
    || "${B[@]}" pull -q "oci-archive:$IMAGES/$1.tar:$ref" >/dev/null \
    || die "could not load $1 from $IMAGES/$1.tar"
}

main() {
  mkdir -p "$IMAGES" "$SIGNALBOX_CACHE/buildah"
  # One build at a time in this storage: tidy removes what another build would be using.
  exec 9>"$SIGNALBOX_CACHE/buildah/lock"
  flock 9
  local images=("$@")
  [[ ${#images[@]} -gt 0 ]] || images=(pause operator router fake-provider)
  for image in "${images[@]}"; do
    case "$image" in
      pause) build_pause ;;
      operator) build_dockerfile operator operator/Dockerfile ;;
      router) build_dockerfile router router/Dockerfile ;;
      fake-provider)
        build_dockerfile router router/Dockerfile >/dev/null
        in_storage router
        build_dockerfile fake-provider hack/images/fake-provider.Dockerfile \
          --build-arg "ROUTER_IMAGE=$REPO_PREFIX/router:$TAG"
        ;;
      *) die "unknown image: $image" ;;
    esac
  done
}

main "$@"
