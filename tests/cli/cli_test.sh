#!/usr/bin/env bash
# End-to-end checks of the shoal binary's stack verbs: exit codes (0 no change,
# 2 changes, 1 error), output formats, and messages that name the place.
# Usage: cli_test.sh PATH/TO/shoal
set -uo pipefail
SHOAL=$(realpath "$1")
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# No daemon: these checks are about the CLI alone.
export SHOAL_HOST="unix://$WORK/no-daemon.sock"
passed=0
failed=0

check() {  # check NAME EXPECTED_RC ACTUAL_RC
  if [[ $2 -eq $3 ]]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $1: exit code $3, expected $2"
  fi
}

contains() {  # contains NAME FILE TEXT
  if grep -qF -- "$3" "$2"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $1: output lacks \"$3\""
    sed 's/^/  | /' "$2"
  fi
}

cp -r "$ROOT/stacks/demo" "$WORK/demo"
cd "$WORK"

"$SHOAL" deploy --dry-run demo/stack.yml >out.txt 2>err.txt
check "dry-run of a new stack" 2 $?
contains "dry-run lists services" out.txt "+ service demo_web"
contains "dry-run summary" out.txt "Plan: 7 to create"

"$SHOAL" deploy --dry-run --format json -c demo/stack.yml >plan.json 2>err.txt
check "dry-run json" 2 $?
python3 -c 'import json,sys; p=json.load(open("plan.json")); sys.exit(0 if p["summary"]["create"]==7 and p["stack"]=="demo" else 1)'
check "dry-run json parses" 0 $?
if grep -q "demo-key-not-a-real-secret" plan.json out.txt; then
  check "secret value never printed" 0 1
else
  check "secret value never printed" 0 0
fi

"$SHOAL" diff demo/stack.yml demo/stack.yml >out.txt 2>err.txt
check "diff of a file with itself" 0 $?
contains "no changes" out.txt "No changes."

sed -e 's/replicas: 2/replicas: 3/' -e 's/"0.25"/"0.5"/' demo/stack.yml >demo/new.yml
"$SHOAL" diff demo/stack.yml demo/new.yml >out.txt 2>err.txt
check "diff with changes" 2 $?
contains "replicas in place" out.txt "replicas: 2 -> 3"
contains "cpus replace tasks" out.txt "resources.limits.cpus: 0.25 -> 0.5"

# Key order and defaults written out are not changes.
cat >a.yml <<'YML'
services:
  web:
    image: nginx
    ports: ["80:80"]
YML
cat >b.yml <<'YML'
services:
  web:
    ports:
      - target: 80
        published: 80
        protocol: tcp
        mode: ingress
    deploy: {replicas: 1, mode: replicated}
    image: nginx
YML
"$SHOAL" diff --name s a.yml b.yml >out.txt 2>err.txt
check "defaults and order are no change" 0 $?

printf 'services:\n  web:\n    image: x\n    deploy:\n      replicas: three\n' >bad.yml
"$SHOAL" deploy --dry-run -c bad.yml >out.txt 2>err.txt
check "invalid file" 1 $?
contains "error names the place" err.txt 'bad.yml:5:17: services.web.deploy.replicas: expected an integer, got "three"'

"$SHOAL" deploy -c demo/stack.yml >out.txt 2>err.txt
check "deploy without a cluster" 1 $?
contains "deploy says why" err.txt "no shoal daemon answers"

"$SHOAL" config -c demo/stack.yml >cfg.yml 2>err.txt
check "config" 0 $?
"$SHOAL" config --format json -c demo/stack.yml >cfg.json 2>err.txt
check "config json" 0 $?
python3 -c 'import json; json.load(open("cfg.json"))'
check "config json parses" 0 $?
cp cfg.yml demo/printed.yml
"$SHOAL" diff --name demo demo/stack.yml demo/printed.yml >out.txt 2>err.txt
check "config output deploys to the same stack" 0 $?

"$SHOAL" config -c does-not-exist.yml >out.txt 2>err.txt
check "missing file" 1 $?
contains "missing file named" err.txt "does-not-exist.yml"

"$SHOAL" nosuchverb >out.txt 2>err.txt
check "unknown verb" 1 $?

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
