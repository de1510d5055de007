#!/bin/sh
# Builds the Portcullis image on this machine without pulling anything: the
# release binary is compiled on the host, deploy/rootfs.sh assembles the root
# file system from it, and deploy/Dockerfile.local (the repository Dockerfile's
# final stage, `FROM scratch`) makes the image.
#
#   deploy/build-image.sh [TAG]        TAG: default $PORTCULLIS_IMAGE or portcullis:local
#
# PORTCULLIS_BINARY=path skips the cargo build and uses that binary (it must
# be built for the host's glibc, as `ldd` sees it).
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
tag=${1:-${PORTCULLIS_IMAGE:-portcullis:local}}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n 1)

if [ -n "${PORTCULLIS_BINARY:-}" ]; then
    binary=$PORTCULLIS_BINARY
else
    (cd "$repo" && cargo build --release --locked -p portcullis)
    target_dir=${CARGO_TARGET_DIR:-$repo/target}
    binary=$target_dir/release/portcullis
fi

context=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-image.XXXXXX")
trap 'rm -rf "$context"' EXIT
sh "$repo/deploy/rootfs.sh" "$binary" "$context/rootfs"
cp "$repo/deploy/Dockerfile.local" "$context/Dockerfile"

# Docker's client without the buildx plugin refuses BuildKit builds; the
# classic builder makes the same image from this Dockerfile.
if ! docker buildx version >/dev/null 2>&1; then
    export DOCKER_BUILDKIT=0
fi
docker build --build-arg "VERSION=$version" -t "$tag" "$context"
# The build stage's image (a copy of the root file system) is of no further use.
docker image prune -f --filter label=io.portcullis.stage=rootfs >/dev/null
echo "IMAGE=$tag"
docker image inspect -f 'SIZE_BYTES={{.Size}}' "$tag"
