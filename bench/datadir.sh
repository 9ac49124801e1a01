# bench/datadir.sh: sourced by the benchmarks. A loaded MariaDB server's
# datadir, generated once and cached under $MYSNAP_CACHE.
#
# bench_datadir MIB WORK: prints the path of a datadir of at least MIB MiB
# ($cache/bench-datadir-2g for 2048, -512m for 512), generating it with a
# throwaway mariadbd (socket and logs under WORK) when it is not cached yet:
# an orders table of realistic, compressible rows, doubled with INSERT ...
# SELECT until the datadir is big enough, then shut down cleanly.
# Start a server on it with bench_mariadbd_options, so that InnoDB finds
# the redo log size it was made with and does not resize it.
bench_mariadbd_options="--character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci
    --innodb-buffer-pool-size=1G --innodb-log-file-size=512M
    --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0"

bench_datadir() {
    local mib=$1 work=$2 cache=${MYSNAP_CACHE:-$HOME/.cache/mysnap}
    local dir=$cache/bench-datadir-$((mib / 1024))g
    [ $((mib % 1024)) -eq 0 ] || dir=$cache/bench-datadir-${mib}m
    [ -d "$dir" ] || _bench_make_datadir "$mib" "$work" "$dir" >&2
    echo "$dir"
}

# A subshell, so that its trap stops the server however it ends.
_bench_make_datadir() (
    local mib=$1 work=$2 dir=$3
    local tmp=$dir.tmp sock=$work/datadir-gen.sock target=$(($1 << 20)) server
    rm -rf "$tmp"
    echo "bench: generating a $mib MiB MariaDB datadir (once; cached in $dir)"
    mariadb-install-db --user=root --auth-root-authentication-method=socket \
        --skip-test-db --datadir="$tmp" >"$work/datadir-install.log" 2>&1
    # shellcheck disable=SC2086
    /usr/sbin/mariadbd --no-defaults --user=root --datadir="$tmp" --socket="$sock" \
        --skip-networking $bench_mariadbd_options --log-error="$work/datadir-gen.log" &
    server=$!
    trap 'kill $server 2>/dev/null; wait $server; rm -rf "$tmp"' EXIT
    local sql="mariadb --socket=$sock --default-character-set=utf8mb4 -N -e"
    for _ in $(seq 600); do $sql 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.1; done
    $sql "CREATE DATABASE shop;
        CREATE TABLE shop.orders (id BIGINT AUTO_INCREMENT PRIMARY KEY,
            customer INT NOT NULL, created DATETIME NOT NULL, status VARCHAR(12) NOT NULL,
            amount DECIMAL(10,2) NOT NULL, channel VARCHAR(8) NOT NULL, note VARCHAR(200),
            KEY (customer), KEY (created)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
        INSERT INTO shop.orders (customer, created, status, amount, channel, note)
            SELECT seq % 50000, '2024-01-01' + INTERVAL seq * 37 SECOND,
                ELT(1 + seq % 4, 'new', 'paid', 'shipped', 'returned'), (seq * 7919 % 100000) / 100,
                ELT(1 + seq % 3, 'web', 'phone', 'store'), CONCAT('order ', seq, ' gift wrap: ', IF(seq % 5 = 0, 'yes', 'no'))
            FROM shop.seq_1_to_65536;"
    local size n add
    while :; do
        size=$(du -sb "$tmp" | cut -f1)
        [ "$size" -ge "$target" ] && break
        # Double, or add only what is still missing.
        n=$($sql "SELECT COUNT(*) FROM shop.orders")
        add=$(( n * (target - size) / size + 1 ))
        [ "$add" -gt "$n" ] && add=$n
        $sql "INSERT INTO shop.orders (customer, created, status, amount, channel, note)
            SELECT FLOOR(RAND() * 1000000), created + INTERVAL FLOOR(RAND() * 86400) SECOND,
                status, ROUND(RAND() * 1000, 2), channel,
                CONCAT('order for customer ', FLOOR(RAND() * 1000000), ' via ', channel,
                    IF(RAND() < 0.3, CONCAT(', ref ', LEFT(MD5(RAND()), 12)), ''))
            FROM shop.orders LIMIT $add"
    done
    mariadb-admin --socket="$sock" shutdown
    wait "$server" || true
    trap - EXIT
    rm -f "$tmp"/*.pid "$tmp"/*.sock
    mv "$tmp" "$dir"
)
