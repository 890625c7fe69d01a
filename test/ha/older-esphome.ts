/**
 * The older ESPHome (X) the Home Assistant update test builds a device's first firmware with:
 * the other version of the shared test cache (test/helpers/esphome-versions.ts; test/setup.sh
 * installs it with the builder's own managed environments). It must be older than the pinned
 * one the builder runs (Y) and build host-platform devices offline, which ESPHome does from
 * 2026.10 (earlier releases download PlatformIO's `native` platform): the last 2026.10 beta,
 * 2026.10.0b6 (test/real-device/other-version.ts).
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { SHARED_VERSIONS_ROOT } from "../helpers/esphome-versions.ts";
import { PINNED_ESPHOME_VERSION } from "../real-device/esphome.ts";
import { OTHER_ESPHOME_VERSION } from "../real-device/other-version.ts";

const OLDER = process.env.OLDER_ESPHOME ?? path.join(SHARED_VERSIONS_ROOT, OTHER_ESPHOME_VERSION, "bin", "esphome");

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
