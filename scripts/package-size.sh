#!/usr/bin/env bash
# Size of the deployed Python packages: installs requirements.txt the way the Functions remote build does
# (`pip install --target <dir> -r requirements.txt` with the app's Python, 3.13) into a temporary folder,
# prints the total and the largest packages, and fails when the total exceeds the limit.
# Everything in requirements.txt ships with the app and loads from its package mount, so its size costs
# build time, cold start and import time (https://learn.microsoft.com/azure/azure-functions/python-build-options).
#
# Usage: scripts/package-size.sh [REQUIREMENTS] [LIMIT_MB]
#   REQUIREMENTS  default requirements.txt (or PACKAGE_SIZE_REQUIREMENTS)
#   LIMIT_MB      default 450 (or PACKAGE_SIZE_LIMIT_MB); 1 MB = 1,000,000 bytes of file content
#   PYTHON        the interpreter to install with (default: scripts/find-python.sh, Python 3.13)
# pip's own variables (PIP_INDEX_URL, PIP_NO_INDEX, ...) apply as usual.
set -euo pipefail
export PIP_ROOT_USER_ACTION="${PIP_ROOT_USER_ACTION:-ignore}"  # CI machines often install as root

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
requirements="${1:-${PACKAGE_SIZE_REQUIREMENTS:-$here/../requirements.txt}}"
limit_mb="${2:-${PACKAGE_SIZE_LIMIT_MB:-450}}"
python="${PYTHON:-$(bash "$here/find-python.sh")}"

[[ -f "$requirements" ]] || { echo "package-size: no requirements file $requirements" >&2; exit 2; }
[[ "$limit_mb" =~ ^[0-9]+$ ]] || { echo "package-size: the limit must be whole MB, not '$limit_mb'" >&2; exit 2; }

target="$(mktemp -d "${TMPDIR:-/tmp}/streamduck-package-size.XXXXXX")"
trap 'rm -rf "$target"' EXIT

echo "package-size: $("$python" -c 'import sys; print("Python %d.%d.%d" % sys.version_info[:3])') -m pip install --target <temporary folder> -r $requirements"
"$python" -m pip install --quiet --disable-pip-version-check --target "$target" -r "$requirements"

# Apparent sizes (file content, as zipped into the package), in bytes.
total_bytes=$(du -s --apparent-size --block-size=1 "$target" | cut -f1)
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1000000 }'; }

echo "package-size: largest packages"
for entry in "$target"/*; do
    printf '%s\t%s\n' "$(du -s --apparent-size --block-size=1 "$entry" | cut -f1)" "$(basename "$entry")"
done | sort -rn | head -n 15 | while IFS=$'\t' read -r bytes name; do
    printf '  %8s MB  %s\n' "$(mb "$bytes")" "$name"
done

total_mb="$(mb "$total_bytes")"
if ((total_bytes > limit_mb * 1000000)); then
    echo "package-size: FAIL: the deployed packages take $total_mb MB, more than the limit of $limit_mb MB;" \
        "move what does not run in Azure to the local extra in pyproject.toml" >&2
    exit 1
fi
echo "package-size: OK: the deployed packages take $total_mb MB (limit $limit_mb MB)"
