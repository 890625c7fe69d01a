#!/usr/bin/env bash
# Installs what the tests use beyond npm: Python packages (a real ESPHome CLI
# to check our command lines against its argument parser). Idempotent; safe to
# run again. Python packages go into .venv in the project.
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
echo "test setup done: $(.venv/bin/python -m esphome version 2>/dev/null || echo 'esphome not importable')"
# A real Home Assistant Core for test/ha (its own venv, .venv/ha; about a minute).
bash test/setup-ha.sh
command -v ip >/dev/null || (apt-get update && apt-get install -y iproute2)
