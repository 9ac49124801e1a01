#!/bin/bash
# make demo, point-in-time recovery on this machine: a throwaway MariaDB
# with its binary log on, mysql-binlog-archive streaming it into S3, a base
# backup, a write load, an accidental DROP TABLE, then one command,
# mysql-restore-dir --until, back to the second before it, rows counted;
# then a prune, and a test restore of the backup (mysql-verify-backup).
# Usage: tests/demo-pitr.sh BIN_DIR S3_PREFIX, with the S3 server's
# endpoint and keys in the environment (tests/demo.sh starts it).
set -euo pipefail
bin=$1
prefix=$2
work=$(mktemp -d)
data=$work/data
archiver=
export PATH=$bin:$PATH:/usr/sbin

stop_cmd="p=\$(cat $work/mysqld.pid) && kill \$p && while kill -0 \$p 2>/dev/null; do sleep 0.1; done"
start_cmd="(mariadbd --no-defaults --user=root --datadir=$data --socket=$work/mysqld.sock \
--skip-networking --log-bin=$data/binlog --server-id=1 --binlog-format=ROW --sync-binlog=1 \
--pid-file=$work/mysqld.pid --log-error=$work/error.log --innodb-buffer-pool-size=32M \
--tmpdir=$work >/dev/null 2>&1 &)"

cleanup() {
    [ -z "$archiver" ] || kill "$archiver" 2>/dev/null || true
    [ ! -s "$work/mysqld.pid" ] || sh -c "$stop_cmd" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

sql() { mariadb --defaults-file="$work/client.cnf" -N "$@"; }
# Waits until the server answers (the bound: a slow start on a busy machine).
wait_up() {
    local deadline=$((SECONDS + 120))
    until sql -e 'SELECT 1' >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || { cat "$work/error.log"; exit 1; }
        sleep 0.1
    done
}

mariadb-install-db --user=root --auth-root-authentication-method=socket --skip-test-db \
    --datadir="$data" > "$work/install.log" 2>&1 || { cat "$work/install.log"; exit 1; }
# root by the socket's peer credentials: no password anywhere.
printf '[client]\nsocket = %s\nuser = root\n' "$work/mysqld.sock" > "$work/client.cnf"
chmod 600 "$work/client.cnf"
sh -c "$start_cmd"
wait_up
sql -e 'CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, at DATETIME(6))'

echo
echo "demo: point in time: a MariaDB with its binary log on (row-based), and"
echo "      mysql-binlog-archive --server-id 4242 $prefix streaming it into S3"
mysql-binlog-archive -q --defaults-file="$work/client.cnf" --server-id 4242 \
    --segment-interval 1s "$prefix" 2> "$work/archive.log" &
archiver=$!

insert() { # FROM COUNT PAUSE: one transaction each, PAUSE seconds apart
    for i in $(seq "$1" $(($1 + $2 - 1))); do
        echo "INSERT INTO shop.orders VALUES ($i, UTC_TIMESTAMP(6)); DO SLEEP($3);"
    done | sql
}
# A backup: the coordinates under the lock, the datadir archived cold by
# snap-tar, s3-put recording where its binlog chain begins. KEY STATUS
backup() {
    mysql-lock-hold -q --defaults-file="$work/client.cnf" --status-file "$2" -- true
    sh -c "$stop_cmd"
    snap-tar -q --status-file "$2" "$data" | s3-put -q --status-file "$2" "${prefix}$1" > /dev/null
    sh -c "$start_cmd"
    wait_up
}
insert 1 50 0
echo "demo: 50 orders, yesterday's backup (named a day back), 50 more orders, then"
echo "      tonight's backup (coordinates under the lock, the datadir archived cold"
echo "      by snap-tar, s3-put --status-file recording where its binlog begins)"
backup "$(date -u -d '1 day ago' +%Y%m%dT%H%M%SZ).tar.gz" "$work/yesterday.json"
insert 51 50 0
backup "%Y%m%dT%H%M%SZ.tar.gz" "$work/status.json"

echo "demo: a write load of 150 orders over about 3 s, then the accident: DROP TABLE"
insert 101 150 0.02
read -r drop_at kept < <(sql -e "SELECT DATE_FORMAT(UTC_TIMESTAMP(), '%Y-%m-%d %H:%i:%s'),
    COUNT(*) FROM shop.orders WHERE at < DATE_FORMAT(UTC_TIMESTAMP(), '%Y-%m-%d %H:%i:%s')" |
    sed 's/ /T/')
sql -e 'DROP TABLE shop.orders'
target=$(date -u -d "${drop_at/T/ } UTC - 1 second" '+%Y-%m-%d %H:%M:%S')
echo "      dropped at ${drop_at/T/ } UTC; $kept orders were committed before $target ended"

# The archive has the drop within seconds: the replay's dry run says when
# it covers the target (bound: the segment interval, plus a reconnection
# after the backup's restart, plus slack for a busy machine).
deadline=$((SECONDS + 60))
until mysql-binlog-replay -q -n --defaults-file="$work/client.cnf" \
        --from-file "$work/status.json" --until "$target" "$prefix" > /dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] ||
        { echo "demo: the archive never reached $target" >&2; cat "$work/archive.log" >&2; exit 1; }
    sleep 0.2
done
kill -TERM "$archiver"
wait "$archiver" || true
archiver=

echo "demo: mysql-restore-dir --until '$target' --binlog-archive $prefix \\"
echo "          -- s3-get --latest --before '$target' $prefix"
start=$(date +%s%N)
mysql-restore-dir -q --defaults-file="$work/client.cnf" --datadir "$data" \
    --stop-cmd "$stop_cmd" --start-cmd "$start_cmd" \
    --until "$target" --binlog-archive "$prefix" \
    -- s3-get -q --latest --before "$target" "$prefix" | sed 's/^/      /'
took=$(( ($(date +%s%N) - start) / 1000000 ))
back=$(sql -e 'SELECT COUNT(*) FROM shop.orders')
echo
echo "  restored   the backup, then the binlog to $target, in $((took / 1000)).$((took % 1000 / 100)) s"
echo "  orders     $kept committed by then, $back after the restore"
if [ "$back" = "$kept" ]; then
    echo "  result     every order up to the second before the drop is back"
else
    echo "  result     ROWS DIFFER" >&2
    exit 1
fi

echo
echo "demo: retention: s3-prune --keep-last 1 $prefix keeps tonight's backup, and"
echo "      of the binlog archive only what a replay from it needs"
s3-prune --keep-last 1 "$prefix" | sed -e 's/^/      /'
replay_to_target() {
    mysql-binlog-replay -q -n --defaults-file="$work/client.cnf" --from-file "$1" \
        --until "$target" "$prefix" > /dev/null 2>&1
}
if replay_to_target "$work/status.json" && ! replay_to_target "$work/yesterday.json"; then
    echo "  result     a replay from tonight's backup to $target still has every event;"
    echo "             yesterday's chain is gone with its backup"
else
    echo "  result     THE BINLOG ARCHIVE WAS PRUNED WRONG" >&2
    exit 1
fi

echo
echo "demo: a test restore: mysql-verify-backup $prefix unpacks tonight's backup into a"
echo "      scratch directory, starts a throwaway server on it (no network) and checks every table"
# The scratch directory is the default, /var/tmp/mysnap-verify/INSTANCE:
# the throwaway server runs as mysql, which cannot enter $work (0700).
if mysql-verify-backup --instance "demo-$$" \
    --metrics-file "$work/mysnap-demo-verify.prom" "$prefix" 2>&1 | sed -e 's/^/      /'; then
    grep -E '^mysnap_verify_(rto_seconds|tables_checked|tables_failed)' "$work/mysnap-demo-verify.prom" |
        sed -e 's/{[^}]*}//' -e 's/^/      /'
    echo "  result     the backup verified; KEY.verified is in S3 beside it, for s3-prune"
else
    echo "  result     THE BACKUP DID NOT VERIFY" >&2
    exit 1
fi
