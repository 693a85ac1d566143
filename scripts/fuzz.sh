#!/usr/bin/env bash
# Fuzzes the stack loader with libFuzzer for a while.
#
#   scripts/fuzz.sh [SECONDS]        (default 60)
#
# Configures build-fuzz/ with clang and -DSHOAL_FUZZ=ON, builds shoal_stack_fuzz
# (ASan + UBSan + libFuzzer), seeds build-fuzz/fuzz-corpus/ from the compose
# corpus and tests/fuzz/seeds/, and runs the fuzzer on it. New inputs that
# reach new code stay in that directory between runs; a crash leaves its input
# in build-fuzz/fuzz-artifacts/ and the script exits non-zero. Replay one with
#   build-fuzz/tests/fuzz/shoal_stack_fuzz build-fuzz/fuzz-artifacts/crash-...
# or, without clang, build-tests/tests/fuzz/shoal_stack_fuzz_replay FILE.
set -euo pipefail

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 [SECONDS]" >&2
  exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${SHOAL_FUZZ_BUILD_DIR:-$root/build-fuzz}"
corpus_src="${SHOAL_CORPUS_DIR:-$root/../shared/corpus}"

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

cmake -S "$root" -B "$build" -G Ninja \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSHOAL_FUZZ=ON -DSHOAL_WERROR=OFF -DSHOAL_CORPUS_DIR="$corpus_src" >/dev/null
ninja -C "$build" shoal_stack_fuzz

corpus="$build/fuzz-corpus"
artifacts="$build/fuzz-artifacts"
mkdir -p "$corpus" "$artifacts"
# Seeds: every corpus file (valid and invalid) and the hand-written tricky ones.
for d in "$corpus_src/files" "$corpus_src/invalid" "$root/tests/fuzz/seeds"; do
  if [[ -d "$d" ]]; then
    find "$d" -maxdepth 1 -type f -exec cp -n {} "$corpus/" \;
  fi
done

echo "fuzz.sh: fuzzing the stack loader for ${seconds}s ($(ls "$corpus" | wc -l) inputs in $corpus)"
# -rss_limit_mb and -timeout turn "unbounded memory" and "hang" into findings.
exec "$build/tests/fuzz/shoal_stack_fuzz" \
  -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
  -dict="$root/tests/fuzz/stack.dict" -print_final_stats=1 \
  -artifact_prefix="$artifacts/" "$corpus"
