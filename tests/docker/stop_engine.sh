#!/usr/bin/env bash
# Stops the engine setup_engine.sh DIR started: removes every container and
# network left on it, ends dockerd (SIGTERM, then SIGKILL after 20 s) and its
# containerd, unmounts what it left under DIR and deletes DIR.
set -uo pipefail
DIR=${1:?usage: stop_engine.sh DIR}
[[ -d $DIR ]] || exit 0
DIR=$(cd "$DIR" && pwd)
SOCK="$DIR/docker.sock"
PIDFILE="$DIR/docker.pid"
api() { curl -sf --max-time 30 --unix-socket "$SOCK" "$@"; }
if [[ -f $PIDFILE ]]; then
  PID=$(cat "$PIDFILE")
  if kill -0 "$PID" 2>/dev/null; then
    # Containers first, so that nothing keeps running after the engine.
    for id in $(api 'http://engine/v1.41/containers/json?all=1' | grep -o '"Id":"[0-9a-f]*"' | cut -d'"' -f4); do
      api -X DELETE "http://engine/v1.41/containers/$id?force=1&v=1" >/dev/null
    done
    NETS=$(api 'http://engine/v1.41/networks?filters=%7B%22type%22%3A%5B%22custom%22%5D%7D' | grep -o '"Id":"[0-9a-f]*"' | cut -d'"' -f4)
    for id in $NETS; do
      api -X DELETE "http://engine/v1.41/networks/$id" >/dev/null
    done
    kill -TERM "$PID"
    for _ in $(seq 1 200); do
      kill -0 "$PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$PID" 2>/dev/null && kill -KILL "$PID"
  fi
fi
# dockerd's own containerd, if it outlived dockerd.
CPID="$DIR/exec/containerd/containerd.pid"
if [[ -f $CPID ]] && kill -0 "$(cat "$CPID")" 2>/dev/null; then
  kill -TERM "$(cat "$CPID")"
  for _ in $(seq 1 50); do
    kill -0 "$(cat "$CPID")" 2>/dev/null || break
    sleep 0.1
  done
fi
# Mounts the engine left (overlay layers, netns, shm) would make rm fail.
grep -o " $DIR/[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
# A bridge network the engine could not delete keeps its interface br-<id>.
for id in ${NETS:-}; do
  ip link del "br-${id:0:12}" 2>/dev/null
done
if [[ -f $DIR/bridge ]]; then
  ip link del "$(cat "$DIR/bridge")" 2>/dev/null
fi
rm -rf "$DIR"
echo "stop_engine: stopped the engine in $DIR"
