#!/usr/bin/env bash
# Installs what the tests use beyond npm: Python packages (noiseprotocol,
# esphome-dashboard-api) into .venv, the real ESPHome CLI into .venv/esphome
# (test/setup-esphome.sh) and an older ESPHome into .venv/esphome-previous, Chromium, a real
# Home Assistant Core in a Debian root, .venv/ha-root (test/setup-ha.sh), and iproute2.
# Idempotent; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r test/requirements.txt
# Debian's Chromium for the panel's browser tests (test/panel; they skip without it).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update && apt-get install -y chromium fonts-noto-color-emoji
  else
    echo "test setup: /usr/bin/chromium is missing and this is not root; the panel's browser tests will be skipped" >&2
  fi
fi
echo "test setup done: $(.venv/bin/python --version) in .venv"
# The real ESPHome (the version addon/requirements.txt pins) for test/real-device and the stand-in's checks.
bash test/setup-esphome.sh
# An older ESPHome (X < the pin) for the first firmware of the Home Assistant update test
# (test/ha/update-entity.test.ts): the last 2026.10 beta, since earlier releases cannot build
# host-platform devices offline.
ESPHOME_VENV=.venv/esphome-previous ESPHOME_VERSION=2026.10.0b6 bash test/setup-esphome.sh
# A real Home Assistant Core for test/ha in a Debian root (.venv/ha-root; minutes the first time).
bash test/setup-ha.sh
command -v ip >/dev/null || (apt-get update && apt-get install -y iproute2)
