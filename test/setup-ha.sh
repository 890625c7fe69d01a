#!/usr/bin/env bash
# Installs a real Home Assistant Core for the end-to-end test (test/ha/ha-core.test.ts)
# into its own venv, .venv/ha (inside .venv, which git and lint already ignore), so its
# big dependency tree never mixes with the ESPHome CLI's packages in .venv.
# Idempotent; called by test/setup.sh. About a minute and 550 MB on a fresh machine.
#
# The version is the newest Home Assistant that installs on this machine's Python:
# 2024.3.3 on Python 3.11 (2024.4 needs 3.12), pinned with its frontend; on other
# Pythons pip picks the newest that installs (HA_VERSION overrides). Home Assistant
# installs integration requirements with pip when it starts; the test runs it with
# --skip-pip, so this script preinstalls the requirements of every integration a
# minimal configuration loads (the default integrations and their dependencies, read
# from the installed manifests: that includes the matching frontend).
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${HA_PYTHON:-python3}"
if [ -z "${HA_VERSION:-}" ] && [ "$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')" = "3.11" ]; then
  HA_VERSION=2024.3.3
fi

if [ ! -x .venv/ha/bin/python ]; then
  "$PY" -m venv .venv/ha
fi
PIP=(.venv/ha/bin/python -m pip install --quiet --disable-pip-version-check)

installed="$(.venv/ha/bin/python -c 'import importlib.metadata as m; print(m.version("homeassistant"))' 2>/dev/null || true)"
if [ -z "$installed" ] || { [ -n "${HA_VERSION:-}" ] && [ "$installed" != "$HA_VERSION" ]; }; then
  "${PIP[@]}" --upgrade pip
  "${PIP[@]}" "homeassistant${HA_VERSION:+==$HA_VERSION}"
fi

# Requirements of the integrations a minimal configuration sets up, with their
# hard dependencies; recorder's too (analytics imports it).
reqs="$(.venv/ha/bin/python - <<'EOF'
import json, pathlib
import homeassistant
base = pathlib.Path(homeassistant.__file__).parent / "components"
roots = [
    "application_credentials", "backup", "frontend", "hardware", "logger", "network", "system_health",
    "automation", "person", "scene", "script", "tag", "zone", "counter", "input_boolean", "input_button",
    "input_datetime", "input_number", "input_select", "input_text", "schedule", "timer",
    "api", "websocket_api", "http", "persistent_notification", "onboarding", "analytics", "recorder",
]
seen, reqs = set(), set()
def walk(domain):
    manifest = base / domain / "manifest.json"
    if domain in seen or not manifest.exists():
        return
    seen.add(domain)
    data = json.loads(manifest.read_text())
    reqs.update(data.get("requirements", []))
    for dep in data.get("dependencies", []):
        walk(dep)
for root in roots:
    walk(root)
print("\n".join(sorted(reqs)))
EOF
)"
# josepy 2 broke the acme release Home Assistant 2024.3 pins (cloud, recovery mode only).
# shellcheck disable=SC2086
"${PIP[@]}" $reqs "josepy<2"
echo "home assistant setup done: $(.venv/ha/bin/python -c 'import importlib.metadata as m; print(m.version("homeassistant"))')"
