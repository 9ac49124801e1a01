#!/bin/bash
# bench/prune.sh: the requests and the wall time of one s3-prune of a large
# prefix (issue 14), against the minimum and against `aws s3 rm`.
#
# Fills a bucket on a throwaway moto server (loopback, SigV4 and IAM
# enforced; moto takes DeleteObjects, s3s-fs does not) with
# BENCH_PRUNE_BACKUPS backups, one an hour, each with its .sha256 sidecar
# and its binlog start in its metadata, and a binlog archive of
# BENCH_PRUNE_SEGMENTS segments in 10 epochs. `s3-prune --keep-last
# BENCH_PRUNE_KEEP` then deletes the older backups and every segment before
# the oldest kept backup's start: 9 epochs whole, then 2 files and 35
# segments' worth of the 10th. The script
#   1. checks the --dry-run --json plan against that, then prunes and
#      checks that exactly the keys outside the plan remain;
#   2. counts the requests s3-prune made (moto's request log) against the
#      issue's minimum, a DeleteObjects per 1000 keys deleted plus the
#      listing pages; its HEADs (one per kept backup, for its start) are
#      counted apart, as the minimum leaves them out;
#   3. puts the deleted keys back and deletes them with `aws s3 rm
#      --recursive` filtered to them (a few --include globs that select
#      exactly those keys), checks the result alike, and prints the wall
#      time ratio s3-prune/aws (lower is better).
# The bucket is filled through moto's backend in the server's own process,
# not by PUTs: 120,000 PUTs take moto longer than the rest of the run. In
# that process, one lock is put around moto's listing and deleting, which
# otherwise race (a page listed while aws deletes fails with a 500).
# A tool error or a wrong result is an exit 1; the figures are reported.
#
# Run: make bench  (installs moto and the aws CLI, builds, runs this)
# Knobs: BENCH_PRUNE_BACKUPS=10000    backups (each is 2 keys)
#        BENCH_PRUNE_SEGMENTS=100000  binlog segments
#        BENCH_PRUNE_KEEP=1000        --keep-last (default: a tenth)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/release
cache=${MYSNAP_CACHE:-$HOME/.cache/mysnap}
py=$cache/venv/bin/python
aws=$cache/venv/bin/aws
backups=${BENCH_PRUNE_BACKUPS:-10000}
segments=${BENCH_PRUNE_SEGMENTS:-100000}
keep=${BENCH_PRUNE_KEEP:-$((backups / 10))}
prefix=s3://bench/db1/

die() { echo "bench: $*" >&2; exit 1; }
# A failed tool's own messages (kept in tool.log, out of the table) explain why.
die_tool() { sed 's/^/  /' "$work/tool.log" >&2; die "$@"; }

check_prerequisites() {
    [ -x "$bin/s3-prune" ] || die "$bin/s3-prune is missing: run 'make build' first"
    local f
    for f in "$py" "$aws"; do
        [ -x "$f" ] || die "$f is missing: run 'tests/setup.sh all' first"
    done
    "$py" -c 'import moto, boto3' 2>/dev/null || die "moto is missing from $cache/venv: run 'tests/setup.sh all'"
    [ -x /usr/bin/time ] || die "/usr/bin/time (GNU time) is missing: run 'tests/setup.sh all'"
    [ "$segments" -ge 1000 ] || die "BENCH_PRUNE_SEGMENTS=$segments: give 1000 or more"
    { [ "$keep" -ge 1 ] && [ "$keep" -lt "$backups" ]; } ||
        die "BENCH_PRUNE_KEEP=$keep: give 1 to BENCH_PRUNE_BACKUPS - 1 ($((backups - 1)))"
}

# The server, and the model of what the bucket holds and what a prune
# deletes from it. Commands on stdin, one answer line each on stdout.
write_server() {
    cat > "$work/server.py" <<'EOF'
"""moto on loopback (SigV4 and IAM enforced) with the benchmark's bucket.
Usage: server.py BACKUPS SEGMENTS KEEP INCLUDE_FILE. Prints 'ready PORT
ACCESS_KEY SECRET_KEY', writes the aws --include globs that select the
planned deletes to INCLUDE_FILE, then answers one line per command:
plan FILE (is s3-prune's --dry-run --json plan the model's?), check (does
the bucket hold exactly the keys the plan keeps?), refill (put the deleted
keys back). The request log (werkzeug's) goes to stderr."""
import collections, datetime, hashlib, json, os, sys, threading
os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"  # read when moto is imported
import boto3, botocore.exceptions
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import S3Backend, s3_backends
from moto.server import ThreadedMotoServer

BUCKET, PREFIX, IDENTITY = "bench", "db1/", "mariadb-d0-s1"
EPOCHS, SEGMENT_BYTES, FIRST_EVENT = 10, 16, 4
ADMIN = json.dumps({"Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


def serialize(names):
    """moto fails a listing with a 500 when another thread deletes a key
    under it (aws s3 rm lists and deletes at once; at 120,000 keys every
    retry fails too): one lock around listing and deleting. The GIL runs
    them one at a time anyway."""
    lock = threading.RLock()
    for name in names:
        def locked(*args, _method=getattr(S3Backend, name), **kwargs):
            with lock:
                return _method(*args, **kwargs)
        setattr(S3Backend, name, locked)


def below(digits):
    """Globs for the names that sort before `digits`, of names that differ
    from it in its digits only: one per digit above 0, for the names that
    share what comes before it and have a smaller digit there."""
    return [digits[:j] + ("0" if c == "1" else "[0-%d]" % (int(c) - 1)) + "*"
            for j, c in enumerate(digits) if c.isdigit() and c > "0"]


class Model:
    """Backup i (oldest first) is taken i hours after the first and starts
    at segment i * segments // backups; the oldest kept one is taken at a
    midnight, and its start lies 2 files and 35 segments (of 100 a file at
    the defaults) into the last epoch."""

    def __init__(self, backups, segments, keep, now):
        oldest_kept = backups - keep
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        # The newest backup, keep - 1 hours after the oldest kept, is past.
        anchor = midnight - datetime.timedelta(days=(keep - 1) // 24 + 1)
        first = anchor - datetime.timedelta(hours=oldest_kept)
        per_file = max(1, segments // EPOCHS // 100)
        shift = 2 * per_file + 35 * per_file // 100
        bounds = [0] + [k * segments // EPOCHS - shift for k in range(1, EPOCHS)] + [segments]
        self.objects = {}  # key: (body, metadata)
        at, keys = [], []  # per segment: (epoch, file, position), key
        number = 0
        for k in range(EPOCHS):
            began = first + datetime.timedelta(seconds=bounds[k] * backups * 3600 // segments)
            epoch = began.strftime("%Y%m%dT%H%M%SZ-") + IDENTITY
            for r in range(bounds[k + 1] - bounds[k]):
                number += r % per_file == 0
                at.append((epoch, "binlog.%06d" % number, FIRST_EVENT + SEGMENT_BYTES * (r % per_file)))
                keys.append("%sbinlog/%s/%s/%020d.seg" % ((PREFIX,) + at[-1]))
                self.objects[keys[-1]] = (b"e" * SEGMENT_BYTES, {})
        self.deleted_backups = set()
        for i in range(backups):
            name = (first + datetime.timedelta(hours=i)).strftime("%Y%m%dT%H%M%SZ.tar.gz")
            body = b"backup %d\n" % i
            _, file, position = at[i * segments // backups]
            self.objects[PREFIX + name] = (body, {"x-amz-meta-mysnap-binlog-file": file,
                                                  "x-amz-meta-mysnap-binlog-pos": str(position)})
            sidecar = "%s  %s\n" % (hashlib.sha256(body).hexdigest(), name)
            self.objects[PREFIX + name + ".sha256"] = (sidecar.encode(), {})
            if i < oldest_kept:
                self.deleted_backups.add(PREFIX + name)
        start = oldest_kept * segments // backups
        self.deleted = ({k for b in self.deleted_backups for k in (b, b + ".sha256")}
                        | set(keys[:start]))
        self.segments = segments
        # What --dry-run --json says of each epoch that loses segments.
        epoch, file, position = at[start]
        counts = collections.Counter(e for e, _, _ in at[:start])
        self.epochs = [(e, None if e < epoch else "%s:%d" % (file, position), n)
                       for e, n in sorted(counts.items())]
        # aws s3 rm's view: the backups named before that midnight, the
        # older epochs, the files and positions before the start.
        self.include = (below(anchor.strftime("%Y%m%d"))
                        + ["binlog/%s/*" % e for e in sorted(counts) if e < epoch]
                        + ["binlog/%s/binlog.%s" % (epoch, g) for g in below(file.split(".")[1])]
                        + ["binlog/%s/%s/%s" % (epoch, file, g) for g in below("%020d" % position)])


def fill(model, keys):
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
    for key in keys:
        body, metadata = model.objects[key]
        stored = backend.put_object(BUCKET, key, body, disable_notification=True)
        if metadata:
            stored.set_metadata(metadata)


def check_plan(model, path):
    with open(path) as f:
        plan = json.load(f)
    deleting = {b["key"] for b in plan["backups"] if b["action"] == "delete"}
    if deleting != model.deleted_backups:
        return "error: the plan deletes %d backups, %d of them not among the %d expected" % (
            len(deleting), len(deleting - model.deleted_backups), len(model.deleted_backups))
    if plan["orphans"]:
        return "error: the plan deletes orphans: %s" % plan["orphans"][:3]
    binlog = plan["binlog"] or {}
    if "epochs" not in binlog:
        return "error: the plan leaves the binlog archive whole: %s" % binlog
    epochs = [(e["epoch"], e["deleted_before"], e["segments_deleted"]) for e in binlog["epochs"]]
    if binlog["segments"] != model.segments or epochs != model.epochs:
        return "error: the plan cuts the binlog archive %s, expected %s" % (epochs, model.epochs)
    return "ok %d %d %d %d" % (len(plan["backups"]), len(deleting), model.segments,
                               sum(n for _, _, n in model.epochs))


def check(model, gone):
    """Whether the bucket holds exactly the model's keys but `gone`."""
    stored = set(s3_backends[DEFAULT_ACCOUNT_ID]["global"].get_bucket(BUCKET).keys.keys())
    expected = set(model.objects) - gone
    if stored == expected:
        return "ok %d" % len(stored)
    return "error: %d keys that should be gone remain (%s), %d that should remain are gone (%s)" % (
        len(stored - expected), sorted(stored - expected)[:2],
        len(expected - stored), sorted(expected - stored)[:2])


def main():
    backups, segments, keep, include = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    serialize(["list_objects", "list_objects_v2", "delete_object", "delete_objects"])
    server = ThreadedMotoServer("127.0.0.1", 0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = "http://%s:%d" % (host, port)
    bootstrap = dict(endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
    iam = boto3.client("iam", **bootstrap)
    # The three requests that moto takes without authentication.
    iam.create_user(UserName="admin")
    iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=ADMIN)
    key = iam.create_access_key(UserName="admin")["AccessKey"]
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    s3.create_bucket(Bucket=BUCKET)
    try:
        boto3.client("s3", **bootstrap).head_bucket(Bucket=BUCKET)
        sys.exit("moto answered a request with unknown keys: authentication is off")
    except botocore.exceptions.ClientError:
        pass
    model = Model(backups, segments, keep, datetime.datetime.now(datetime.timezone.utc))
    fill(model, model.objects)
    with open(include, "w") as f:
        f.write("".join(g + "\n" for g in model.include))
    print("ready", port, key["AccessKeyId"], key["SecretAccessKey"], flush=True)
    for line in sys.stdin:
        command = line.split()
        if command[0] == "plan":
            answer = check_plan(model, command[1])
        elif command[0] == "check":
            answer = check(model, model.deleted)
        elif command[0] == "refill":
            fill(model, model.deleted)
            answer = check(model, set())
        else:
            answer = "error: no command %s" % command[0]
        print(answer, flush=True)


main()
EOF
}

# Starts the server and sets the environment for s3-prune and the aws CLI:
# HOME and the AWS_* variables point away from the user's configuration.
start_server() {
    local ready
    mkdir "$work/home"
    unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL_S3
    export HOME=$work/home AWS_CONFIG_FILE=$work/home/config AWS_SHARED_CREDENTIALS_FILE=$work/home/credentials
    write_server
    echo "bench: filling the bucket: $backups backups with sidecars, $segments binlog segments"
    coproc SERVER { exec "$py" "$work/server.py" "$backups" "$segments" "$keep" "$work/include" 2> "$work/server.log"; }
    server=$SERVER_PID
    read -r ready port AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY <&"${SERVER[0]}" || true
    [ "${ready:-}" = ready ] || die "moto did not start: $(tail -n 5 "$work/server.log")"
    export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_ENDPOINT_URL=http://127.0.0.1:$port \
        AWS_EC2_METADATA_DISABLED=true AWS_REGION=us-east-1
}

# ask COMMAND...: sets answer to what follows the server's "ok"; an error
# is an exit 1. (Not in a subshell: the coprocess's pipes are not there.)
ask() {
    echo "$@" >&"${SERVER[1]}"
    read -r answer <&"${SERVER[0]}" || die "the server is gone: $(tail -n 5 "$work/server.log")"
    case $answer in ok*) answer=${answer#ok} answer=${answer# } ;; *) die "$1: ${answer#error: }" ;; esac
}

# CPU seconds (user + system) the server has used so far.
server_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$server/stat"; }

# timed NAME CMD...: runs CMD under GNU time; records its wall and CPU
# seconds, the server's CPU seconds and the requests it made (the lines
# of the server's request log during the run) under NAME.
declare -A wall cpu srv_cpu
timed() {
    local name=$1 before from user sys
    shift
    before=$(server_cpu) from=$(wc -l < "$work/server.log")
    /usr/bin/time -o "$work/time" -f '%e %U %S' "$@" > "$work/tool.out" 2> "$work/tool.log" ||
        die_tool "$name failed: $*"
    read -r "wall[$name]" user sys < <(tail -n 1 "$work/time")
    cpu[$name]=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
    srv_cpu[$name]=$(awk -v a="$before" -v b="$(server_cpu)" 'BEGIN { printf "%.2f", b - a }')
    tail -n +"$((from + 1))" "$work/server.log" | grep '" [0-9][0-9][0-9] ' > "$work/requests.$name" || true
}

# requests NAME: the requests of that run by kind ("count KIND N" lines),
# and those of no kind counted apart or answered with an error by what
# they were ("note METHOD ?QUERY|object STATUS N").
requests() {
    awk '{
        split($0, q, "\""); split(q[2], r, " "); method = r[1]; path = r[2]
        status = substr(q[3], 2, 3) + 0
        if (method == "GET" && path ~ /[?&]list-type=2/) kind = "listing"
        else if (method == "POST" && path ~ /[?&]delete(&|=|$)/) kind = "deleteobjects"
        else if (method == "DELETE") kind = "delete"
        else if (method == "HEAD") kind = "head"
        else if (method == "GET" && path ~ /[?&]uploads(&|=|$)/) kind = "uploads"
        else kind = "other"
        n[kind]++
        if (kind == "other" || status >= 400) {
            what = path ~ /\?/ ? "?" substr(path, index(path, "?") + 1) : "object"
            sub(/[=&].*/, "", what)
            note[method " " what " " status]++
        }
    } END {
        for (k in n) print "count", k, n[k]
        for (k in note) print "note", k, note[k]
    }' "$work/requests.$1"
}

# count_requests NAME: sets made[NAME.KIND] and notes[NAME].
declare -A made notes
count_requests() {
    local kind what n method query status count
    for kind in listing deleteobjects delete head uploads other; do made[$1.$kind]=0; done
    notes[$1]=
    while read -r what kind n; do
        if [ "$what" = count ]; then
            made[$1.$kind]=$n
        else
            read -r method query status count <<< "$kind $n"
            notes[$1]+="${notes[$1]:+, }$count x $method $query $status"
        fi
    done < <(requests "$1" | sort)
}

prune() {
    local plan=$work/plan.json args=(--keep-last "$keep" "$prefix")
    echo "bench: s3-prune --dry-run --json ${args[*]}"
    "$bin/s3-prune" --dry-run --json "${args[@]}" > "$plan" 2> "$work/tool.log" ||
        die_tool "s3-prune --dry-run failed"
    ask plan "$plan"
    read -r listed_backups deleted_backups listed_segments deleted_segments <<< "$answer"
    echo "bench: the plan deletes the $deleted_backups oldest backups and the $deleted_segments segments before the oldest kept one's start"
    echo "bench: s3-prune ${args[*]}"
    timed s3-prune "$bin/s3-prune" "${args[@]}"
    ask check
    echo "bench: the bucket holds exactly the $answer keys that the plan keeps"
    count_requests s3-prune
}

peer() {
    local globs=() glob
    while read -r glob; do globs+=(--include "$glob"); done < "$work/include"
    ask refill
    echo "bench: the deleted keys are back: $answer keys"
    echo "bench: aws s3 rm --recursive $prefix --exclude '*' ${globs[*]}"
    timed aws "$aws" s3 rm --recursive --only-show-errors "$prefix" --exclude '*' "${globs[@]}"
    ask check
    echo "bench: the bucket holds exactly the $answer keys that the plan keeps"
    count_requests aws
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

report() {
    local listed=$((2 * listed_backups + listed_segments)) deleted=$((2 * deleted_backups + deleted_segments))
    local pages=$(((listed + 999) / 1000)) batches=$(((deleted + 999) / 1000)) tool kind total
    local minimum=$((pages + batches))
    echo
    echo "Prune: $listed_backups backups with sidecars and $listed_segments binlog segments ($listed keys),"
    echo "  moto $("$py" -c 'import moto; print(moto.__version__)') on loopback (SigV4, IAM), $(nproc) CPUs"
    echo "  s3-prune --keep-last $keep deletes $deleted_backups backups ($((2 * deleted_backups)) keys)" \
        "and $deleted_segments segments: $deleted keys"
    echo "  aws s3 rm --recursive deletes the same keys, chosen by $(wc -l < "$work/include") --include globs"
    printf '  %-15s %9s %10s %8s\n' requests s3-prune "aws s3 rm" minimum
    for kind in listing deleteobjects delete uploads other head; do
        case $kind in
            listing) total=$pages ;;
            deleteobjects) total=$batches ;;
            *) total=- ;;
        esac
        printf '  %-15s %9s %10s %8s\n' "$kind" "${made[s3-prune.$kind]}" "${made[aws.$kind]}" "$total"
    done
    for tool in s3-prune aws; do
        made[$tool.total]=$((made[$tool.listing] + made[$tool.deleteobjects] + made[$tool.delete] +
            made[$tool.uploads] + made[$tool.other]))
        [ -z "${notes[$tool]}" ] || echo "  $tool's other and failed requests: ${notes[$tool]}"
    done
    echo "requests: ${made[s3-prune.total]} made, $minimum minimum ($(ratio "${made[s3-prune.total]}" "$minimum")x);" \
        "aws s3 rm ${made[aws.total]} ($(ratio "${made[aws.total]}" "$minimum")x)"
    echo "  minimum: ceil($deleted deleted / 1000) DeleteObjects + ceil($listed listed / 1000) listing pages"
    echo "  not in it: s3-prune's ${made[s3-prune.head]} HEADs, one per kept backup whose chain stays, to read its binlog start"
    echo "wall: s3-prune ${wall[s3-prune]} s, aws s3 rm ${wall[aws]} s ($(ratio "${wall[s3-prune]}" "${wall[aws]}")x, lower is better)"
    echo "cpu: s3-prune ${cpu[s3-prune]} s (server ${srv_cpu[s3-prune]} s), aws s3 rm ${cpu[aws]} s (server ${srv_cpu[aws]} s)"
}

check_prerequisites
answer=
work=$(mktemp -d "${TMPDIR:-/tmp}/mysnap-bench.XXXXXX")
server=
cleanup() { [ -z "$server" ] || { kill "$server"; wait "$server"; } 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
start_server
prune
peer
report
