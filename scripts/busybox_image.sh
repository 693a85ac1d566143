#!/usr/bin/env bash
# Builds a local image FROM scratch holding Debian's busybox-static (there is
# no registry to pull from), through the Engine API's /build endpoint.
#
#   scripts/busybox_image.sh SOCKET TAG
#
# Does nothing when TAG already exists. Exits non-zero with the engine's
# answer when the build fails. Needs curl and /bin/busybox (scripts/setup.sh).
set -euo pipefail
SOCK=${1:?usage: busybox_image.sh SOCKET TAG}
TAG=${2:?usage: busybox_image.sh SOCKET TAG}
api() { curl -sf --max-time 120 --unix-socket "$SOCK" "$@"; }
if api "http://engine/v1.41/images/$TAG/json" >/dev/null; then
  exit 0
fi
CTX=$(mktemp -d /tmp/shoal-image-XXXXXX)
trap 'rm -rf "$CTX"' EXIT
cp /bin/busybox "$CTX/busybox"
cat >"$CTX/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
DOCKERFILE
tar -C "$CTX" -cf "$CTX/context.tar" Dockerfile busybox
api -X POST -H 'Content-Type: application/x-tar' --data-binary "@$CTX/context.tar" \
  "http://engine/v1.41/build?t=$TAG&rm=1&forcerm=1" >"$CTX/build.log" 2>&1 || {
  echo "busybox_image: building $TAG failed: $(tail -c 300 "$CTX/build.log")" >&2
  exit 1
}
api "http://engine/v1.41/images/$TAG/json" >/dev/null || {
  echo "busybox_image: $TAG missing after the build: $(tail -c 300 "$CTX/build.log")" >&2
  exit 1
}
