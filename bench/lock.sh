#!/bin/bash
# bench/lock.sh: how long mysql-lock-hold blocks writers, against mylvmbackup.
#
# Runs bench-lock (tests/bench_lock.rs) against a throwaway MariaDB:
#   1. lock overhead: writer stall beyond a 0.2 s stand-in for lvcreate,
#      p50 and p90 over alternating runs of both tools (target: p50 <= 20 ms);
#   2. worst writer stall while a 30 s UPDATE runs (target for
#      mysql-lock-hold: <= --lock-timeout + 0.5 s; mylvmbackup waits it out).
# A missed target is reported, never an exit 1. About 2 minutes.
#
# Run: make bench  (installs mylvmbackup and MariaDB, builds, runs this)
# Knob: BENCH_LOCK_RUNS=20  runs per tool for the overhead
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/release

die() { echo "bench: $*" >&2; exit 1; }
[ -x "$bin/mysql-lock-hold" ] || die "$bin/mysql-lock-hold is missing: run 'make build' first"
command -v mylvmbackup >/dev/null ||
    die "mylvmbackup is missing: run 'tests/setup.sh all' (or apt-get install -y mylvmbackup)"
[ -x /usr/sbin/mariadbd ] || die "mariadbd is missing: run 'tests/setup.sh all'"

cd "$root"
MYSNAP_BIN_DIR=$bin exec cargo run --release -q -p mysnap-tests --bin bench-lock
