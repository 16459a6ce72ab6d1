# shellcheck shell=bash source-path=SCRIPTDIR
# Sourced by scripts/services.sh (not run on its own): Azurite (Azure Storage emulator) from npm.

# The Azurite account and key are the emulator's published, well-known development credentials.
AZURITE_ACCOUNT=devstoreaccount1
AZURITE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

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

azurite_env() {
    local az="DefaultEndpointsProtocol=http;AccountName=$AZURITE_ACCOUNT;AccountKey=$AZURITE_KEY"
    az+=";BlobEndpoint=http://$HOST:$AZURITE_BLOB_PORT/$AZURITE_ACCOUNT"
    az+=";QueueEndpoint=http://$HOST:$AZURITE_QUEUE_PORT/$AZURITE_ACCOUNT"
    az+=";TableEndpoint=http://$HOST:$AZURITE_TABLE_PORT/$AZURITE_ACCOUNT;"
    printf "export STREAMDUCK_TEST_AZURITE_CONNECTION_STRING='%s'\n" "$az"
    printf "export AzureWebJobsStorage='%s'\n" "$az"
}
azurite_clean() { rm -rf "$AZURITE_DIR"; }
