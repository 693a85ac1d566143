#!/usr/bin/env bash
# Configures and builds shoal in ./build (or $SHOAL_BUILD_DIR) with Ninja.
# Warnings are errors (-Werror), as in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${SHOAL_BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=${SHOAL_BUILD_TYPE:-RelWithDebInfo} -DSHOAL_WERROR=ON >/dev/null
ninja -C "$BUILD_DIR" -j"${SHOAL_JOBS:-$(nproc)}"
