#!/bin/bash
# bench/tar.sh: snap-tar against `tar -cf - | pigz` and `tar -czf -`.
#
# Data: a 2 GiB MariaDB datadir with real InnoDB files, made once by a
# throwaway mariadbd loaded with INSERT ... SELECT doubling (bench/datadir.sh)
# and cached under $MYSNAP_CACHE/bench-datadir-2g; plus a 4 GiB sparse file
# holding 256 MiB of data. All reads come from the page cache (each input is
# read once first).
# Targets, at the same level and thread count:
#   throughput  >= 1.0x the pigz pipeline, >= 2.5x tar -czf
#   size        within 3% of pigz's
#   sparse      the 4 GiB file archived >= 5x faster than its apparent size
#               implies at snap-tar's rate on the datadir
#   unpacking   parallel decompression of snap-tar's Mgzip members (2 threads)
#               >= 1.8x gzip -dc; pigz -dc shown for reference
#   memory      peak RSS flat: the 2 GiB datadir within 25% (+8 MiB) of a
#               64 MiB tree
# A missed target is reported (MISS), never an exit 1. One run each.
#
# Run: make bench. Knobs: BENCH_TAR_JOBS=2, BENCH_TAR_LEVEL=6,
# BENCH_TAR_GIB=2 (datadir size; a different size makes a new cache).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/release
jobs=${BENCH_TAR_JOBS:-2}
level=${BENCH_TAR_LEVEL:-6}
gib=${BENCH_TAR_GIB:-2}
# shellcheck source=bench/datadir.sh
. "$root/bench/datadir.sh"

die() { echo "bench: $*" >&2; exit 1; }
[ -x "$bin/snap-tar" ] || die "$bin/snap-tar is missing: run 'make build' first"
for c in pigz gzip /usr/bin/time /usr/sbin/mariadbd mariadb-install-db; do
    command -v "$c" >/dev/null || die "$c is missing: run 'tests/setup.sh all'"
done
work=$(mktemp -d /var/tmp/bench-tar.XXXXXX)
trap 'rm -rf "$work"' EXIT

datadir=$(bench_datadir $((gib * 1024)) "$work")

# 4 GiB apparent, 256 MiB of data in 16 runs, copied from the datadir's
# largest InnoDB file so it compresses like table data.
sparse=$work/sparse
mkdir -p "$sparse"
ibd=$(find "$datadir" -name '*.ibd' -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2)
for i in $(seq 0 15); do
    dd if="$ibd" of="$sparse/big.ibd" bs=1M count=16 skip=$((i * 16)) seek=$((i * 256)) \
        conv=notrunc status=none
done
truncate -s 4G "$sparse/big.ibd"
small=$work/small
mkdir -p "$small"
head -c 64M "$ibd" >"$small/part.ibd"

# Warm the page cache.
cat "$datadir"/*/* "$datadir"/ib* "$sparse/big.ibd" >/dev/null 2>&1 || true

# Runs "$@" (a shell command line), printing "seconds peak-rss-kib".
measure() {
    /usr/bin/time -f '%e %M' -o "$work/time" bash -c "$1"
    cat "$work/time"
}
apparent=$(du -sb --apparent-size "$datadir" | cut -f1)

read -r t_snap rss_snap < <(measure "'$bin/snap-tar' -q -j $jobs -l $level '$datadir' >'$work/snap.tgz'")
read -r t_pigz _ < <(measure "tar -cf - -C '$datadir' . | pigz -p $jobs -$level >'$work/pigz.tgz'")
read -r t_gz _ < <(measure "tar -czf - -C '$datadir' . >'$work/gz.tgz'")
read -r t_sparse _ < <(measure "'$bin/snap-tar' -q -j $jobs -l $level '$sparse' >'$work/sparse.tgz'")
read -r _ rss_small < <(measure "'$bin/snap-tar' -q -j $jobs -l $level '$small' >/dev/null")
read -r t_gunzip _ < <(measure "gzip -dc '$work/snap.tgz' >/dev/null")
read -r t_unpigz _ < <(measure "pigz -dc '$work/snap.tgz' >/dev/null")
read -r t_par _ < <(measure "'$bin/bench-gunzip' $jobs <'$work/snap.tgz' >/dev/null")
# Untimed: the parallel output is the same stream gzip sees.
cmp -s <("$bin/bench-gunzip" "$jobs" <"$work/snap.tgz") <(gzip -dc "$work/snap.tgz") ||
    die "bench-gunzip's output differs from gzip's"
s_snap=$(stat -c %s "$work/snap.tgz")
s_pigz=$(stat -c %s "$work/pigz.tgz")
s_gz=$(stat -c %s "$work/gz.tgz")

python3 - "$apparent" "$t_snap" "$t_pigz" "$t_gz" "$t_sparse" "$t_gunzip" "$t_unpigz" "$t_par" \
    "$s_snap" "$s_pigz" "$s_gz" "$rss_snap" "$rss_small" "$jobs" "$level" <<'PY'
import sys
(apparent, t_snap, t_pigz, t_gz, t_sparse, t_gunzip, t_unpigz, t_par,
 s_snap, s_pigz, s_gz, rss_snap, rss_small, jobs, level) = map(float, sys.argv[1:])
mib = 1 << 20
rate = apparent / t_snap
sparse_apparent = 4 << 30
rows = [
    ("throughput vs tar | pigz", t_pigz / t_snap, ">= 1.00x", t_pigz / t_snap >= 1.0),
    ("throughput vs tar -czf", t_gz / t_snap, ">= 2.50x", t_gz / t_snap >= 2.5),
    ("size vs pigz", s_snap / s_pigz, "<= 1.03x", s_snap / s_pigz <= 1.03),
    ("sparse 4 GiB vs its apparent size", (sparse_apparent / rate) / t_sparse, ">= 5.00x",
     (sparse_apparent / rate) / t_sparse >= 5),
    ("parallel gunzip vs gzip -dc", t_gunzip / t_par, ">= 1.80x", t_gunzip / t_par >= 1.8),
    ("parallel gunzip vs pigz -dc", t_unpigz / t_par, "(shown)", None),
    ("peak RSS 2 GiB vs 64 MiB tree", rss_snap / rss_small, "1.25x+8M",
     rss_snap <= rss_small * 1.25 + 8 * 1024),
]
print(f"\nsnap-tar benchmark: {apparent / mib:.0f} MiB datadir, level {level:.0f}, {jobs:.0f} threads")
print(f"  snap-tar      {t_snap:6.2f} s  {apparent / mib / t_snap:7.1f} MiB/s  {s_snap / mib:8.1f} MiB  peak RSS {rss_snap / 1024:.0f} MiB (64 MiB tree: {rss_small / 1024:.0f} MiB)")
print(f"  tar | pigz    {t_pigz:6.2f} s  {apparent / mib / t_pigz:7.1f} MiB/s  {s_pigz / mib:8.1f} MiB")
print(f"  tar -czf      {t_gz:6.2f} s  {apparent / mib / t_gz:7.1f} MiB/s  {s_gz / mib:8.1f} MiB")
print(f"  sparse 4 GiB  {t_sparse:6.2f} s  (256 MiB of data)")
print(f"  unpack: gzip -dc {t_gunzip:.2f} s, pigz -dc {t_unpigz:.2f} s, bench-gunzip ({jobs:.0f} threads) {t_par:.2f} s\n")
print(f"  {'measure':38} {'ratio':>8}  {'target':9} result")
for name, ratio, target, ok in rows:
    verdict = "" if ok is None else ("PASS" if ok else "MISS")
    print(f"  {name:38} {ratio:7.2f}x  {target:9} {verdict}")
PY
