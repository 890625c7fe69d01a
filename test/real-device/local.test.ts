/**
 * The builder with the real ESPHome CLI (the pinned 2026.10) and a real device: a
 * host-platform ESPHome program running in a network namespace, reached over a veth
 * pair of its own. One builder process and one device for the whole file: the first
 * case's clean compile is the build the others start from (each case that needs it
 * asks for it, so any case also runs alone), and later cases rebuild incrementally.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { execFile, spawnSync } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { testPython } from "../helpers/python.ts";
import { RealDevice } from "./device.ts";
import { hostDeviceYaml, writeHostDevice } from "./devices.ts";
import { PINNED_ESPHOME_VERSION, ROOT, describeRealDevice } from "./esphome.ts";
import { createDeviceLink, type DeviceLink } from "./network.ts";
import { liveProcesses, type ProcessEntry } from "./processes.ts";
import type { FirmwareInfo } from "./probe.ts";
import { outputText, runJob, startRealBuilder, type JobRun, type RealBuilder, type Streamed } from "./builder.ts";
import { missingTool } from "../helpers/tools.ts";

/** A clean compile takes ~15 s on an idle 2-core machine; a shared one can take minutes. */
const COMPILE_MS = 600_000;
const STEP_MS = 300_000;

const DASHBOARD_CLIENT = path.join(ROOT, "test", "ha", "dashboard_api_client.py");
const hasDashboardClient = spawnSync(testPython(), ["-c", "import esphome_dashboard_api, aiohttp"]).status === 0;

function once<T>(make: () => Promise<T>): () => Promise<T> {
  let value: Promise<T> | undefined;
  return () => (value ??= make());
}

interface Storage {
  name: string;
  esphome_version: string;
  build_path: string;
  firmware_bin_path: string;
  core_platform: string;
}

/** Progress values streamed before / after the first line matching `split`. */
function progressAround(streamed: readonly Streamed[], split: RegExp): { before: number[]; after: number[] } {
  const at = streamed.findIndex((s) => s.kind === "output" && split.test(s.line));
  const values = (part: readonly Streamed[]): number[] => part.flatMap((s) => (s.kind === "progress" ? [s.progress] : []));
  return at === -1 ? { before: values(streamed), after: [] } : { before: values(streamed.slice(0, at)), after: values(streamed.slice(at)) };
}

describeRealDevice("the builder with real ESPHome and a real device", () => {
  let dir = "";
  let link: DeviceLink;
  let builder: RealBuilder;
  let device: RealDevice | undefined;
  const storage = (): Storage => JSON.parse(readFileSync(path.join(dir, ".esphome", "storage", "hostdev.yaml.json"), "utf8")) as Storage;
  const buildInfo = (): { build_time_str: string; esphome_version: string } =>
    JSON.parse(readFileSync(path.join(storage().build_path, "build_info.json"), "utf8")) as { build_time_str: string; esphome_version: string };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "esb-real-"));
    await writeHostDevice(dir, "hostdev.yaml", { label: "v1" });
    link = createDeviceLink();
    // Without ccache: with a warm cache (other tests compile the same sources) the cancel test
    // finds no compiler running, and what it checks is that running compilers are stopped.
    builder = await startRealBuilder(dir, { env: { ESPHOME_CCACHE_ENABLE: "0" } });
  }, 60_000);

  afterAll(async () => {
    await device?.stop();
    await builder.stop();
    link.destroy();
    await rm(dir, { recursive: true, force: true });
  }, 60_000);

  /** The clean compile of hostdev.yaml (label v1) through `firmware/compile`. */
  const firstBuild = once(() => runJob(builder.api, "firmware/compile", { configuration: "hostdev.yaml" }, COMPILE_MS));

  /** A device running that first build. */
  const runningDevice = once(async (): Promise<{ device: RealDevice; firmware: FirmwareInfo }> => {
    const built = await firstBuild();
    expect(built.result.status, built.result.error ?? "").toBe("completed");
    const started = await RealDevice.start({ program: storage().firmware_bin_path, link });
    device = started.device;
    return started;
  });

  it("a: compiles through firmware/compile, with progress during the build, and leaves the program where StorageJSON says", { timeout: COMPILE_MS }, async () => {
    const run = await firstBuild();
    expect(run.result, outputText(run).slice(-3000)).toEqual({ status: "completed", exit_code: 0, error: null });
    const text = outputText(run);
    const ninja = [...text.matchAll(/^\[(\d+)\/(\d+)\] /gm)].map((m) => [Number(m[1]), Number(m[2])] as const);
    expect(ninja.length).toBeGreaterThan(30);
    const total = ninja[0]?.[1] ?? 0;
    // Progress moved with the ninja counters, before the build ended.
    const { before } = progressAround(run.streamed, /Successfully compiled program/);
    expect(new Set(before.filter((p) => p > 0 && p < 100)).size).toBeGreaterThanOrEqual(10);
    expect(before).toEqual([...before].sort((x, y) => x - y));
    expect(before.at(-1)).toBe(100);
    expect(text).toContain(`[${total}/${total}] LINK program`);

    const s = storage();
    expect(s).toMatchObject({ name: "hostdev", esphome_version: PINNED_ESPHOME_VERSION, core_platform: "host" });
    expect(s.firmware_bin_path).toBe(path.join(s.build_path, ".pioenvs", "hostdev", "program"));
    expect(s.build_path).toBe(path.join(dir, ".esphome", "build", "hostdev"));
    expect(statSync(s.firmware_bin_path).mode & 0o111).not.toBe(0);
    expect(text).toContain(`Successfully compiled program to path '${s.firmware_bin_path}'`);
    expect(buildInfo().esphome_version).toBe(PINNED_ESPHOME_VERSION);
    expect(text).toContain(`build_time_str=${buildInfo().build_time_str}`);
  });

  it("b: installs over the air to the running device: it re-execs the new build, progress moves through compile and upload", { timeout: STEP_MS + COMPILE_MS }, async () => {
    const { device: dev, firmware: before } = await runningDevice();
    expect(before).toMatchObject({ name: "hostdev", esphomeVersion: PINNED_ESPHOME_VERSION, compilationTime: buildInfo().build_time_str });
    const pid = dev.pid;
    await writeHostDevice(dir, "hostdev.yaml", { label: "v2" });

    const run = await runJob(builder.api, "firmware/install", { configuration: "hostdev.yaml", port: dev.address }, STEP_MS);
    expect(run.result, outputText(run).slice(-3000)).toEqual({ status: "completed", exit_code: 0, error: null });
    const text = outputText(run);
    expect(text).toContain(`Connecting to ${dev.address} port 8082`);
    expect(text).toContain("OTA successful");

    const { before: compile, after: upload } = progressAround(run.streamed, /Successfully compiled program/);
    expect(compile.length, "progress during the compile").toBeGreaterThanOrEqual(2);
    expect(compile.at(-1)).toBe(100);
    expect(upload[0], "the upload starts again from the bottom").toBeLessThan(50);
    expect(new Set(upload).size, "progress during the upload").toBeGreaterThanOrEqual(5);
    expect(upload.at(-1)).toBe(100);

    const after = await dev.firmware(30_000, (info) => info.compilationTime !== before.compilationTime);
    expect(after.compilationTime).toBe(buildInfo().build_time_str);
    expect(dev.pid, "re-executed in place").toBe(pid);
    expect(dev.alive).toBe(true);
  });

  it("c: a wrong OTA password fails the job with ESPHome's message, and the device keeps its firmware", { timeout: STEP_MS + COMPILE_MS }, async () => {
    const { device: dev } = await runningDevice();
    const before = await dev.firmware();
    await writeFile(path.join(dir, "wrongpass.yaml"), hostDeviceYaml({ ota_password: "not-the-password" }));
    const run = await runJob(builder.api, "firmware/upload", { configuration: "wrongpass.yaml", port: dev.address }, STEP_MS);
    expect(run.result.status).toBe("failed");
    expect(run.result.exit_code).toBe(1);
    expect(run.result.error).toBe("esphome upload failed (exit code 1): receiving auth result: Authentication invalid. Is the password correct?");
    expect(await dev.firmware()).toEqual(before);
  });

  it("c: an unreachable device fails the job with ESPHome's message", { timeout: STEP_MS + COMPILE_MS }, async () => {
    const { device: dev } = await runningDevice();
    const before = await dev.firmware();
    const run = await runJob(builder.api, "firmware/upload", { configuration: "hostdev.yaml", port: link.unusedAddress }, STEP_MS);
    expect(run.result.status).toBe("failed");
    expect(run.result.error).toMatch(new RegExp(`^esphome upload failed \\(exit code 1\\): Upload failed after 3 attempts: connecting to ${link.unusedAddress.replaceAll(".", "\\.")} failed: .*(No route to host|timed out)`));
    expect(await dev.firmware()).toEqual(before);
  });

  it("c: a YAML that fails validation fails the install with ESPHome's message, and nothing is flashed", { timeout: STEP_MS + COMPILE_MS }, async () => {
    const { device: dev } = await runningDevice();
    const before = await dev.firmware();
    const broken = hostDeviceYaml({ name: "broken" }).replace("    name: Uptime\n", "    name: Uptime\n    update_interval: often\n");
    await writeFile(path.join(dir, "broken.yaml"), broken);
    const run = await runJob(builder.api, "firmware/install", { configuration: "broken.yaml", port: dev.address }, STEP_MS);
    expect(run.result.status).toBe("failed");
    expect(run.result.exit_code).toBe(2);
    expect(run.result.error).toMatch(/^esphome compile failed \(exit code 2\): Failed config in sensor\.uptime: Unknown value 'often', valid options are /);
    expect(outputText(run)).not.toContain("Uploading");
    expect(await dev.firmware()).toEqual(before);
  });

  it("d: cancel mid-compile ends ninja and every compiler process: none is left", { timeout: COMPILE_MS }, async () => {
    await writeHostDevice(dir, "cancelme.yaml", { name: "cancelme" });
    let session: number | null = null;
    let atCancel: ProcessEntry[] = [];
    const cancel: { call: Promise<unknown> | null } = { call: null };
    const run = await runJob(builder.api, "firmware/compile", { configuration: "cancelme.yaml" }, COMPILE_MS, (item, job) => {
      if (cancel.call !== null || item.kind !== "output" || !/^\[([3-9]|\d\d+)\/\d+\] (CXX|CC) /.test(item.line)) return;
      // The job's ESPHome process leads its own session (the builder records its pid).
      const recorded = JSON.parse(readFileSync(path.join(dir, ".esphome", "builder", "processes.json"), "utf8")) as Record<string, { pid: number }>;
      session = recorded[job.job_id]?.pid ?? null;
      atCancel = liveProcesses((p) => p.sid === session);
      cancel.call = builder.api.call("firmware/cancel", { job_id: job.job_id });
    });
    await cancel.call;
    expect(run.result.status).toBe("cancelled");
    expect(session).not.toBeNull();
    // There was something to stop: ninja and the compilers it started, each compiler in its own process group.
    const names = atCancel.map((p) => p.comm);
    expect(names).toContain("ninja");
    expect(names.some((n) => n === "cc1plus" || n === "cc1" || n === "g++" || n === "gcc")).toBe(true);
    const buildDir = path.join(dir, ".esphome", "build", "cancelme");
    const leftovers = (): ProcessEntry[] => liveProcesses((p) => p.sid === session || p.cmdline.includes(buildDir));
    // Give the kernel a moment to deliver the signals; nothing may survive the job's end by more.
    const deadline = Date.now() + 2000;
    while (leftovers().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(leftovers().map((p) => `${p.pid} ${p.comm} ${p.cmdline.slice(0, 120)}`)).toEqual([]);
  });

  it.skipIf(missingTool(hasDashboardClient, "esphome-dashboard-api in .venv"))("f: the legacy API's /compile and /upload (Home Assistant's client) build and flash with the real CLI", { timeout: STEP_MS + COMPILE_MS }, async () => {
    const { device: dev } = await runningDevice();
    const before = await dev.firmware();
    await writeHostDevice(dir, "hostdev.yaml", { label: "v3" });
    const actions = [{ do: "compile", configuration: "hostdev.yaml" }, { do: "upload", configuration: "hostdev.yaml", port: dev.address }];
    const out = await new Promise<string>((resolve, reject) => {
      execFile(testPython(), [DASHBOARD_CLIENT, `http://127.0.0.1:${builder.port}`, JSON.stringify(actions)], { timeout: STEP_MS }, (err, stdout, stderr) => {
        if (err !== null) reject(new Error(`${err.message}\n${stderr}`));
        else resolve(stdout);
      });
    });
    const [compile, upload] = (JSON.parse(out) as { results: { ok: boolean; lines: string[] }[] }).results;
    expect(compile?.ok, compile?.lines.slice(-20).join("")).toBe(true);
    expect(compile?.lines.join("")).toContain("Successfully compiled program to path");
    expect(upload?.ok, upload?.lines.slice(-20).join("")).toBe(true);
    expect(upload?.lines.join("")).toContain("OTA successful");
    const after = await dev.firmware(30_000, (info) => info.compilationTime !== before.compilationTime);
    expect(after.compilationTime).toBe(buildInfo().build_time_str);
  });

  it("g: clean removes the build folder with the real CLI", { timeout: STEP_MS + COMPILE_MS }, async () => {
    await firstBuild();
    const buildPath = storage().build_path;
    expect(existsSync(buildPath)).toBe(true);
    const run: JobRun = await runJob(builder.api, "firmware/clean", { configuration: "hostdev.yaml" }, STEP_MS);
    expect(run.result).toEqual({ status: "completed", exit_code: 0, error: null });
    expect(outputText(run)).toContain(`Deleting ${buildPath}`);
    expect(existsSync(buildPath)).toBe(false);
  });
});
