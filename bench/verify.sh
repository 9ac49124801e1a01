#!/bin/bash
# bench/verify.sh: a test restore (mysql-verify-backup) against a restore
# (mysql-restore-dir) of the same backup (issue 15).
#
# Data: the 2 GiB MariaDB datadir of bench/datadir.sh (shared with
# bench/restore.sh), archived cold by snap-tar and stored on a throwaway S3
# server (s3s-fs, SigV4, loopback) as s3://bench/db1/20261201T010000Z.tar.gz.
# One run each, the restore first:
#   - the restore: `mysql-restore-dir -- s3-get URL` into an empty datadir,
#     with a throwaway mariadbd started by --start-cmd, timed as in
#     bench/restore.sh from the command's start until it exits, which it does
#     once mysqld answers;
#   - the verify: `mysql-verify-backup URL`, as root (its server runs as
#     mysql, on a scratch directory under /var/tmp that mysql can reach),
#     timed whole, with the RTO and the tables checked that its metrics file
#     records.
# Targets:
#   1. the check's overhead, verify total / restore until mysqld answers:
#      shown
#   2. the recorded RTO / the restore until mysqld answers: 0.90-1.10x, so
#      that the recorded RTO can be trusted
# A missed target is reported (MISS), never an exit 1; a failed verify is.
#
# Run: make bench, or as root after make build: bash bench/verify.sh.
# Knobs: BENCH_VERIFY_JOBS=2 (snap-tar, restore and verify threads).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/release
cache=${MYSNAP_CACHE:-$HOME/.cache/mysnap}
s3s=$cache/s3s-fs-0.14.1/bin/s3s-fs
jobs=${BENCH_VERIFY_JOBS:-2}
url=s3://bench/db1/20261201T010000Z.tar.gz
# Plain shellcheck does not follow these (shellcheck -x does): SC1091 off.
# shellcheck source=bench/datadir.sh disable=SC1091
. "$root/bench/datadir.sh"
# shellcheck source=bench/s3server.sh disable=SC1091
. "$root/bench/s3server.sh"

die() { echo "bench: $*" >&2; exit 1; }
for f in mysql-verify-backup mysql-restore-dir s3-get s3-put snap-tar; do
    [ -x "$bin/$f" ] || die "$bin/$f is missing: run 'make build' first"
done
for c in "$s3s" /usr/sbin/mariadbd; do
    command -v "$c" >/dev/null || die "$c is missing: run 'tests/setup.sh all'"
done
[ "$(id -u)" -eq 0 ] || die "run as root: mysql-verify-backup runs its server as mysql"
getent passwd mysql >/dev/null || die "no user mysql for the test restore's server: install mariadb-server"

work=$(mktemp -d /var/tmp/bench-verify.XXXXXX)
# Not under $work (0700): the verify's server, as mysql, must reach it.
scratch=/var/tmp/mysnap-bench-verify-$$
s3_pid=
cleanup() {
    [ ! -f "$work/mysqld.pid" ] || kill "$(cat "$work/mysqld.pid")" 2>/dev/null || true
    [ -z "$s3_pid" ] || { kill "$s3_pid"; wait "$s3_pid"; } 2>/dev/null || true
    # Give a killed mariadbd (ours, or the verify's) time to let go of its files.
    for _ in $(seq 50); do
        pgrep -f "datadir=($work|$scratch)/" >/dev/null || break
        sleep 0.2
    done
    rm -rf "$work" "$scratch"
}
trap cleanup EXIT

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

datadir=$(bench_datadir 2048 "$work")

bench_s3_server "$s3s" "$work"
# shellcheck disable=SC2154 # set by bench_s3_server
s3_pid=$bench_s3_pid

echo "bench: archiving the datadir with snap-tar and storing it on S3"
"$bin/snap-tar" -q -j "$jobs" "$datadir" | "$bin/s3-put" -q "$url" >/dev/null
archive_mib=$(du -m --apparent-size "$work/s3/bench/${url#s3://bench/}" | cut -f1)

# --- the restore -----------------------------------------------------------------
data=$work/data
sock=$work/mysqld.sock
# One line: it goes into shell commands.
# shellcheck disable=SC2086,SC2116,SC2154
mysqld=$(echo /usr/sbin/mariadbd --no-defaults --user=root --datadir="$data" --socket="$sock" \
    --skip-networking --pid-file="$work/mysqld.pid" --log-error="$work/mysqld.log" \
    $bench_mariadbd_options)
start_cmd="setsid $mysqld </dev/null >/dev/null 2>&1 &"
printf '[client]\nuser = root\nsocket = %s\n' "$sock" >"$work/client.cnf"
mkdir "$data"

echo "bench: mysql-restore-dir into an empty datadir"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
sync
start=$(now)
# Nothing runs on the empty datadir: the stop is a no-op.
"$bin/mysql-restore-dir" -j "$jobs" --defaults-file="$work/client.cnf" --datadir "$data" \
    --stop-cmd true --start-cmd "$start_cmd" -- "$bin/s3-get" -q "$url" \
    >"$work/coordinates" 2>"$work/restore.log" ||
    { cat "$work/restore.log" >&2; die "mysql-restore-dir failed"; }
t_restore=$(secs "$start" "$(now)")
# Stopped, and its data gone, so that neither competes with the verify.
p=$(cat "$work/mysqld.pid")
kill "$p"
while kill -0 "$p" 2>/dev/null; do sleep 0.05; done
rm -rf "$data" "$data".old-*

# --- the verify ------------------------------------------------------------------
echo "bench: mysql-verify-backup"
sync
start=$(now)
rc=0
"$bin/mysql-verify-backup" -j "$jobs" --scratch "$scratch" --metrics-file "$work/verify.prom" \
    --instance bench "$url" 2>"$work/verify.log" || rc=$?
t_verify=$(secs "$start" "$(now)")
[ "$rc" -eq 0 ] || { cat "$work/verify.log" >&2; die "mysql-verify-backup exited $rc"; }
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
metric() { sed -n "s/^$1{[^}]*} //p" "$work/verify.prom"; }
rto=$(metric mysnap_verify_rto_seconds)
tables=$(metric mysnap_verify_tables_checked)
if [ -z "$rto" ] || [ -z "$tables" ]; then
    cat "$work/verify.prom" >&2
    die "no RTO or tables checked in the verify's metrics"
fi

awk -v restore="$t_restore" -v verify="$t_verify" -v rto="$rto" -v tables="$tables" \
    -v mib="$archive_mib" -v jobs="$jobs" -v cpus="$(nproc)" \
    -v before="$load_before" -v after="$load_after" 'BEGIN {
    printf "\nverify benchmark: the 2 GiB datadir, a %d MiB archive; %d threads on %d CPUs, shared\n", mib, jobs, cpus
    printf "with other jobs on this machine (load average %s before, %s after),\n", before, after
    print "so times vary between runs; one run each; s3s-fs on loopback"
    printf "  %-34s %8.2f\n", "restore until mysqld answers (s)", restore
    printf "  %-34s %8.2f\n", "verify total (s)", verify
    printf "  %-34s %8.2f\n", "verify RTO (s)", rto
    printf "  %-34s %8d\n", "tables checked", tables
    printf "  verify overhead: total / restore = %.2fx\n", verify / restore
    ratio = rto / restore
    printf "  RTO / restore until answers = %.2fx (target 0.90–1.10: %s)\n", ratio,
        (ratio >= 0.9 && ratio <= 1.1) ? "OK" : "MISS"
}'
