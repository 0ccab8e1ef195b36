#!/usr/bin/env bash
# A private PostgreSQL 15 server for the tests, on a free loopback port, durability off.
#   eval "$(bash scripts/pg.sh start)"   # installs PostgreSQL (and pg_partman) if absent; prints `export ORGPORT_PG_URL=…`
#   bash scripts/pg.sh stop
set -euo pipefail
dir=${ORGPORT_PG_DIR:-/tmp/orgport-pg}
bin=/usr/lib/postgresql/15/bin
case "${1:-start}" in
start)
    packages=()
    [ -x "$bin/initdb" ] || packages+=(postgresql-15 postgresql-contrib-15)
    # Lago's schema (tests/it/realworld.rs) creates pg_partman; pg_trgm, btree_gin, unaccent and
    # pgcrypto come with postgresql-15.
    [ -f /usr/share/postgresql/15/extension/pg_partman.control ] || packages+=(postgresql-15-partman)
    if [ ${#packages[@]} -gt 0 ]; then
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >&2
    fi
    if [ -f "$dir/data/postmaster.pid" ]; then
        runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir" && mkdir -p "$dir" && chown postgres "$dir"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    runuser -u postgres -- "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 --locale=C.UTF-8 >/dev/null
    runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -w -l "$dir/log" -o "-c listen_addresses=127.0.0.1 -c port=$port \
        -c unix_socket_directories=$dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >/dev/null
    echo "postgres://postgres@127.0.0.1:$port/postgres" > "$dir/url"
    echo "export ORGPORT_PG_URL=postgres://postgres@127.0.0.1:$port/postgres"
    ;;
stop)
    runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    ;;
*)
    echo "usage: scripts/pg.sh start|stop" >&2
    exit 2
    ;;
esac
