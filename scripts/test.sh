#!/usr/bin/env bash
# The test command of README.md and .ci/run: installs the packages, builds
# everything with -Werror, and runs every test (unit, conformance over
# ../shared/corpus, the corpus replay of the fuzz target, and the simulation).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
BUILD_DIR=${SHOAL_BUILD_DIR:-build}
if [[ ! -d ../shared/corpus ]]; then
  echo "test: ../shared/corpus is missing; the conformance tests read it in place" >&2
  exit 1
fi
cd "$BUILD_DIR"
ctest --output-on-failure --timeout 600 -j"${SHOAL_JOBS:-$(nproc)}"
