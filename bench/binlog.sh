#!/bin/bash
# bench/binlog.sh: mysql-binlog-archive's RPO under a steady write load,
# against a timer that copies closed binlog files (the peers' design), the
# rows lost when mariadbd and the archiver are killed together, PUTs per
# hour, and CPU-seconds per GiB of binlog. About 2 minutes.
#
# Run: make bench  (installs MariaDB and the S3 test server, builds, runs this)
# Knobs: BENCH_BINLOG_SECONDS=60 BENCH_BINLOG_RATE=100 BENCH_BINLOG_MIB=256
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/release

die() { echo "bench: $*" >&2; exit 1; }
[ -x "$bin/mysql-binlog-archive" ] || die "$bin/mysql-binlog-archive is missing: run 'make build' first"
[ -x /usr/sbin/mariadbd ] || die "mariadbd is missing: run 'tests/setup.sh all'"

cd "$root"
MYSNAP_BIN_DIR=$bin exec cargo run --release -q -p mysnap-tests --bin bench-binlog
