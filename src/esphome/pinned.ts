/**
 * The ESPHome release the project pins: the one `esphome==X` line of
 * addon/requirements.txt, with every other package pinned in
 * addon/constraints.txt (made by addon/lock-requirements.sh for that release).
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";

export interface Pin {
  /** "2026.10.0", or null when the file is missing or has no `esphome==` line. */
  version: string | null;
  /** The constraints file for that version, null when missing. */
  constraints: string | null;
}

export function readPin(projectRoot: string): Pin {
  let version: string | null = null;
  try {
    const text = readFileSync(path.join(projectRoot, "addon", "requirements.txt"), "utf8");
    version = /^esphome==([^\s#;]+)/m.exec(text)?.[1] ?? null;
  } catch {
    // no pin
  }
  const constraints = path.join(projectRoot, "addon", "constraints.txt");
  return { version, constraints: existsSync(constraints) ? constraints : null };
}
