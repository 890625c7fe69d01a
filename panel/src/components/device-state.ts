/**
 * A device's live state in the devices list: an online dot, the ESPHome version
 * it runs, an "update available" badge that says why, and a mark for devices
 * that sleep (deep_sleep), so an owner knows why an install waits.
 */
import { html, nothing, type TemplateResult } from "lit";
import { formatTime } from "../common/format.ts";
import { icon, mdiPackageUp, mdiSleep } from "../common/icons.ts";
import type { LocalizeFunc } from "../common/localize.ts";
import type { DeviceState } from "../data/types.ts";

function seen(state: DeviceState, localize: LocalizeFunc, locale: string): string {
  const status = localize(`devices.state.${state.status}`);
  const when = state.last_seen === null ? localize("devices.state.never_seen") : localize("devices.state.last_seen", { when: formatTime(state.last_seen, locale) });
  const error = state.probe_error === null || state.status === "online" ? "" : ` — ${state.probe_error}`;
  return `${status}. ${when}${error}`;
}

export function deviceStateCell(state: DeviceState | undefined, localize: LocalizeFunc, locale: string): TemplateResult {
  if (state === undefined) return html`<span class="device-state secondary">—</span>`;
  const title = seen(state, localize, locale);
  const reasons = state.update_reasons;
  const updateLabel =
    reasons.length === 1 ? localize(`devices.state.update_${reasons[0] ?? "esphome_version"}`) : localize("devices.state.update");
  return html`<span class="device-state" data-status=${state.status}>
    <span class="dot" data-status=${state.status} role="img" aria-label=${title} title=${title}></span>
    <span class="version secondary">${state.firmware === null ? localize(`devices.state.${state.status}`) : state.firmware.esphome_version}</span>
    ${reasons.length > 0
      ? html`<span class="badge warning update" data-reasons=${reasons.join(" ")} title=${state.update_detail ?? updateLabel}>${icon(mdiPackageUp)}${updateLabel}</span>`
      : nothing}
    ${state.deep_sleep
      ? html`<span class="badge sleep" title=${localize("devices.state.deep_sleep")}>${icon(mdiSleep)}${localize("devices.state.deep_sleep_short")}</span>`
      : nothing}
  </span>`;
}
