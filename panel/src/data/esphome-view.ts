/**
 * Pure display rules of the managed ESPHome: the banner every view shows
 * while ESPHome is installed or could not be, whether queued jobs wait for it,
 * and disk sizes.
 */
import type { EsphomeStatus } from "./types.ts";

export type EsphomeBanner =
  | { kind: "provisioning"; version: string; percent: number }
  | { kind: "failed"; version: string | null; message: string; blocking: boolean }
  | { kind: "missing" };

/** What the top of the panel says about ESPHome, or null when all is well. */
export function esphomeBanner(status: EsphomeStatus | null): EsphomeBanner | null {
  if (status === null) return null;
  const task = status.state;
  if (task.status === "provisioning") return { kind: "provisioning", version: task.version, percent: task.percent };
  // `--esphome PATH` that is not there: the builder manages nothing, the user must fix the path.
  if (status.mode === "external") return status.current_version === null && task.status === "failed" ? { kind: "missing" } : null;
  // A failed switch with a working ESPHome still tells (not blocking); with none, jobs fail.
  if (task.status === "failed") return { kind: "failed", version: task.version, message: task.message, blocking: status.current_version === null };
  return null;
}

/** Queued jobs wait (rather than run) while the first ESPHome environment is being made. */
export function jobsWaitForEsphome(status: EsphomeStatus | null): boolean {
  return status !== null && status.current_version === null && status.state.status === "provisioning";
}

/** "228 MB" (decimal units, as disks are sold). */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let value = bytes / 1000;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value >= 100 ? Math.round(value) : value.toFixed(1)} ${units[unit] ?? "TB"}`;
}
