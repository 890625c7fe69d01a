#!/usr/bin/env bash
# Installs a real, current Home Assistant Core for the tests in test/ha/ into a Debian root
# filesystem of its own, .venv/ha-root (inside .venv, which git and lint ignore). The tests
# run it with `chroot` (inside a network namespace for the ESPHome tests) and `--skip-pip`, so
# everything a minimal configuration and the ESPHome integration need is preinstalled here.
# Idempotent and cached: a stamp file in the root records what was installed; a second run
# with the same pins does nothing. Called by test/setup.sh. Needs root and debootstrap
# (installed from Debian's archive when missing). About 35 s for the root and 5-10 minutes
# of pip on a fresh machine (several dependencies build from source).
#
# Why Debian trixie and Home Assistant 2026.2.3 (the default) and not 2026.11.0 on forky:
# Home Assistant 2025.5 to 2026.2 need Python >= 3.13.2, 2026.3 and later >= 3.14.2; this
# image's Pythons stop at 3.13.0. Debian trixie (stable) has python3 3.13.5, so 2026.2.3, the
# last release for 3.13, installs there with every pin in its own package_constraints.txt
# satisfied exactly. 2026.11.0 needs forky (Debian testing: python3.14 3.14.8), a suite that
# changes daily, and one of its pins (aioesphomeapi 46.25.0) is not on the package registry
# here, so it would run the ESPHome integration against a library version Home Assistant never
# shipped with. Stable and exact wins for a test fixture; HA_ROOT=.venv/ha-root-forky
# HA_SUITE=forky HA_VERSION=2026.11.0 HA_OVERRIDES="aioesphomeapi==46.23.0" installs the newer
# one (the test suite passes against it too: TEST_HA_ROOT=<root> npx vitest run test/ha).
#
# Environment: HA_ROOT (default .venv/ha-root), HA_SUITE (trixie), HA_VERSION (2026.2.3),
# HA_OVERRIDES (space-separated pins that replace Home Assistant's constraint for a package),
# HA_MIRROR (http://deb.debian.org/debian). Under CI (CI=true) any failure fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT="${HA_ROOT:-.venv/ha-root}"
SUITE="${HA_SUITE:-trixie}"
VERSION="${HA_VERSION:-2026.2.3}"
OVERRIDES="${HA_OVERRIDES:-}"
MIRROR="${HA_MIRROR:-http://deb.debian.org/debian}"
# Debian packages: Python with headers and a compiler (several dependencies build from
# source), CA certificates for pip, and ffmpeg (the ESPHome integration depends on ffmpeg's).
DEBS=python3,python3-venv,python3-dev,gcc,g++,libc6-dev,make,ca-certificates,libffi-dev,libssl-dev,zlib1g-dev,libjpeg-dev,ffmpeg
# Integrations whose requirements are preinstalled: the ones a minimal configuration
# loads (with default_config's) and ESPHome (the update entity's integration), each with its
# dependencies and after-dependencies.
INTEGRATIONS="default_config application_credentials backup frontend hardware logger network system_health
automation person scene script tag zone counter input_boolean input_button input_datetime input_number
input_select input_text schedule timer api websocket_api http persistent_notification onboarding analytics
recorder config auth esphome update"
# Packages Home Assistant imports without naming them in a manifest: pyotp and PyQRCode (the
# auth modules; without them it starts in recovery mode) and paho-mqtt (the ESPHome flow).
EXTRA="pyotp PyQRCode paho-mqtt"

say() { echo "ha setup: $*"; }
fail() {
  echo "ha setup: $1" >&2
  if [ "${CI:-}" = "true" ]; then exit 1; fi
  echo "ha setup: skipped; the Home Assistant tests will skip" >&2
  exit 0
}

[ "$(id -u)" = 0 ] || fail "needs root (debootstrap and chroot)"

# The Home Assistant 2024.3.3 venv earlier setups made; nothing uses it any more.
if [ -x .venv/ha/bin/hass ]; then
  say "removing the retired .venv/ha (Home Assistant 2024.3.3)"
  rm -rf .venv/ha
fi

# Bump when what this script installs for the same pins changes.
REVISION=2
key="revision=$REVISION suite=$SUITE version=$VERSION overrides=$OVERRIDES integrations=$(echo $INTEGRATIONS | tr ' ' ',') extra=$EXTRA debs=$DEBS"
stamp="$ROOT/.ha-setup"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
  say "Home Assistant $VERSION on Debian $SUITE already in $ROOT"
  exit 0
fi

if ! command -v debootstrap >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update && apt-get install -y debootstrap || fail "cannot install debootstrap"
fi

# Runs a command in the root with /proc and /dev mounted in a mount namespace of its own
# (the mounts vanish with it, nothing to unmount) and the host's DNS settings.
in_root() {
  cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
  unshare --mount --propagation private -- sh -c '
    root="$1"; shift
    mount -t proc proc "$root/proc" && mount --rbind /dev "$root/dev" && exec chroot "$root" "$@"
  ' sh "$ROOT" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 "$@"
}

if [ ! -x "$ROOT/usr/bin/python3" ] || [ "$(cat "$ROOT/.ha-suite" 2>/dev/null)" != "$SUITE" ]; then
  rm -rf "$ROOT"
  mkdir -p "$(dirname "$ROOT")"
  say "debootstrap $SUITE into $ROOT"
  # An older debootstrap (bookworm's) has no script for newer suites: they all work as sid's.
  script=()
  [ -e "/usr/share/debootstrap/scripts/$SUITE" ] || script=(/usr/share/debootstrap/scripts/sid)
  debootstrap --variant=minbase --include="$DEBS" "$SUITE" "$ROOT.partial" "$MIRROR" "${script[@]}" >"$ROOT.debootstrap.log" 2>&1 \
    || { tail -20 "$ROOT.debootstrap.log" >&2; fail "debootstrap $SUITE failed (log: $ROOT.debootstrap.log)"; }
  echo "$SUITE" >"$ROOT.partial/.ha-suite"
  mv "$ROOT.partial" "$ROOT"
  rm -f "$ROOT.debootstrap.log"
fi

# The host's extra trusted CAs (what update-ca-certificates added here, e.g. a proxy's) must be
# trusted in the root too, or pip cannot reach the registry.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  mkdir -p "$ROOT/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
  in_root update-ca-certificates >/dev/null
fi

[ -x "$ROOT/opt/ha/bin/python" ] || in_root python3 -m venv /opt/ha
PIP=(/opt/ha/bin/python -m pip install --quiet)
in_root "${PIP[@]}" --upgrade pip wheel

# Home Assistant's own constraints (shipped inside the package) keep pip from backtracking.
in_root "${PIP[@]}" --no-deps "homeassistant==$VERSION" || fail "homeassistant==$VERSION is not installable on $SUITE"
constraints="$ROOT/opt/ha/constraints.txt"
cp "$(ls "$ROOT"/opt/ha/lib/python3*/site-packages/homeassistant/package_constraints.txt)" "$constraints"
for pin in $OVERRIDES; do
  name="${pin%%[=<>!~]*}"
  grep -v -i "^$name[=<>!~ ]" "$constraints" >"$constraints.new" || true
  echo "$pin" >>"$constraints.new"
  mv "$constraints.new" "$constraints"
done

# The requirements of the integrations above, read from the installed manifests.
reqs="$(in_root /opt/ha/bin/python - $INTEGRATIONS <<'EOF'
import importlib.util, json, pathlib, sys
# Found, not imported: the package imports its dependencies, which are not installed yet.
base = pathlib.Path(importlib.util.find_spec("homeassistant").submodule_search_locations[0]) / "components"
seen, reqs = set(), set()
def walk(domain):
    manifest = base / domain / "manifest.json"
    if domain in seen or not manifest.exists():
        return
    seen.add(domain)
    data = json.loads(manifest.read_text())
    reqs.update(data.get("requirements", []))
    for dep in data.get("dependencies", []) + data.get("after_dependencies", []):
        walk(dep)
for root in sys.argv[1:]:
    walk(root)
    # The entity platforms a root integration provides (esphome/infrared.py, ...): Home
    # Assistant sets up those components when the integration's entries load.
    for platform in sorted((base / root).glob("*.py")):
        walk(platform.stem)
print("\n".join(sorted(reqs)))
EOF
)"
for pin in $OVERRIDES; do
  name="${pin%%[=<>!~]*}"
  reqs="$(echo "$reqs" | grep -v -i "^$name[=<>!~ ]" || true)"
  reqs="$reqs"$'\n'"$pin"
done
say "installing Home Assistant $VERSION and $(echo "$reqs" | wc -l) integration requirements (pip builds some from source: minutes)"
# shellcheck disable=SC2086
in_root "${PIP[@]}" -c /opt/ha/constraints.txt "homeassistant==$VERSION" $reqs $EXTRA \
  || fail "installing Home Assistant $VERSION's requirements failed"

echo "$key" >"$stamp"
say "done: Home Assistant $(in_root /opt/ha/bin/python -c 'import importlib.metadata as m; print(m.version("homeassistant"))') with Python $(in_root /opt/ha/bin/python -c 'import platform; print(platform.python_version())') in $ROOT"
