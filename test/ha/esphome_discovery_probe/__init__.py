"""Test driver: hands Home Assistant's ESPHome integration a Supervisor discovery message.

The Supervisor's discovery reaches Core through the hassio integration
(components/hassio/discovery.py), which starts the service's config flow with source
`hassio` and a HassioServiceInfo: the add-on's config (plus `addon`, the add-on's name),
name, slug and uuid. Without a Supervisor, this does the same with the message in
/config/discovery.json, once Home Assistant has started, and records the flow's result as
the state of `esphome_discovery_probe.result`.
"""

import json
from pathlib import Path

from homeassistant.config_entries import SOURCE_HASSIO
from homeassistant.const import EVENT_HOMEASSISTANT_STARTED
from homeassistant.core import Event, HomeAssistant
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
from homeassistant.helpers.typing import ConfigType

DOMAIN = "esphome_discovery_probe"


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Start the ESPHome flow with the discovery message once Home Assistant runs."""

    async def discover(_event: Event) -> None:
        message = json.loads(
            await hass.async_add_executor_job(
                Path(hass.config.path("discovery.json")).read_text
            )
        )
        result = await hass.config_entries.flow.async_init(
            message["service"],
            context={"source": SOURCE_HASSIO},
            data=HassioServiceInfo(
                config={**message["config"], "addon": message["name"]},
                name=message["name"],
                slug=message["slug"],
                uuid=message["uuid"],
            ),
        )
        hass.states.async_set(
            f"{DOMAIN}.result", result["type"], {"reason": result.get("reason")}
        )

    hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STARTED, discover)
    return True
