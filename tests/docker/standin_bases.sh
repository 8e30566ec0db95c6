#!/usr/bin/env bash
# TEST INFRASTRUCTURE ONLY. Users never need this script, and it is never used where the real
# images can be pulled: it builds stand-ins for Docker Hub's python:3.11/3.12/3.13-slim-trixie on a
# machine that reaches Debian's mirror and PyPI but not Docker Hub (our CI machines).
# Each stand-in is built the way the official image is, so that image sizes measured on it stand
# for the official ones: a `mmdebstrap --variant=minbase trixie` root filesystem slimmed like
# debian:trixie-slim (no docs but copyright files, man pages, info or locales), the shared
# libraries CPython's extension modules link against, this machine's CA bundle (pip inside the
# containers trusts it through PIP_CERT), and this machine's pyenv CPython build of that version
# copied to /usr/local (with libpython3.X.so.1.0 and pip, without its tests and site-packages,
# and stripped of debug symbols as the official build's `-Wl,--strip-all` does).
# Usage: standin_bases.sh [VERSION...]   (default: 3.11 3.12 3.13). Skips a tag that exists or
# that `docker pull` can fetch. Env: DEBIAN_MIRROR (default: the machine's apt mirror).
set -euo pipefail

VERSIONS=("${@:-3.11}")
[ $# -gt 0 ] || VERSIONS=(3.11 3.12 3.13)
SUITE=trixie
ROOTFS_TAG=scones-standin/${SUITE}-slim:latest
# Bumped when the recipe changes: an older stand-in (a different value) is rebuilt, never reused.
RECIPE=2
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
MIRROR=${DEBIAN_MIRROR:-$(grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list \
    2>/dev/null | grep -oE 'https?://[^ ]+' | head -n1 || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
# What the official slim images carry (ca-certificates, netbase, tzdata) plus the runtime libraries
# of CPython's extension modules (ssl, ctypes, sqlite3, bz2, lzma, zlib, readline, curses, uuid,
# dbm, nis, crypt), under their trixie names.
PACKAGES=ca-certificates,netbase,tzdata,libssl3t64,libffi8,libsqlite3-0,libbz2-1.0,liblzma5,zlib1g
PACKAGES+=,libncursesw6,libtinfo6,libreadline8t64,libuuid1,libexpat1,libgdbm6t64
PACKAGES+=,libgdbm-compat4t64,libnsl2,libtirpc3t64,libcrypt1,libmd0,libbsd0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

todo=()
for version in "${VERSIONS[@]}"; do
    tag=python:${version}-slim-${SUITE}
    label=$(docker image inspect -f '{{index .Config.Labels "org.scones.standin-recipe"}}' \
        "$tag" 2>/dev/null || true)
    standin=$(docker image inspect -f '{{index .Config.Labels "org.scones.standin"}}' \
        "$tag" 2>/dev/null || true)
    if [ -n "$standin" ] && [ "$label" != "$RECIPE" ]; then
        echo "standin: $tag is an older stand-in; rebuilt"
        todo+=("$version")
    elif docker image inspect "$tag" >/dev/null 2>&1; then
        echo "standin: $tag exists; kept"
    elif timeout 60 docker pull -q "$tag" >/dev/null 2>&1; then
        echo "standin: $tag pulled (the real image); no stand-in needed"
    else
        todo+=("$version")
    fi
done
[ ${#todo[@]} -gt 0 ] || exit 0

if ! docker image inspect "$ROOTFS_TAG" >/dev/null 2>&1; then
    echo "standin: building the $SUITE minbase root filesystem from $MIRROR"
    # debian:*-slim's dpkg filter (debuerreotype's --slimify): what a container never reads.
    mmdebstrap --quiet --variant=minbase --include="$PACKAGES" \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/groff/*' \
        --dpkgopt='path-exclude=/usr/share/lintian/*' --dpkgopt='path-exclude=/usr/share/linda/*' \
        "$SUITE" "$work/rootfs.tar" "$MIRROR"
    docker import -c 'ENV LANG=C.UTF-8' -c 'CMD ["bash"]' "$work/rootfs.tar" "$ROOTFS_TAG" >/dev/null
    rm -f "$work/rootfs.tar"
fi

for version in "${todo[@]}"; do
    tag=python:${version}-slim-${SUITE}
    prefix=$(python"$version" -c 'import sys; print(sys.base_prefix)' 2>/dev/null ||
        ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version".* 2>/dev/null | sort -V | tail -n1)
    if [ -z "$prefix" ] || [ ! -x "$prefix/bin/python$version" ]; then
        echo "standin: no CPython $version on this machine (pyenv install $version)" >&2
        exit 1
    fi
    echo "standin: $tag from $prefix"
    ctx=$work/$version
    mkdir -p "$ctx"
    lib=lib/python$version
    # The standard library without its tests, static library and site-packages; then pip alone.
    tar -C "$prefix" -cf "$ctx/python.tar" \
        --exclude="$lib/test" --exclude="$lib/site-packages" --exclude="$lib/config-*" \
        --exclude='__pycache__' --exclude='*.a' lib
    (cd "$prefix" && tar -rf "$ctx/python.tar" --exclude='__pycache__' "bin/python$version" \
        "$lib"/site-packages/pip "$lib"/site-packages/pip-*.dist-info)
    mkdir "$ctx/usr-local"
    tar -C "$ctx/usr-local" -xf "$ctx/python.tar"
    find "$ctx/usr-local" -type f \( -name '*.so' -o -name '*.so.*' -o -name "python$version" \) \
        -exec strip --strip-unneeded {} +
    tar -C "$ctx/usr-local" -cf "$ctx/python.tar" .
    rm -rf "$ctx/usr-local"
    cp "$CA_BUNDLE" "$ctx/ca-certificates.crt"
    cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $ROOTFS_TAG
ADD python.tar /usr/local/
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \\
    LANG=C.UTF-8 \\
    PYTHON_VERSION=$version \\
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
RUN ldconfig \\
    && cd /usr/local/bin \\
    && ln -s python$version python3 && ln -s python3 python \\
    && printf '#!/bin/sh\nexec python$version -m pip "\$@"\n' >pip && chmod 0755 pip \\
    && ln -s pip pip3 && ln -s pip pip$version \\
    && python$version -c 'import ssl, ctypes, sqlite3, bz2, lzma, zlib, uuid, readline'
LABEL org.scones.standin="test infrastructure: stands in for Docker Hub's $tag" \
      org.scones.standin-recipe="$RECIPE"
CMD ["python3"]
DOCKERFILE
    docker build -q -t "$tag" "$ctx" >/dev/null
    rm -rf "$ctx"
    docker run --rm "$tag" python -c 'import sys; print("standin:", sys.version.split()[0], "ok")'
done
