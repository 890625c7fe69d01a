/**
 * Device YAMLs for the host platform, written from the template beside this file
 * (host-device.yaml: api, ota with a password, a few entities, a version text sensor)
 * with its substitutions set.
 */
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import path from "node:path";

const TEMPLATE = readFileSync(path.join(import.meta.dirname, "host-device.yaml"), "utf8");

export interface HostDeviceOptions {
  /** ESPHome's device name (also the build folder's). Default "hostdev". */
  name?: string;
  friendly_name?: string;
  /** The "Firmware label" text sensor: change it to make a build that differs. Default "v1". */
  label?: string;
  ota_password?: string;
  api_port?: number;
  ota_port?: number;
}

/** The template's text with the given substitutions. */
export function hostDeviceYaml(opts: HostDeviceOptions = {}): string {
  let text = TEMPLATE;
  for (const [key, value] of Object.entries(opts)) {
    if (value === undefined) continue;
    const line = new RegExp(`^(  ${key}: ).*$`, "m");
    if (!line.test(text)) throw new Error(`host-device.yaml has no substitution ${key}`);
    text = text.replace(line, `$1${JSON.stringify(String(value))}`);
  }
  return text;
}

/** Writes `<dir>/<file>` (e.g. "hostdev.yaml"); returns its path. */
export async function writeHostDevice(dir: string, file: string, opts: HostDeviceOptions = {}): Promise<string> {
  const target = path.join(dir, file);
  await writeFile(target, hostDeviceYaml(opts));
  return target;
}
