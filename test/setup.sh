#!/usr/bin/env bash
# Installs what the tests use beyond npm: Python packages (noiseprotocol,
# esphome-dashboard-api) into .venv, the real ESPHome CLI into .venv/esphome
# (test/setup-esphome.sh) and an older ESPHome into .venv/esphome-versions, Chromium, a real
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
# Another ESPHome version (a build server provisioning it, test/real-device/versions.test.ts), into the shared cache.
node_modules/.bin/node test/setup-esphome-versions.ts
# (Also the older ESPHome, X < the pin, that the Home Assistant update test builds a device's first firmware with.)
# A real Home Assistant Core for test/ha in a Debian root (.venv/ha-root; minutes the first time).
bash test/setup-ha.sh
command -v ip >/dev/null || (apt-get update && apt-get install -y iproute2)
# ccache: build servers' ESPHome compiles use it when it is on PATH (test/real-device/versions.test.ts checks they do).
if ! command -v ccache >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y ccache || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ccache)
  else
    echo "test setup: ccache is missing and this is not root; the ccache check of the real-device tests will be skipped" >&2
  fi
fi
