#!/usr/bin/env bash
# The main job of README.md: installs the packages, builds shoal and shows what
# deploying stacks/demo would do. (A deploy on a local dev cluster arrives with
# the cluster; until then the plan is made against an empty cluster.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
SHOAL=${SHOAL_BUILD_DIR:-build}/src/cli/shoal
echo "== shoal config -c stacks/demo/stack.yml"
"$SHOAL" config -c stacks/demo/stack.yml
echo "== shoal deploy --dry-run stacks/demo/stack.yml"
set +e
"$SHOAL" deploy --dry-run stacks/demo/stack.yml
rc=$?
set -e
# Exit codes of a plan: 0 no change, 2 changes, 1 error.
if [[ $rc -eq 1 ]]; then exit 1; fi
exit 0
