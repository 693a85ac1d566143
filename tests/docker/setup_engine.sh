#!/usr/bin/env bash
# Starts a private Docker Engine for shoal's Docker tests and builds the test
# image `shoal-busybox:latest` FROM scratch with busybox (there is no registry).
#
#   tests/docker/setup_engine.sh DIR
#
# DIR holds everything of this engine: docker.sock, data/, exec/, docker.pid,
# dockerd.log. On success it writes DIR/engine.env (DOCKER_HOST=unix://...)
# and exits 0. When the engine cannot start it writes the reason to
# DIR/unavailable and still exits 0, so that the tests that need the engine
# are reported as skipped with that reason (never silently) rather than the
# whole run failing on a machine without Docker. tests/docker/stop_engine.sh
# DIR stops it and deletes what it made.
set -uo pipefail
DIR=${1:?usage: setup_engine.sh DIR}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
rm -f "$DIR/engine.env" "$DIR/unavailable"

unavailable() {
  echo "setup_engine: $*" >&2
  echo "$*" >"$DIR/unavailable"
  exit 0
}

# Packages: Debian's docker.io (dockerd, containerd, runc) and busybox-static.
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
[[ -x /bin/busybox ]] || missing+=(busybox-static)
if ((${#missing[@]})); then
  [[ $(id -u) -eq 0 ]] || unavailable "missing ${missing[*]} and not root to install them"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    >"$DIR/apt.log" 2>&1 || unavailable "apt-get install ${missing[*]} failed (see $DIR/apt.log)"
fi
[[ $(id -u) -eq 0 ]] || unavailable "dockerd needs root; running as uid $(id -u)"

SOCK="$DIR/docker.sock"
PIDFILE="$DIR/docker.pid"
export DOCKER_HOST="unix://$SOCK"
curl_ok() { curl -sf --max-time 2 --unix-socket "$SOCK" http://engine/v1.41/_ping >/dev/null 2>&1; }

if [[ -f $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null && curl_ok; then
  echo "setup_engine: reusing the engine at $SOCK"
else
  rm -f "$SOCK" "$PIDFILE"
  # A bridge and address pool of its own (from a hash of DIR), so that two
  # such engines (two build trees testing at once) never share docker0 or
  # hand out the same subnets.
  N=$(($(printf '%s' "$DIR" | cksum | cut -d' ' -f1) % 200))
  BR="shoal-dk$N"
  if ! ip link show "$BR" >/dev/null 2>&1; then
    { ip link add "$BR" type bridge && ip addr add "192.168.$N.1/24" dev "$BR" &&
      ip link set "$BR" up; } >"$DIR/bridge.log" 2>&1 ||
      unavailable "cannot make bridge $BR: $(cat "$DIR/bridge.log")"
  fi
  echo "$BR" >"$DIR/bridge"
  # setsid: the engine outlives this script (CTest runs it as a fixture) and
  # does not get the terminal's signals; stop_engine.sh ends it by its pid.
  setsid dockerd --host "unix://$SOCK" --data-root "$DIR/data" --exec-root "$DIR/exec" \
    --pidfile "$PIDFILE" --storage-driver overlay2 --bridge "$BR" \
    --default-address-pool "base=10.$((16 + N)).0.0/16,size=24" \
    >"$DIR/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 300); do
    curl_ok && break
    if ! kill -0 $! 2>/dev/null; then
      unavailable "dockerd exited at start: $(tail -n 3 "$DIR/dockerd.log" | tr '\n' ' ')"
    fi
    sleep 0.1
  done
  curl_ok || unavailable "dockerd did not answer on $SOCK within 30 s (see $DIR/dockerd.log)"
fi

# The test image: busybox FROM scratch (scripts/busybox_image.sh).
bash "$(dirname "$0")/../../scripts/busybox_image.sh" "$SOCK" shoal-busybox:latest \
  2>"$DIR/build.log" || unavailable "$(cat "$DIR/build.log")"
echo "DOCKER_HOST=$DOCKER_HOST" >"$DIR/engine.env"
echo "setup_engine: engine ready at $DOCKER_HOST with shoal-busybox:latest"
