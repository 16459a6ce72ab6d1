#!/bin/sh
# azd postdeploy hook: runs `streamduck verify` against the deployment that `azd deploy` just updated. It sends
# tagged test events through every configured source (Event Hubs mappings, Kafka topics) and waits until they
# land in MotherDuck, ClickHouse and Redis; a miss fails the hook, and so `azd up` / `azd deploy`.
# The settings are the function app's (azd environment output STREAMDUCK_LOCAL_SETTINGS, Key Vault references
# resolved with the Azure CLI); the check signs in as you (`az login`). Extra arguments for `streamduck verify`
# go in STREAMDUCK_VERIFY_ARGS. Set STREAMDUCK_VERIFY_ON_DEPLOY=false to skip the check.
set -eu

if [ "$(printf '%s' "${STREAMDUCK_VERIFY_ON_DEPLOY:-true}" | tr 'A-Z' 'a-z')" = "false" ]; then
  echo "postdeploy: STREAMDUCK_VERIFY_ON_DEPLOY=false, streamduck verify skipped"
  exit 0
fi

ROOT=$(cd "$(dirname "$0")/../.." && pwd)

STREAMDUCK=$(command -v streamduck || true)
if [ -z "$STREAMDUCK" ] && [ -x "$ROOT/.venv/bin/streamduck" ]; then
  STREAMDUCK="$ROOT/.venv/bin/streamduck"
fi
if [ -z "$STREAMDUCK" ]; then
  {
    echo "postdeploy: the streamduck CLI is not installed, so the deployment could not be verified."
    echo "  Install it (Python 3.13) in this folder:  python3.13 -m venv .venv && .venv/bin/pip install -e '.[local]'"
    echo "  (or, in an active virtual environment:   pip install -e '.[local]'), then run: azd hooks run postdeploy"
    echo "  To deploy without the check:              azd env set STREAMDUCK_VERIFY_ON_DEPLOY false"
  } >&2
  exit 1
fi

PYTHON=$(command -v python3 || command -v python || true)
if [ -z "$PYTHON" ]; then
  echo "postdeploy: python3 not found; cannot read the azd environment for streamduck verify" >&2
  exit 1
fi

# STREAMDUCK_VERIFY_ARGS is split on blanks on purpose: it holds options such as "--json --timeout 300".
# shellcheck disable=SC2086
azd env get-values --output json | "$PYTHON" "$ROOT/infra/hooks/verify_deployment.py" "$STREAMDUCK" ${STREAMDUCK_VERIFY_ARGS:-}
