#!/bin/sh
# azd postprovision hook: writes local.settings.json so that `func start` runs against the resources that
# `azd provision` just created, signed in as you (`az login`; you hold the same data roles as the app).
# The settings come from the STREAMDUCK_LOCAL_SETTINGS output of infra/main.bicep; Key Vault references
# are resolved with the Azure CLI when it is available. Keys you added to local.settings.json yourself are
# kept. Set STREAMDUCK_SKIP_LOCAL_SETTINGS=true to skip this step (CI pipelines).
set -eu

if [ "${STREAMDUCK_SKIP_LOCAL_SETTINGS:-false}" = "true" ]; then
  echo "postprovision: STREAMDUCK_SKIP_LOCAL_SETTINGS=true, local.settings.json left alone"
  exit 0
fi

PYTHON=$(command -v python3 || command -v python || true)
if [ -z "$PYTHON" ]; then
  echo "postprovision: python3 not found; local.settings.json not written" >&2
  exit 0
fi

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
azd env get-values --output json | "$PYTHON" "$ROOT/infra/hooks/write_local_settings.py" "$ROOT/local.settings.json"
