/**
 * The older ESPHome (X) the Home Assistant update test builds a device's first firmware with:
 * `.venv/esphome-previous` (test/setup.sh installs it with test/setup-esphome.sh). It must be
 * older than the pinned one the builder runs (Y) and build host-platform devices offline, which
 * ESPHome does from 2026.10 (earlier releases download PlatformIO's `native` platform): the
 * last 2026.10 beta, 2026.10.0b6. Until managed environments (issue 12) provision versions,
 * this venv is where a second version comes from.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { PINNED_ESPHOME_VERSION, ROOT } from "../real-device/esphome.ts";

const OLDER = process.env.OLDER_ESPHOME ?? path.join(ROOT, ".venv", "esphome-previous", "bin", "esphome");

let cache: { path: string; version: string | null; reason: string | null } | undefined;

export function olderEsphome(): { path: string; version: string | null; reason: string | null } {
  if (cache !== undefined) return cache;
  if (!existsSync(OLDER)) {
    cache = { path: OLDER, version: null, reason: `${OLDER} is missing: run \`npm run test:setup\`` };
    return cache;
  }
  const r = spawnSync(OLDER, ["version"], { encoding: "utf8", timeout: 60_000 });
  const version = /^Version: (\S+)/m.exec(r.stdout)?.[1] ?? null;
  if (version === null) cache = { path: OLDER, version: null, reason: `\`${OLDER} version\` failed: ${(r.stderr || String(r.error)).trim().slice(0, 300)}` };
  else if (version === PINNED_ESPHOME_VERSION) cache = { path: OLDER, version: null, reason: `${OLDER} is the pinned ${version}, not an older ESPHome: run \`npm run test:setup\`` };
  else cache = { path: OLDER, version, reason: null };
  return cache;
}
