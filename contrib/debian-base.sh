#!/bin/sh
# debian-base.sh: build a minimal Debian root file system with python3 as a
# tarball, for a base image made without pulling from a registry:
#
#     sh contrib/debian-base.sh base.tar
#     podman import --change 'CMD ["/bin/sh"]' base.tar localhost/txregistry-base:bookworm
#     podman build --format docker --build-arg BASE=localhost/txregistry-base:bookworm -t txregistry .
#
# Needs mmdebstrap (Debian package), run as root.  The packages come from
# MIRROR: a mirror URL, or a file of apt sources (one-line or deb822) such
# as this machine's own; default: /etc/apt/sources.list.d/debian.sources if
# there is one, else http://deb.debian.org/debian.  SUITE: default bookworm.
set -eu
if [ $# -lt 1 ] || [ "$1" = "--help" ]; then
    echo "usage: ${0##*/} OUTPUT.tar [SUITE [MIRROR]]" >&2
    exit 2
fi
out=$1
suite=${2:-bookworm}
if [ $# -ge 3 ]; then
    mirror=$3
elif [ -f /etc/apt/sources.list.d/debian.sources ]; then
    mirror=/etc/apt/sources.list.d/debian.sources
else
    mirror=http://deb.debian.org/debian
fi
command -v mmdebstrap >/dev/null || { echo "${0##*/}: mmdebstrap is not installed (apt-get install mmdebstrap)" >&2; exit 1; }
# minbase (Essential and apt) plus python3 with venv, without recommends,
# /usr merged by the hook (not by the usrmerge package, which needs perl); no documentation,
# manual pages or translations; apt's lists and caches removed.
exec mmdebstrap --quiet --variant=minbase --format=tar \
    --include=python3,python3-venv,ca-certificates \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --aptopt='Acquire::Check-Valid-Until "false"' --aptopt='APT::Install-Recommends "false"' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*.log "$1"/var/log/apt/*' \
    "$suite" "$out" "$mirror"
