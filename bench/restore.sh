#!/bin/bash
# bench/restore.sh: mysql-restore-dir against the original design's restore
# (`aws s3 cp - | tar -xzf -`, then start mysqld) and against logical
# restores (mariadb < mysqldump output, myloader).
#
# Data: the 2 GiB MariaDB datadir of bench/datadir.sh (shared with
# bench/tar.sh), and a 0.5 GiB one (both hold a 512 MiB InnoDB redo log, so
# the small one is mostly that), archived by snap-tar and stored on a
# throwaway S3 server (s3s-fs, SigV4, loopback). The target is a throwaway
# mariadbd under a temp dir, stopped and started by --stop-cmd/--start-cmd.
# One run each; targets:
#   1. command start until mysqld answers: `s3-get --latest | mysql-restore-dir`
#      >= 2x faster than stop; aws s3 cp - | tar -xzf -; start
#   2. the same >= 10x faster than `mariadb < dump.sql` (myloader shown)
#   3. downtime (from the stop command's return until the tool exits, which
#      it does once mysqld answers) of the 0.5 and 2 GiB restores within 20%
#      of each other, and <= 5 s + mysqld's plain start (until it answers);
#      the shutdown before it, and the tool's own figure, are shown too
#   4. peak RSS of mysql-restore-dir: the 2 GiB restore within 1.25x + 8 MiB
#      of the 0.5 GiB one
# A missed target is reported (MISS), never an exit 1.
#
# Run: make bench. Knobs: BENCH_RESTORE_JOBS=2 (snap-tar and restore threads).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/release
cache=${MYSNAP_CACHE:-$HOME/.cache/mysnap}
s3s=$cache/s3s-fs-0.14.1/bin/s3s-fs
aws=$cache/venv/bin/aws
jobs=${BENCH_RESTORE_JOBS:-2}
# shellcheck source=bench/datadir.sh
. "$root/bench/datadir.sh"
# shellcheck source=bench/s3server.sh
. "$root/bench/s3server.sh"

die() { echo "bench: $*" >&2; exit 1; }
for f in "$bin/mysql-restore-dir" "$bin/s3-get" "$bin/s3-put" "$bin/snap-tar"; do
    [ -x "$f" ] || die "$f is missing: run 'make build' first"
done
for c in "$s3s" "$aws" /usr/bin/time /usr/sbin/mariadbd mariadb-install-db mariadb-dump mydumper myloader; do
    command -v "$c" >/dev/null || die "$c is missing: run 'tests/setup.sh all'"
done

work=$(mktemp -d /var/tmp/bench-restore.XXXXXX)
s3_pid=
cleanup() {
    [ ! -f "$work/mysqld.pid" ] || kill "$(cat "$work/mysqld.pid")" 2>/dev/null || true
    [ -z "$s3_pid" ] || { kill "$s3_pid"; wait "$s3_pid"; } 2>/dev/null || true
    # Give a killed mariadbd time to let go of its files.
    for _ in $(seq 50); do pgrep -f "datadir=$work/" >/dev/null || break; sleep 0.2; done
    rm -rf "$work"
}
trap cleanup EXIT

datadir_2g=$(bench_datadir 2048 "$work")
datadir_05g=$(bench_datadir 512 "$work")

# --- the S3 server -------------------------------------------------------------
bench_s3_server "$s3s" "$work"
s3_pid=$bench_s3_pid

# --- the target server ---------------------------------------------------------
data=$work/data
sock=$work/mysqld.sock
# One line: it goes into shell commands.
# shellcheck disable=SC2086
mysqld=$(echo /usr/sbin/mariadbd --no-defaults --user=root --datadir="$data" --socket="$sock" \
    --skip-networking --pid-file="$work/mysqld.pid" --log-error="$work/mysqld.log" \
    $bench_mariadbd_options)
stop_cmd="p=\$(cat $work/mysqld.pid) && kill \$p && while kill -0 \$p 2>/dev/null; do sleep 0.05; done"
# The restore's stop command notes when the shutdown began and ended.
restore_stop_cmd="date +%s.%N >$work/stopping; $stop_cmd && date +%s.%N >$work/stopped"
start_cmd="setsid $mysqld </dev/null >/dev/null 2>&1 &"
printf '[client]\nuser = root\nsocket = %s\n' "$sock" >"$work/client.cnf"
sql() { mariadb --defaults-file="$work/client.cnf" -N -e "$@"; }
answers() { until sql 'SELECT 1' >/dev/null 2>&1; do sleep 0.05; done; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

mariadb-install-db --user=root --auth-root-authentication-method=socket --skip-test-db \
    --datadir="$data" >"$work/install.log" 2>&1
sh -c "$start_cmd"
answers

# --- archives on S3 ------------------------------------------------------------
echo "bench: archiving the datadirs with snap-tar and storing them on S3"
"$bin/snap-tar" -q -j "$jobs" "$datadir_2g" | "$bin/s3-put" -q s3://bench/db2g/backup.tar.gz >/dev/null
"$bin/snap-tar" -q -j "$jobs" "$datadir_05g" | "$bin/s3-put" -q s3://bench/db05g/backup.tar.gz >/dev/null

# mysql-restore-dir PREFIX: restores the newest backup under PREFIX; sets
# t_total (start until it exits, which is once mysqld answers), down (from
# the end of the stop until then), shutdown (the stop), down_log (its own
# figure) and rss (its peak RSS, KiB).
restore_tool() {
    rm -rf "$data".old-*
    sync
    local start=$(now)
    "$bin/s3-get" -q --latest "s3://bench/$1/" |
        /usr/bin/time -f '%M' -o "$work/rss" "$bin/mysql-restore-dir" -j "$jobs" \
            --defaults-file="$work/client.cnf" --datadir "$data" \
            --stop-cmd "$restore_stop_cmd" --start-cmd "$start_cmd" >"$work/coordinates" 2>"$work/restore.log" ||
        { cat "$work/restore.log" >&2; die "mysql-restore-dir failed on $1"; }
    local end=$(now)
    t_total=$(secs "$start" "$end")
    down=$(secs "$(cat "$work/stopped")" "$end")
    shutdown=$(secs "$(cat "$work/stopping")" "$(cat "$work/stopped")")
    down_log=$(sed -n 's/.*answered after \([0-9.]*\)s down.*/\1/p' "$work/restore.log" | tail -1)
    [ -n "$down_log" ] || { cat "$work/restore.log" >&2; die "no downtime in mysql-restore-dir's log"; }
    rss=$(tail -1 "$work/rss")
}

# The original design's restore: stop, move the datadir aside, stream the
# object through tar into a new one, start, wait until it answers.
restore_tar() {
    rm -rf "$data".old-* "$data".aws
    sync
    local start=$(now)
    sh -c "$stop_cmd"
    mv "$data" "$data.aws"
    mkdir "$data"
    "$aws" s3 cp --only-show-errors "s3://bench/$1/backup.tar.gz" - | tar -xzf - -C "$data"
    sh -c "$start_cmd"
    answers
    t_tar=$(secs "$start" "$(now)")
    rm -rf "$data.aws"
}

echo "bench: a plain stop and start of mysqld"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
start=$(now); sh -c "$stop_cmd"; t_stop=$(secs "$start" "$(now)")
start=$(now); sh -c "$start_cmd"; answers; t_start=$(secs "$start" "$(now)")

echo "bench: mysql-restore-dir, 0.5 GiB"
restore_tool db05g
down_05=$down stop_05=$shutdown log_05=$down_log rss_05=$rss t_05=$t_total
echo "bench: mysql-restore-dir, 2 GiB"
restore_tool db2g
down_2=$down stop_2=$shutdown log_2=$down_log rss_2=$rss t_2=$t_total
rows=$(sql 'SELECT COUNT(*) FROM shop.orders')
echo "bench: aws s3 cp - | tar -xzf -, 2 GiB"
restore_tar db2g
[ "$(sql 'SELECT COUNT(*) FROM shop.orders')" = "$rows" ] || die "the tar restore lost rows"

echo "bench: dumping shop ($rows rows) with mariadb-dump and mydumper (untimed)"
mariadb-dump --defaults-file="$work/client.cnf" --single-transaction --quick --databases shop >"$work/dump.sql"
mydumper -S "$sock" -u root -B shop -t "$jobs" -o "$work/mydumper"
echo "bench: mariadb < dump.sql"
sql 'DROP DATABASE shop'
start=$(now); mariadb --defaults-file="$work/client.cnf" <"$work/dump.sql"; t_dump=$(secs "$start" "$(now)")
[ "$(sql 'SELECT COUNT(*) FROM shop.orders')" = "$rows" ] || die "the mysqldump restore lost rows"
echo "bench: myloader"
sql 'DROP DATABASE shop'
start=$(now); myloader -S "$sock" -u root -t "$jobs" -d "$work/mydumper" >/dev/null; t_myloader=$(secs "$start" "$(now)")
[ "$(sql 'SELECT COUNT(*) FROM shop.orders')" = "$rows" ] || die "the myloader restore lost rows"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$t_2" "$t_tar" "$t_dump" "$t_myloader" "$down_05" "$down_2" "$t_start" \
    "$rss_05" "$rss_2" "$t_05" "$jobs" "$(nproc)" "$rows" "$log_05" "$log_2" \
    "$t_stop" "$stop_05" "$stop_2" "$load_before" "$load_after" <<'PY'
import sys
(t_2, t_tar, t_dump, t_myl, down_05, down_2, t_start, rss_05, rss_2, t_05, jobs, cpus,
 rows, log_05, log_2, t_stop, stop_05, stop_2) = map(float, sys.argv[1:19])
load_before, load_after = sys.argv[19:]
rows_out = [
    ("2 GiB: vs aws s3 cp | tar -xzf, start", t_tar / t_2, ">= 2.00x", t_tar / t_2 >= 2),
    ("2 GiB: vs mariadb < mysqldump", t_dump / t_2, ">= 10.0x", t_dump / t_2 >= 10),
    ("2 GiB: vs myloader", t_myl / t_2, "(shown)", None),
    ("downtime 2 GiB / 0.5 GiB", down_2 / down_05, "0.8-1.2x", 0.8 <= down_2 / down_05 <= 1.2),
    ("downtime 2 GiB - mysqld start (s)", down_2 - t_start, "<= 5 s", down_2 - t_start <= 5),
    ("downtime 0.5 GiB - mysqld start (s)", down_05 - t_start, "<= 5 s", down_05 - t_start <= 5),
    ("peak RSS 2 GiB / 0.5 GiB", rss_2 / rss_05, "1.25x+8M", rss_2 <= rss_05 * 1.25 + 8 * 1024),
]
print(f"\nrestore benchmark: {rows:.0f} rows; {jobs:.0f} threads on {cpus:.0f} CPUs, shared with other")
print(f"builds and VMs on this machine (load average {load_before} before, {load_after} after),")
print("so times vary between runs; one run each; s3s-fs on loopback")
print(f"  start until mysqld answers (2 GiB): s3-get | mysql-restore-dir {t_2:.1f} s, "
      f"aws | tar -xzf {t_tar:.1f} s,")
print(f"    mariadb < mysqldump {t_dump:.1f} s, myloader {t_myl:.1f} s (server already up); 0.5 GiB: {t_05:.1f} s")
print(f"  downtime, stopped until answering: 0.5 GiB {down_05:.2f} s, 2 GiB {down_2:.2f} s "
      f"(the tool logs {log_05:.1f} s, {log_2:.1f} s);")
print(f"    mysqld's plain start {t_start:.2f} s; shutdowns before: {stop_05:.2f} s, {stop_2:.2f} s, "
      f"plain {t_stop:.2f} s")
print(f"  mysql-restore-dir peak RSS: 0.5 GiB {rss_05 / 1024:.0f} MiB, 2 GiB {rss_2 / 1024:.0f} MiB\n")
print(f"  {'measure':38} {'value':>8}  {'target':9} result")
for name, value, target, ok in rows_out:
    verdict = "" if ok is None else ("PASS" if ok else "MISS")
    unit = "" if name.endswith("(s)") else "x"
    print(f"  {name:38} {value:7.2f}{unit or ' '}  {target:9} {verdict}")
PY
