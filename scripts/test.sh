#!/usr/bin/env bash
# The whole test suite (`make test`): install and start the local services, run pytest against them,
# always stop the services afterwards (STREAMDUCK_KEEP_SERVICES=1 leaves them running for the next run).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k kafka`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [[ ! -x .venv/bin/python ]]; then
    echo "[test] .venv missing: make venv" >&2
    make venv
fi

cleanup() {
    local rc=$?
    if [[ "${STREAMDUCK_KEEP_SERVICES:-0}" == 1 ]]; then
        echo "[test] STREAMDUCK_KEEP_SERVICES=1: leaving the local services running (make services-down)" >&2
    else
        echo "[test] stopping local services" >&2
        bash scripts/services.sh stop || rc=1
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "[test] installing local services" >&2
bash scripts/services.sh install
if ! command -v docker-compose >/dev/null 2>&1; then
    # tests/infra validates docker-compose.yml with `docker-compose config` (no Docker engine needed).
    echo "[test] apt-get install docker-compose" >&2
    root=()
    [[ "$(id -u)" == 0 ]] || root=(sudo)
    "${root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose \
        || { "${root[@]}" apt-get update -qq && "${root[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends docker-compose; }
fi
echo "[test] starting local services" >&2
bash scripts/services.sh start
# shellcheck source=/dev/null
source .services/env

echo "[test] .venv/bin/python -m pytest $*" >&2
.venv/bin/python -m pytest "$@"
