/**
 * A device's live state (`DeviceState`, the wire shape) and its named
 * transitions. Plain objects, no I/O: the tracker owns them and fires
 * `device_state_changed` when a transition says something changed.
 */
import type { AddressSource, DeviceFirmware, DeviceState, UpdateReason } from "../domain/device.ts";

export type { AddressSource, DeviceFirmware, DeviceState, UpdateReason };

export function newDeviceState(configuration: string, address: string, source: AddressSource, lastSeen: string | null): DeviceState {
  return {
    configuration,
    address,
    address_source: source,
    status: "unknown",
    last_seen: lastSeen,
    status_since: null,
    firmware: null,
    update_reasons: [],
    update_detail: null,
    probe_error: null,
    deep_sleep: false,
  };
}

function sameFirmware(a: DeviceFirmware | null, b: DeviceFirmware | null): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function setStatus(state: DeviceState, status: DeviceState["status"], now: Date): boolean {
  if (state.status === status) return false;
  state.status = status;
  state.status_since = now.toISOString();
  return true;
}

/**
 * The device answered its native API with `firmware`. Online, last seen now.
 * Returns whether anything but `last_seen` changed (last_seen alone is no event).
 */
export function markAnswered(state: DeviceState, firmware: DeviceFirmware, now: Date): boolean {
  let changed = setStatus(state, "online", now);
  state.last_seen = now.toISOString();
  if (state.probe_error !== null) {
    state.probe_error = null;
    changed = true;
  }
  if (!sameFirmware(state.firmware, firmware)) {
    state.firmware = firmware;
    changed = true;
  }
  return changed;
}

/**
 * The device answered but would not say what it runs (its encryption key is
 * not the YAML's, it wants one): online, firmware kept as last known.
 */
export function markAnsweredWithError(state: DeviceState, error: string, now: Date): boolean {
  let changed = setStatus(state, "online", now);
  state.last_seen = now.toISOString();
  if (state.probe_error !== error) {
    state.probe_error = error;
    changed = true;
  }
  return changed;
}

/**
 * mDNS heard the device announce itself (its TXT carries the version). Online;
 * the version only fills in when the API has not told more.
 */
export function markAnnounced(state: DeviceState, version: string | null, now: Date): boolean {
  let changed = setStatus(state, "online", now);
  state.last_seen = now.toISOString();
  // A version the API's last answer does not match means new firmware: its details come with the next probe.
  if (version !== null && (state.firmware === null || state.firmware.esphome_version !== version)) {
    state.firmware = { esphome_version: version, compilation_time: null, project_name: null, project_version: null, source: "mdns" };
    changed = true;
  }
  return changed;
}

/**
 * A probe got no answer (`misses` in a row). Offline once `misses` reaches
 * `offlineAfter`; before that the status stays as it was (one lost probe is not
 * an outage). Returns whether anything changed.
 */
export function markMissed(state: DeviceState, error: string, misses: number, offlineAfter: number, now: Date): boolean {
  let changed = false;
  if (misses >= offlineAfter) changed = setStatus(state, "offline", now);
  if (state.probe_error !== error) {
    state.probe_error = error;
    changed = true;
  }
  return changed;
}

/** Where the device is looked for changed (the owner set or cleared an address, the YAML changed). */
export function setAddress(state: DeviceState, address: string, source: AddressSource): boolean {
  if (state.address === address && state.address_source === source) return false;
  state.address = address;
  state.address_source = source;
  return true;
}

export function setUpdate(state: DeviceState, reasons: UpdateReason[], detail: string | null): boolean {
  if (JSON.stringify(state.update_reasons) === JSON.stringify(reasons) && state.update_detail === detail) return false;
  state.update_reasons = reasons;
  state.update_detail = detail;
  return true;
}

export function setDeepSleep(state: DeviceState, deepSleep: boolean): boolean {
  if (state.deep_sleep === deepSleep) return false;
  state.deep_sleep = deepSleep;
  return true;
}
