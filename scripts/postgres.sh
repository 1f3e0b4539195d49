# Sourced by scripts/test: starts a throwaway PostgreSQL cluster for the tests (with
# `wal_level=logical`: sidecars follow its changes through logical decoding), installing
# Debian's `postgresql` when it is missing, and exports GATEHOUSE_TEST_POSTGRES. The cluster
# lives in a temporary directory and is stopped and removed when the calling shell exits.
# Exports GATEHOUSE_TEST_PG_BIN too, for tests that start a cluster of their own.
# Fails loudly when PostgreSQL cannot be installed or started. Uses scripts/test's
# `apt_install`.

# The newest server's bin directory (the client package alone has no initdb).
pg_bin() {
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/initdb" ]; then
            echo "$dir"
            return
        fi
    done
}

if [ -z "$(pg_bin)" ]; then
    echo "scripts/test: installing PostgreSQL (Debian's postgresql)" >&2
    apt_install postgresql
fi
PG_BIN="$(pg_bin)"
if [ ! -x "$PG_BIN/initdb" ]; then
    echo "scripts/test: PostgreSQL is not installed and could not be installed" >&2
    exit 1
fi

PG_DIR="$(mktemp -d /tmp/gatehouse-pg.XXXXXX)"
PG_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
# initdb refuses to run as root: as root, the cluster belongs to the `postgres` user.
if [ "$(id -u)" = 0 ]; then
    chown postgres "$PG_DIR"
    as_pg() { runuser -u postgres -- "$@"; }
else
    as_pg() { "$@"; }
fi
as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres >"$PG_DIR/initdb.log" 2>&1 || {
    cat "$PG_DIR/initdb.log" >&2
    echo "scripts/test: initdb failed" >&2
    exit 1
}
as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c wal_level=logical -c max_replication_slots=100 -c max_wal_senders=100 -c max_connections=300" \
    start >/dev/null || {
    cat "$PG_DIR/server.log" >&2
    echo "scripts/test: PostgreSQL did not start" >&2
    exit 1
}
stop_postgres() {
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
}
trap stop_postgres EXIT
export GATEHOUSE_TEST_POSTGRES="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
# For tests that need a cluster of their own (stopped and started under a sidecar).
export GATEHOUSE_TEST_PG_BIN="$PG_BIN"
echo "scripts/test: PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on port $PG_PORT" >&2
