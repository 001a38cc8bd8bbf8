#!/bin/sh
# Install what the test suite needs on a fresh Debian machine, then a
# virtualenv in .venv with the project and its test extras.
#
# Debian packages (when run as root): the real clients (skopeo, podman, and
# the docker CLI from docker.io unless a docker CLI is already there),
# Distribution's registry (docker-registry), PostgreSQL (the tests start
# their own servers from its binaries).
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    missing=""
    for p in skopeo podman docker-registry postgresql; do
        dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
    done
    cli=""
    command -v docker >/dev/null || cli="docker.io"
    if [ -n "$missing$cli" ]; then
        apt-get update -qq
        [ -z "$missing" ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
        # only its CLI is used: no recommends
        [ -z "$cli" ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $cli >/dev/null
    fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/pip install -q '.[test]'
