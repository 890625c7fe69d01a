/**
 * A configured device and its live state.
 */

export interface Device {
  /** `esphome: name` with substitutions resolved, else the file stem. */
  name: string;
  friendly_name: string;
  /** File name relative to the config dir (the device's key). */
  configuration: string;
  /** Absolute path of the YAML. */
  path: string;
  /** Lowercase platform key (esp32, esp8266, rp2040, bk72xx, rtl87xx, ln882x, host, nrf52, libretiny). */
  platform: string | null;
  board: string | null;
  /** Where OTA/logs connect: `use_address`, a static IP, else `<name>.local`. */
  address: string;
  comment: string | null;
  /** `web_server: port` (80 when omitted); null without a web server or when unreadable. */
  web_port: number | null;
  /** Sorted top-level component keys. */
  loaded_integrations: string[];
  /** Why the YAML could not be read; the device is still listed. */
  error: string | null;
}

/** Whether a device answers: `unknown` until its first probe ends. */
export type DeviceStatus = "unknown" | "online" | "offline";

/** Why a device needs an install: it runs an older ESPHome, or its YAML (or an include) changed since its firmware was built. */
export const UPDATE_REASONS = ["esphome_version", "configuration_changed"] as const;
export type UpdateReason = (typeof UPDATE_REASONS)[number];

/** The firmware a device runs, as it reported it (native API device info, or mDNS TXT for the version alone). */
export interface DeviceFirmware {
  esphome_version: string;
  /** ESPHome's compilation time string as the device reports it, null when only mDNS was heard. */
  compilation_time: string | null;
  project_name: string | null;
  project_version: string | null;
  /** Where this came from. */
  source: "api" | "mdns";
}

/** Where the builder looks for a device (`address`), and why there. */
export type AddressSource = "owner" | "yaml" | "host_default";

/** A configured device as it is now: online or not, what it runs, whether it needs an install. */
export interface DeviceState {
  configuration: string;
  /** Where probes, logs and installs go. */
  address: string;
  /** `owner`: set in the panel; `yaml`: use_address/static IP/`<name>.local`; `host_default`: a host-platform YAML without a network block (127.0.0.1). */
  address_source: AddressSource;
  status: DeviceStatus;
  /** When it last answered (kept across restarts), ISO 8601. */
  last_seen: string | null;
  /** When `status` last changed, ISO 8601. */
  status_since: string | null;
  firmware: DeviceFirmware | null;
  /** Empty when up to date (or unknown). */
  update_reasons: UpdateReason[];
  /** For people: why an update is available ("runs 2026.9.1, this builder has 2026.10.0"). */
  update_detail: string | null;
  /** The last probe's failure (refused, timed out, encryption key rejected), null after an answer. */
  probe_error: string | null;
  /** The YAML has `deep_sleep`: the device is offline most of the time; installs wait for it to wake. */
  deep_sleep: boolean;
}
