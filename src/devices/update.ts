/**
 * "Update available": a device needs an install when it runs an older ESPHome
 * than this builder's, or when its YAML (or a file the YAML includes) was
 * changed after the firmware it runs was compiled. Pure.
 */
import type { DeviceFirmware, UpdateReason } from "../domain/device.ts";
import { compareEsphomeVersions, parseCompilationTime } from "./versions.ts";

export interface UpdateVerdict {
  reasons: UpdateReason[];
  detail: string | null;
}

/** Slack for clocks and file systems: a YAML saved within this of the compile is the one compiled. */
const MTIME_SLACK_MS = 2_000;

/**
 * `builderVersion`: this builder's ESPHome (null while unknown);
 * `configMtimeMs`: the newest modification time of the YAML and its includes
 * (null when unknown). Without firmware nothing is known, so nothing is due.
 */
export function updateVerdict(firmware: DeviceFirmware | null, builderVersion: string | null, configMtimeMs: number | null): UpdateVerdict {
  if (firmware === null) return { reasons: [], detail: null };
  const reasons: UpdateReason[] = [];
  const details: string[] = [];
  if (builderVersion !== null) {
    const cmp = compareEsphomeVersions(firmware.esphome_version, builderVersion);
    if (cmp !== null && cmp < 0) {
      reasons.push("esphome_version");
      details.push(`runs ESPHome ${firmware.esphome_version}, this builder has ${builderVersion}`);
    }
  }
  const compiled = firmware.compilation_time === null ? null : parseCompilationTime(firmware.compilation_time);
  if (compiled !== null && configMtimeMs !== null && configMtimeMs > compiled + MTIME_SLACK_MS) {
    reasons.push("configuration_changed");
    details.push(`its configuration changed at ${new Date(configMtimeMs).toISOString()}, after its firmware was compiled (${firmware.compilation_time})`);
  }
  return { reasons, detail: details.length === 0 ? null : details.join("; ") };
}
