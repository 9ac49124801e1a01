#!/bin/bash
# bench/s3.sh: throughput and memory of s3-put and s3-get against the aws CLI.
#
# Starts a throwaway S3 server (s3s-fs, SigV4 enforced) on loopback and
#   1. streams a 2 GiB incompressible payload up with `s3-put` and with
#      `aws s3 cp -`, and down with `s3-get` and with `aws s3 cp ... -`
#      (best of 2 runs each), printing MiB/s, the mysnap/aws ratio against
#      the 1.5x target, and peak RSS;
#   2. measures the peak RSS of s3-put and s3-get at 1 GiB and 8 GiB, which
#      must stay under part size x (jobs + 2) + 32 MiB and must not grow with
#      the stream (8G/1G within 10%).
# Both tools run at their defaults, as users run them. The script checks
# correctness (the SHA-256 s3-put prints, s3-get's own sidecar check) and
# fails on a tool error, but a missed target is reported, never an exit 1.
#
# Run: make bench  (installs the server and the aws CLI, builds, runs this)
# Knobs: BENCH_SIZE_MIB=2048  size of the throughput stream
#        BENCH_RUNS=2         runs per throughput measurement (best is kept)
#        BENCH_QUICK=1        skip the slow 8 GiB memory runs
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/release
cache=${MYSNAP_CACHE:-$HOME/.cache/mysnap}
s3s=$cache/s3s-fs-0.14.1/bin/s3s-fs
aws=$cache/venv/bin/aws
size_mib=${BENCH_SIZE_MIB:-2048}
runs=${BENCH_RUNS:-2}
quick=${BENCH_QUICK:-0}
part_mib=16 jobs=4                              # the tools' defaults
rss_limit_mib=$((part_mib * (jobs + 2) + 32))
target_ratio=1.5
# shellcheck source=bench/s3server.sh
. "$root/bench/s3server.sh"

die() { echo "bench: $*" >&2; exit 1; }
# A failed tool's own messages (kept in tool.log, out of the table) explain why.
die_tool() { sed 's/^/  /' "$work/tool.log" >&2; die "$@"; }

check_prerequisites() {
    local f
    for f in "$bin/s3-put" "$bin/s3-get"; do
        [ -x "$f" ] || die "$f is missing: run 'make build' first"
    done
    for f in "$s3s" "$aws"; do
        [ -x "$f" ] || die "$f is missing: run 'tests/setup.sh all' first"
    done
    [ -x /usr/bin/time ] || die "/usr/bin/time (GNU time) is missing: run 'tests/setup.sh all'"
}

# The server keeps whole objects on disk and assembles multipart uploads
# from part files, so an object briefly takes twice its size.
check_disk_space() {
    local biggest_mib=$(( quick == 1 ? (size_mib > 1024 ? size_mib : 1024) : 8192 ))
    local need_mib=$(( size_mib + 2 * biggest_mib + 1024 ))
    local free_mib=$(df -Pm "$work" | awk 'NR == 2 { print $4 }')
    [ "$free_mib" -ge "$need_mib" ] ||
        die "$work has $free_mib MiB free, needs $need_mib MiB (set TMPDIR elsewhere)"
}

start_server() {
    bench_s3_server "$s3s" "$work" || die "no S3 server"
    server=$bench_s3_pid
}

# Deleting the server's files between runs keeps the disk peak at one object.
delete_objects() { rm -rf "$work/s3/bench"; mkdir "$work/s3/bench"; }

# Incompressible bytes at ~1.5 GiB/s, far faster than the tools under test.
# Process substitution: the generator dying of SIGPIPE is not an error.
generate() { # MIB
    if command -v openssl >/dev/null; then
        head -c "$(($1 * 1024 * 1024))" < <(openssl enc -aes-128-ctr -pass pass:bench -nosalt < /dev/zero 2>/dev/null)
    else
        head -c "$(($1 * 1024 * 1024))" /dev/urandom
    fi
}

# CPU seconds (user + system) the S3 server has used so far. The server
# shares the machine's cores with the tools, so its cost bounds both.
server_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$server/stat"; }

# timed CMD...: runs CMD (only the tool, not its producer or consumer) under
# GNU time; sets secs, rss_mib, cpu (the tool's CPU seconds) and srv_cpu
# (the server's CPU seconds during the run).
# timed may run in a pipeline's subshell: the server's figure goes to a file.
timed() {
    server_cpu > "$work/server-cpu"
    /usr/bin/time -o "$work/time" -f '%e %M %U %S' "$@" 2> "$work/tool.log"
}
read_time() {
    local user sys
    read -r secs rss_kib user sys < <(tail -n 1 "$work/time")
    rss_mib=$((rss_kib / 1024))
    cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
    srv_cpu=$(awk -v a="$(cat "$work/server-cpu")" -v b="$(server_cpu)" 'BEGIN { printf "%.2f", b - a }')
}

put_mysnap() { # KEY PRODUCER... ; checks the SHA-256 when expected_sha is set
    local key=$1; shift
    "$@" | timed "$bin/s3-put" "s3://bench/$key" > "$work/put.out" || die_tool "s3-put failed on $key"
    read_time
    local sha=$(sed -n 2p "$work/put.out")
    [ -z "${expected_sha:-}" ] || [ "$sha" = "$expected_sha" ] ||
        die "s3-put printed sha256 $sha for $key, the input has $expected_sha"
}
put_aws() { # KEY PRODUCER...
    local key=$1; shift
    "$@" | timed "$aws" s3 cp --only-show-errors - "s3://bench/$key" || die_tool "aws s3 cp - failed on $key"
    read_time
}
# Both downloads go through a pipe, as a restore would read them.
get_mysnap() { # KEY ; s3-get verifies the object against its sidecar itself
    timed "$bin/s3-get" "s3://bench/$1" | cat > /dev/null || die_tool "s3-get failed (or its sha256 check did) on $1"
    read_time
}
get_aws() { # KEY
    timed "$aws" s3 cp --only-show-errors "s3://bench/$1" - | cat > /dev/null || die_tool "aws s3 cp to stdout failed on $1"
    read_time
}

# keep_best NAME: records secs and rss_mib under NAME, keeping the fastest
# time (with the CPU figures of that run) and the largest RSS over the runs.
declare -A best_secs best_rss best_cpu best_srv
keep_best() {
    if [ -z "${best_secs[$1]:-}" ] || awk -v a="$secs" -v b="${best_secs[$1]}" 'BEGIN { exit !(a < b) }'; then
        best_secs[$1]=$secs best_cpu[$1]=$cpu best_srv[$1]=$srv_cpu
    fi
    [ "${best_rss[$1]:-0}" -ge "$rss_mib" ] || best_rss[$1]=$rss_mib
}

measure_throughput() {
    echo "bench: generating the $size_mib MiB input"
    generate "$size_mib" > "$work/input"
    expected_sha=$(sha256sum < "$work/input" | cut -d' ' -f1)
    local i
    for ((i = 1; i <= runs; i++)); do
        # Interleaved, so that drift on the machine hits both tools alike.
        echo "bench: throughput run $i of $runs"
        put_mysnap "mysnap-$i" cat "$work/input"; keep_best put_mysnap
        get_mysnap "mysnap-$i"; keep_best get_mysnap
        get_aws "mysnap-$i"; keep_best get_aws        # the same object, fetched by the peer
        delete_objects
        put_aws "aws-$i" cat "$work/input"; keep_best put_aws
        delete_objects
    done
    rm -f "$work/input"
    expected_sha=
}

measure_memory() { # MIB
    echo "bench: memory run at $(($1 / 1024)) GiB"
    put_mysnap "mem-$1" generate "$1"; mem_rss[put-$1]=$rss_mib
    get_mysnap "mem-$1"; mem_rss[get-$1]=$rss_mib
    delete_objects
}

mibs() { awk -v m="$1" -v s="$2" 'BEGIN { printf "%.1f", (s > 0 ? m / s : 0) }'; }

report_throughput() {
    local defaults=$("$cache/venv/bin/python" -c 'from awscli.customizations.s3.transferconfig import DEFAULTS as d
print("%d MiB parts, %d concurrent requests" % (d["multipart_chunksize"] >> 20, d["max_concurrent_requests"]))')
    echo
    echo "Throughput: $size_mib MiB stream, s3s-fs on loopback, best of $runs runs, $(nproc) CPUs"
    echo "  mysnap at its defaults: $part_mib MiB parts, $jobs jobs"
    echo "  $("$aws" --version 2>&1 | cut -d' ' -f1) at its defaults: $defaults"
    printf '  %-4s %13s %10s %7s %7s %12s %9s\n' op "mysnap MiB/s" "aws MiB/s" ratio result "mysnap RSS" "aws RSS"
    local op m a ratio
    for op in put get; do
        m=$(mibs "$size_mib" "${best_secs[${op}_mysnap]}")
        a=$(mibs "$size_mib" "${best_secs[${op}_aws]}")
        ratio=$(awk -v m="$m" -v a="$a" 'BEGIN { printf "%.2f", (a > 0 ? m / a : 0) }')
        printf '  %-4s %13s %10s %6sx %7s %8s MiB %5s MiB\n' "$op" "$m" "$a" "$ratio" \
            "$(awk -v r="$ratio" -v t="$target_ratio" 'BEGIN { print (r >= t ? "PASS" : "MISS") }')" \
            "${best_rss[${op}_mysnap]}" "${best_rss[${op}_aws]}"
    done
    echo "  target: mysnap/aws >= ${target_ratio}x"
    echo
    echo "CPU seconds per GiB in the best runs (tool / server during that run)"
    printf '  %-4s %15s %15s %24s\n' op "mysnap" "aws" "floor (mysnap, aws)"
    local gib=$(awk -v m="$size_mib" 'BEGIN { print m / 1024 }') n=$(nproc)
    for op in put get; do
        printf '  %-4s %s\n' "$op" "$(awk -v g="$gib" -v n="$n" \
            -v mc="${best_cpu[${op}_mysnap]}" -v ms="${best_srv[${op}_mysnap]}" \
            -v ac="${best_cpu[${op}_aws]}" -v as="${best_srv[${op}_aws]}" \
            'BEGIN { printf "%6.2f / %5.2f  %6.2f / %5.2f  %9.2f s %9.2f s", mc/g, ms/g, ac/g, as/g, (mc+ms)/n, (ac+as)/n }')"
    done
    echo "  floor: (tool + server CPU) / $n cores, the fastest wall time the cores allow"
}

report_memory() {
    echo
    echo "Memory: peak RSS <= $rss_limit_mib MiB ($part_mib MiB x ($jobs + 2) + 32 MiB), 8G/1G within 10%"
    printf '  %-7s %9s %9s %9s %7s %7s\n' tool "1 GiB" "8 GiB" "8G/1G" limit flat
    local op tool r1 r8 ratio limit flat
    for op in put get; do
        tool=s3-$op r1=${mem_rss[$op-1024]}
        limit=$([ "$r1" -le "$rss_limit_mib" ] && [ "${best_rss[${op}_mysnap]}" -le "$rss_limit_mib" ] && echo PASS || echo MISS)
        if [ "$quick" = 1 ]; then
            printf '  %-7s %5s MiB %9s %9s %7s %7s\n' "$tool" "$r1" skipped - "$limit" -
            continue
        fi
        r8=${mem_rss[$op-8192]}
        [ "$r8" -le "$rss_limit_mib" ] || limit=MISS
        ratio=$(awk -v a="$r8" -v b="$r1" 'BEGIN { printf "%.2f", a / b }')
        flat=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.9 && r <= 1.1) ? "PASS" : "MISS" }')
        printf '  %-7s %5s MiB %5s MiB %9s %7s %7s\n' "$tool" "$r1" "$r8" "$ratio" "$limit" "$flat"
    done
    [ "$quick" != 1 ] || echo "  8 GiB runs skipped (BENCH_QUICK=1)"
}

check_prerequisites
server=
work=$(mktemp -d "${TMPDIR:-/tmp}/mysnap-bench.XXXXXX")
cleanup() { [ -z "$server" ] || { kill "$server"; wait "$server"; } 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
check_disk_space
start_server
declare -A mem_rss
measure_throughput
measure_memory 1024
[ "$quick" = 1 ] || measure_memory 8192
report_throughput
report_memory
