#!/usr/bin/env bash
# Test infrastructure for `make compose-test`: makes sure a Docker engine and the compose v2 plugin
# are there and the daemon runs. Users who already have Docker never need this script.
# - Installs Debian's docker.io (and, for the stand-in bases, mmdebstrap and binutils' strip) when
#   missing.
# - Installs the compose v2 plugin when `docker compose` is missing: it is a single static binary in
#   Debian trixie's `docker-compose` package, fetched with a private sources list (the machine's own
#   apt sources are left alone) and copied into Docker's CLI plugin folder.
# - Starts dockerd in the background when no daemon answers (log: /var/log/dockerd.log).
# Needs root for any install or for starting the daemon; otherwise it says what is missing.
set -euo pipefail

PLUGIN_DIR=${DOCKER_PLUGIN_DIR:-/usr/local/lib/docker/cli-plugins}
# The Debian mirror: the one this machine's apt uses, else Debian's own.
MIRROR=${DEBIAN_MIRROR:-$(grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list \
    2>/dev/null | grep -oE 'https?://[^ ]+' | head -n1 || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

need_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "compose-test: $1, and installing it needs root. As root run: $2" >&2
        exit 2
    fi
}

if ! command -v dockerd >/dev/null || ! command -v mmdebstrap >/dev/null \
    || ! command -v strip >/dev/null; then
    need_root "dockerd, mmdebstrap or strip is missing" "apt-get install docker.io mmdebstrap binutils"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io mmdebstrap binutils >/dev/null
fi

if ! docker compose version >/dev/null 2>&1; then
    need_root "the compose v2 plugin is missing" "bash $0"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    mkdir -p "$work/lists/partial" "$work/archives/partial"
    echo "deb $MIRROR trixie main" >"$work/sources.list"
    apt_private=(-o Dir::Etc::SourceList="$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o Dir::State::Lists="$work/lists" -o Dir::Cache::Archives="$work/archives"
        -o APT::Get::List-Cleanup=0 -o APT::Sandbox::User=root)
    apt-get "${apt_private[@]}" update -qq
    (cd "$work" && apt-get "${apt_private[@]}" download docker-compose >/dev/null)
    dpkg-deb -x "$work"/docker-compose_*.deb "$work/root"
    mkdir -p "$PLUGIN_DIR"
    install -m 0755 "$(find "$work/root" -path '*cli-plugins/docker-compose' | head -n1)" \
        "$PLUGIN_DIR/docker-compose"
fi

if ! docker info >/dev/null 2>&1; then
    need_root "no Docker daemon answers" "dockerd &"
    nohup dockerd >/var/log/dockerd.log 2>&1 &
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /var/log/dockerd.log" >&2; exit 1; }
fi
docker compose version
