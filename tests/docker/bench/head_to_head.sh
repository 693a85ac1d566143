#!/usr/bin/env bash
# The head-to-head of issue 6: the same stacks through `docker stack deploy`
# on a one-node Swarm and through `shoal deploy` with the docker executor, on
# one private engine (tests/docker/setup_engine.sh), in one run, plus the
# engine's own floor (the same containers created and started straight
# through the API). Every time is taken by shoal_docker_bench watching the
# engine: from the command's start until the containers run (or are gone).
# The floors are taken for (a), (b), (c) and (f), each the best of
# concurrency 2, 4, 8 and 16 (SHOAL_H2H_FLOOR_CONC), on the default bridge
# and on a network of their own (floor-net, as a stack's containers are);
# for (e) and (g) the engine's part alone (10 replacements, 1 container) as
# a bound on what any orchestrator can reach there.
# SHOAL_H2H_TRACE=DIR keeps the engine's event timeline of every timed
# scenario in DIR/<tool>.<scenario> (shoal_docker_bench, SHOAL_BENCH_TRACE).
#
#   bash tests/docker/bench/head_to_head.sh [BUILD_DIR]     (as root)
#
# For a quicker look at a few scenarios: SHOAL_H2H_SCENARIOS="e g" (default
# all), SHOAL_H2H_TOOLS=shoal (default "swarm shoal"), SHOAL_H2H_FLOORS=0
# (no floors), SHOAL_H2H_REPEAT=N (each timed scenario, and the floors of
# (e) and (g), N times, every time printed, the table showing the median).
#
# Same image (shoal-busybox, FROM scratch), same restart delay (0s), same
# stop grace period (10s), and a command that exits on SIGTERM. Prints one
# line per scenario: shoal, Swarm, the floors, and the ratios. The engine
# lives in SHOAL_H2H_ENGINE (default /tmp/shoal-h2h): give each concurrent
# user a directory of its own.
set -euo pipefail
cd "$(dirname "$0")/../../.."
BUILD=${1:-${SHOAL_BUILD_DIR:-build}}
SHOAL=$(pwd)/$BUILD/src/cli/shoal
BENCH=$(pwd)/$BUILD/tests/docker/shoal_docker_bench
ENGINE=${SHOAL_H2H_ENGINE:-/tmp/shoal-h2h}
RUN=$(mktemp -d /tmp/shoal-h2h-run-XXXXXX)
[[ -n ${SHOAL_H2H_TRACE:-} ]] && mkdir -p "$SHOAL_H2H_TRACE"
bash tests/docker/setup_engine.sh "$ENGINE" >/dev/null
[[ -f $ENGINE/engine.env ]] || { echo "no engine: $(cat "$ENGINE/unavailable")"; exit 1; }
export DOCKER_HOST
DOCKER_HOST=$(sed -n 's/^DOCKER_HOST=//p' "$ENGINE/engine.env")
DAEMON=
cleanup() {
  [[ -n $DAEMON ]] && kill -TERM "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null
  docker swarm leave --force >/dev/null 2>&1 || true
  # The daemon's log goes with the timelines.
  if [[ -n ${SHOAL_H2H_TRACE:-} && -f $RUN/daemon.log ]]; then cp "$RUN/daemon.log" "$SHOAL_H2H_TRACE/"; fi
  [[ ${SHOAL_H2H_KEEP_ENGINE:-0} == 1 ]] || bash tests/docker/stop_engine.sh "$ENGINE" >/dev/null
  rm -rf "$RUN"
}
trap cleanup EXIT

# stack FILE SERVICES REPLICAS [VERSION]: services s0..s(N-1).
stack() {
  local file=$1 services=$2 replicas=$3 ver=${4:-1}
  {
    echo 'version: "3.8"'
    echo "services:"
    for ((i = 0; i < services; i++)); do
      cat <<YAML
  s$i:
    image: shoal-busybox:latest
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
    stop_grace_period: 10s
    labels: {ver: "$ver"}
    deploy:
      replicas: $replicas
      restart_policy: {condition: any, delay: 0s}
      update_config: {parallelism: 2, delay: 0s, order: stop-first}
YAML
    done
  } >"$file"
}
stack "$RUN/a.yml" 1 50
stack "$RUN/b.yml" 20 3
stack "$RUN/c10.yml" 1 10
stack "$RUN/d1.yml" 1 10 1
stack "$RUN/d2.yml" 1 10 2
stack "$RUN/e.yml" 1 20
stack "$RUN/g.yml" 1 1

declare -A T
SCENARIOS=${SHOAL_H2H_SCENARIOS:-a b c d e f g}
TOOLS=${SHOAL_H2H_TOOLS:-swarm shoal}
REPEAT=${SHOAL_H2H_REPEAT:-1}
want() { [[ " $SCENARIOS " == *" $1 "* ]]; }
# median: the middle of the numbers on stdin (the lower middle of an even count).
median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
# The command lines of TOOL (swarm or shoal) for a deploy, a removal and a
# scale; each is run by shoal_docker_bench under sh -c.
deploy_cmd() {
  if [[ $1 == swarm ]]; then
    echo "docker stack deploy -c $3 $2 >/dev/null 2>&1"
  else
    echo "SHOAL_HOST=unix://$RUN/shoal.sock $SHOAL deploy --timeout 300 -c $3 $2 >/dev/null 2>&1"
  fi
}
rm_cmd() {
  if [[ $1 == swarm ]]; then
    echo "docker stack rm $2 >/dev/null 2>&1"
  else
    echo "SHOAL_HOST=unix://$RUN/shoal.sock $SHOAL stack rm $2 >/dev/null 2>&1"
  fi
}
scale_cmd() {
  if [[ $1 == swarm ]]; then
    echo "docker service scale -d $2=$3 >/dev/null 2>&1"
  else
    echo "SHOAL_HOST=unix://$RUN/shoal.sock $SHOAL service scale $2=$3 >/dev/null 2>&1"
  fi
}
# run TOOL: the seven scenarios; results in T[TOOL.x].
run() {
  local tool=$1 label
  label=$([[ $tool == swarm ]] && echo com.docker.stack.namespace || echo shoal.stack)
  u() { "$BENCH" "$DOCKER_HOST" until "$@"; }
  # ut SCENARIO ...: timed, with its event timeline kept under SHOAL_H2H_TRACE.
  ut() {
    local trace=
    [[ -n ${SHOAL_H2H_TRACE:-} ]] && trace=$SHOAL_H2H_TRACE/$tool.$1
    shift
    SHOAL_BENCH_TRACE=$trace "$BENCH" "$DOCKER_HOST" until "$@"
  }
  # A timed scenario REPEAT times (its timelines DIR/<tool>.<x>.<run> when
  # repeated); the median in T[TOOL.x], every time on stderr.
  local r t all trace
  if want g; then
    all=
    for ((r = 1; r <= REPEAT; r++)); do
      t=$(ut g$([[ $REPEAT == 1 ]] || echo ".$r") "$(deploy_cmd "$tool" g "$RUN/g.yml")" \
        running "$label=g" 1) || t=
      if [[ -n $t ]]; then all+="$t"$'\n'; fi
      if ((REPEAT > 1)); then echo "$tool.g run $r: ${t:-failed}" >&2; fi
      u "$(rm_cmd "$tool" g)" gone "$label=g" 0 >/dev/null
      # The stack's network goes after its container, and the engine tears
      # its bridge down after it leaves the list: a next run's network
      # create waited behind that (60-130 ms, seen in the timelines).
      for _ in $(seq 1 100); do
        [[ -z $(docker network ls -q --filter "label=$label=g") ]] && break
        sleep 0.05
      done
      sleep 0.5
    done
    T[$tool.g]=$(printf '%s' "$all" | median)
  fi
  if want a || want f; then
    T[$tool.a]=$(ut a "$(deploy_cmd "$tool" a "$RUN/a.yml")" running "$label=a" 50)
    T[$tool.f]=$(ut f "$(rm_cmd "$tool" a)" gone "$label=a" 0)
  fi
  if want b; then
    T[$tool.b]=$(ut b "$(deploy_cmd "$tool" b "$RUN/b.yml")" running "$label=b" 60)
    u "$(rm_cmd "$tool" b)" gone "$label=b" 0 >/dev/null
  fi
  if want c; then
    u "$(deploy_cmd "$tool" c "$RUN/c10.yml")" running "$label=c" 10 >/dev/null
    T[$tool.c]=$(ut c "$(scale_cmd "$tool" c_s0 60)" running "$label=c" 60)
    u "$(rm_cmd "$tool" c)" gone "$label=c" 0 >/dev/null
  fi
  if want d; then
    u "$(deploy_cmd "$tool" d "$RUN/d1.yml")" running "$label=d" 10 >/dev/null
    T[$tool.d]=$(ut d "$(deploy_cmd "$tool" d "$RUN/d2.yml")" running "$label=d" ver=2 10)
    u "$(rm_cmd "$tool" d)" gone "$label=d" 0 >/dev/null
  fi
  if want e; then
    u "$(deploy_cmd "$tool" e "$RUN/e.yml")" running "$label=e" 20 >/dev/null
    all=
    # Each repeat kills ten of the twenty that run again after the last.
    for ((r = 1; r <= REPEAT; r++)); do
      trace=${SHOAL_H2H_TRACE:+$SHOAL_H2H_TRACE/$tool.e$([[ $REPEAT == 1 ]] || echo ".$r")}
      t=$(SHOAL_BENCH_TRACE=$trace "$BENCH" "$DOCKER_HOST" kill-until "$label=e" 10 20) || t=
      if [[ -n $t ]]; then all+="$t"$'\n'; fi
      if ((REPEAT > 1)); then echo "$tool.e run $r: ${t:-failed}" >&2; fi
    done
    T[$tool.e]=$(printf '%s' "$all" | median)
    u "$(rm_cmd "$tool" e)" gone "$label=e" 0 >/dev/null
  fi
  echo "$tool: done (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
# floor NAME N [OPTIONS]: the engine's floor for a scenario, the best of the
# concurrencies in FLOOR_CONC; in T[floor.NAME] (T[floornet.NAME] with net=1).
FLOOR_CONC=${SHOAL_H2H_FLOOR_CONC:-2 4 8 16}
floor() {
  local key=$1 n=$2 best= t c
  shift 2
  for c in ${ONLY_CONC:-$FLOOR_CONC}; do
    # A failed floor (e.g. the engine kept a network) prints nothing: skipped.
    t=$("$BENCH" "$DOCKER_HOST" floor "$n" "$c" shoal-busybox:latest "$@") || continue
    echo "floor $key ($n containers $*): concurrency $c: $t s" >&2
    if [[ -z $best ]] || (($(echo "$t < $best" | bc))); then best=$t; fi
  done
  echo "${best:--}"
}
# floor_median NAME N CONCURRENCY [OPTIONS]: the median of REPEAT floors at
# one concurrency, as the timed scenarios it bounds are the median of REPEAT
# runs (a single floor of one container varied 0.27-0.46 s at load 8).
floor_median() {
  local key=$1 n=$2 c=$3 all= t r
  shift 3
  for ((r = 1; r <= REPEAT; r++)); do
    t=$("$BENCH" "$DOCKER_HOST" floor "$n" "$c" shoal-busybox:latest "$@") || continue
    echo "floor $key ($n containers $*): run $r: $t s" >&2
    all+="$t"$'\n'
  done
  if [[ -n $all ]]; then printf '%s' "$all" | median; else echo -; fi
}
# (a)'s 50 containers from nothing, (b) 60, (c) 50 more beside 10 running,
# (f) 50 stopped and deleted, and as bounds for (e) and (g): (e)'s 10
# replacements beside 10 running (the kills and deaths not counted) and
# (g)'s one container; each also on a bridge network of its own with an
# alias, as a stack's containers are (net=1).
for v in floor floornet; do
  [[ ${SHOAL_H2H_FLOORS:-1} == 0 ]] && break
  net=
  [[ $v == floornet ]] && net=net=1
  want a && T[$v.a]=$(floor a 50 $net)
  want b && T[$v.b]=$(floor b 60 $net)
  want c && T[$v.c]=$(floor c 50 pre=10 $net)
  want f && T[$v.f]=$(floor f 50 rm=1 $net)
  want e && T[$v.e]=$(floor_median e 10 10 pre=10 $net)
  want g && T[$v.g]=$(floor_median g 1 1 $net)
done
echo "floors done (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2

if [[ " $TOOLS " == *" swarm "* ]]; then
  docker swarm init --advertise-addr 127.0.0.1 >/dev/null
  run swarm
  docker swarm leave --force >/dev/null
  # Swarm leaves its networks (docker_gwbridge, ingress) until they are pruned.
  docker network prune -f >/dev/null
fi
if [[ " $TOOLS " == *" shoal "* ]]; then
  "$SHOAL" daemon --dev --executor docker --docker-host "$DOCKER_HOST" --socket "$RUN/shoal.sock" \
    >"$RUN/daemon.out" 2>"$RUN/daemon.log" &
  DAEMON=$!
  for _ in $(seq 1 300); do grep -q READY "$RUN/daemon.out" 2>/dev/null && break; sleep 0.1; done
  grep -q READY "$RUN/daemon.out" || { cat "$RUN/daemon.log"; exit 1; }
  run shoal
  # The daemon's CPU over all its scenarios (manager, agent and executor in
  # one process): user and system seconds.
  read -r -a stat <"/proc/$DAEMON/stat"
  tck=$(getconf CLK_TCK)
  echo "shoal daemon CPU: $(echo "scale=2; ${stat[13]} / $tck" | bc) s user," \
    "$(echo "scale=2; ${stat[14]} / $tck" | bc) s system (load $(cut -d' ' -f1-3 /proc/loadavg))"
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
# ratio A B: A / B to two places, "-" when either is missing.
ratio() { if [[ -n $1 && $1 != - && -n $2 && $2 != - ]]; then echo "scale=2; $1 / $2" | bc; else echo -; fi; }

printf '%-34s %8s %8s %8s %9s %12s %12s %14s\n' scenario shoal swarm floor floor-net \
  shoal/swarm shoal/floor shoal/floor-net
for s in $SCENARIOS; do
  case $s in
    a) name="(a) 1 service x 50 replicas" ;;
    b) name="(b) 20 services x 3 replicas" ;;
    c) name="(c) scale 10 -> 60" ;;
    d) name="(d) rolling update 10, par. 2" ;;
    e) name="(e) kill 10 of 20" ;;
    f) name="(f) remove the 50-replica stack" ;;
    g) name="(g) 1 service x 1 replica" ;;
  esac
  sh=${T[shoal.$s]:--} sw=${T[swarm.$s]:--} fl=${T[floor.$s]:--} fn=${T[floornet.$s]:--}
  printf '%-34s %8s %8s %8s %9s %12s %12s %14s\n' "$name" "$sh" "$sw" "$fl" "$fn" \
    "$(ratio "$sh" "$sw")" "$(ratio "$sh" "$fl")" "$(ratio "$sh" "$fn")"
done
