#!/bin/sh
# Add-on entry point. The builder does the rest itself: SUPERVISOR_TOKEN marks add-on
# mode, it reads /data/options.json, asks the Supervisor for its ingress port, reads
# device YAMLs from /config/esphome (the official ESPHome add-on's folder) and keeps its
# state in /data. Automation commands arrive on stdin (hassio.addon_stdin).
set -eu

# PlatformIO's toolchains and caches survive restarts in /data (left out of backups).
export PLATFORMIO_CORE_DIR="${PLATFORMIO_CORE_DIR:-/data/platformio}"

# All interfaces: the listener serves only the Supervisor's ingress address (and the
# legacy dashboard API to Home Assistant Core on the loopback); the peer link on 6055
# is Noise-authenticated.
exec node /opt/esphome-builder/src/main.ts --host 0.0.0.0 --stdin-commands
