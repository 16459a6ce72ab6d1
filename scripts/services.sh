#!/usr/bin/env bash
# Local services for the test suite: Redis, Apache Kafka (KRaft), Azurite and PostgreSQL 15.
#
#   bash scripts/services.sh install [SERVICE...]   install binaries/jars (idempotent, cached)
#   bash scripts/services.sh start   [SERVICE...]   start and wait until ready (idempotent), write .services/env
#   bash scripts/services.sh stop    [SERVICE...]   stop what start started
#   bash scripts/services.sh status  [SERVICE...]   print up/down per service (exit 1 if any is down)
#   bash scripts/services.sh env                    print the `export` lines the tests read
#   bash scripts/services.sh clean                  stop everything and delete service data (keeps installs)
#
# SERVICE is one of: redis kafka azurite postgres (default: all of them).
# Everything listens on 127.0.0.1 only; data, logs and pid files live under .services/ (git-ignored).
# Ports can be overridden: STREAMDUCK_REDIS_PORT (16379), STREAMDUCK_KAFKA_PORT (19092),
# STREAMDUCK_KAFKA_CONTROLLER_PORT (19093), STREAMDUCK_AZURITE_BLOB_PORT / _QUEUE_PORT / _TABLE_PORT
# (10000/10001/10002), STREAMDUCK_PG_PORT (15432). STREAMDUCK_SERVICES_TIMEOUT (seconds, default 90)
# bounds each readiness wait.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SVC="$ROOT/.services"

REDIS_PORT="${STREAMDUCK_REDIS_PORT:-16379}"
KAFKA_PORT="${STREAMDUCK_KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${STREAMDUCK_KAFKA_CONTROLLER_PORT:-19093}"
AZURITE_BLOB_PORT="${STREAMDUCK_AZURITE_BLOB_PORT:-10000}"
AZURITE_QUEUE_PORT="${STREAMDUCK_AZURITE_QUEUE_PORT:-10001}"
AZURITE_TABLE_PORT="${STREAMDUCK_AZURITE_TABLE_PORT:-10002}"
PG_PORT="${STREAMDUCK_PG_PORT:-15432}"
TIMEOUT="${STREAMDUCK_SERVICES_TIMEOUT:-90}"
KAFKA_HEAP_OPTS="${STREAMDUCK_KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"

HOST=127.0.0.1
ALL_SERVICES=(redis kafka azurite postgres)

# The Azurite account and key are the emulator's published, well-known development credentials.
AZURITE_ACCOUNT=devstoreaccount1
AZURITE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

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

# ------------------------------------------------------------------------------------------------ kafka

KAFKA_DIR="$SVC/kafka"
KAFKA_LIBS="$KAFKA_DIR/libs"
KAFKA_POM="$ROOT/scripts/kafka/pom.xml"
KAFKA_PID="$KAFKA_DIR/kafka.pid"
KAFKA_LOG="$KAFKA_DIR/server.log"
KAFKA_OUT="$KAFKA_DIR/stdout.log"
KAFKA_DATA="$KAFKA_DIR/data"

kafka_install() {
    need_cmd java "a Java 17+ runtime is required for Kafka"
    need_cmd mvn "Maven is required to fetch the Kafka jars"
    local want
    want="$(sha_of "$KAFKA_POM")"
    if [[ -f "$KAFKA_LIBS/.stamp" && "$(cat "$KAFKA_LIBS/.stamp")" == "$want" ]]; then
        log "kafka: jars already installed ($(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars)"
        return 0
    fi
    log "kafka: fetching jars with mvn dependency:copy-dependencies (scripts/kafka/pom.xml)"
    rm -rf "$KAFKA_LIBS.tmp"
    mkdir -p "$KAFKA_DIR"
    mvn -B -Dstyle.color=never -f "$KAFKA_POM" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS.tmp" >"$KAFKA_DIR/mvn.log" 2>&1 ||
        fail_start kafka "$KAFKA_DIR/mvn.log" "mvn dependency:copy-dependencies failed"
    rm -rf "$KAFKA_LIBS"
    mv "$KAFKA_LIBS.tmp" "$KAFKA_LIBS"
    printf '%s' "$want" >"$KAFKA_LIBS/.stamp"
    log "kafka: installed $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars"
}

kafka_write_config() {
    mkdir -p "$KAFKA_DIR"
    cat >"$KAFKA_DIR/server.properties" <<EOF
# Generated by scripts/services.sh: single-node KRaft broker+controller for the tests.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DATA
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
delete.topic.enable=true
log.retention.hours=24
log.segment.bytes=16777216
EOF
    cat >"$KAFKA_DIR/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $KAFKA_LOG
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state-change.name = state.change.logger
logger.state-change.level = WARN
EOF
}

# The JVM command line shared by the storage tool and the broker.
kafka_java_cmd() {
    local heap
    read -r -a heap <<<"$KAFKA_HEAP_OPTS"
    KAFKA_JAVA=(java "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
        -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" -Dkafka.logs.dir="$KAFKA_DIR"
        -cp "$KAFKA_LIBS/*")
}

kafka_launch() {
    [[ -f "$KAFKA_LIBS/.stamp" ]] || die "kafka: jars not installed: run: bash scripts/services.sh install"
    if pid_alive "$KAFKA_PID" kafka.Kafka; then
        log "kafka: already running on $HOST:$KAFKA_PORT"
        KAFKA_T0=""
        return 0
    fi
    rm -f "$KAFKA_PID"
    ensure_port_free kafka "$KAFKA_PORT"
    ensure_port_free kafka-controller "$KAFKA_CONTROLLER_PORT"
    KAFKA_T0="$(now)"
    rotate_log "$KAFKA_LOG"
    rotate_log "$KAFKA_OUT"
    kafka_write_config
    kafka_java_cmd
    if [[ ! -f "$KAFKA_DATA/meta.properties" ]]; then
        local cluster_id
        # A cluster id is 16 random bytes in URL-safe base64 without padding (22 characters).
        cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
        rm -rf "$KAFKA_DATA"
        "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format --ignore-formatted -t "$cluster_id" \
            -c "$KAFKA_DIR/server.properties" >"$KAFKA_DIR/format.log" 2>&1 ||
            fail_start kafka "$KAFKA_DIR/format.log" "formatting the KRaft storage failed"
        log "kafka: formatted storage (cluster id $cluster_id) in $(elapsed "$KAFKA_T0")s"
    fi
    setsid nohup "${KAFKA_JAVA[@]}" kafka.Kafka "$KAFKA_DIR/server.properties" </dev/null >"$KAFKA_OUT" 2>&1 &
    echo $! >"$KAFKA_PID"
}

# Ready = a Kafka client lists metadata with our broker in it (confluent-kafka from the venv, polled in one
# Python process); without a usable Python, the broker's own "started" log line plus an open port.
kafka_client_ready() {
    local py="$1"
    "$py" - "$HOST:$KAFKA_PORT" "$(cat "$KAFKA_PID")" "$TIMEOUT" <<'EOF'
import os
import sys
import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

brokers, pid, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
admin = AdminClient({"bootstrap.servers": brokers, "socket.connection.setup.timeout.ms": 1000, "log_level": 0})
deadline = time.monotonic() + timeout
last_error = "no attempt finished"
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(f"the broker process exited (last error: {last_error})")
    try:
        metadata = admin.list_topics(timeout=1)
    except KafkaException as exc:  # not up yet: retry until the deadline; the timeout message names it
        last_error = f"{type(exc).__name__}: {exc}"
    else:
        if metadata.brokers:
            sys.exit(0)
        last_error = "metadata without any broker"
    time.sleep(0.1)
sys.exit(f"no metadata from {brokers} after {timeout:.0f}s (last error: {last_error})")
EOF
}

kafka_started_line() { grep -q 'Kafka Server started' "$KAFKA_LOG" 2>/dev/null && port_open "$KAFKA_PORT"; }

kafka_wait() {
    local py msg
    wait_until kafka "$KAFKA_LOG" "$KAFKA_PID" port_open "$KAFKA_PORT"
    py="$(find_python)"
    if [[ -n "$py" ]] && "$py" -c 'import confluent_kafka' >/dev/null 2>&1; then
        if ! msg="$(kafka_client_ready "$py" 2>&1)"; then
            kill_pidfile kafka "$KAFKA_PID" 10
            fail_start kafka "$KAFKA_LOG" "${msg:-not ready}"
        fi
    else
        log "kafka: no Python with confluent-kafka (make venv); waiting for the broker's log line instead"
        wait_until kafka "$KAFKA_LOG" "$KAFKA_PID" kafka_started_line
    fi
    [[ -n "${KAFKA_T0:-}" ]] && log "kafka: ready on $HOST:$KAFKA_PORT in $(elapsed "$KAFKA_T0")s"
    return 0
}

kafka_stop() { kill_pidfile kafka "$KAFKA_PID" 40; }
kafka_status() { pid_alive "$KAFKA_PID" kafka.Kafka && port_open "$KAFKA_PORT"; }

# ---------------------------------------------------------------------------------------------- azurite

NODE_DIR="$SVC/node"
AZURITE_SRC="$ROOT/scripts/azurite"
AZURITE_BIN="$NODE_DIR/node_modules/.bin/azurite"
AZURITE_DIR="$SVC/azurite"
AZURITE_PID="$AZURITE_DIR/azurite.pid"
AZURITE_LOG="$AZURITE_DIR/azurite.log"

azurite_install() {
    need_cmd node "Node.js 20 is required for Azurite"
    need_cmd npm "npm is required to install Azurite"
    local want
    want="$(sha_of "$AZURITE_SRC/package.json" "$AZURITE_SRC/package-lock.json")"
    if [[ -x "$AZURITE_BIN" && -f "$NODE_DIR/.stamp" && "$(cat "$NODE_DIR/.stamp")" == "$want" ]]; then
        log "azurite: already installed"
        return 0
    fi
    log "azurite: npm ci (scripts/azurite/package-lock.json)"
    mkdir -p "$NODE_DIR"
    rm -f "$NODE_DIR/.stamp"
    cp "$AZURITE_SRC/package.json" "$AZURITE_SRC/package-lock.json" "$NODE_DIR/"
    npm ci --prefix "$NODE_DIR" --no-audit --no-fund --ignore-scripts --loglevel=error ||
        die "azurite: npm ci failed"
    [[ -x "$AZURITE_BIN" ]] || die "azurite: $AZURITE_BIN missing after npm ci"
    printf '%s' "$want" >"$NODE_DIR/.stamp"
    log "azurite: installed $(node -p "require('$NODE_DIR/node_modules/azurite/package.json').version")"
}

azurite_ready() {
    port_open "$AZURITE_BLOB_PORT" && port_open "$AZURITE_QUEUE_PORT" && port_open "$AZURITE_TABLE_PORT"
}

azurite_launch() {
    [[ -x "$AZURITE_BIN" ]] || die "azurite: not installed: run: bash scripts/services.sh install"
    mkdir -p "$AZURITE_DIR/data"
    if pid_alive "$AZURITE_PID" azurite; then
        log "azurite: already running on $HOST:$AZURITE_BLOB_PORT-$AZURITE_TABLE_PORT"
        AZURITE_T0=""
        return 0
    fi
    rm -f "$AZURITE_PID"
    local p
    for p in "$AZURITE_BLOB_PORT" "$AZURITE_QUEUE_PORT" "$AZURITE_TABLE_PORT"; do
        ensure_port_free azurite "$p"
    done
    AZURITE_T0="$(now)"
    rotate_log "$AZURITE_LOG"
    setsid nohup "$AZURITE_BIN" --silent --location "$AZURITE_DIR/data" \
        --blobHost "$HOST" --blobPort "$AZURITE_BLOB_PORT" \
        --queueHost "$HOST" --queuePort "$AZURITE_QUEUE_PORT" \
        --tableHost "$HOST" --tablePort "$AZURITE_TABLE_PORT" \
        --skipApiVersionCheck --disableTelemetry --loose \
        </dev/null >"$AZURITE_LOG" 2>&1 &
    echo $! >"$AZURITE_PID"
}

azurite_wait() {
    wait_until azurite "$AZURITE_LOG" "$AZURITE_PID" azurite_ready
    [[ -n "${AZURITE_T0:-}" ]] && log "azurite: ready on $HOST:$AZURITE_BLOB_PORT-$AZURITE_TABLE_PORT in $(elapsed "$AZURITE_T0")s"
    return 0
}

azurite_stop() { kill_pidfile azurite "$AZURITE_PID" 15; }
azurite_status() { pid_alive "$AZURITE_PID" azurite && azurite_ready; }

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
    for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
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
        apt_install postgresql-15
    fi
    local bin
    bin="$(pg_bindir)" || die "postgres: pg_ctl/initdb not found after install"
    if [[ "$(id -u)" == 0 ]] && ! id postgres >/dev/null 2>&1; then
        die "postgres: running as root needs a 'postgres' system user (apt-get install postgresql-15 makes it)"
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

# ------------------------------------------------------------------------------------------------- env

env_lines() {
    local az="DefaultEndpointsProtocol=http;AccountName=$AZURITE_ACCOUNT;AccountKey=$AZURITE_KEY"
    az+=";BlobEndpoint=http://$HOST:$AZURITE_BLOB_PORT/$AZURITE_ACCOUNT"
    az+=";QueueEndpoint=http://$HOST:$AZURITE_QUEUE_PORT/$AZURITE_ACCOUNT"
    az+=";TableEndpoint=http://$HOST:$AZURITE_TABLE_PORT/$AZURITE_ACCOUNT;"
    printf "export STREAMDUCK_TEST_REDIS_URL='redis://%s:%s/0'\n" "$HOST" "$REDIS_PORT"
    printf "export STREAMDUCK_TEST_KAFKA_BROKERS='%s:%s'\n" "$HOST" "$KAFKA_PORT"
    printf "export STREAMDUCK_TEST_AZURITE_CONNECTION_STRING='%s'\n" "$az"
    printf "export STREAMDUCK_TEST_PG_DSN='postgresql://app:app@%s:%s/appdb'\n" "$HOST" "$PG_PORT"
}

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
        redis | kafka | azurite | postgres) SERVICES+=("$s") ;;
        pg) SERVICES+=(postgres) ;;
        *) die "unknown service '$s' (expected: ${ALL_SERVICES[*]})" ;;
        esac
    done
}

wanted() { [[ " ${SERVICES[*]} " == *" $1 "* ]]; }

fn_prefix() { [[ "$1" == postgres ]] && printf 'pg' || printf '%s' "$1"; }

cmd_install() {
    local t0 s
    t0="$(now)"
    mkdir -p "$SVC"
    select_services "$@"
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
    # Launch everything first (Kafka, the slowest, first), then wait for each: start-ups overlap.
    for s in kafka azurite redis postgres; do
        if wanted "$s"; then "$(fn_prefix "$s")_launch"; fi
    done
    for s in redis postgres azurite kafka; do
        if wanted "$s"; then "$(fn_prefix "$s")_wait"; fi
    done
    env_lines >"$SVC/env"
    log "all started in $(elapsed "$t0")s; environment in .services/env (source it)"
}

cmd_stop() {
    local s
    select_services "$@"
    for s in "${SERVICES[@]}"; do
        "$(fn_prefix "$s")_stop"
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
    cmd_stop
    local target
    target="$(readlink -f "$PG_LINK" 2>/dev/null || true)"
    rm -rf "$REDIS_DIR" "$KAFKA_DATA" "$KAFKA_DIR"/*.log "$AZURITE_DIR" "$SVC/env"
    if [[ -n "$target" && "$target" == /tmp/streamduck-pg-* ]]; then
        rm -rf "$target"
    fi
    rm -rf "$PG_LINK"
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
