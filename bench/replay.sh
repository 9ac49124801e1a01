#!/bin/bash
# bench/replay.sh: mysql-binlog-replay's apply speed against the baseline
# it is built on, `mariadb-binlog FILES | mariadb` run by hand on the same
# files (issue 13: >= 1.0x), and against the relay-log path: the same files
# put into the target's datadir as its relay logs and applied by its SQL
# thread, serial and with parallel workers (conservative, optimistic).
#
# Runs the ignored test bench_replay_against_mariadb_binlog_by_hand of
# tests/binlog_replay.rs: a source MariaDB writes BENCH_REPLAY_TRANSACTIONS
# transactions of 10 rows (row format) from BENCH_REPLAY_WRITERS sessions at
# once (binlog_commit_wait_count makes commit groups of them, which is what
# MariaDB's parallel applier runs side by side), mysql-binlog-archive stores
# them on a throwaway s3s-fs, then a target MariaDB gets them
# BENCH_REPLAY_RUNS times each way, reset in between; every way's row count
# is checked. Medians are printed, end to end (S3 listing, fetch, SHA-256,
# rebuild, apply) and the apply alone, and the ratios. A missed target is
# reported, never an exit 1.
#
# Run: make build, then bench/replay.sh. Knobs: BENCH_REPLAY_TRANSACTIONS=20000,
# BENCH_REPLAY_RUNS=3, BENCH_REPLAY_WRITERS=4, BENCH_REPLAY_THREADS=4 (the
# parallel applier's), MYSNAP_BIN_DIR (default target/release).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${MYSNAP_BIN_DIR:-$root/target/release}
die() { echo "bench: $*" >&2; exit 1; }
for tool in mysql-binlog-replay mysql-binlog-archive; do
    [ -x "$bin/$tool" ] || die "$bin/$tool is missing: run 'make build' first"
done
[ -x /usr/sbin/mariadbd ] || die "mariadbd is missing: run 'tests/setup.sh all'"
cd "$root"
MYSNAP_BIN_DIR=$bin cargo test -q -p mysnap-tests --test binlog_replay -- \
    --ignored --nocapture bench_replay 2>&1 | grep -v '^test \|^running\|^$\|test result'
