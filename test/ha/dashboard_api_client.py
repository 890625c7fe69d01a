"""Drives a builder's legacy dashboard API with the real esphome-dashboard-api package,
the client Home Assistant's ESPHome integration uses for its update entities.

usage: python dashboard_api_client.py URL ACTIONS_JSON
ACTIONS_JSON is a list of {"do": "devices" | "config" | "encryption_key" | "compile" | "upload",
"configuration"?, "port"?}; prints one JSON object {"version", "results": [...]}.
"""
import asyncio
import importlib.metadata
import json
import sys

import aiohttp
from esphome_dashboard_api import ESPHomeDashboardAPI


async def main() -> None:
    url, actions = sys.argv[1], json.loads(sys.argv[2])
    results = []
    async with aiohttp.ClientSession() as session:
        api = ESPHomeDashboardAPI(url, session)
        for action in actions:
            kind = action["do"]
            try:
                if kind == "devices":
                    results.append(await api.get_devices())
                elif kind == "config":
                    results.append(await api.get_config(action["configuration"]))
                elif kind == "encryption_key":
                    results.append(await api.get_encryption_key(action["configuration"]))
                elif kind == "compile":
                    lines: list[str] = []
                    ok = await api.compile(action["configuration"], lines.append)
                    results.append({"ok": ok, "lines": lines})
                elif kind == "upload":
                    lines = []
                    ok = await api.upload(action["configuration"], action.get("port", "OTA"), lines.append)
                    results.append({"ok": ok, "lines": lines})
                else:
                    results.append({"error": f"unknown action {kind}"})
            except aiohttp.ClientResponseError as err:
                results.append({"http_error": err.status})
    print(json.dumps({"version": importlib.metadata.version("esphome-dashboard-api"), "results": results}))


asyncio.run(main())
