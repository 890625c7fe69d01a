/**
 * A build server serving the offloader's ESPHome version, with the real CLI on
 * both builders: the offloader runs ESPHome 2026.10.0b6 (from the shared test
 * cache, test/helpers/esphome-versions.ts: one real pip install per machine),
 * the build server runs the pinned 2026.10.0 under the version policy `exact`.
 * The build server provisions 2026.10.0b6 for the job (reported in the job's
 * output), compiles the host-platform device with it, and the firmware that
 * comes back says 2026.10.0b6; ccache on the build server's PATH caches that
 * compile's objects.
 */
import { readdirSync, statSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { ReadyEnvironment } from "../../src/esphome/environments.ts";
import { resolvePaths } from "../../src/paths.ts";
import { seedEnvironment, sharedEsphomeVersion } from "../helpers/esphome-versions.ts";
import { waitFor } from "../helpers/tmp.ts";
import { missingTool } from "../helpers/tools.ts";
import { outputText, pairBuilders, runJob, startRealBuilder, type RealBuilder } from "./builder.ts";
import { writeHostDevice } from "./devices.ts";
import { OTHER_ESPHOME_VERSION } from "./other-version.ts";
import { PINNED_ESPHOME_VERSION, describeNeeding, realEsphomeVersion } from "./esphome.ts";

const COMPILE_MS = 900_000;

function unavailable(): string | null {
  const esphome = realEsphomeVersion();
  if (esphome.version === null) return esphome.reason;
  if (spawnSync("g++", ["--version"]).status !== 0) return "g++ is missing (apt-get install g++ libssl-dev)";
  return null;
}

/** Files below a folder, counted (ccache's objects). */
function filesBelow(dir: string): number {
  let n = 0;
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const name of entries) {
    const full = path.join(dir, name);
    n += statSync(full).isDirectory() ? filesBelow(full) : 1;
  }
  return n;
}

describeNeeding(unavailable, "a build server provisioning the offloader's ESPHome version (exact)", () => {
  let offloaderDir = "";
  let serverDir = "";
  let ccacheDir = "";
  let other: ReadyEnvironment;
  let a: RealBuilder;
  let b: RealBuilder;

  beforeAll(async () => {
    other = await sharedEsphomeVersion(OTHER_ESPHOME_VERSION);
    offloaderDir = await mkdtemp(path.join(os.tmpdir(), "esb-versions-a-"));
    serverDir = await mkdtemp(path.join(os.tmpdir(), "esb-versions-b-"));
    ccacheDir = await mkdtemp(path.join(os.tmpdir(), "esb-versions-ccache-"));
    await writeHostDevice(offloaderDir, "hostdev.yaml", { label: "versions-1" });
    // The build server finds that version where it installs versions, as if it had installed it itself.
    await seedEnvironment(resolvePaths({ configDir: serverDir }).buildServerVersionsDir, other);
    a = await startRealBuilder(offloaderDir, { label: "Offloader", extraArgs: ["--esphome", other.esphome] });
    b = await startRealBuilder(serverDir, { label: "Build server", env: { CCACHE_DIR: ccacheDir } });
    // Each learns its ESPHome version in the background at start; the versions decide where the build goes.
    for (const [builder, version] of [[a, OTHER_ESPHOME_VERSION], [b, PINNED_ESPHOME_VERSION]] as const) {
      await waitFor(async () => (await builder.api.call<{ esphome_version: string | null }>("remote_build/get_identity")).esphome_version === version, 60_000, `ESPHome ${version}`);
    }
  }, COMPILE_MS);

  afterAll(async () => {
    await a.stop();
    await b.stop();
    for (const dir of [offloaderDir, serverDir, ccacheDir]) await rm(dir, { recursive: true, force: true });
  }, 60_000);

  it("compiles with the offloader's version, says so in the job, and the firmware carries that version", { timeout: COMPILE_MS }, async () => {
    const settings = await b.api.call<{ version_policy: string; auto_provision_supported: boolean; ccache: boolean }>("remote_build/set_settings", { version_policy: "exact" });
    expect(settings).toMatchObject({ version_policy: "exact", auto_provision_supported: true });
    const pin = await pairBuilders(a, b);
    const pairing = (await a.api.call<{ pairings: { esphome_version: string; version_policy: string | null }[] }>("remote_build/get_offloader_settings")).pairings[0];
    expect(pairing).toMatchObject({ esphome_version: PINNED_ESPHOME_VERSION, version_policy: "exact" });

    const run = await runJob(a.api, "firmware/compile", { configuration: "hostdev.yaml" }, COMPILE_MS);
    const text = outputText(run);
    expect(run.result, text.slice(-3000)).toMatchObject({ status: "completed", exit_code: 0 });
    expect(run.final).toMatchObject({ source: "remote", source_pin_sha256: pin });
    expect(text).toContain(`*** provisioning ESPHome ${OTHER_ESPHOME_VERSION} for this build ***`);
    expect(text).toMatch(new RegExp(`\\*\\*\\* ESPHome ${OTHER_ESPHOME_VERSION.replaceAll(".", "\\.")} ready \\(\\d+\\.\\d s\\) \\*\\*\\*`));

    // The build server's job asked for it and ran that ESPHome.
    const onB = (await b.api.call<{ target_esphome_version: string; status: string }[]>("firmware/get_jobs", {}))[0];
    expect(onB).toMatchObject({ target_esphome_version: OTHER_ESPHOME_VERSION, status: "completed" });
    // What came back (materialised into A's build folder) was built by it.
    const storage = JSON.parse(await readFile(resolvePaths({ configDir: offloaderDir }).storageJson("hostdev.yaml"), "utf8")) as { esphome_version: string };
    expect(storage.esphome_version).toBe(OTHER_ESPHOME_VERSION);

    // ccache: ESPHome on the build server wrapped the compile with it (objects in CCACHE_DIR).
    if (!missingTool(settings.ccache, "ccache on PATH (npm run test:setup installs it)")) {
      expect(filesBelow(ccacheDir)).toBeGreaterThan(10);
    }
  });
});
