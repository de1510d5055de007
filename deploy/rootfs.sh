#!/bin/sh
# Assembles the container image's whole root file system from a built
# `portcullis` binary: the binary, exactly the shared libraries `ldd` lists and
# the dynamic loader, CA certificates, a non-root user, and the data
# directories. Both image paths use it: the Dockerfile's build stage (in
# rust:1-bookworm) and deploy/build-image.sh (on the host, without pulling).
#
#   deploy/rootfs.sh BINARY OUTDIR
#
# OUTDIR must not exist or be empty. Ownership of /var/lib/portcullis is set
# by the Dockerfiles' `COPY --chown`, so this script needs no root.
set -eu

if [ "$#" -ne 2 ]; then
    echo "usage: $0 BINARY OUTDIR" >&2
    exit 2
fi
binary=$1
out=$2
uid=65532

if [ ! -x "$binary" ]; then
    echo "$0: $binary is not an executable" >&2
    exit 1
fi
if [ -e "$out" ] && [ -n "$(ls -A "$out")" ]; then
    echo "$0: $out is not empty" >&2
    exit 1
fi

mkdir -p "$out/usr/local/bin" "$out/etc/ssl/certs" "$out/tmp" \
    "$out/var/lib/portcullis/backup" "$out/var/lib/portcullis/data" \
    "$out/var/lib/portcullis/bootstrap"
chmod 1777 "$out/tmp"

# Debug info is dropped (symbols stay, so backtraces still name functions):
# it is most of the release binary's size.
cp "$binary" "$out/usr/local/bin/portcullis"
strip --strip-debug "$out/usr/local/bin/portcullis"
chmod 0755 "$out/usr/local/bin/portcullis"

# Every shared library the binary loads, and the loader, at the paths the
# binary names them by (`ldd` prints `name => path (addr)` or `path (addr)`).
ldd "$binary" | while read -r first second third _; do
    case "$second" in
        "=>") lib=$third ;;
        *) lib=$first ;;
    esac
    case "$lib" in
        /*) ;;
        *) continue ;; # linux-vdso: in the kernel, not a file
    esac
    mkdir -p "$out$(dirname "$lib")"
    # The loader is named by a symbolic link (/lib64 -> /usr/lib64 ...): copy the file.
    cp -L "$lib" "$out$lib"
done

# glibc's own files: who the user is, and host names from /etc/hosts, then DNS.
cat > "$out/etc/passwd" <<PASSWD
root:x:0:0:root:/root:/sbin/nologin
portcullis:x:$uid:$uid:portcullis:/var/lib/portcullis:/sbin/nologin
PASSWD
cat > "$out/etc/group" <<GROUP
root:x:0:
portcullis:x:$uid:
GROUP
echo "hosts: files dns" > "$out/etc/nsswitch.conf"

# The CA bundle, for management planes and backends with public certificates
# (the binary also carries the Mozilla roots).
for bundle in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
    if [ -f "$bundle" ]; then
        cp -L "$bundle" "$out/etc/ssl/certs/ca-certificates.crt"
        break
    fi
done
if [ ! -f "$out/etc/ssl/certs/ca-certificates.crt" ]; then
    echo "$0: no CA bundle found (install ca-certificates)" >&2
    exit 1
fi
