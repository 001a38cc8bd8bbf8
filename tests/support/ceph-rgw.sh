#!/bin/bash
# A throwaway single-node Ceph cluster serving S3 through the RADOS Gateway,
# on loopback, for tests and benchmarks.  Everything (configuration, mon
# store, OSD, logs, pid files, admin sockets) lives under DIR.
#
#   ceph-rgw.sh start DIR   start a mon, an OSD and radosgw, create an S3 user,
#                           print ENDPOINT=, REGION=, ACCESS_KEY=, SECRET_KEY=,
#                           MON_PORT=, RGW_PORT= and START_SECONDS= lines
#   ceph-rgw.sh stop DIR    stop every daemon started for DIR (TERM, then KILL)
#
# One mon, one OSD on memstore (data in memory: fast, nothing on disk), no
# manager (not needed to serve I/O), cephx off, pools of size 1.  Ports: the
# environment's MON_PORT and RGW_PORT, else free ones.  MEMSTORE_BYTES is the
# OSD's capacity (default 8 GiB; memory is used only for what is stored).
# ACCESS_KEY and SECRET_KEY choose the user's keys.
#
# Debian packages: ceph-mon ceph-osd radosgw (they bring ceph-common).
# The daemons run in the foreground (-f) in the background of this script,
# with their pids recorded in DIR/run/*.pid as soon as they are started, so
# that stop finds them even if their start failed half-way.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
dir=$2

say() { echo "ceph-rgw: $*" >&2; }

now() { date +%s.%N; }

freeport() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A process that exists and is not a zombie.
alive() {
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# TERM the daemon whose pid is in FILE, wait for it to exit, KILL it after 10 s.
stop_one() {
    [ -f "$1" ] || return 0
    local pid deadline
    pid=$(cat "$1")
    if [ -n "$pid" ] && alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        deadline=$(($(date +%s) + 10))
        while alive "$pid" && [ "$(date +%s)" -lt "$deadline" ]; do
            sleep 0.05  # polling for the process to exit
        done
        if alive "$pid"; then
            say "pid $pid did not exit on TERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$1"
}

# One at a time, radosgw first, then the OSD, then the mon: each one shuts
# down quickly only while the ones after it still answer (all at once, the
# OSD waits 5 s for the mon to hear it is going down).
stop() {
    stop_one "$dir/run/rgw.pid"
    stop_one "$dir/run/osd.pid"
    stop_one "$dir/run/mon.pid"
}

fail() {
    say "$*"
    local log
    for log in "$dir"/log/*.log; do
        [ -s "$log" ] || continue
        echo "---- $log (last lines)" >&2
        tail -n 15 "$log" >&2
    done
    stop
    exit 1
}

# Start a daemon in the foreground of a background job; record its pid.
spawn() {
    local name=$1; shift
    "$@" -f </dev/null >>"$dir/log/$name.out" 2>&1 &
    echo $! >"$dir/run/$name.pid"
}

# Poll COMMAND... until it succeeds, at most LIMIT seconds; fail if the daemon
# NAME has exited meanwhile.
poll() {
    local limit=$1 name=$2; shift 2
    local deadline
    deadline=$(($(date +%s) + limit))
    until "$@" >/dev/null 2>&1; do
        alive "$(cat "$dir/run/$name.pid")" || fail "$name exited: $(tail -n 5 "$dir/log/$name.out")"
        [ "$(date +%s)" -lt "$deadline" ] || fail "$name not ready within ${limit}s"
        sleep 0.1  # polling interval
    done
}

ceph_() { ceph -c "$dir/ceph.conf" --connect-timeout 30 "$@"; }

osd_up() { ceph_ osd dump | grep -q '^osd\.0 up '; }

answers() {
    python3 - "$1" <<'EOF'
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=2).close()
except urllib.error.HTTPError:
    pass
EOF
}

start() {
    local started
    started=$(now)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    local f
    for f in "$dir"/run/*.pid; do
        if [ -f "$f" ] && alive "$(cat "$f")"; then
            say "$dir has running daemons; stop it first"
            exit 1
        fi
    done
    rm -rf "$dir/mon" "$dir/osd" "$dir/rgw" "$dir/run" "$dir/log" "$dir/crash"
    mkdir -p "$dir/mon" "$dir/osd/ceph-0" "$dir/rgw" "$dir/run" "$dir/log" "$dir/crash"

    local monport=${MON_PORT:-$(freeport)}
    local rgwport=${RGW_PORT:-$(freeport)}
    local access=${ACCESS_KEY:-TXREGISTRYTESTKEY000}
    local secret=${SECRET_KEY:-txregistryTestSecretKey0000000000000000}
    local fsid osduuid
    fsid=$(cat /proc/sys/kernel/random/uuid)
    osduuid=$(cat /proc/sys/kernel/random/uuid)

    # Notes on the settings:
    # - ms mon client mode = crc: radosgw defaults to a "secure" mon
    #   connection, which auth "none" cannot give; without this it retries
    #   forever (get_initial_auth_request returned -13).
    # - rgw crypt require ssl = false: else a PUT with
    #   x-amz-server-side-encryption: AES256 (the s3_encrypt setting) over
    #   http:// is refused with 400 InvalidRequest.
    # - mon allow pool size one: Octopus and later refuse size-1 pools without it.
    # - paxos propose interval: the mon batches changes for 1 s by default, and
    #   radosgw-admin makes its pools one mon command at a time (13 s -> ~4 s).
    # - pg num 8: radosgw makes 7 pools; Pacific's default of 32 PGs each would
    #   pass mon_max_pg_per_osd (250) on a single OSD.
    cat >"$dir/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$monport
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms mon client mode = crc
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
keyring = /dev/null
run dir = $dir/run
admin socket = $dir/run/\$name.asok
pid file =
log file = $dir/log/\$name.log
log to stderr = false
err to stderr = false
crash dir = $dir/crash
mon data = $dir/mon/\$cluster-\$id
osd data = $dir/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = ${MEMSTORE_BYTES:-8589934592}
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
paxos propose interval = 0.05
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$rgwport
rgw data = $dir/rgw
rgw thread pool size = 64
rgw crypt require ssl = false
EOF

    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$monport]" "$dir/monmap" >/dev/null ||
        fail "monmaptool failed"
    ceph-mon -c "$dir/ceph.conf" -i a --mkfs --monmap "$dir/monmap" >"$dir/log/mkfs-mon.out" 2>&1 ||
        fail "ceph-mon --mkfs failed: $(cat "$dir/log/mkfs-mon.out")"
    spawn mon ceph-mon -c "$dir/ceph.conf" -i a

    # The OSD's id comes from the mon; this first mon command also waits
    # for the mon to answer.
    local id
    id=$(ceph_ osd new "$osduuid" 2>"$dir/log/osd-new.out") || fail "ceph osd new failed: $(cat "$dir/log/osd-new.out")"
    [ "$id" = 0 ] || fail "unexpected OSD id $id"
    ceph-osd -c "$dir/ceph.conf" -i 0 --mkfs --osd-uuid "$osduuid" >"$dir/log/mkfs-osd.out" 2>&1 ||
        fail "ceph-osd --mkfs failed: $(cat "$dir/log/mkfs-osd.out")"
    spawn osd ceph-osd -c "$dir/ceph.conf" -i 0
    poll 60 osd osd_up

    # radosgw-admin makes the realm, zone and pools the gateway would make,
    # and the user; it needs the cluster, not the gateway.
    radosgw-admin -c "$dir/ceph.conf" -n client.admin user create --uid=txregistry \
        --display-name=txregistry --access-key="$access" --secret-key="$secret" \
        >"$dir/log/user-create.out" 2>&1 || fail "radosgw-admin user create failed: $(cat "$dir/log/user-create.out")"

    spawn rgw radosgw -c "$dir/ceph.conf" -n client.rgw
    local endpoint="http://127.0.0.1:$rgwport"
    poll 60 rgw answers "$endpoint/"

    echo "ENDPOINT=$endpoint"
    echo "REGION=us-east-1"
    echo "ACCESS_KEY=$access"
    echo "SECRET_KEY=$secret"
    echo "MON_PORT=$monport"
    echo "RGW_PORT=$rgwport"
    echo "START_SECONDS=$(python3 -c 'import sys; print("%.1f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$started" "$(now)")"
}

case $cmd in
    start) start ;;
    stop) if [ -d "$dir" ]; then stop; fi ;;
    *) usage ;;
esac
