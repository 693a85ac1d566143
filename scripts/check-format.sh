#!/usr/bin/env bash
# Fails when a tracked C++ file is not formatted by clang-format (.clang-format:
# Google base, 100 columns). Run `clang-format -i FILE` to fix.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-format >/dev/null; then
  echo "check-format: clang-format is not installed (scripts/setup.sh installs it)" >&2
  exit 1
fi
files=$(git ls-files '*.cc' '*.h' 2>/dev/null || find src tests -name '*.cc' -o -name '*.h')
bad=$(echo "$files" | xargs clang-format --dry-run 2>&1 | grep -o '^[^:]*:[0-9]*:[0-9]*: warning' | cut -d: -f1 | sort -u || true)
if [[ -n "$bad" ]]; then
  echo "check-format: not formatted:" >&2
  echo "$bad" | sed 's/^/  /' >&2
  exit 1
fi
echo "check-format: $(echo "$files" | wc -l) files formatted"
