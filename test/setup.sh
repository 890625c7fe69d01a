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
echo "test setup done: $(.venv/bin/python -m esphome version 2>/dev/null || echo 'esphome not importable')"
