#!/usr/bin/env bash
# Local services for the test suite: Redis, Apache Kafka (KRaft), Azurite, PostgreSQL and Kafka Connect with
# the Debezium PostgreSQL connector.
#
#   bash scripts/services.sh install [SERVICE...]   install binaries/jars (idempotent, cached)
#   bash scripts/services.sh start   [SERVICE...]   start and wait until ready (idempotent), write .services/env
#   bash scripts/services.sh stop    [SERVICE...]   stop what start started
#   bash scripts/services.sh status  [SERVICE...]   print up/down per service (exit 1 if any is down)
#   bash scripts/services.sh env                    print the `export` lines the tests read
#   bash scripts/services.sh clean                  stop everything and delete service data (keeps installs)
#
# SERVICE is one of: redis kafka azurite postgres connect (default: all of them; connect brings kafka and
# postgres along).
# Everything listens on 127.0.0.1 only; data, logs and pid files live under .services/ (git-ignored).
# Ports can be overridden: STREAMDUCK_REDIS_PORT (16379), STREAMDUCK_KAFKA_PORT (19092),
# STREAMDUCK_KAFKA_CONTROLLER_PORT (19093), STREAMDUCK_AZURITE_BLOB_PORT / _QUEUE_PORT / _TABLE_PORT
# (10000/10001/10002), STREAMDUCK_PG_PORT (15432), STREAMDUCK_CONNECT_PORT (Kafka Connect's REST port, 18083).
# STREAMDUCK_SERVICES_TIMEOUT (seconds, default 90) bounds each readiness wait. Versions (Kafka, PostgreSQL,
# Debezium) come from scripts/versions.env.

# This file is the dispatcher: the commands above, over one file per service in scripts/services/
# (redis.sh, kafka.sh, azurite.sh, postgres.sh, connect.sh; each defines <name>_install, _launch, _wait, _stop, _status,
# _env and _clean, with pg_ for postgres) and the functions they share (common.sh). The services stay shell
# scripts rather than pytest fixtures driving a process-management library because more than pytest uses
# them: `make services-up`, `make bench`, `make demo` (the Redis install), scripts/test.sh and CI start them
# outside any test run, and what they drive (apt-get, mvn, npm, pg_ctl, a daemonising redis-server, a detached
# JVM) is shell work. A run of the suite starts them once, in parallel, and pytest only reads .services/env.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# shellcheck source=services/common.sh
source "$ROOT/scripts/services/common.sh"
# shellcheck source=services/redis.sh
source "$ROOT/scripts/services/redis.sh"
# shellcheck source=services/kafka.sh
source "$ROOT/scripts/services/kafka.sh"
# shellcheck source=services/azurite.sh
source "$ROOT/scripts/services/azurite.sh"
# shellcheck source=services/postgres.sh
source "$ROOT/scripts/services/postgres.sh"
# shellcheck source=services/connect.sh
source "$ROOT/scripts/services/connect.sh"

# ---------------------------------------------------------------------------------------------- commands

# select_services [SERVICE...]: fills SERVICES (all of them when none is named)
select_services() {
    local s
    SERVICES=()
    if (($# == 0)); then
        SERVICES=("${ALL_SERVICES[@]}")
        return 0
    fi
    for s in "$@"; do
        case "$s" in
        redis | kafka | azurite | postgres | connect) SERVICES+=("$s") ;;
        pg) SERVICES+=(postgres) ;;
        *) die "unknown service '$s' (expected: ${ALL_SERVICES[*]})" ;;
        esac
    done
}

# with_connect_deps: Kafka Connect streams PostgreSQL into Kafka, so starting it starts both
with_connect_deps() {
    if wanted connect; then
        wanted kafka || SERVICES+=(kafka)
        wanted postgres || SERVICES+=(postgres)
    fi
    return 0
}

wanted() { [[ " ${SERVICES[*]} " == *" $1 "* ]]; }

fn_prefix() { [[ "$1" == postgres ]] && printf 'pg' || printf '%s' "$1"; }

# env_lines: the `export` lines the tests read, one per service in a fixed order
env_lines() {
    local s
    for s in "${ALL_SERVICES[@]}"; do
        "$(fn_prefix "$s")_env"
    done
}

cmd_install() {
    local t0 s
    t0="$(now)"
    mkdir -p "$SVC"
    select_services "$@"
    with_connect_deps
    for s in "${SERVICES[@]}"; do
        "$(fn_prefix "$s")_install"
    done
    log "install done in $(elapsed "$t0")s"
}

cmd_start() {
    local t0 s
    t0="$(now)"
    mkdir -p "$SVC"
    select_services "$@"
    with_connect_deps
    # Launch everything first (Kafka, the slowest, first), then wait for each: start-ups overlap. Kafka
    # Connect needs a running broker and database, so it is launched last.
    for s in kafka azurite redis postgres; do
        if wanted "$s"; then "$(fn_prefix "$s")_launch"; fi
    done
    for s in redis postgres azurite kafka; do
        if wanted "$s"; then "$(fn_prefix "$s")_wait"; fi
    done
    if wanted connect; then
        connect_launch
        connect_wait
    fi
    env_lines >"$SVC/env"
    log "all started in $(elapsed "$t0")s; environment in .services/env (source it)"
}

cmd_stop() {
    local s
    select_services "$@"
    # Kafka Connect first: it flushes its offsets to the broker's side while both are still up.
    if wanted connect; then connect_stop; fi
    for s in "${SERVICES[@]}"; do
        if [[ "$s" != connect ]]; then "$(fn_prefix "$s")_stop"; fi
    done
}

cmd_status() {
    local s rc=0
    select_services "$@"
    for s in "${SERVICES[@]}"; do
        if "$(fn_prefix "$s")_status" 2>/dev/null; then
            printf '%-9s up\n' "$s"
        else
            printf '%-9s down\n' "$s"
            rc=1
        fi
    done
    return "$rc"
}

cmd_clean() {
    local s
    cmd_stop
    for s in "${ALL_SERVICES[@]}"; do
        "$(fn_prefix "$s")_clean"
    done
    rm -rf "$SVC/env"
    log "service data removed (installed jars and node modules kept)"
}

main() {
    local cmd="${1:-}"
    shift || true
    case "$cmd" in
    install) cmd_install "$@" ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    env) env_lines ;;
    clean) cmd_clean ;;
    *)
        awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
        [[ -z "$cmd" || "$cmd" == -h || "$cmd" == --help || "$cmd" == help ]] || exit 2
        ;;
    esac
}

# Run when executed; when sourced (tests), only define the functions.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
