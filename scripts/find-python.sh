#!/usr/bin/env bash
# Print the path of a working Python 3.13: python3.13 from PATH first, then pyenv's 3.13.x.
# (A pyenv shim on PATH may exist without 3.13 being selected, so each candidate must actually run.)
set -u
candidates=(python3.13)
if command -v pyenv >/dev/null 2>&1; then
  root=$(pyenv root)
  for d in "$root"/versions/3.13.*; do
    [ -x "$d/bin/python3.13" ] && candidates+=("$d/bin/python3.13")
  done
fi
for c in "${candidates[@]}"; do
  if path=$(command -v "$c" 2>/dev/null) && "$path" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then
    "$path" -c 'import sys; print(sys.executable)'
    exit 0
  fi
done
echo "python3.13 not found: install Python 3.13 (on PATH or with pyenv)" >&2
exit 1
