#!/usr/bin/env bash
# The main job of README.md: installs the packages, builds shoal, starts a
# one-node dev cluster (`shoal daemon --dev`: tasks as containers when a Docker
# Engine answers, else as host processes), deploys
# stacks/demo for real, waits until it converges and shows `shoal stack ps`.
# The daemon and its tasks are stopped at the end unless SHOAL_DEMO_KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
SHOAL=$(pwd)/${SHOAL_BUILD_DIR:-build}/src/cli/shoal
RUN=$(mktemp -d /tmp/shoal-demo-XXXXXX)
SOCK=$RUN/shoal.sock
export SHOAL_HOST=unix://$SOCK

# With a Docker Engine on this machine, --dev runs the tasks as containers of
# a local busybox image (built here: there is no registry); without one, as
# host processes.
EXECUTOR=()
DOCKER_SOCK=/var/run/docker.sock
[[ ${DOCKER_HOST:-} == unix://* ]] && DOCKER_SOCK=${DOCKER_HOST#unix://}
if curl -sf --max-time 2 --unix-socket "$DOCKER_SOCK" http://engine/_ping >/dev/null 2>&1; then
  echo "== a Docker Engine answers at $DOCKER_SOCK: building the image shoal/busybox:latest"
  if ! bash scripts/busybox_image.sh "$DOCKER_SOCK" shoal/busybox:latest; then
    echo "== the image could not be built: running the tasks as host processes"
    EXECUTOR=(--executor process)
  fi
fi

echo "== shoal daemon --dev"
"$SHOAL" daemon --dev "${EXECUTOR[@]}" --socket "$SOCK" >"$RUN/daemon.out" 2>"$RUN/daemon.log" &
DAEMON=$!
stop() {
  if [[ ${SHOAL_DEMO_KEEP:-0} != 1 ]]; then
    "$SHOAL" stack rm demo >/dev/null 2>&1 || true
    kill -TERM "$DAEMON" 2>/dev/null || true
    wait "$DAEMON" 2>/dev/null || true
    rm -rf "$RUN"
  else
    echo "daemon left running (pid $DAEMON); SHOAL_HOST=$SHOAL_HOST"
  fi
}
trap stop EXIT
# Wait (bounded) for the daemon to say it is ready.
for _ in $(seq 1 100); do
  grep -q READY "$RUN/daemon.out" 2>/dev/null && break
  kill -0 "$DAEMON" 2>/dev/null || { cat "$RUN/daemon.log"; exit 1; }
  sleep 0.1
done
grep -q READY "$RUN/daemon.out" || { echo "daemon did not start"; cat "$RUN/daemon.log"; exit 1; }
cat "$RUN/daemon.log"

echo "== shoal deploy stacks/demo/stack.yml"
"$SHOAL" deploy --timeout 60 stacks/demo/stack.yml
echo "== shoal stack ps demo"
"$SHOAL" stack ps demo
echo "== shoal service ls"
"$SHOAL" service ls
echo "== curl http://127.0.0.1:8080/ (served by the web task)"
busybox wget -q -O - http://127.0.0.1:8080/ | head -5 || true
