#!/usr/bin/env bash
# Installs the real ESPHome CLI the real-device tests and benchmarks run (test/real-device/),
# pinned in addon/requirements.txt, into its own venv, .venv/esphome. ESPHome 2026.10 needs
# Python >= 3.12 (on 3.11 pip would pick an old release whose host build downloads
# PlatformIO's `native` platform): this looks for python3.14, 3.13 or 3.12 on PATH, then in
# pyenv's versions, then python3. Its host-platform build also needs g++ and libssl-dev (the
# program links libcrypto); ninja comes with ESPHome. Idempotent: nothing is reinstalled when
# the pinned version is already there. Called by test/setup.sh; about 40 s on a fresh machine.
#
# Under CI (CI=true) a missing Python >= 3.12 or a failed install fails the run; elsewhere the
# real-device tests skip and say why.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${ESPHOME_VENV:-.venv/esphome}"
PIN=addon/requirements.txt
want="$(sed -n 's/^esphome==\([^[:space:]#]*\).*/\1/p' "$PIN")"
[ -n "$want" ] || { echo "esphome setup: no esphome==<version> line in $PIN" >&2; exit 1; }
# ESPHOME_VERSION installs another release instead of the pin (with ESPHOME_VENV set to a venv of
# its own): the Home Assistant update test builds a device's first firmware with an older ESPHome.
REQS=(-r "$PIN")
if [ -n "${ESPHOME_VERSION:-}" ]; then
  want="$ESPHOME_VERSION"
  REQS=("esphome==$ESPHOME_VERSION")
fi

fail() {
  echo "esphome setup: $1" >&2
  if [ "${CI:-}" = "true" ]; then exit 1; fi
  echo "esphome setup: skipped; the real-device tests will skip" >&2
  exit 0
}

# A Python that reports >= 3.12 when run (pyenv's shims exist for versions that are not selected).
py_ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }

find_python() {
  local c
  if [ -n "${ESPHOME_PYTHON:-}" ]; then
    py_ok "$ESPHOME_PYTHON" && { echo "$ESPHOME_PYTHON"; return 0; }
    echo "esphome setup: ESPHOME_PYTHON=$ESPHOME_PYTHON is not a Python >= 3.12" >&2
    return 1
  fi
  for c in python3.14 python3.13 python3.12; do
    if command -v "$c" >/dev/null 2>&1 && py_ok "$c"; then command -v "$c"; return 0; fi
  done
  local root="${PYENV_ROOT:-$HOME/.pyenv}"
  if command -v pyenv >/dev/null 2>&1; then root="$(pyenv root)"; fi
  for c in $(ls -d "$root"/versions/3.1[4-9]* "$root"/versions/3.1[23]* 2>/dev/null | sort -rV); do
    for exe in "$c"/bin/python3.1[2-9]; do
      if [ -x "$exe" ] && py_ok "$exe"; then echo "$exe"; return 0; fi
    done
  done
  if command -v python3 >/dev/null 2>&1 && py_ok python3; then command -v python3; return 0; fi
  return 1
}

# System packages the host-platform build needs.
missing=()
command -v g++ >/dev/null 2>&1 || missing+=(g++)
if command -v dpkg-query >/dev/null 2>&1; then
  dpkg-query -W -f='${Status}' libssl-dev 2>/dev/null | grep -q "install ok installed" || missing+=(libssl-dev)
elif [ ! -e /usr/include/openssl/ssl.h ]; then
  missing+=(libssl-dev)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"
  else
    fail "missing ${missing[*]} (install them as root: apt-get install ${missing[*]})"
  fi
fi

if [ -x "$VENV/bin/python" ] && py_ok "$VENV/bin/python"; then
  have="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("esphome"))' 2>/dev/null || true)"
  if [ "$have" = "$want" ]; then
    echo "esphome setup done: ESPHome $have in $VENV (already installed)"
    exit 0
  fi
else
  py="$(find_python)" || fail "no Python >= 3.12 found (python3.14/3.13/3.12 on PATH, pyenv's versions or python3); set ESPHOME_PYTHON"
  rm -rf "$VENV"
  "$py" -m venv "$VENV" || fail "$py -m venv $VENV failed"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip || fail "pip upgrade failed"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${REQS[@]}" || fail "pip install ${REQS[*]} failed"
echo "esphome setup done: $("$VENV/bin/esphome" version) in $VENV ($("$VENV/bin/python" --version))"
