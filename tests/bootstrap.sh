#!/bin/sh
# Install what the test suite needs on a fresh Debian machine: the real
# clients, Distribution's registry and PostgreSQL (Debian packages, when run
# as root; the tests start their own PostgreSQL servers),
# then a virtualenv in .venv with the project and its test extras.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    missing=""
    for p in skopeo docker-registry postgresql; do
        dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/pip install -q '.[test]'
