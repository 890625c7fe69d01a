/**
 * Managed ESPHome without pip: the add-on's bundled ESPHome as the default
 * (the real pinned ESPHome of .venv/esphome stands in for the image's
 * /opt/esphome), a machine without Python >= 3.12 (the documented error, in
 * the API, the job and the log), `--esphome PATH` turning management off, the versions the real
 * package index offers, and the Home Assistant entity.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import type { EsphomeStatus, EsphomeVersionsView, FirmwareJob } from "../../src/api/wire.ts";
import { Builder } from "../../src/builder.ts";
import { readPin } from "../../src/esphome/pinned.ts";
import { computeEntities, ENTITY_IDS, esphomeEntity } from "../../src/ha/publisher.ts";
import { ApiClient } from "../helpers/api-client.ts";
import { ROOT, STAND_IN, configDir, spawnBuilder, testConfig } from "../helpers/builder.ts";
import { tempDir, waitFor } from "../helpers/tmp.ts";
import { missingTool } from "../helpers/tools.ts";

const PIN = readPin(ROOT).version ?? "";
const REAL_ESPHOME = path.join(ROOT, ".venv", "esphome", "bin", "esphome");

async function builderWith(overrides: Parameters<typeof testConfig>[1], devices: Record<string, string> = {}): Promise<{ builder: Builder; client: ApiClient; dir: string }> {
  const dir = await configDir(devices);
  const data = await tempDir("managed-data-");
  const builder = new Builder(testConfig(dir, { dataDir: data, ...overrides }));
  const { port } = await builder.start();
  const client = await ApiClient.connect(port);
  onTestFinished(async () => {
    client.close();
    await builder.stop();
  });
  return { builder, client, dir };
}

async function status(client: ApiClient): Promise<EsphomeStatus> {
  return client.call<EsphomeStatus>("esphome/status");
}

async function finished(client: ApiClient, job: FirmwareJob): Promise<FirmwareJob> {
  const follow = client.stream("firmware/follow_job", { job_id: job.job_id });
  await follow.until((f) => f.event === "result", 60_000);
  return client.call<FirmwareJob>("firmware/get_job", { job_id: job.job_id });
}

describe.skipIf(missingTool(existsSync(REAL_ESPHOME), "the real ESPHome in .venv/esphome (npm run test:setup)"))("the add-on's bundled ESPHome", () => {
  it("is the default: ready at once without pip, jobs run it, it cannot be removed", async () => {
    const { client, builder } = await builderWith({ managedEsphome: true, bundledEsphome: REAL_ESPHOME, esphome: REAL_ESPHOME, addon: false }, {});
    await waitFor(async () => (await status(client)).current_version === PIN, 10_000, "the bundled ESPHome");
    const now = await status(client);
    expect(now).toMatchObject({ mode: "managed", current_version: PIN, selected_version: PIN, state: { status: "ready", version: PIN } });
    expect(now.environments).toEqual([expect.objectContaining({ version: PIN, bundled: true, current: true, bytes: null, path: path.join(ROOT, ".venv", "esphome") })]);
    expect(now.disk_bytes).toBe(0);
    // Nothing was provisioned.
    expect(existsSync(path.join(builder.paths.esphomeDir, PIN))).toBe(false);
    const removal = await client.request("esphome/remove", { version: PIN });
    expect(removal.error_code).toBe("busy");
    expect((await client.call<{ esphome_version: string }>("config/info")).esphome_version).toBe(PIN);
  });
});

describe("no Python >= 3.12 on the machine", () => {
  it("is a clear error in the API, the jobs and the builder's log, naming what to install", async () => {
    const home = await tempDir("no-python-");
    const dir = await configDir({ dev: "" });
    // A machine without any Python: nothing on PATH, no pyenv (the builder runs on Node alone).
    const proc = await spawnBuilder(
      ["--config-dir", dir, "--data-dir", path.join(home, "data"), "--port", "0", "--peer-link-port", "0", "--peer-link-host", "127.0.0.1", "--no-mdns"],
      { PATH: path.join(home, "bin"), HOME: home, PYENV_ROOT: path.join(home, "pyenv") },
    );
    const client = await ApiClient.connect(proc.port);
    onTestFinished(() => { client.close(); });
    await waitFor(async () => (await status(client)).state.status === "failed", 20_000, "the failure");
    const now = await status(client);
    expect(now.current_version).toBeNull();
    expect(now.state).toMatchObject({ status: "failed", version: PIN, code: "no_python" });
    const message = now.state.status === "failed" ? now.state.message : "";
    expect(message).toContain("No Python 3.12 or newer");
    expect(message).toContain("apt-get install python3 python3-venv");
    expect(message).toContain("--python PATH");
    await waitFor(() => proc.stderr.join("").includes("could not be installed"), 5000, "the log line");
    expect(proc.stderr.join("")).toContain("apt-get install python3 python3-venv");
    // A job does not wait forever: it fails and says why.
    const job = await finished(client, await client.call<FirmwareJob>("firmware/compile", { configuration: "dev.yaml" }));
    expect(job.status).toBe("failed");
    expect(job.error).toContain("No ESPHome to run");
    expect(job.error).toContain("Install Python 3.12 or newer");
  });
});

describe("--esphome PATH", () => {
  it("turns management off: the stand-in is run, nothing is installed or switched", async () => {
    const { client, builder } = await builderWith({ esphome: STAND_IN }, { dev: "" });
    await waitFor(async () => (await status(client)).current_version !== null, 10_000, "the probe");
    const now = await status(client);
    expect(now).toMatchObject({ mode: "external", selected_version: null, environments: [], limit: 0 });
    const refused = await client.request("esphome/install", { version: PIN });
    expect(refused.error_code).toBe("unavailable");
    expect(refused.details).toContain("--esphome");
    expect(existsSync(builder.paths.esphomeDir)).toBe(false);
    const job = await finished(client, await client.call<FirmwareJob>("firmware/clean", { configuration: "dev.yaml" }));
    expect(job.status).toBe("completed");
  });

  it("that does not exist: the status says so and jobs fail naming --esphome", async () => {
    const { client } = await builderWith({ esphome: "/nonexistent/esphome" }, { dev: "" });
    await waitFor(async () => (await status(client)).state.status === "failed", 10_000, "the probe");
    const job = await finished(client, await client.call<FirmwareJob>("firmware/clean", { configuration: "dev.yaml" }));
    expect(job.error).toContain("--esphome");
  });
});

describe("the versions the package index offers, through the API", () => {
  it("newest first, pre-releases only when asked, the current and installed ones marked", async () => {
    const { client } = await builderWith({ esphome: STAND_IN });
    const releases = await client.call<EsphomeVersionsView>("esphome/versions", {});
    expect(releases.index).toBe("https://pypi.org/pypi/esphome/json");
    expect(releases.versions.every((v) => !v.prerelease)).toBe(true);
    expect(releases.latest).toBe(releases.versions[0]?.version);
    const names = releases.versions.map((v) => v.version);
    expect(names.indexOf(PIN)).toBeGreaterThanOrEqual(0);
    expect(names.indexOf(PIN)).toBeLessThan(names.indexOf("2026.1.0"));
    const all = await client.call<EsphomeVersionsView>("esphome/versions", { prereleases: true });
    expect(all.versions.length).toBeGreaterThan(releases.versions.length);
    // The newest release is learnt for the "newer version" entity.
    expect((await status(client)).latest_version).toBe(releases.latest);
    const bad = await client.request("esphome/versions", { prereleases: "yes" });
    expect(bad.error_code).toBe("invalid_args");
  });
});

describe("the Home Assistant entity", () => {
  const base: EsphomeStatus = {
    mode: "managed",
    current_version: "2026.9.1",
    selected_version: "2026.9.1",
    pinned_version: PIN,
    latest_version: "2026.10.0",
    state: { status: "ready", version: "2026.9.1" },
    environments: [],
    disk_bytes: 0,
    limit: 2,
  };

  it("shows the version jobs run and whether a newer release exists", () => {
    expect(esphomeEntity(base)).toMatchObject({
      entityId: ENTITY_IDS.esphome,
      state: "2026.9.1",
      attributes: { installed_version: "2026.9.1", latest_version: "2026.10.0", update_available: true, installing: null, managed: true },
    });
    expect(esphomeEntity({ ...base, current_version: "2026.10.0" }).attributes.update_available).toBe(false);
    // Never "newer" when the index is ahead only by a pre-release we do not show, or unknown.
    expect(esphomeEntity({ ...base, latest_version: null }).attributes.update_available).toBe(false);
    expect(esphomeEntity({ ...base, current_version: "2026.11.0b1", latest_version: "2026.10.0" }).attributes.update_available).toBe(false);
  });

  it("while the first ESPHome installs, and when it could not be", () => {
    const installing = esphomeEntity({ ...base, current_version: null, state: { status: "provisioning", version: PIN, percent: 42, phase: "downloading" } });
    expect(installing).toMatchObject({ state: "installing", attributes: { installing: { version: PIN, percent: 42 }, update_available: false } });
    const failed = esphomeEntity({ ...base, current_version: null, state: { status: "failed", version: PIN, code: "no_python", message: "No Python 3.12" } });
    expect(failed).toMatchObject({ state: "unavailable", attributes: { error: "No Python 3.12" } });
  });

  it("is one of the entities when the builder's ESPHome is known", () => {
    expect(computeEntities([], []).map((e) => e.entityId)).not.toContain(ENTITY_IDS.esphome);
    expect(computeEntities([], [], base).map((e) => e.entityId)).toContain(ENTITY_IDS.esphome);
  });
});
