/**
 * The real ESPHome the real-device tests run: `.venv/esphome/bin/esphome` (made by
 * `npm run test:setup`, test/setup-esphome.sh) at the version addon/requirements.txt pins;
 * `REAL_ESPHOME` overrides the path. The tests need it, `ip netns` (root) and a C++
 * compiler; without them they skip and say why, except in CI (`CI=true`), where the
 * missing part fails the run instead.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "vitest";
import { netnsUnavailableReason } from "../helpers/netns.ts";
import { IN_CI } from "../helpers/tools.ts";

export const ROOT = path.resolve(import.meta.dirname, "../..");
export const REAL_ESPHOME = process.env.REAL_ESPHOME ?? path.join(ROOT, ".venv", "esphome", "bin", "esphome");
/** The Python of that venv (for running ESPHome's modules directly). */
export const REAL_ESPHOME_PYTHON = path.join(path.dirname(REAL_ESPHOME), "python");

/** The version addon/requirements.txt pins: the one ESPHome of this project. */
export const PINNED_ESPHOME_VERSION: string = (() => {
  const text = readFileSync(path.join(ROOT, "addon", "requirements.txt"), "utf8");
  const m = /^esphome==(\S+)/m.exec(text);
  if (m?.[1] === undefined) throw new Error("addon/requirements.txt has no esphome==<version> line");
  return m[1];
})();

let versionCache: { version: string | null; reason: string } | undefined;

/** The real ESPHome's version, or null with the reason it cannot be run. */
export function realEsphomeVersion(): { version: string | null; reason: string } {
  if (versionCache !== undefined) return versionCache;
  if (!existsSync(REAL_ESPHOME)) {
    versionCache = { version: null, reason: `${REAL_ESPHOME} is missing: run \`npm run test:setup\`` };
    return versionCache;
  }
  const r = spawnSync(REAL_ESPHOME, ["version"], { encoding: "utf8", timeout: 60_000 });
  const m = /^Version: (\S+)/m.exec(r.stdout);
  if (r.status !== 0 || m?.[1] === undefined) {
    versionCache = { version: null, reason: `\`${REAL_ESPHOME} version\` failed: ${(r.stderr || String(r.error)).trim().slice(0, 300)}` };
  } else if (m[1] !== PINNED_ESPHOME_VERSION) {
    versionCache = { version: null, reason: `${REAL_ESPHOME} is ESPHome ${m[1]}, addon/requirements.txt pins ${PINNED_ESPHOME_VERSION}: run \`npm run test:setup\`` };
  } else {
    versionCache = { version: m[1], reason: "" };
  }
  return versionCache;
}

/** Null when real host-platform devices can be built and run here, else why not. */
export function realDeviceUnavailableReason(): string | null {
  const esphome = realEsphomeVersion();
  if (esphome.version === null) return esphome.reason;
  const netns = netnsUnavailableReason();
  if (netns !== null) return netns;
  if (spawnSync("g++", ["--version"]).status !== 0) return "g++ is missing (apt-get install g++ libssl-dev)";
  return null;
}


/**
 * `describe` for tests that need `unavailable()` to be null: skipped with the reason
 * when it is not, except in CI, where one failing case says what is missing.
 */
export function describeNeeding(unavailable: () => string | null, title: string, body: () => void): void {
  const reason = unavailable();
  if (reason === null) {
    describe(title, body);
  } else if (IN_CI) {
    describe(title, () => {
      it("has what it needs (CI never skips these)", () => {
        throw new Error(reason);
      });
    });
  } else {
    describe.skip(`${title} (skipped: ${reason})`, body);
  }
}

/** `describeNeeding` with real ESPHome, network namespaces and a compiler. */
export function describeRealDevice(title: string, body: () => void): void {
  describeNeeding(realDeviceUnavailableReason, title, body);
}
