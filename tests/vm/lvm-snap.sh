#!/bin/bash
# Runs inside the VM (tests/vm/run.sh --disk 3G): lvm-snap against real LVM
# snapshots, a live MariaDB and an S3 server on loopback, on one filesystem.
# Prints a PASS or FAIL line per check and exits 1 if any failed.
#
#   lvm-snap.sh ext4|xfs SEED S3S_FS [backup|overflow|lifecycle|kills]...
#
# The default is backup, overflow and lifecycle; kills (lvcreate killed at
# each device-mapper change it makes) runs only when named.
# SEED is a datadir made by mariadb-install-db --innodb-log-file-size=8M on the host (about 20 s
# faster than making it under emulation); S3S_FS the s3s-fs binary.
set -uo pipefail
fs=$1 seed=$2 s3s=$3
shift 3
scenarios=${*:-backup overflow lifecycle}
root=$(cd "$(dirname "$0")/../.." && pwd)
export PATH=${MYSNAP_BIN_DIR:-$root/target/debug}:$PATH
w=/run/lvm-snap-test
mkdir -p $w
label=$fs
. "$root/tests/vm/checks.sh"
. "$root/tests/vm/ioctls.sh"
status_is() { # status_is CODE COMMAND...: runs COMMAND, true if it exits CODE
    local want=$1 got
    shift
    "$@"
    got=$?
    [ "$got" = "$want" ] || { echo "  exit status $got, expected $want: $*"; return 1; }
}
no_volume() { ! lvs "vg0/$1" >/dev/null 2>&1; }
not_mounted() { ! grep -q "$1" /proc/self/mounts; }
sql() { mariadb -S "$1" -N -B shop -e "$2"; }

start_server() { # start_server DATADIR NAME: mariadbd with binary logging
    mariadbd --no-defaults --user=root --datadir="$1" --socket=$w/$2.sock \
        --pid-file=$w/$2.pid --log-error=$w/$2.err --skip-networking \
        --log-bin=binlog --server-id=1 --innodb-buffer-pool-size=32M --innodb-log-file-size=8M &
    for _ in $(seq 600); do
        mariadb -S $w/$2.sock -e 'select 1' >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    cat $w/$2.err
    return 1
}
stop_server() { kill "$(cat $w/$1.pid)" 2>/dev/null; while [ -e $w/$1.pid ]; do sleep 0.1; done; }

modprobe -a dm-snapshot loop || exit 1
pvcreate -q /dev/vda && vgcreate -q vg0 /dev/vda || exit 1
lvcreate -q -y -L 600M -n db vg0 && lvcreate -q -y -L 900M -n scratch vg0 || exit 1
mkfs.$fs -q /dev/vg0/db && mkfs.ext4 -q /dev/vg0/scratch || exit 1
mkdir -p /srv/db /srv/scratch
mount /dev/vg0/db /srv/db && mount /dev/vg0/scratch /srv/scratch || exit 1
say "vg0/db ($fs) and vg0/scratch ready"

backup() {
    cp -a "$seed" /srv/db/mysql && start_server /srv/db/mysql live || return 1
    mariadb -S $w/live.sock -e "CREATE DATABASE shop"
    mariadb -S $w/live.sock shop -e "
        CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=InnoDB;
        CREATE TABLE events (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=Aria;
        CREATE TABLE notes (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=MyISAM;"
    # One writer session, inserting as fast as it can until stopped.
    yes 'INSERT INTO orders (v) VALUES (1); INSERT INTO events (v) VALUES (2); INSERT INTO notes (v) VALUES (3);' |
        mariadb -S $w/live.sock shop &
    local writer=$!
    sleep 3
    say "writer running: $(sql $w/live.sock 'SELECT COUNT(*) FROM orders') orders"
    local paths
    paths=$(mysql-lock-hold --no-defaults -S $w/live.sock -u root --status-file $w/status.json -- \
        lvm-snap create vg0/db --name db-snap --size 200M)
    check "mysql-lock-hold -- lvm-snap create prints the device" [ "$paths" = /dev/vg0/db-snap ]
    sleep 2
    lvm-snap run vg0/db-snap -- snap-tar --status-file $w/status.json . > /srv/scratch/backup.tar.gz
    check "lvm-snap run -- snap-tar exits 0" [ $? = 0 ]
    kill $writer
    wait $writer 2>/dev/null
    check "run removed the snapshot" no_volume db-snap
    check "run unmounted it" not_mounted lvm-snap.
    say "archive: $(du -h /srv/scratch/backup.tar.gz | cut -f1)"

    mkdir /srv/scratch/restore && tar -xzf /srv/scratch/backup.tar.gz -C /srv/scratch/restore
    check "the archive unpacks with tar -xzf" [ -d /srv/scratch/restore/mysql/shop ]
    local coordinates
    coordinates=$(python3 - $w/status.json /srv/scratch/restore/mysnap/manifest.json <<'PY'
import json, sys
status, manifest = (json.load(open(p)) for p in sys.argv[1:])
keys = ("binlog_file", "binlog_pos", "gtid")
if any(status[k] != manifest["status"][k] for k in keys):
    sys.exit("manifest %s != status file %s" % (manifest["status"], status))
print(*(status[k] for k in keys))
PY
    ) || { check "the manifest carries the status file's coordinates" false; return 1; }
    check "the manifest carries the status file's coordinates" true
    local file pos gtid
    read -r file pos gtid <<< "$coordinates"
    say "coordinates: $file:$pos, gtid $gtid"
    # MariaDB may add its own Binlog_checkpoint event after the flush, but
    # no transaction may follow the coordinates in the copy.
    local after
    after=$(mariadb-binlog --start-position="$pos" /srv/scratch/restore/mysql/"$file" |
        grep -cE 'GTID [0-9]+-[0-9]+-[0-9]+')
    check "the copy's binary log has no transaction after the coordinates ($file:$pos)" [ "$after" = 0 ]

    # What was committed before the lock: the INSERTs in the binary logs
    # that the lock's FLUSH BINARY LOGS closed.
    local before
    before=$(cd /srv/db/mysql && sed 's|^\./||' binlog.index | awk -v f="$file" '$0 == f { exit } { print }')
    (cd /srv/db/mysql && mariadb-binlog $before) > $w/committed.sql
    check "the binary log before the lock shows its transactions" grep -qE 'GTID [0-9]+-[0-9]+-[0-9]+' $w/committed.sql
    start_server /srv/scratch/restore/mysql copy || { check "a second mariadbd starts on the copy" false; return 1; }
    check "the copy's gtid_binlog_pos is the manifest's ($gtid)" \
        [ "$(sql $w/copy.sock 'SELECT @@gtid_binlog_pos')" = "$gtid" ]
    local table committed copied live
    for table in orders events notes; do
        committed=$(grep -c "INSERT INTO $table " $w/committed.sql)
        copied=$(sql $w/copy.sock "SELECT COUNT(*), MAX(id) FROM $table")
        live=$(sql $w/live.sock "SELECT COUNT(*) FROM $table")
        say "$table: $committed committed before the lock, copy has $copied (count, max id), live $live"
        check "$table ($(sql $w/copy.sock "SELECT engine FROM information_schema.tables WHERE table_schema = 'shop' AND table_name = '$table'")): the copy has exactly the rows committed before the lock" \
            [ "$copied" = "$committed"$'\t'"$committed" ]
    done
    check "the live server went on writing after the lock" [ "$live" -gt "$committed" ]
    stop_server copy
    stop_server live
}

overflow() {
    mkdir -p $w/s3/backups
    local port=9123
    export AWS_ACCESS_KEY_ID=vm-test AWS_SECRET_ACCESS_KEY=vm-test-secret AWS_EC2_METADATA_DISABLED=true
    "$s3s" --host 127.0.0.1 --port $port --access-key "$AWS_ACCESS_KEY_ID" \
        --secret-key "$AWS_SECRET_ACCESS_KEY" $w/s3 2>/dev/null &
    local server=$!
    until (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; do sleep 0.1; done
    # 48 MiB written to the origin while an 8 MiB snapshot is being read.
    local fill="dd if=/dev/urandom of=/srv/db/fill bs=1M count=48 conv=fsync status=none"
    check "s3-put -- lvm-snap run: a snapshot that overflowed exits 65" status_is 65 \
        s3-put --endpoint http://127.0.0.1:$port s3://backups/db1.tar.gz -- \
        lvm-snap run vg0/db --name tiny --size 8M -- sh -c "$fill && exec snap-tar ."
    check "and s3-put stored no object" [ -z "$(find $w/s3/backups -type f)" ]
    check "and the snapshot is gone" no_volume tiny
    rm -f /srv/db/fill
    check "run exits 65 on overflow even when COMMAND succeeded" status_is 65 \
        lvm-snap run vg0/db --name tiny --size 8M -- sh -c "$fill"
    rm -f /srv/db/fill
    lvm-snap create vg0/db --name full --size 8M >/dev/null
    $fill
    check "status of an overflowed snapshot exits 65" status_is 65 lvm-snap status vg0/full
    check "an overflowed snapshot can be removed" status_is 0 lvm-snap remove vg0/full
    rm -f /srv/db/fill
    kill $server
}

lifecycle() {
    lvm-snap create vg0/db --name once --size 8M >/dev/null
    check "create refuses a taken name (73)" status_is 73 lvm-snap create vg0/db --name once --size 8M
    check "create --replace replaces it" status_is 0 lvm-snap create vg0/db --name once --size 8M --replace
    check "create refuses a name held by an origin (73)" status_is 73 lvm-snap create vg0/db --name scratch --replace
    local short
    short=$(lvm-snap create vg0/db --name huge --size 5G 2>&1)
    check "create refuses short space (73)" [ $? = 73 ]
    check "and says what is free and what is needed" grep -q "free, 5.0 GiB needed" <<< "$short"
    echo "  $short"
    check "remove removes" status_is 0 lvm-snap remove vg0/once
    check "remove again succeeds" status_is 0 lvm-snap remove vg0/once
    check "remove in a group that does not exist succeeds" status_is 0 lvm-snap remove vg9/once
    check "remove refuses an origin (65)" status_is 65 lvm-snap remove vg0/db

    lvm-snap create vg0/db --name ours --size 8M --tag run-1 >/dev/null
    lvm-snap remove --tag run-2 vg0/ours
    check "remove --tag leaves another run's snapshot" lvs vg0/ours
    lvm-snap remove --tag run-1
    check "remove --tag removes the run's snapshots" no_volume ours

    mkdir -p /srv/mnt
    lvm-snap create vg0/db --name mounted --size 8M >/dev/null
    check "mount prints the mount point" [ "$(lvm-snap mount vg0/mounted /srv/mnt)" = /srv/mnt ]
    check "mount refuses a mount point (73)" status_is 73 lvm-snap mount vg0/mounted /srv/mnt
    check "the snapshot is mounted read-only" grep -q " /srv/mnt $fs ro," /proc/self/mounts
    check "remove unmounts and removes" status_is 0 lvm-snap remove vg0/mounted
    check "and nothing is left mounted" not_mounted /srv/mnt

    lvm-snap run vg0/db --name killed --size 8M -- sleep 600 &
    local run=$!
    until grep -q lvm-snap. /proc/self/mounts; do sleep 0.1; done
    kill -TERM $run
    wait $run
    check "run ends 143 on SIGTERM" [ $? = 143 ]
    check "and leaves no snapshot" no_volume killed
    check "and nothing mounted" not_mounted lvm-snap.

    # SIGTERM to the whole process group while lvcreate runs.
    setsid lvm-snap create vg0/db --name interrupted --size 8M > /dev/null &
    local create=$!
    until pgrep -x lvcreate >/dev/null || ! kill -0 $create 2>/dev/null; do sleep 0.01; done
    kill -TERM -- -$create
    wait $create
    check "create ends 143 on SIGTERM during lvcreate" [ $? = 143 ]
    check "and undoes the snapshot" no_volume interrupted
    check "and the origin is not suspended" [ "$(dmsetup info -c --noheadings -o suspended vg0-db)" = Active ]

    # An origin left suspended, as by an lvcreate killed with SIGKILL.
    lvm-snap create vg0/db --name stuck --size 8M >/dev/null
    dmsetup suspend vg0-db
    check "status resumes a suspended origin" status_is 0 lvm-snap status vg0/stuck
    check "  (it is active again)" [ "$(dmsetup info -c --noheadings -o suspended vg0-db)" = Active ]
    dmsetup suspend vg0-db
    check "remove resumes a suspended origin" status_is 0 lvm-snap remove vg0/stuck
    check "  (it is active again)" [ "$(dmsetup info -c --noheadings -o suspended vg0-db)" = Active ]

    # A volume that an admin suspended on purpose is not lvm-snap's to resume.
    lvcreate -q -y -L 8M -n bystander vg0 >/dev/null
    lvm-snap create vg0/db --name stuck --size 8M >/dev/null
    dmsetup suspend vg0-bystander
    lvm-snap status vg0/stuck >/dev/null 2>$w/err.txt
    check "status leaves someone else's suspended volume suspended" \
        [ "$(dmsetup info -c --noheadings -o suspended vg0-bystander)" = Suspended ]
    check "  and says so" grep -q 'vg0-bystander is suspended.*left as it is' $w/err.txt
    dmsetup resume vg0-bystander
    lvremove -q -y vg0/bystander >/dev/null
    lvm-snap remove vg0/stuck
}

# kills: the backup's first step, mysql-lock-hold -- lvm-snap create, with
# lvcreate stopped at each ioctl that changes device-mapper (found by
# tracing one whole lvcreate first), then killed three ways:
#   lvcreate-KILL  lvcreate alone, SIGKILL (the OOM killer): lvm-snap must
#                  undo it at once
#   KILL           the whole tree, SIGKILL (systemctl kill -s KILL), then
#                  'lvm-snap remove --tag', as the unit's ExecStopPost= runs
#   TERM           the whole tree, SIGTERM (systemctl stop): lvcreate blocks
#                  it and finishes, and lvm-snap must undo it
# A live server takes a write every 20 ms throughout. After each kill (and
# the cleanup, for KILL) the writes go on within 1 s, the server never
# restarted, the origin maps what it mapped before, no device or volume is
# left, and the next backup succeeds; each way's last backup restores.
kills() {
    cp -a "$seed" /srv/db/mysql && start_server /srv/db/mysql live || return 1
    mariadb -S $w/live.sock -e 'CREATE DATABASE shop'
    sql $w/live.sock 'CREATE TABLE beats (id INT AUTO_INCREMENT PRIMARY KEY, ts TIMESTAMP(6) NOT NULL) ENGINE=InnoDB'
    yes 'INSERT INTO beats (ts) VALUES (NOW(6)); DO SLEEP(0.02);' | mariadb -S $w/live.sock shop &
    local writer=$! server
    server=$(cat $w/live.pid)
    local table devices
    table=$(dmsetup table vg0-db)
    devices=$(dmsetup ls | sort)
    mkdir -p $w/inject && ln -sf "$root/tests/vm/inject-lvcreate.sh" $w/inject/lvcreate
    snap=(mysql-lock-hold --no-defaults -S $w/live.sock -u root --status-file $w/status.json --
        lvm-snap create vg0/db --name db-snap --size 100M)
    # inject MYSNAP_INJECT COMMAND...: COMMAND with the injecting lvcreate.
    inject() { local how=$1; shift; MYSNAP_INJECT=$how PATH=$w/inject:$PATH "$@"; }
    inject "trace $w/whole.txt" "${snap[@]}" --tag whole >/dev/null &&
        lvm-snap remove vg0/db-snap || { check "a traced lvcreate makes a snapshot" false; return 1; }
    local points
    points=$(dm_changes $w/whole.txt)
    say "lvcreate -s made $(grep -c '^ioctl(' $w/whole.txt) ioctls, $(grep -vc after <<< "$points") of them changes:" $points
    check "the trace shows lvcreate suspending the origin" grep -q ' suspend vg0-db$' <<< "$points"
    local how n what dev rows=()
    for how in ${MYSNAP_KILL_WAYS:-lvcreate-KILL KILL TERM}; do
        while read -r n what dev; do
            kill_lvcreate "$how" "$n" "$what" "$dev"
        done <<< "$points"
        restores "$how"
    done
    check "the writer's connection lived through every kill" kill -0 $writer
    [ -n "${MYSNAP_KILL_STATES:-}" ] && echo "STATES $(tar -C $w/states -cz . | base64 -w0)"
    kill $writer
    wait $writer 2>/dev/null
    echo
    echo "lvcreate killed at each device-mapper change (yes = survived):"
    printf '%-13s %-4s %-17s %-8s %-7s %-9s %-7s %-8s %-6s\n' how at change reached status writes origin leftover next
    printf '%s\n' "${rows[@]}"
    stop_server live
}

# save_state DIR: device-mapper and LVM as a killed lvcreate left them, for
# the unit tests of the repair (tools/lvm-snap/fixtures/killed/).
save_state() {
    mkdir -p "$1"
    dmsetup info -c --noheadings --separator ';' -o uuid,attr,open,major,minor,name > "$1/info.txt"
    dmsetup table > "$1/table.txt"
    dmsetup table --inactive > "$1/inactive.txt"
    lvs -a --reportformat json --units b --nosuffix -o vg_name,vg_uuid,vg_free,vg_extent_size,lv_name,lv_uuid,lv_attr,lv_size,origin,lv_tags,snap_percent,lv_snapshot_invalid,lv_kernel_major,lv_kernel_minor vg0 > "$1/lvs.json"
}

row_after() { [ "$(sql $w/live.sock "SELECT COUNT(*) FROM beats WHERE ts > FROM_UNIXTIME($1)")" != 0 ]; }

# kill_lvcreate HOW N WHAT DEVICE: one kill, as the kills comment says.
kill_lvcreate() {
    local how=$1 n=$2 what=$3 dev=$4 token=k$2-$1 trace=$w/trace.txt
    local status want reached=no writes=no gap=- origin=no leftover=no next=no t0 tree
    rm -f $trace
    case $how in
        lvcreate-KILL)
            inject "kill $n $trace" "${snap[@]}" --tag $token >/dev/null 2>$w/err.txt
            status=$? want=73 ;;
        *)
            # Its own process group, to be killed whole; not through inject(),
            # whose subshell would be $!.
            MYSNAP_INJECT="pause $n $trace" PATH=$w/inject:$PATH \
                setsid "${snap[@]}" --tag $token >/dev/null 2>$w/err.txt &
            tree=$!
            wait_for 120 held_at $n $trace
            kill -$how -- -$tree
            # strace keeps SIGTERM blocked too; killing it lets lvcreate go on.
            [ $how = TERM ] && pkill -KILL -x strace
            wait $tree 2>/dev/null
            status=$?
            want=143
            if [ $how = KILL ]; then
                want=137
                [ -n "${MYSNAP_KILL_STATES:-}" ] && save_state $w/states/$n
                lvm-snap remove --tag $token vg0/db-snap 2>>$w/err.txt
            fi ;;
    esac
    t0=$(date +%s.%N)
    [ "$(nth_change $n $trace)" = "${what/after/query}" ] && reached=yes
    # The writer's first row after t0, timed by the server's own clock.
    wait_for 60 row_after $t0
    gap=$(sql $w/live.sock "SELECT ROUND((UNIX_TIMESTAMP(MIN(ts)) - $t0) * 1000) FROM beats WHERE ts > FROM_UNIXTIME($t0)")
    [ "$gap" != NULL ] && [ "$gap" -le 1000 ] && kill -0 $writer && [ "$(cat $w/live.pid)" = "$server" ] && writes=yes
    [ "$(dmsetup table vg0-db)" = "$table" ] && [ "$(dmsetup info -c --noheadings -o attr vg0-db)" = L--w ] && origin=yes
    [ -z "$(lvs --noheadings @mysnap)" ] && [ "$(dmsetup ls | sort)" = "$devices" ] && leftover=yes
    if [ "$reached$origin$leftover" != yesyesyes ]; then
        cat $w/err.txt; dmsetup info -c; dmsetup table; lvs -a vg0
    fi
    # What the repair did, in lvm-snap's words.
    sed -n 's/^lvm-snap: warning: /  repair: /p' $w/err.txt
    { "${snap[@]}" --tag next-$token >/dev/null &&
        lvm-snap run vg0/db-snap -- snap-tar mysql > /srv/scratch/next.tar.gz; } 2>$w/next.txt && next=yes
    [ $next = yes ] || cat $w/next.txt
    check "kill ($how) at ioctl $n ($what $dev): lvcreate was stopped there" [ $reached = yes ]
    check "kill ($how) at ioctl $n: mysql-lock-hold exits $want ($status)" [ "$status" = $want ]
    check "kill ($how) at ioctl $n: writes go on within 1 s, the server never restarted (gap ${gap} ms)" [ $writes = yes ]
    check "kill ($how) at ioctl $n: the origin maps what it mapped before, active" [ $origin = yes ]
    check "kill ($how) at ioctl $n: no volume or device left" [ $leftover = yes ]
    check "kill ($how) at ioctl $n: the next backup succeeds" [ $next = yes ]
    rows+=("$(printf '%-13s %-4s %-17s %-8s %-7s %-9s %-7s %-8s %-6s' $how $n "$what $dev" $reached $status "${gap}ms" $origin $leftover $next)")
}

# restores HOW: the last backup of a way of killing unpacks, verifies and
# starts, with the rows the writer had committed when it was taken.
restores() {
    rm -rf /srv/scratch/restored
    mysql-restore-dir --no-server --owner root --datadir /srv/scratch/restored < /srv/scratch/next.tar.gz \
        > /dev/null 2>$w/restore.txt
    check "after the kills ($1), the last backup restores" [ $? = 0 ] || cat $w/restore.txt
    start_server /srv/scratch/restored copy || { check "and a server starts on it" false; return; }
    check "and a server starts on it with the writer's rows" [ "$(sql $w/copy.sock 'SELECT COUNT(*) > 0 FROM beats')" = 1 ]
    stop_server copy
}

for scenario in $scenarios; do
    say "== $scenario"
    $scenario || { echo "FAIL $fs: $scenario stopped early"; failed=1; }
done
say "done"
exit $failed
