#!/bin/sh
# Install what the test suite needs on a fresh Debian machine, then a
# virtualenv in .venv with the project and its test extras.
#
# Debian packages (when run as root): the real clients (skopeo, podman, and
# the docker CLI from docker.io unless a docker CLI is already there),
# headless Chromium and its driver (the web pages' browser tests),
# Distribution's registry (docker-registry), PostgreSQL and Ceph (the tests
# start their own servers from their binaries), wrk (the benchmarks).
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    missing=""
    for p in skopeo podman docker-registry wrk postgresql apache2-utils chromium chromium-driver; do
        dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
    done
    # Without recommends: only the docker CLI is used, and Ceph's mon, OSD
    # and radosgw (a throwaway S3 server, tests/support/ceph-rgw.sh).
    lean=""
    command -v docker >/dev/null || lean="docker.io"
    for p in ceph-mon ceph-osd radosgw; do
        dpkg -s "$p" >/dev/null 2>&1 || lean="$lean $p"
    done
    # tests/ship: runc (crun refuses hybrid cgroups), mmdebstrap (the
    # image's base from the apt mirror, no registry pull), systemd-analyze.
    for p in runc mmdebstrap; do
        dpkg -s "$p" >/dev/null 2>&1 || lean="$lean $p"
    done
    command -v systemd-analyze >/dev/null || lean="$lean systemd"
    if [ -n "$missing$lean" ]; then
        apt-get update -qq
        [ -z "$missing" ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
        [ -z "$lean" ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $lean >/dev/null
    fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/pip install -q '.[test]'
