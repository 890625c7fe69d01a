# The ESPHome Builder add-on image.
#
# Home Assistant's Supervisor builds this file on the user's machine when the add-on is
# installed: the Dockerfile next to config.yaml, the repository root as the context,
#   docker buildx build . --file Dockerfile --platform linux/<arch> --pull \
#     --build-arg BUILD_VERSION=<version> --build-arg BUILD_ARCH=<amd64|aarch64> \
#     --label io.hass.version=... --label io.hass.arch=... --label io.hass.type=app ...
# By hand, the same: `docker build -t esphome-builder .` from the repository root.
# CI builds and runs it with buildah and podman (test/image/check.sh).
#
# Base: Home Assistant's Debian base image (multi-arch; s6-overlay, bashio). Debian, not
# Alpine: the ESP32/ESP8266/RP2040 toolchains PlatformIO downloads at compile time are
# glibc binaries. The Supervisor passes no BUILD_FROM (there is no build.yaml), so this
# default is the base. Node 24 comes from the npm registry (the `node` package the project
# depends on), ESPHome and its dependencies from PyPI at the versions addon/requirements.txt
# and addon/constraints.txt pin.
ARG BUILD_FROM=ghcr.io/home-assistant/base-debian:trixie

# ---- npm: what installs the npm packages (never in the final image) ----
# Debian's Node.js and npm's own release from the npm registry, checked against its
# integrity (Debian's npm package would bring some 300 packages to unpack).
FROM ${BUILD_FROM} AS npm
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG NPM_VERSION=11.21.2
ARG NPM_INTEGRITY=sha512-7HPApk+AflMUavSseL1Pm6CnYqMIHk53x+KmuhqmTDqPkjPMgxIpTPcTqsE91EKNw4gFBJV9fnXiSdGm1DXq9A==
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs \
 && rm -rf /var/lib/apt/lists/* \
 && curl -fsSL -o /tmp/npm.tgz "https://registry.npmjs.org/npm/-/npm-${NPM_VERSION}.tgz" \
 && echo "$(base64 -d <<<"${NPM_INTEGRITY#sha512-}" | od -An -v -tx1 | tr -d ' \n')  /tmp/npm.tgz" | sha512sum -c --quiet - \
 && mkdir /opt/npm \
 && tar -xzf /tmp/npm.tgz -C /opt/npm --strip-components=1 \
 && rm /tmp/npm.tgz \
 && ln -s /opt/npm/bin/npm-cli.js /usr/local/bin/npm \
 && npm --version
WORKDIR /src
COPY package.json package-lock.json ./

# ---- modules: the run-time npm packages, with Node 24 from the `node` package ----
FROM npm AS modules
# The `node` package installs its binary as a hard link of node-linux-<arch>'s: keep the
# one under node/bin and drop the package it came from (the same 120 MB twice otherwise).
RUN npm ci --omit=dev --no-audit --no-fund \
 && rm -rf node_modules/node/node_modules \
 && node_modules/.bin/node --version

# ---- panel: the panel bundle ----
# On top of the run-time packages (lit, and Node 24 for the build script): esbuild and the
# icons, the two dev dependencies the bundle needs, at the lockfile's versions (`npm ci`
# with the dev dependencies would bring the whole test tool chain).
FROM modules AS panel
RUN locked() { node -p "require('./package-lock.json').packages['node_modules/$1'].version"; } \
 && npm install --prefix /tmp/tools --no-save --no-audit --no-fund \
      "esbuild@$(locked esbuild)" "@mdi/js@$(locked @mdi/js)" \
 && cp -a /tmp/tools/node_modules/. node_modules/ \
 && rm -rf /tmp/tools
COPY panel ./panel
COPY translations ./translations
COPY src/api/wire.ts ./src/api/wire.ts
COPY src/domain ./src/domain
COPY src/remote-build/transport/pin.ts ./src/remote-build/transport/pin.ts
COPY src/remote-build/transport/sas-emoji.ts ./src/remote-build/transport/sas-emoji.ts
COPY src/remote-build/transport/pairing-key-text.ts ./src/remote-build/transport/pairing-key-text.ts
RUN node_modules/.bin/node panel/build.ts

# ---- the add-on ----
FROM ${BUILD_FROM}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG BUILD_ARCH=amd64
ARG BUILD_VERSION=0.1.0

# Python for ESPHome (python3-venv: PlatformIO makes virtual environments for ESP-IDF),
# git for external components, tini so the builder is the container's main process and
# gets its stdin (hassio.addon_stdin; s6-overlay does not pass stdin on), ccache: ESPHome
# wraps every compile with a ccache it finds on PATH (PlatformIO, ESP-IDF and host builds).
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv git tini ca-certificates ccache \
 && rm -rf /var/lib/apt/lists/*
# ccache's objects live under /data, so they outlast the container (ESPHome respects a
# CCACHE_DIR that is set); bounded so they never fill the add-on's disk.
ENV CCACHE_DIR=/data/ccache CCACHE_MAXSIZE=2G

# ESPHome at the one pinned version, its dependencies at the versions the lock names.
COPY addon/requirements.txt addon/constraints.txt /tmp/esphome/
RUN python3 -m venv /opt/esphome \
 && /opt/esphome/bin/pip install --no-cache-dir --disable-pip-version-check \
      -r /tmp/esphome/requirements.txt -c /tmp/esphome/constraints.txt \
 && /opt/esphome/bin/pip check \
 && ln -s /opt/esphome/bin/esphome /usr/local/bin/esphome \
 && rm -rf /tmp/esphome \
 && esphome version

WORKDIR /opt/esphome-builder
COPY --from=modules /src/node_modules ./node_modules
RUN ln -s /opt/esphome-builder/node_modules/.bin/node /usr/local/bin/node && node --version
COPY package.json ./
# The pin and its lock: the builder reads which ESPHome the image bundles (its default) and
# installs other versions into /data/esphome/<version>/ (managed ESPHome), the pinned one
# with these constraints.
COPY addon/requirements.txt addon/constraints.txt ./addon/
COPY src ./src
COPY translations ./translations
COPY --from=panel /src/panel/dist ./panel/dist
COPY addon/run.sh /run.sh

LABEL \
  io.hass.name="ESPHome Builder" \
  io.hass.description="Build and install ESPHome firmware, with compiles offloaded to paired build servers" \
  io.hass.arch="${BUILD_ARCH}" \
  io.hass.version="${BUILD_VERSION}" \
  org.opencontainers.image.title="ESPHome Builder" \
  org.opencontainers.image.licenses="Apache-2.0" \
  org.opencontainers.image.version="${BUILD_VERSION}"

# The add-on has `init: false`; tini (not s6's /init) is PID 1 so stdin reaches the builder
# and SIGTERM from the Supervisor's stop reaches it at once.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["/run.sh"]
