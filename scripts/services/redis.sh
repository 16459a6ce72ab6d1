# shellcheck shell=bash source-path=SCRIPTDIR
# Sourced by scripts/services.sh (not run on its own): Redis (Debian's redis-server).

# ------------------------------------------------------------------------------------------------ redis

REDIS_DIR="$SVC/redis"
REDIS_PID="$REDIS_DIR/redis.pid"
REDIS_LOG="$REDIS_DIR/redis.log"

redis_install() {
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
        apt_install redis-server
    fi
    log "redis: $(redis-server --version | awk '{print $3}' | sed s/^v=//)"
}

redis_ready() { [[ "$(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; }

redis_launch() {
    need_cmd redis-server "run: bash scripts/services.sh install"
    mkdir -p "$REDIS_DIR"
    if pid_alive "$REDIS_PID" redis-server && redis_ready; then
        log "redis: already running on $HOST:$REDIS_PORT"
        REDIS_T0=""
        return 0
    fi
    rm -f "$REDIS_PID"
    ensure_port_free redis "$REDIS_PORT"
    REDIS_T0="$(now)"
    rotate_log "$REDIS_LOG"
    redis-server --port "$REDIS_PORT" --bind "$HOST" --save '' --appendonly no --daemonize yes \
        --pidfile "$REDIS_PID" --logfile "$REDIS_LOG" --dir "$REDIS_DIR" ||
        fail_start redis "$REDIS_LOG" "redis-server refused to start"
}

redis_wait() {
    local deadline=$((SECONDS + 10))
    until [[ -s "$REDIS_PID" ]]; do
        ((SECONDS < deadline)) || fail_start redis "$REDIS_LOG" "no pid file written"
        sleep 0.05
    done
    wait_until redis "$REDIS_LOG" "$REDIS_PID" redis_ready
    [[ -n "${REDIS_T0:-}" ]] && log "redis: ready on $HOST:$REDIS_PORT in $(elapsed "$REDIS_T0")s"
    return 0
}

redis_stop() { kill_pidfile redis "$REDIS_PID" 15; }
redis_status() { pid_alive "$REDIS_PID" redis-server && redis_ready; }

redis_env() {
    printf "export STREAMDUCK_TEST_REDIS_URL='redis://%s:%s/0'\n" "$HOST" "$REDIS_PORT"
    printf "export REDIS_URL='redis://%s:%s/0'\n" "$HOST" "$REDIS_PORT"
}
redis_clean() { rm -rf "$REDIS_DIR"; }
