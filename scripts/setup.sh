#!/usr/bin/env bash
# Installs every Debian 12 package that shoal's build, tests and benchmarks need.
# Idempotent: packages already present are skipped by apt-get.
set -euo pipefail
PKGS=(
  cmake ninja-build g++ pkg-config clang-format
  libyaml-cpp-dev rapidjson-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libleveldb-dev libsnappy-dev libboost-dev
  catch2 libssl-dev libgit2-dev libcli11-dev libspdlog-dev libfmt-dev
  libboost-filesystem-dev libgoogle-perftools-dev busybox-static procps git ccache curl iproute2
  docker.io
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: missing packages (${missing[*]}); run as root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "setup: all ${#PKGS[@]} packages present"
