# Shared settings of the image check (test/image/check.sh) and the Python lock
# (addon/lock-requirements.sh); sourced, not run. What they build lives under
# IMAGE_CHECK_DIR, in container storage of its own (other containers and images on
# the machine are left alone), and `rm -rf "$IMAGE_CHECK_DIR"` (or
# `bash test/image/check.sh --clean`) removes it.

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
IMAGE_CHECK_DIR="${IMAGE_CHECK_DIR:-/var/tmp/esphome-builder-image-check}"
case "$IMAGE_CHECK_DIR" in
  /*[[:space:]]* | [!/]*) echo "IMAGE_CHECK_DIR must be an absolute path without spaces, got '$IMAGE_CHECK_DIR'" >&2; exit 1 ;;
esac
export DEBIAN_FRONTEND=noninteractive

# The base image the Dockerfile names (ARG BUILD_FROM); the stand-in is imported under this tag.
BASE_IMAGE="$(sed -n 's/^ARG BUILD_FROM=//p' "$REPO/Dockerfile")"
# Debian release of the base (the tag), e.g. trixie.
BASE_SUITE="${BASE_IMAGE##*:}"

# Container storage of our own (overlay), runc (crun refuses the resource limits on
# these machines), cgroupfs (no systemd) and a file for podman's events (no journald).
STORAGE_OPTS=(--root "$IMAGE_CHECK_DIR/storage" --runroot "$IMAGE_CHECK_DIR/run" --storage-driver overlay)
PODMAN=(podman "${STORAGE_OPTS[@]}" --runtime runc --cgroup-manager cgroupfs --events-backend file)
BUILDAH=(buildah "${STORAGE_OPTS[@]}")
# Explicit limits within what this machine allows (root here lacks CAP_SYS_RESOURCE, so the
# runtime cannot raise a limit): the defaults ask for more open files and processes than that.
hard_nproc="$(ulimit -Hu)"
[ "$hard_nproc" = unlimited ] || [ "$hard_nproc" -gt 32768 ] && hard_nproc=32768
ULIMITS=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit "nproc=$hard_nproc:$hard_nproc")

log() { printf '== image check: %s\n' "$*" >&2; }

# Installs buildah, podman, runc and debootstrap from Debian when they are missing (we are root).
install_tools() {
  local missing=()
  for tool in buildah podman runc debootstrap; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  command -v ip >/dev/null || missing+=(iproute2)
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# The extra CA certificates this host trusts beyond Debian's (what update-ca-certificates
# added from /usr/local/share/ca-certificates); the stand-in base trusts them too, so pip
# and npm inside the build reach the registries the way the host does.
extra_ca_certs() {
  find /usr/local/share/ca-certificates -type f -name '*.crt' 2>/dev/null | sort
}

# Makes the stand-in of Home Assistant's Debian base image and imports it under BASE_IMAGE:
# debootstrap (minbase) of the same Debian release with the packages the real base adds
# (bash, jq, tzdata, curl, ca-certificates, xz-utils) and its environment, entry point and
# labels. s6-overlay, bashio and tempio come from GitHub in the real image and are left out:
# the add-on's image uses none of them (the stand-in keeps ENTRYPOINT /init without an /init,
# so an image that forgot its own entry point fails here). Cached under a key of this
# function's text and the extra CA certificates: changing either makes a new one.
make_stand_in_base() {
  local key tarball rootfs
  key="$( { declare -f make_stand_in_base; extra_ca_certs | xargs -r cat; } | sha256sum | cut -c1-16)"
  tarball="$IMAGE_CHECK_DIR/base-$BASE_SUITE-$key.tar"
  if [ ! -s "$tarball" ]; then
    rootfs="$IMAGE_CHECK_DIR/rootfs"
    rm -rf "$rootfs" "$IMAGE_CHECK_DIR"/base-*.tar
    log "debootstrap $BASE_SUITE (minbase) for the stand-in of $BASE_IMAGE"
    debootstrap --variant=minbase --include=bash,jq,tzdata,curl,ca-certificates,xz-utils \
      "$BASE_SUITE" "$rootfs" http://deb.debian.org/debian >"$IMAGE_CHECK_DIR/debootstrap.log" 2>&1 \
      || { tail -n 30 "$IMAGE_CHECK_DIR/debootstrap.log" >&2; return 1; }
    # The package sources of Debian's own container images.
    rm -f "$rootfs/etc/apt/sources.list"
    cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: http://deb.debian.org/debian
Suites: $BASE_SUITE $BASE_SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: $BASE_SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
    local cert
    while read -r cert; do
      [ -n "$cert" ] && cp "$cert" "$rootfs/usr/local/share/ca-certificates/"
    done < <(extra_ca_certs)
    chroot "$rootfs" update-ca-certificates >/dev/null 2>&1
    chroot "$rootfs" apt-get clean
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/*.log
    tar --numeric-owner -C "$rootfs" -cf "$tarball.part" .
    mv "$tarball.part" "$tarball"
    rm -rf "$rootfs"
  fi
  if [ "$("${PODMAN[@]}" image inspect --format '{{index .Labels "org.esphome-builder.stand-in"}}' "$BASE_IMAGE" 2>/dev/null)" = "$key" ]; then
    return 0
  fi
  log "importing the stand-in base as $BASE_IMAGE"
  "${PODMAN[@]}" import --quiet \
    --change "LABEL org.esphome-builder.stand-in=$key" \
    --change 'ENTRYPOINT ["/init"]' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV DEBIAN_FRONTEND=noninteractive' \
    --change 'ENV CURL_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'LABEL io.hass.type=base' \
    --change 'LABEL io.hass.base.name=debian' \
    "$tarball" "$BASE_IMAGE" >/dev/null
}
