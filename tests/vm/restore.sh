#!/bin/bash
# Runs inside the VM with systemd as PID 1 (tests/vm/run.sh --systemd
# --disk 2G): mysql-restore-dir --service on a datadir that is itself an LV
# mounted at DIR, as on most database hosts. DIR cannot be renamed there
# (EBUSY), so the swap happens inside it. Prints a PASS or FAIL line per
# check and exits 1 if any failed.
#
#   restore.sh SEED ARCHIVE ROWS
#
# SEED is a datadir made by mariadb-install-db on the host; ARCHIVE a
# snap-tar backup (made on the host) whose table t.items holds ROWS rows.
set -uo pipefail
seed=$1 archive=$2 rows=$3
root=$(cd "$(dirname "$0")/../.." && pwd)
export PATH=${MYSNAP_BIN_DIR:-$root/target/debug}:$PATH
dir=/srv/mysql sock=/run/testdb.sock label=restore
. "$(dirname "$0")/checks.sh"
items() { mariadb -S $sock -N -B -e 'SELECT COUNT(*) FROM t.items'; }

modprobe -a dm-snapshot || exit 1
pvcreate -q /dev/vda && vgcreate -q vgdb /dev/vda && lvcreate -q -y -L 1G -n data vgdb || exit 1
mkfs.ext4 -q /dev/vgdb/data && mkdir -p $dir && mount /dev/vgdb/data $dir || exit 1
cp -a "$seed"/. $dir/ || exit 1
say "datadir on vgdb/data, mounted at $dir"

cat > /run/systemd/system/testdb.service <<EOF
[Unit]
Description=MariaDB for the restore test
[Service]
ExecStart=/usr/sbin/mariadbd --no-defaults --user=root --datadir=$dir --socket=$sock --skip-networking --innodb-buffer-pool-size=32M --innodb-log-file-size=8M
EOF
systemctl daemon-reload && systemctl start testdb || exit 1
for _ in $(seq 600); do mariadb -S $sock -e 'select 1' >/dev/null 2>&1 && break; sleep 0.1; done
mariadb -S $sock -e "CREATE DATABASE t; CREATE TABLE t.items (id INT PRIMARY KEY) ENGINE=InnoDB;
    INSERT INTO t.items VALUES (1), (2), (3)" || exit 1
say "testdb.service serves 3 rows"

printf '[client]\nuser = root\nsocket = %s\n' $sock > /run/restore.cnf
chmod 600 /run/restore.cnf
mysql-restore-dir --defaults-file /run/restore.cnf --datadir $dir --service testdb \
    --wait 300s --coordinates-file /run/coordinates.sql < "$archive" > /run/restore.out
status=$?
say "mysql-restore-dir exited $status"
check "exit status 0" [ $status = 0 ]
check "DIR is still the mounted LV" mountpoint -q $dir
check "testdb.service is active" systemctl is-active -q testdb
check "the server serves the backed-up $rows rows" [ "$(items)" = "$rows" ]
kept() { [ -e "$(ls -d $dir/.mysnap-old-* 2>/dev/null | head -n1)/t/items.ibd" ]; }
check "the previous data is kept inside DIR" kept
check "no staging directory is left" [ -z "$(ls -d $dir/.mysnap-restore-* 2>/dev/null)" ]
check "the coordinates were printed and written" grep -q 'CHANGE MASTER TO' /run/coordinates.sql
check "stdout and the coordinates file agree" cmp -s /run/restore.out /run/coordinates.sql
exit $failed
