#!/bin/sh
# push_images.sh: tag local images for a private registry and push them,
# with docker or podman.  Run with --help for the details.
set -u

prog=${0##*/}

usage() {
    cat <<EOF
Usage: $prog [OPTIONS] IMAGE...

Tag each local IMAGE for a registry and push it there, with docker or podman.

The registry part of IMAGE, if it has one, is replaced by the registry's:
with the default registry, localhost/app:1 is pushed as 127.0.0.1:5000/app:1
and quay.io/team/tool as 127.0.0.1:5000/team/tool:latest (no tag means
:latest; a digest without a tag also means :latest).  The local tag made for
the push is left in place.

Options:
  -r, --registry HOST[:PORT]  registry to push to (default: \$PUSH_IMAGES_REGISTRY,
                              else 127.0.0.1:5000)
  -e, --engine docker|podman  client to use (default: \$PUSH_IMAGES_ENGINE, else
                              docker if it reaches its daemon, else podman)
  -k, --insecure              plain HTTP, no TLS verification: podman push
                              --tls-verify=false (a Docker daemon decides this
                              itself: its insecure-registries, and 127.0.0.0/8)
  -n, --dry-run               print the commands instead of running them
  -h, --help                  print this help and exit

Every IMAGE is tried even if one fails.  Exit status: 0 if every image was
pushed; 1 if any failed (each failure is named on stderr, then all of them on
the last line); 2 for a usage error or when neither client can be found.
EOF
}

die_usage() {
    echo "$prog: $1" >&2
    echo "Try '$prog --help'." >&2
    exit 2
}

registry=${PUSH_IMAGES_REGISTRY:-127.0.0.1:5000}
engine=${PUSH_IMAGES_ENGINE:-}
insecure=
dryrun=

while [ $# -gt 0 ]; do
    case $1 in
        -h|--help) usage; exit 0 ;;
        -r|--registry)
            [ $# -ge 2 ] || die_usage "$1 needs a value"
            registry=$2; shift 2 ;;
        --registry=*) registry=${1#*=}; shift ;;
        -e|--engine)
            [ $# -ge 2 ] || die_usage "$1 needs a value"
            engine=$2; shift 2 ;;
        --engine=*) engine=${1#*=}; shift ;;
        -k|--insecure) insecure=1; shift ;;
        -n|--dry-run) dryrun=1; shift ;;
        --) shift; break ;;
        -?*) die_usage "unknown option: $1" ;;
        *) break ;;
    esac
done

[ $# -gt 0 ] || die_usage "no IMAGE given"
registry=${registry%/}
case $registry in
    ''|*/*|*[[:space:]]*) die_usage "bad registry: '$registry' (want HOST or HOST:PORT)" ;;
esac

if [ -z "$engine" ]; then
    if command -v docker >/dev/null 2>&1 && docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
        engine=docker
    elif command -v podman >/dev/null 2>&1; then
        engine=podman
    elif command -v docker >/dev/null 2>&1; then
        engine=docker  # no daemon answers: let docker say why
    else
        echo "$prog: neither docker nor podman found in PATH" >&2
        exit 2
    fi
fi
case $engine in
    docker|podman) ;;
    *) die_usage "unknown engine: '$engine' (docker or podman)" ;;
esac
if [ -z "$dryrun" ] && ! command -v "$engine" >/dev/null 2>&1; then
    echo "$prog: $engine not found in PATH" >&2
    exit 2
fi

push_opts=
if [ -n "$insecure" ]; then
    if [ "$engine" = podman ]; then
        push_opts=--tls-verify=false
    else
        echo "$prog: --insecure: docker's daemon decides this itself (insecure-registries)" >&2
    fi
fi

# target IMAGE: the name IMAGE gets in the registry.
target() {
    ref=$1
    name=${ref%%@*}            # drop a digest
    last=${name##*/}
    case $last in
        *:*) tag=${last##*:}; name=${name%:*} ;;
        *) tag=latest ;;
    esac
    case $name in
        */*)
            first=${name%%/*}
            case $first in
                *.*|*:*|localhost) name=${name#*/} ;;  # a registry host: replaced
            esac ;;
    esac
    printf '%s/%s:%s\n' "$registry" "$name" "$tag"
}

run() {
    if [ -n "$dryrun" ]; then
        echo "$*"
    else
        "$@"
    fi
}

failed=
nfailed=0
count=0
for image in "$@"; do
    count=$((count + 1))
    case $image in
        ''|-*)
            echo "$prog: not an image: '$image'" >&2
            failed="$failed '$image'"; nfailed=$((nfailed + 1))
            continue ;;
    esac
    dest=$(target "$image")
    [ -n "$dryrun" ] || echo "$prog: pushing $image as $dest with $engine"
    # shellcheck disable=SC2086  # push_opts is empty or one word
    if run "$engine" tag "$image" "$dest" && run "$engine" push $push_opts "$dest"; then
        [ -n "$dryrun" ] || echo "$prog: pushed $dest"
    else
        echo "$prog: failed to push $image (as $dest)" >&2
        failed="$failed $image"; nfailed=$((nfailed + 1))
    fi
done

if [ "$nfailed" -gt 0 ]; then
    echo "$prog: $nfailed of $count image(s) failed:$failed" >&2
    exit 1
fi
exit 0
