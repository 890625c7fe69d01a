/**
 * Managed ESPHome with the real CLI and the real package index: a builder
 * without --esphome provisions the pinned ESPHome with pip in the background
 * (API up at once, a job queued meanwhile waits and then runs), switches to an
 * older release between two jobs, keeps a running job's environment, reports a
 * release that does not exist, and the environment limit removes the least
 * recently used one. One data dir for the whole file: each version is
 * provisioned once (pip takes about a minute per version here).
 *
 * Jobs are `clean` jobs: real ESPHome runs, reads the YAML and prints its own
 * version (`INFO ESPHome <version>`), in a second or two.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { mkdir, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EsphomeStatus, FirmwareJob } from "../../src/api/wire.ts";
import { Builder } from "../../src/builder.ts";
import { Environments } from "../../src/esphome/environments.ts";
import { readPin } from "../../src/esphome/pinned.ts";
import { findPython } from "../../src/esphome/python-finder.ts";
import { ApiClient, type Frame } from "../helpers/api-client.ts";
import { ROOT, testConfig } from "../helpers/builder.ts";
import { waitFor } from "../helpers/tmp.ts";
import { missingTool } from "../helpers/tools.ts";

const PIN = readPin(ROOT).version ?? "";
/** An older 2026 release that installs on Python 3.12-3.14 (requires_python >=3.12,<3.15). */
const OLDER = "2026.9.1";
const python = await findPython().then((p) => p, () => null);
const skip = missingTool(python !== null, "a Python >= 3.12 for managed ESPHome (npm run test:setup finds or installs one)");

const MINUTES = 60_000;
let base = "";
let configDir = "";
let dataDir = "";

beforeAll(async () => {
  base = mkdtempSync(path.join(os.tmpdir(), "managed-esphome-"));
  configDir = path.join(base, "config");
  dataDir = path.join(base, "data");
  await mkdir(configDir, { recursive: true });
  await writeFile(path.join(configDir, "dev.yaml"), "esphome:\n  name: dev\nhost:\nlogger:\n");
  // `esphome clean` also deletes PlatformIO's cache: this file's own, not the machine's.
  process.env.PLATFORMIO_CORE_DIR = path.join(base, "platformio");
});

afterAll(() => {
  if (base !== "") rmSync(base, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
});

async function start(): Promise<{ builder: Builder; client: ApiClient; events: ReturnType<ApiClient["stream"]>; port: number }> {
  const builder = new Builder(testConfig(configDir, { dataDir, esphome: "esphome", managedEsphome: true }));
  const { port } = await builder.start();
  const client = await ApiClient.connect(port);
  const events = client.stream("subscribe_events", { job_output: false });
  await events.until((f) => f.event === "initial_state");
  return { builder, client, events, port };
}

async function stop(builder: Builder, client: ApiClient): Promise<void> {
  client.close();
  await builder.stop();
}

async function runClean(client: ApiClient, timeoutMs = 60_000): Promise<{ job: FirmwareJob; output: string; result: Frame }> {
  const job = await client.call<FirmwareJob>("firmware/clean", { configuration: "dev.yaml" });
  const follow = client.stream("firmware/follow_job", { job_id: job.job_id });
  const result = await follow.until((f) => f.event === "result", timeoutMs);
  const output = follow.frames.filter((f) => f.event === "output").map((f) => (f.data as { line: string }).line).join("");
  return { job, output, result };
}

/** The error reply of a command that must fail. */
async function refused(client: ApiClient, command: string, args: unknown): Promise<{ code: string; message: string }> {
  const frame = await client.request(command, args);
  expect(frame.error_code).toBeDefined();
  return { code: frame.error_code ?? "", message: frame.details ?? "" };
}

/** Waits until jobs run `version` (a restarted builder finds its environment in a moment, without pip). */
async function currentIs(client: ApiClient, version: string): Promise<void> {
  await waitFor(async () => (await client.call<EsphomeStatus>("esphome/status")).current_version === version, 30_000, `ESPHome ${version} to be current`);
}

const statusOf = (f: Frame): EsphomeStatus => (f.data as { status: EsphomeStatus }).status;

describe.skipIf(skip)("managed ESPHome, real pip and package index", () => {
  it("first start: API up at once, the pinned ESPHome provisioned in the background, a job queued meanwhile waits and then runs", async () => {
    const started = Date.now();
    const { builder, client, events, port } = await start();
    // Up long before pip could have finished.
    expect(Date.now() - started).toBeLessThan(15_000);
    const initial = (events.frames.find((f) => f.event === "initial_state")?.data as { esphome: EsphomeStatus }).esphome;
    expect(initial).toMatchObject({ mode: "managed", current_version: null, selected_version: PIN, pinned_version: PIN, limit: 2 });
    expect(initial.state).toMatchObject({ status: "provisioning", version: PIN });
    expect(await client.call("ping")).toEqual({ pong: true });

    const queued = await client.call<FirmwareJob>("firmware/clean", { configuration: "dev.yaml" });
    const follow = client.stream("firmware/follow_job", { job_id: queued.job_id });
    // Still waiting for ESPHome a moment later, and the API still answers.
    await new Promise((r) => setTimeout(r, 1500));
    expect((await client.call<FirmwareJob>("firmware/get_job", { job_id: queued.job_id })).status).toBe("queued");
    expect(await client.call<{ status: string }>("esphome/status")).toMatchObject({ current_version: null, state: { status: "provisioning" } });
    // Home Assistant's config request is told to come back rather than left hanging.
    const legacy = await fetch(`http://127.0.0.1:${port}/json-config?configuration=dev.yaml`);
    expect(legacy.status).toBe(503);
    expect(await legacy.text()).toContain("ESPHome is being installed");

    const ready = await events.until((f) => f.event === "esphome_state_changed" && statusOf(f).state.status === "ready", 8 * MINUTES);
    const readyAt = Date.now();
    const result = await follow.until((f) => f.event === "result", 2 * MINUTES);
    expect(result.data).toMatchObject({ status: "completed", exit_code: 0 });
    const output = follow.frames.filter((f) => f.event === "output" || f.event === "output_batch").map((f) => JSON.stringify(f.data)).join("");
    expect(output).toContain(`ESPHome ${PIN}`);
    const job = await client.call<FirmwareJob>("firmware/get_job", { job_id: queued.job_id });
    expect(Date.parse(job.started_at ?? "")).toBeGreaterThanOrEqual(readyAt - 1000);

    // Progress: percentages that never fall, through pip's phases, to ready.
    const states = events.frames.filter((f) => f.event === "esphome_state_changed").map((f) => statusOf(f).state);
    const percents = states.flatMap((s) => (s.status === "provisioning" ? [s.percent] : []));
    for (let i = 1; i < percents.length; i++) expect(percents[i]).toBeGreaterThanOrEqual(percents[i - 1] ?? 0);
    const phases = new Set(states.flatMap((s) => (s.status === "provisioning" ? [s.phase] : [])));
    for (const phase of ["downloading", "installing", "checking"]) expect(phases).toContain(phase);
    expect(Math.max(...percents)).toBeGreaterThanOrEqual(90);
    const final = statusOf(ready);
    expect(final).toMatchObject({ current_version: PIN, selected_version: PIN, state: { status: "ready", version: PIN } });
    expect(final.environments).toEqual([expect.objectContaining({ version: PIN, current: true, bundled: false, path: path.join(dataDir, "esphome", PIN) })]);
    expect(final.disk_bytes).toBeGreaterThan(50_000_000);
    // The default is not a choice: nothing is remembered, a new pin would be followed.
    expect(existsSync(path.join(dataDir, "builder", "esphome.json"))).toBe(false);

    // pip's output is kept for the log view.
    const log = await client.call<{ version: string; lines: string[] }>("esphome/log");
    expect(log.version).toBe(PIN);
    expect(log.lines.join("")).toContain(`Collecting esphome==${PIN}`);
    expect(log.lines.join("")).toContain("Successfully installed");
    expect((await client.call<{ esphome_version: string }>("config/info")).esphome_version).toBe(PIN);
    await stop(builder, client);
  }, 10 * MINUTES);

  it("switches versions between two jobs: the install runs in the background, a running build keeps its environment, the next job uses the new one", async () => {
    const { builder, client, events } = await start();
    // Already there: ready without pip.
    await currentIs(client, PIN);
    expect((await runClean(client)).output).toContain(`ESPHome ${PIN}`);

    // A "running build" holds the pinned environment while the switch happens.
    const lease = await builder.esphome.acquire();
    const status = await client.call<EsphomeStatus>("esphome/install", { version: OLDER });
    expect(status.state).toMatchObject({ status: "provisioning", version: OLDER });
    expect(status.current_version).toBe(PIN);
    // A job queued during the switch does not wait: it runs on the current version.
    const during = await runClean(client);
    expect(during.result.data).toMatchObject({ status: "completed" });
    expect(during.output).toContain(`ESPHome ${PIN}`);

    const ready = await events.until((f) => f.event === "esphome_state_changed" && statusOf(f).current_version === OLDER, 8 * MINUTES);
    expect(statusOf(ready).selected_version).toBe(OLDER);
    const after = await runClean(client);
    expect(after.output).toContain(`ESPHome ${OLDER}`);
    expect(after.output).not.toContain(`ESPHome ${PIN}`);

    // The held (running) environment is never removed; released, it can be.
    let now = await client.call<EsphomeStatus>("esphome/status");
    expect(now.environments.map((e) => e.version).sort()).toEqual([OLDER, PIN].sort());
    expect(now.environments.find((e) => e.version === PIN)).toMatchObject({ in_use: true, current: false });
    expect(now.environments.every((e) => (e.bytes ?? 0) > 0)).toBe(true);
    expect(now.disk_bytes).toBe(now.environments.reduce((n, e) => n + (e.bytes ?? 0), 0));
    expect(await refused(client, "esphome/remove", { version: PIN })).toMatchObject({ code: "busy" });
    expect(await refused(client, "esphome/remove", { version: OLDER })).toMatchObject({ code: "busy" });
    lease.release();
    await waitFor(async () => !(await client.call<EsphomeStatus>("esphome/status")).environments.some((e) => e.in_use), 5000, "the lease to be released");

    // The choice survives a restart (the first start's default was not written down: it follows the pin).
    expect(JSON.parse(await readFile(path.join(dataDir, "builder", "esphome.json"), "utf8"))).toEqual({ selected: OLDER });
    now = await client.call<EsphomeStatus>("esphome/status");
    expect(now.current_version).toBe(OLDER);
    await stop(builder, client);
  }, 10 * MINUTES);

  it("a release the index does not have: the install fails with pip's reason, nothing is left behind, jobs keep the current version", async () => {
    const { builder, client, events } = await start();
    await currentIs(client, OLDER);
    await client.call("esphome/install", { version: "2099.1.0" });
    const failed = await events.until((f) => f.event === "esphome_state_changed" && statusOf(f).state.status === "failed", 3 * MINUTES);
    const state = statusOf(failed).state;
    expect(state).toMatchObject({ status: "failed", version: "2099.1.0", code: "provision_failed" });
    expect(state.status === "failed" ? state.message : "").toMatch(/2099\.1\.0.*(No matching distribution|Could not find a version)/s);
    expect(statusOf(failed).current_version).toBe(OLDER);
    expect((await readdir(path.join(dataDir, "esphome", ".venvs"))).some((n) => n.startsWith("2099.1.0"))).toBe(false);
    expect(existsSync(path.join(dataDir, "esphome", "2099.1.0"))).toBe(false);
    expect((await runClean(client)).output).toContain(`ESPHome ${OLDER}`);

    // Bad requests change nothing.
    expect(await refused(client, "esphome/install", { version: "../../etc" })).toMatchObject({ code: "invalid_args" });
    expect(await refused(client, "esphome/install", { version: "2026.10.0; rm -rf /" })).toMatchObject({ code: "invalid_args" });
    const current = await refused(client, "esphome/remove", { version: OLDER });
    expect(current.code).toBe("busy");
    expect(current.message).toContain("switch to another version");
    expect(await refused(client, "esphome/remove", { version: "2025.1.0" })).toMatchObject({ code: "not_found" });
    await stop(builder, client);
  }, 6 * MINUTES);

  it("crash safety and the limit: half-built folders are removed at start, and past the limit the least recently used goes", async () => {
    const root = path.join(dataDir, "esphome");
    // What a builder killed mid-provisioning leaves: a venv no link points to, and a link to a venv without its marker.
    await mkdir(path.join(root, ".venvs", "2026.1.0-deadbeef", "bin"), { recursive: true });
    await mkdir(path.join(root, ".venvs", "2026.2.0-0badc0de", "lib"), { recursive: true });
    await symlink(path.join(".venvs", "2026.2.0-0badc0de"), path.join(root, "2026.2.0"));
    const envs = new Environments({ root, limit: 1, python: () => findPython() });
    await envs.start();
    expect(existsSync(path.join(root, ".venvs", "2026.1.0-deadbeef"))).toBe(false);
    expect(existsSync(path.join(root, ".venvs", "2026.2.0-0badc0de"))).toBe(false);
    expect(existsSync(path.join(root, "2026.2.0"))).toBe(false);
    // OLDER was used last (the last jobs ran on it): PIN, used least recently, is removed.
    const left = await envs.list();
    expect(left.map((e) => e.version)).toEqual([OLDER]);
    expect(existsSync(path.join(root, PIN))).toBe(false);
    expect((await readdir(path.join(root, ".venvs"))).filter((n) => n.startsWith(PIN))).toEqual([]);
    // What is left still runs.
    const ready = await envs.ensure(OLDER);
    expect(ready.esphome).toBe(left[0]?.esphome);
    expect(existsSync(ready.esphome)).toBe(true);
    await envs.stop();
  }, 2 * MINUTES);
});
