# shellcheck shell=bash source-path=SCRIPTDIR
# Sourced by scripts/services.sh (not run on its own): PostgreSQL with logical replication (the CDC source).

# --------------------------------------------------------------------------------------------- postgres

PG_LINK="$SVC/pg"
PG_BASE="$PG_LINK"

# PG_BASE: the real folder behind .services/pg (it is a link when the data lives in /tmp, see below)
pg_resolve() { PG_BASE="$(readlink -f "$PG_LINK" 2>/dev/null || printf '%s' "$PG_LINK")"; }

pg_bindir() {
    local d
    if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v pg_ctl)")"
        return 0
    fi
    for d in "/usr/lib/postgresql/$POSTGRES_VERSION/bin" /usr/lib/postgresql/*/bin; do
        if [[ -x "$d/pg_ctl" && -x "$d/initdb" ]]; then
            printf '%s' "$d"
            return 0
        fi
    done
    return 1
}

# PostgreSQL refuses to run as root: as root it runs as the `postgres` user.
pg_as() {
    if [[ "$(id -u)" == 0 ]]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

pg_install() {
    if ! pg_bindir >/dev/null; then
        apt_install "postgresql-$POSTGRES_VERSION"
    fi
    local bin
    bin="$(pg_bindir)" || die "postgres: pg_ctl/initdb not found after install"
    if [[ "$(id -u)" == 0 ]] && ! id postgres >/dev/null 2>&1; then
        die "postgres: running as root needs a 'postgres' system user (apt-get install postgresql-$POSTGRES_VERSION makes it)"
    fi
    log "postgres: $("$bin/postgres" --version)"
}

# Data goes to .services/pg unless the `postgres` user cannot reach that folder (e.g. a checkout under a
# home directory with mode 700): then to a per-checkout folder in /tmp, linked from .services/pg.
pg_prepare_dir() {
    if [[ -L "$PG_LINK" && ! -d "$PG_LINK" ]]; then
        rm -f "$PG_LINK"
    fi
    mkdir -p "$PG_LINK"
    pg_resolve
    if [[ "$(id -u)" == 0 ]]; then
        chown postgres: "$PG_BASE"
        chmod 700 "$PG_BASE"
        if ! runuser -u postgres -- test -w "$PG_BASE" 2>/dev/null; then
            local alt
            alt="/tmp/streamduck-pg-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)"
            log "postgres: user postgres cannot reach $PG_LINK; keeping its data in $alt"
            rm -rf "$PG_LINK"
            mkdir -p "$alt"
            chown postgres: "$alt"
            chmod 700 "$alt"
            ln -sfn "$alt" "$PG_LINK"
            pg_resolve
        fi
    fi
}

pg_ctl_() { pg_as "$PG_BIN/pg_ctl" -D "$PG_BASE/data" "$@"; }

pg_ready() { "$PG_BIN/pg_isready" -q -h "$HOST" -p "$PG_PORT" -d postgres -U postgres; }

pg_psql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$PG_PORT" -U postgres "$@"; }

pg_launch() {
    PG_BIN="$(pg_bindir)" || die "postgres: pg_ctl/initdb not found: run: bash scripts/services.sh install"
    pg_prepare_dir
    if [[ -f "$PG_BASE/data/PG_VERSION" ]] && pg_ctl_ status >/dev/null 2>&1; then
        log "postgres: already running on $HOST:$PG_PORT"
        PG_T0=""
        return 0
    fi
    ensure_port_free postgres "$PG_PORT"
    PG_T0="$(now)"
    if [[ ! -f "$PG_BASE/data/PG_VERSION" ]]; then
        rm -rf "${PG_BASE:?}/data"
        pg_as "$PG_BIN/initdb" -D "$PG_BASE/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
            >"$PG_BASE/initdb.log" 2>&1 ||
            fail_start postgres "$PG_BASE/initdb.log" "initdb failed"
        pg_as sh -c "cat >>'$PG_BASE/data/postgresql.conf'" <<EOF

# --- scripts/services.sh: local test server (CDC source) ---
listen_addresses = '$HOST'
unix_socket_directories = ''
wal_level = logical
synchronous_commit = on
max_replication_slots = 32
max_wal_senders = 32
max_connections = 200
fsync = off
full_page_writes = off
log_min_messages = warning
EOF
        log "postgres: initdb done in $(elapsed "$PG_T0")s"
    fi
    if [[ -f "$PG_BASE/postgres.log" ]]; then
        pg_as mv -f "$PG_BASE/postgres.log" "$PG_BASE/postgres.log.1"
    fi
    # Port and listen address on the command line so the STREAMDUCK_PG_PORT override always applies.
    pg_ctl_ start -w -t "$TIMEOUT" -l "$PG_BASE/postgres.log" \
        -o "-p $PG_PORT -c listen_addresses=$HOST -c unix_socket_directories=''" >/dev/null ||
        fail_start postgres "$PG_BASE/postgres.log" "pg_ctl start failed"
}

pg_wait() {
    wait_until postgres "$PG_BASE/postgres.log" "" pg_ready
    # The test role and database (idempotent). Auth is trust on loopback; the password is for DSNs.
    pg_psql -d postgres <<'EOF' >/dev/null ||
SELECT 'CREATE ROLE app LOGIN REPLICATION PASSWORD ''app'''
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app') \gexec
ALTER ROLE app LOGIN REPLICATION PASSWORD 'app';
SELECT 'CREATE DATABASE appdb OWNER app'
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'appdb') \gexec
EOF
        fail_start postgres "$PG_BASE/postgres.log" "creating role app / database appdb failed"
    [[ -n "${PG_T0:-}" ]] && log "postgres: ready on $HOST:$PG_PORT in $(elapsed "$PG_T0")s"
    return 0
}

pg_stop() {
    local bin
    pg_resolve
    if [[ ! -f "$PG_BASE/data/postmaster.pid" ]]; then
        log "postgres: not running"
        return 0
    fi
    bin="$(pg_bindir)" || die "postgres: pg_ctl not found"
    PG_BIN="$bin"
    if pg_ctl_ stop -m fast -w -t 60 >/dev/null 2>&1; then
        log "postgres: stopped"
    elif pg_ctl_ status >/dev/null 2>&1; then
        log "postgres: fast stop failed, trying immediate"
        pg_ctl_ stop -m immediate -w -t 30 >/dev/null || die "postgres: could not stop"
    else
        log "postgres: not running"
    fi
}

pg_status() {
    local bin
    pg_resolve
    bin="$(pg_bindir)" || return 1
    PG_BIN="$bin"
    [[ -f "$PG_BASE/data/PG_VERSION" ]] && pg_ctl_ status >/dev/null 2>&1 && pg_ready
}

pg_env() {
    printf "export STREAMDUCK_TEST_PG_DSN='postgresql://app:app@%s:%s/appdb'\n" "$HOST" "$PG_PORT"
    printf "export PG_DSN='postgresql://app:app@%s:%s/appdb'\n" "$HOST" "$PG_PORT"
}

pg_clean() {
    local target
    target="$(readlink -f "$PG_LINK" 2>/dev/null || true)"
    if [[ -n "$target" && "$target" == /tmp/streamduck-pg-* ]]; then
        rm -rf "$target"
    fi
    rm -rf "$PG_LINK"
}
