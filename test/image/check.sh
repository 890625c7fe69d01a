#!/usr/bin/env bash
# The image check: the add-on image built and run the way Home Assistant's Supervisor
# builds and runs it, without a Docker engine.
#
#   1. buildah, podman, runc and debootstrap from Debian (installed when missing).
#   2. A stand-in of Home Assistant's Debian base image (debootstrap, see common.sh),
#      imported under the tag the Dockerfile names.
#   3. The image built with the Supervisor's own arguments: the repository root as the
#      context, the Dockerfile beside config.yaml, --platform, BUILD_VERSION and BUILD_ARCH,
#      the io.hass labels from config.yaml. One difference: --pull=never where the
#      Supervisor says --pull, since the base here is the local stand-in.
#   4. test/image/image.test.ts inside a network namespace made here (loopback and a dummy
#      "hassio" interface with the Supervisor's addresses, nothing else): it runs the image
#      the way the Supervisor runs it, against a stand-in Supervisor, and checks it.
#
# Root only. Cached between runs in IMAGE_CHECK_DIR (default /var/tmp/esphome-builder-image-check):
# the stand-in base and the image's layers; CI (CI=true) removes it at the end, as does
# `bash test/image/check.sh --clean`. About 3 GB while it runs.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
cd "$REPO"

if [ "${1:-}" = "--clean" ]; then
  rm -rf "$IMAGE_CHECK_DIR"
  echo "removed $IMAGE_CHECK_DIR"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "image check: needs root (buildah, podman and network namespaces); CI runs it as root" >&2
  exit 1
fi

started="$(date +%s)"
NETNS="esb-image-$$"
cleanup() {
  ip netns del "$NETNS" 2>/dev/null || true
  if [ "${CI:-}" = "true" ]; then
    "${PODMAN[@]}" rm --all --force >/dev/null 2>&1 || true
    rm -rf "$IMAGE_CHECK_DIR" 2>/dev/null || echo "image check: could not remove all of $IMAGE_CHECK_DIR" >&2
  fi
}
trap cleanup EXIT

# Prefixes each line with the seconds since the check started (the build log says which step took how long).
stamp() {
  local line
  while IFS= read -r line; do printf '%4ds %s\n' "$(($(date +%s) - started))" "$line"; done
}

install_tools
mkdir -p "$IMAGE_CHECK_DIR"
make_stand_in_base

# What the Supervisor passes, read from config.yaml: version, name, description, url;
# the architecture is this machine's (amd64 in CI; aarch64 is checked by test/addon/aarch64.test.ts).
case "$(uname -m)" in
  x86_64) ARCH=amd64 PLATFORM=linux/amd64 ;;
  aarch64) ARCH=aarch64 PLATFORM=linux/arm64 ;;
  *) echo "image check: no Home Assistant architecture for $(uname -m)" >&2; exit 1 ;;
esac
mapfile -t meta < <(node_modules/.bin/node --input-type=module -e '
  import { readFileSync } from "node:fs";
  import { parse } from "yaml";
  const m = parse(readFileSync("config.yaml", "utf8"));
  for (const key of ["version", "slug", "name", "description", "url"]) console.log(String(m[key] ?? "").replaceAll("\n", " "));
')
VERSION="${meta[0]}" SLUG="${meta[1]}" NAME="${meta[2]//\'/}" DESCRIPTION="${meta[3]//\'/}" URL="${meta[4]}"
IMAGE="local/$ARCH-addon-$SLUG:$VERSION"

log "building $IMAGE (Dockerfile, context: the repository root)"
build_started="$(date +%s)"
labels=(--label "io.hass.version=$VERSION" --label "io.hass.arch=$ARCH" --label "io.hass.type=app"
  --label "io.hass.name=$NAME" --label "io.hass.description=$DESCRIPTION")
[ -n "$URL" ] && labels+=(--label "io.hass.url=$URL")
# --layers: later runs on this machine reuse unchanged steps; --jobs: stages in parallel,
# as BuildKit does; docker format, as Docker stores images (SHELL is kept).
if ! "${BUILDAH[@]}" build --format docker --layers --jobs 4 --network host --pull=never \
  --runtime runc "${ULIMITS[@]}" \
  --file Dockerfile --platform "$PLATFORM" --tag "$IMAGE" \
  "${labels[@]}" --build-arg "BUILD_VERSION=$VERSION" --build-arg "BUILD_ARCH=$ARCH" \
  . 2>&1 | stamp >"$IMAGE_CHECK_DIR/build.log"; then
  tail -n 60 "$IMAGE_CHECK_DIR/build.log" >&2
  echo "image check: the image did not build (whole log: $IMAGE_CHECK_DIR/build.log)" >&2
  exit 1
fi
built="$(date +%s)"
log "built in $((built - build_started)) s: $("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE" | numfmt --to=si)B"

# The namespace the container's "host network" is: loopback plus the Supervisor's network
# (172.30.32.1 is the address ingress connects to, 172.30.32.2 the Supervisor's), a
# multicast route there for mDNS, and no way out.
ip netns add "$NETNS"
ip -n "$NETNS" link set lo up
# A veth pair with both ends inside (these kernels may lack the dummy interface type).
ip -n "$NETNS" link add hassio type veth peer name hassio-peer
ip -n "$NETNS" addr add 172.30.32.1/23 dev hassio
ip -n "$NETNS" addr add 172.30.32.2/23 dev hassio
ip -n "$NETNS" link set hassio-peer up
ip -n "$NETNS" link set hassio up
ip -n "$NETNS" route add 224.0.0.0/4 dev hassio

log "running the image as the Supervisor does (test/image/image.test.ts)"
# A container left by an interrupted run would hold the add-on's container name.
"${PODMAN[@]}" rm --force --ignore "addon_$SLUG" >/dev/null 2>&1 || true
# nsenter --net, not `ip netns exec`: that also remounts /sys, which hides the cgroup mounts runc needs.
nsenter --net="/run/netns/$NETNS" env \
  PATH="$REPO/node_modules/.bin:$PATH" \
  IMAGE_CHECK_IMAGE="$IMAGE" IMAGE_CHECK_ARCH="$ARCH" IMAGE_CHECK_DIR="$IMAGE_CHECK_DIR" \
  IMAGE_CHECK_PODMAN="${PODMAN[*]}" IMAGE_CHECK_ULIMITS="${ULIMITS[*]}" \
  vitest run --config test/image/vitest.config.ts || {
  echo "image check: the add-on's own log, last lines ($IMAGE_CHECK_DIR/addon.log):" >&2
  tail -n 40 "$IMAGE_CHECK_DIR/addon.log" >&2 || true
  exit 1
}
log "done in $(($(date +%s) - started)) s (build $((built - build_started)) s, run $(($(date +%s) - built)) s)"
