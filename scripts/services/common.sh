# shellcheck shell=bash source-path=SCRIPTDIR
# Sourced by scripts/services.sh (not run on its own): settings and functions shared by every service.
# Uses ROOT (the checkout) set by the dispatcher.

SVC="$ROOT/.services"

# The versions of the local services, defined once (tests/test_services_versions.py checks that
# docker-compose.yml, scripts/kafka/pom.xml and scripts/connect/pom.xml name the same).
# shellcheck source=../versions.env
source "$ROOT/scripts/versions.env"

REDIS_PORT="${STREAMDUCK_REDIS_PORT:-16379}"
KAFKA_PORT="${STREAMDUCK_KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${STREAMDUCK_KAFKA_CONTROLLER_PORT:-19093}"
AZURITE_BLOB_PORT="${STREAMDUCK_AZURITE_BLOB_PORT:-10000}"
AZURITE_QUEUE_PORT="${STREAMDUCK_AZURITE_QUEUE_PORT:-10001}"
AZURITE_TABLE_PORT="${STREAMDUCK_AZURITE_TABLE_PORT:-10002}"
PG_PORT="${STREAMDUCK_PG_PORT:-15432}"
CONNECT_PORT="${STREAMDUCK_CONNECT_PORT:-18083}"
TIMEOUT="${STREAMDUCK_SERVICES_TIMEOUT:-90}"
KAFKA_HEAP_OPTS="${STREAMDUCK_KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"

HOST=127.0.0.1
ALL_SERVICES=(redis kafka azurite postgres connect)

# ---------------------------------------------------------------------------------------------- helpers

log() { printf '[services] %s\n' "$*" >&2; }
die() {
    printf '[services] ERROR: %s\n' "$*" >&2
    exit 1
}

now() { printf '%s' "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT
port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# pid_alive PIDFILE [CMDLINE-SUBSTRING]: the process in PIDFILE runs (and its command line matches)
pid_alive() {
    local pidfile="$1" want="${2:-}" pid cmd
    [[ -s "$pidfile" ]] || return 1
    pid="$(tr -dc '0-9' <"$pidfile")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
    if [[ -n "$want" ]]; then
        cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
        [[ "$cmd" == *"$want"* ]] || return 1
    fi
}

# kill_pidfile NAME PIDFILE [GRACE-SECONDS]: TERM, wait, then KILL; removes the pid file
kill_pidfile() {
    local name="$1" pidfile="$2" grace="${3:-30}" pid i
    if [[ ! -s "$pidfile" ]]; then
        log "$name: not running"
        return 0
    fi
    pid="$(tr -dc '0-9' <"$pidfile")"
    if [[ -z "$pid" ]] || ! kill -0 "$pid" 2>/dev/null; then
        log "$name: not running (stale pid file removed)"
        rm -f "$pidfile"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name: still running after ${grace}s, sending KILL to $pid"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
    fi
    rm -f "$pidfile"
    log "$name: stopped (pid $pid)"
}

# fail_start NAME LOGFILE MESSAGE: print the log tail and exit non-zero
fail_start() {
    local name="$1" logfile="$2" msg="$3"
    printf '[services] ERROR: %s: %s\n' "$name" "$msg" >&2
    if [[ -f "$logfile" ]]; then
        printf '[services] ---- last 40 lines of %s ----\n' "$logfile" >&2
        tail -n 40 "$logfile" >&2 || true
        printf '[services] ---- end of %s ----\n' "$logfile" >&2
    fi
    exit 1
}

# ensure_port_free NAME PORT: refuse to start when another process already owns our port
ensure_port_free() {
    if port_open "$2"; then
        die "$1: port $HOST:$2 is already in use by another process (another checkout's services?);" \
            "stop it or choose other ports with the STREAMDUCK_*_PORT variables"
    fi
}

# wait_until NAME LOGFILE PIDFILE COMMAND...: poll COMMAND until it succeeds, the process dies or TIMEOUT
wait_until() {
    local name="$1" logfile="$2" pidfile="$3" deadline
    shift 3
    deadline=$((SECONDS + TIMEOUT))
    until "$@" >/dev/null 2>&1; do
        if [[ -n "$pidfile" ]] && ! pid_alive "$pidfile"; then
            fail_start "$name" "$logfile" "the process exited during start-up"
        fi
        if ((SECONDS >= deadline)); then
            [[ -n "$pidfile" ]] && kill_pidfile "$name" "$pidfile" 10
            fail_start "$name" "$logfile" "not ready after ${TIMEOUT}s"
        fi
        sleep 0.1
    done
}

as_root() {
    if [[ "$(id -u)" == 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run: $* (or install it by hand)"
    fi
}

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install $* by hand"
    local made_policy=0
    # Keep Debian's maintainer scripts from starting system-wide daemons (e.g. redis on 6379).
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        as_root sh -c 'printf "#!/bin/sh\nexit 101\n" >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d'
        made_policy=1
    fi
    if [[ "$APT_UPDATED" == 0 ]]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    log "apt-get install -y $*"
    local rc=0
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" || rc=$?
    if [[ "$made_policy" == 1 ]]; then
        as_root rm -f /usr/sbin/policy-rc.d
    fi
    ((rc == 0)) || die "apt-get install $* failed (exit $rc)"
}

need_cmd() { command -v "$1" >/dev/null 2>&1 || die "$1 not found: $2"; }

# A Python for the Kafka readiness probe: the project's venv (has confluent-kafka), then python3.13, then
# pyenv's 3.13.0. Prints nothing when none works.
find_python() {
    local c
    for c in "$ROOT/.venv/bin/python" python3.13 "$(pyenv root 2>/dev/null || echo /nonexistent)/versions/3.13.0/bin/python3.13"; do
        if "$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 13) else 1)' >/dev/null 2>&1; then
            printf '%s' "$c"
            return 0
        fi
    done
}

# rotate_log FILE: keep the previous run's log as FILE.1 so a start's log tail shows only this run
rotate_log() { if [[ -f "$1" ]]; then mv -f "$1" "$1.1"; fi; }

sha_of() { sha256sum "$@" | sha256sum | cut -c1-64; }
