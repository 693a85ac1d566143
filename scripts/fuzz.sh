#!/usr/bin/env bash
# Fuzzes every decoder that faces the network or the user with libFuzzer
# (docs/security.md, "Hostile input"), each target for a set time.
#
#   scripts/fuzz.sh [TARGET...]            every target when none is named
#   FUZZ_SECONDS=300 scripts/fuzz.sh deploy
#
# Targets: stack interpolate stack_merge docker_engine deploy store_apply
# webhook (and join_token once src/ca has its parser).
#
# Configures build-fuzz-clang/ (SHOAL_FUZZ_BUILD_DIR) with clang, ASan, UBSan
# and coverage on every library (-fsanitize=address,undefined,fuzzer-no-link)
# and -DSHOAL_FUZZ=ON, builds shoal_<target>_fuzz, seeds
# build-fuzz-clang/fuzz-corpus/<target>/ from tests/fuzz/seeds/<target>/ (the
# stack targets also from the compose corpus), and runs each target for
# FUZZ_SECONDS (default 60). Inputs that reach new code stay in the corpus
# between runs. A crash, hang (-timeout), memory blow-up (-rss_limit_mb) or
# leak leaves its input in tests/fuzz/crashes/<target>/; the script goes on
# with the other targets and exits non-zero at the end. Replay one with
#   build-fuzz-clang/tests/fuzz/shoal_<target>_fuzz tests/fuzz/crashes/<target>/crash-...
# or, without clang, build-tests/tests/fuzz/shoal_<target>_fuzz_replay FILE.
# Once fixed, copy the input into tests/fuzz/seeds/<target>/ so that CI
# replays it.
set -euo pipefail

all_targets=(stack interpolate stack_merge docker_engine deploy store_apply webhook)
seconds="${FUZZ_SECONDS:-60}"
# The old form, scripts/fuzz.sh SECONDS, fuzzes the stack loader.
if [[ $# -eq 1 && "$1" =~ ^[0-9]+$ ]]; then
  seconds="$1"
  set -- stack
fi
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
  echo "fuzz.sh: FUZZ_SECONDS must be a number of seconds" >&2
  exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${SHOAL_FUZZ_BUILD_DIR:-$root/build-fuzz-clang}"
corpus_src="${SHOAL_CORPUS_DIR:-$root/../shared/corpus}"
if [[ -d "$root/src/ca" ]] && grep -q "shoal_fuzz_target(join_token" "$root/tests/fuzz/CMakeLists.txt"; then
  all_targets+=(join_token)
fi
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=("${all_targets[@]}")
fi
for t in "${targets[@]}"; do
  if [[ ! " ${all_targets[*]} " =~ " $t " ]]; then
    echo "fuzz.sh: unknown target \"$t\"; targets: ${all_targets[*]}" >&2
    exit 2
  fi
done

cxx="${CXX_FUZZ:-}"
if [[ -z "$cxx" ]]; then
  for c in clang++ clang++-14; do
    if command -v "$c" >/dev/null 2>&1; then
      cxx="$c"
      break
    fi
  done
fi
if [[ -z "$cxx" ]]; then
  echo "fuzz.sh: clang++ not found; install it with: apt-get install clang" >&2
  exit 1
fi

# libFuzzer's runtime ships separately from clang on Debian 12.
clang_major="$("$cxx" -dumpversion | cut -d. -f1)"
rt_pkg="libclang-rt-${clang_major}-dev"
if command -v dpkg >/dev/null 2>&1 && ! dpkg -s "$rt_pkg" >/dev/null 2>&1; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "fuzz.sh: installing $rt_pkg (the libFuzzer runtime for clang $clang_major)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$rt_pkg"
  else
    echo "fuzz.sh: the libFuzzer runtime is missing; install it with:" >&2
    echo "  sudo apt-get install $rt_pkg" >&2
    exit 1
  fi
fi

# Every library is instrumented, so a finding deep behind a decoder counts.
# rapidjson's own pointer arithmetic is exempt from UBSan (ubsan_ignore.txt).
flags="-fsanitize=address,undefined,fuzzer-no-link -fno-sanitize-recover=undefined"
flags+=" -fno-omit-frame-pointer -fsanitize-ignorelist=$root/tests/fuzz/ubsan_ignore.txt"
cmake -S "$root" -B "$build" -G Ninja \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DSHOAL_FUZZ=ON -DSHOAL_WERROR=OFF -DSHOAL_CORPUS_DIR="$corpus_src" >/dev/null
# shellcheck disable=SC2046
ninja -C "$build" -j"${SHOAL_JOBS:-$(nproc)}" $(printf 'shoal_%s_fuzz ' "${targets[@]}")

failed=()
for t in "${targets[@]}"; do
  corpus="$build/fuzz-corpus/$t"
  crashes="$root/tests/fuzz/crashes/$t"
  mkdir -p "$corpus" "$crashes"
  seeds=("$root/tests/fuzz/seeds/$t")
  dict=()
  case "$t" in
    stack | stack_merge)
      seeds+=("$corpus_src/files" "$corpus_src/invalid")
      dict=(-dict="$root/tests/fuzz/stack.dict")
      ;;
    interpolate) dict=(-dict="$root/tests/fuzz/stack.dict") ;;
  esac
  for d in "${seeds[@]}"; do
    if [[ -d "$d" ]]; then
      find "$d" -maxdepth 1 -type f -exec cp -n {} "$corpus/" \;
    fi
  done
  echo "fuzz.sh: $t for ${seconds}s ($(ls "$corpus" | wc -l) inputs in $corpus)"
  # -rss_limit_mb and -timeout turn "unbounded memory" and "hang" into findings.
  if "$build/tests/fuzz/shoal_${t}_fuzz" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    "${dict[@]}" -print_final_stats=1 -artifact_prefix="$crashes/" "$corpus" \
    >"$build/fuzz-$t.log" 2>&1; then
    grep -E "^stat::number_of_executed_units|^stat::new_units_added|^#[0-9]+ *DONE" \
      "$build/fuzz-$t.log" | sed "s/^/fuzz.sh: $t: /" || true
  else
    failed+=("$t")
    echo "fuzz.sh: $t FAILED; its input is in $crashes/, the log in $build/fuzz-$t.log" >&2
    grep -E "ERROR|SUMMARY|_fuzz: " "$build/fuzz-$t.log" | head -5 >&2 || true
  fi
done
# Empty crash directories are not findings.
find "$root/tests/fuzz/crashes" -mindepth 1 -type d -empty -delete 2>/dev/null || true
rmdir "$root/tests/fuzz/crashes" 2>/dev/null || true
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz.sh: findings in: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz.sh: no findings in ${targets[*]} (${seconds}s each)"
