#!/bin/sh
# Builds a small Redis image on this machine without pulling anything, the way
# deploy/build-image.sh builds Portcullis's: the host's redis-server (Debian's
# package: apt-get install redis-server), exactly the shared libraries `ldd`
# lists and the loader, FROM scratch, run as uid 65532. deploy/compose.redis.yaml
# uses it to share the gateways' limits and cache; it is for trials, not a
# production Redis (no persistence unless you configure it, no TLS).
#
#   deploy/build-redis-image.sh [TAG]    TAG: default $PORTCULLIS_REDIS_IMAGE or portcullis-redis:local
#
# REDIS_SERVER=path uses that redis-server instead of the one on PATH.
set -eu

tag=${1:-${PORTCULLIS_REDIS_IMAGE:-portcullis-redis:local}}
server=${REDIS_SERVER:-$(command -v redis-server || true)}
if [ -z "$server" ] || [ ! -x "$server" ]; then
    echo "$0: no redis-server (apt-get install redis-server, or set REDIS_SERVER)" >&2
    exit 1
fi

context=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-redis-image.XXXXXX")
trap 'rm -rf "$context"' EXIT
root=$context/rootfs
mkdir -p "$root/usr/local/bin" "$root/etc" "$root/data" "$root/tmp"
chmod 1777 "$root/tmp"
# The name matters: Debian's binary also serves as redis-check-rdb and
# redis-check-aof, chosen by the name it is run as.
cp -L "$server" "$root/usr/local/bin/redis-server"
chmod 0755 "$root/usr/local/bin/redis-server"

# Every shared library it loads, at the paths it names them by (as deploy/rootfs.sh).
ldd "$server" | while read -r first second third _; do
    case "$second" in
        "=>") lib=$third ;;
        *) lib=$first ;;
    esac
    case "$lib" in
        /*) ;;
        *) continue ;; # linux-vdso: in the kernel, not a file
    esac
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done

cat > "$root/etc/passwd" <<PASSWD
root:x:0:0:root:/root:/sbin/nologin
redis:x:65532:65532:redis:/data:/sbin/nologin
PASSWD
cat > "$root/etc/group" <<GROUP
root:x:0:
redis:x:65532:
GROUP

version=$("$server" --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')
cat > "$context/Dockerfile" <<DOCKERFILE
FROM scratch
LABEL org.opencontainers.image.title="Redis for Portcullis trials" \\
      org.opencontainers.image.description="The host's redis-server ($version) and its libraries, built by deploy/build-redis-image.sh" \\
      org.opencontainers.image.version="$version" \\
      org.opencontainers.image.base.name="scratch"
COPY rootfs/ /
COPY --chown=65532:65532 rootfs/data/ /data/
USER 65532:65532
WORKDIR /data
EXPOSE 6379
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/redis-server"]
DOCKERFILE

# Docker's client without the buildx plugin refuses BuildKit builds; the
# classic builder makes the same image from this Dockerfile.
if ! docker buildx version >/dev/null 2>&1; then
    export DOCKER_BUILDKIT=0
fi
docker build -t "$tag" "$context"
echo "IMAGE=$tag"
docker image inspect -f 'SIZE_BYTES={{.Size}}' "$tag"
