#!/bin/sh
# Add-on entry point: the builder reads /data/options.json itself (SUPERVISOR_TOKEN marks add-on mode).
set -eu
exec node /opt/esphome-builder/src/main.ts --port 8099 --host 0.0.0.0
