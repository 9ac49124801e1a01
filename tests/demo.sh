#!/bin/bash
# make demo: the stream path end to end on this machine. Starts a throwaway
# S3 server (s3s-fs, SigV4 enforced) on loopback, streams a generated
# payload through s3-put and back through s3-get, and says what happened;
# then a retention policy (s3-prune), and a point-in-time recovery against
# a throwaway MariaDB (demo-pitr.sh).
# Then the nightly backup and a restore as the packaged units run them, in
# the test VM.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${MYSNAP_BIN_DIR:-$root/target/release}
cache=${MYSNAP_CACHE:-$HOME/.cache/mysnap}
size_mib=${DEMO_SIZE_MIB:-256}

server=
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/s3/demo"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export AWS_ACCESS_KEY_ID=demo-access-key AWS_SECRET_ACCESS_KEY=$(head -c 18 /dev/urandom | base64)
export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_EC2_METADATA_DISABLED=true
"$cache/s3s-fs-0.14.1/bin/s3s-fs" --host 127.0.0.1 --port "$port" \
    --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" "$work/s3" 2>/dev/null &
server=$!
until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do sleep 0.05; done
echo "demo: S3 server on $AWS_ENDPOINT_URL (keys in the environment, never on a command line)"

echo "demo: generating a $size_mib MiB payload"
head -c "$((size_mib * 1024 * 1024))" /dev/urandom > "$work/payload"
sent=$(sha256sum < "$work/payload" | cut -d' ' -f1)

echo "demo: s3-put s3://demo/db1/%Y%m%dT%H%M%SZ.bin -- cat payload"
start=$(date +%s%N)
mapfile -t stored < <("$bin/s3-put" s3://demo/db1/%Y%m%dT%H%M%SZ.bin -- cat "$work/payload")
put_ns=$(( $(date +%s%N) - start ))
url=${stored[0]}

echo "demo: s3-get --latest s3://demo/db1/"
start=$(date +%s%N)
got=$("$bin/s3-get" --latest s3://demo/db1/ | sha256sum | cut -d' ' -f1)
get_ns=$(( $(date +%s%N) - start ))

rate() { awk -v mib="$size_mib" -v ns="$1" 'BEGIN { printf "%.1f MiB/s in %.1f s", mib / (ns / 1e9), ns / 1e9 }'; }
echo
echo "  stored     $url ($size_mib MiB)"
echo "  upload     $(rate "$put_ns")"
echo "  download   $(rate "$get_ns")"
echo "  sha256     sent     $sent"
echo "             s3-put   ${stored[1]}"
echo "             s3-get   $got"
if [ "$sent" = "${stored[1]}" ] && [ "$sent" = "$got" ]; then
    echo "  result     checksums match"
else
    echo "  result     CHECKSUM MISMATCH" >&2
    exit 1
fi

# Retention: three weeks of nightly backups (backdated names), then a
# policy's plan and the prune itself.
echo
echo "demo: 21 nightly backups under s3://demo/db2/, then s3-prune --keep-last 3 --keep-weekly 2"
for day in $(seq 1 21); do
    name=$(date -u -d "2026-11-01 01:00 UTC + $day days" +%Y%m%dT%H%M%SZ)
    echo "backup of $name" | "$bin/s3-put" -q "s3://demo/db2/$name.tar.gz" > /dev/null
done
"$bin/s3-prune" --dry-run --keep-last 3 --keep-weekly 2 s3://demo/db2/ | tail -n 1
"$bin/s3-prune" -q --keep-last 3 --keep-weekly 2 s3://demo/db2/ | tail -n 1
echo "demo: what is left (s3-get --list):"
"$bin/s3-get" --list s3://demo/db2/ | sed 's/^/  /'
left=$("$bin/s3-get" --list s3://demo/db2/ | wc -l)
[ "$left" = 4 ] || { echo "demo: expected 4 backups left, found $left" >&2; exit 1; }

# Point-in-time recovery, on this machine: the binlog archive, a DROP TABLE,
# and a restore to the second before it.
"$root/tests/demo-pitr.sh" "$bin" s3://demo/pitr/

# The rest needs device-mapper and systemd as PID 1: in the test VM, over
# this host's files, as a fleet machine would run it from the package.
deb=$(ls "$root"/target/debian/mysnap_*.deb)
echo
echo "demo: in a VM with systemd (tests/vm/run.sh): install $(basename "$deb"), a MariaDB"
echo "      on an LV, the nightly unit started by its timer, the backups listed, and"
echo "      mysnap-restore@ into an empty datadir, rows compared, and the weekly test restore"
mariadb-install-db --user=root --auth-root-authentication-method=socket --skip-test-db \
    --innodb-log-file-size=8M --datadir="$work/seed" > "$work/install.log" 2>&1 ||
    { cat "$work/install.log"; exit 1; }
"$root/tests/vm/run.sh" --systemd --disk 2G -- "$root/tests/vm/units.sh" \
    "$deb" "$work/seed" "$cache/s3s-fs-0.14.1/bin/s3s-fs" none
