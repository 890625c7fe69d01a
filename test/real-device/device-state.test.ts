/**
 * Device state with real ESPHome 2026.10 host devices, each in a network namespace of
 * its own, and a builder process running the real ESPHome CLI: online -> offline ->
 * online within the stated bound, what the device runs (its compilation time is the
 * build's), "update available" for both reasons, an outdated-only bulk install that
 * installs only the outdated device, an install that waits for its device and runs when
 * it starts, and device logs streamed from `esphome logs`.
 *
 * One clean compile serves both devices (the same program in two namespaces; the twin's
 * YAML is the same text, so it is current). ESPHome 2026.10 is the only one here, so the
 * "older ESPHome" reason is checked against a second builder that reports a newer
 * ESPHome: its --esphome is a wrapper that answers `version` with 2026.11.0 and runs the
 * real CLI for everything else (no older ESPHome can be built here).
 */
import { readFileSync } from "node:fs";
import { chmod, copyFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { DeviceState, FirmwareJob } from "../../src/api/wire.ts";
import { detectionBoundMs, timingsFor } from "../../src/devices/prober.ts";
import type { ApiClient } from "../helpers/api-client.ts";
import { outputText, runJob, startRealBuilder, type RealBuilder } from "./builder.ts";
import { RealDevice } from "./device.ts";
import { hostDeviceYaml, writeHostDevice } from "./devices.ts";
import { PINNED_ESPHOME_VERSION, REAL_ESPHOME, describeRealDevice } from "./esphome.ts";
import { createDeviceLink, type DeviceLink } from "./network.ts";
import { liveProcesses } from "./processes.ts";

const COMPILE_MS = 600_000;
const POLL_S = 2;
/** What prober.ts promises for --device-poll-interval 2, plus a margin for a loaded machine. */
const BOUND = detectionBoundMs(timingsFor(POLL_S * 1000, 8));
const MARGIN_MS = 5_000;

async function stateOf(api: ApiClient, configuration: string, pred: (s: DeviceState) => boolean, ms: number): Promise<DeviceState> {
  const deadline = Date.now() + ms;
  let last: DeviceState | undefined;
  for (;;) {
    last = (await api.call<DeviceState[]>("devices/states")).find((s) => s.configuration === configuration);
    if (last !== undefined && pred(last)) return last;
    if (Date.now() > deadline) throw new Error(`${configuration}: not as expected within ${ms} ms: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describeRealDevice("device state with real host devices", () => {
  let dir = "";
  let links: DeviceLink[] = [];
  let builder: RealBuilder;
  let program = "";
  const running: RealDevice[] = [];
  const buildInfo = (): { build_time_str: string } => {
    const storage = JSON.parse(readFileSync(path.join(dir, ".esphome", "storage", "hostdev.yaml.json"), "utf8")) as { build_path: string };
    return JSON.parse(readFileSync(path.join(storage.build_path, "build_info.json"), "utf8")) as { build_time_str: string };
  };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "esb-devstate-"));
    await writeHostDevice(dir, "hostdev.yaml", { label: "v1" });
    links = [createDeviceLink(), createDeviceLink()];
    builder = await startRealBuilder(dir, { extraArgs: ["--device-poll-interval", String(POLL_S), "--device-wait", "10"] });
    const built = await runJob(builder.api, "firmware/compile", { configuration: "hostdev.yaml" }, COMPILE_MS);
    expect(built.result, outputText(built).slice(-2000)).toMatchObject({ status: "completed" });
    const storage = JSON.parse(readFileSync(path.join(dir, ".esphome", "storage", "hostdev.yaml.json"), "utf8")) as { firmware_bin_path: string };
    program = path.join(dir, "program-v1");
    await copyFile(storage.firmware_bin_path, program);
    // The twin: the same text, written before the build, so its firmware (the same program) is current.
    await writeFile(path.join(dir, "twin.yaml"), hostDeviceYaml({ label: "v1" }));
    const { utimes } = await import("node:fs/promises");
    const before = new Date(Date.now() - 3_600_000);
    await utimes(path.join(dir, "twin.yaml"), before, before);
    await utimes(path.join(dir, "hostdev.yaml"), before, before);
    for (const link of links) running.push((await RealDevice.start({ program, link })).device);
    await builder.api.call("devices/set_address", { configuration: "hostdev.yaml", address: links[0]?.deviceAddress });
    await builder.api.call("devices/set_address", { configuration: "twin.yaml", address: links[1]?.deviceAddress });
  }, COMPILE_MS + 120_000);

  afterAll(async () => {
    for (const d of running) await d.stop();
    builder.api.close();
    await builder.stop();
    for (const link of links) link.destroy();
    await rm(dir, { recursive: true, force: true });
  }, 60_000);

  it("reads what each device runs; online -> offline -> online within the stated bound", { timeout: 120_000 }, async () => {
    const state = await stateOf(builder.api, "hostdev.yaml", (s) => s.status === "online", BOUND.onlineMs + MARGIN_MS);
    expect(state).toMatchObject({
      address: links[0]?.deviceAddress,
      address_source: "owner",
      firmware: { esphome_version: PINNED_ESPHOME_VERSION, compilation_time: buildInfo().build_time_str, source: "api" },
      update_reasons: [],
    });
    await stateOf(builder.api, "twin.yaml", (s) => s.status === "online" && s.update_reasons.length === 0, BOUND.onlineMs + MARGIN_MS);

    const device = running[0] as RealDevice;
    const t0 = Date.now();
    await device.stop();
    const offline = await stateOf(builder.api, "hostdev.yaml", (s) => s.status === "offline", BOUND.offlineMs + MARGIN_MS);
    const tookOffline = Date.now() - t0;
    expect(tookOffline).toBeLessThan(BOUND.offlineMs + MARGIN_MS);
    expect(offline.last_seen).not.toBeNull();

    const t1 = Date.now();
    running[0] = (await RealDevice.start({ program, link: links[0] as DeviceLink })).device;
    await stateOf(builder.api, "hostdev.yaml", (s) => s.status === "online", BOUND.onlineMs + MARGIN_MS);
    // From the process start (the device answers its API within a second of it).
    expect(Date.now() - t1).toBeLessThan(BOUND.onlineMs + MARGIN_MS);
    console.log(`offline after ${tookOffline} ms (bound ${BOUND.offlineMs}), online again after ${Date.now() - t1} ms (bound ${BOUND.onlineMs})`);
  });

  it("device logs stream from `esphome logs` and stop when the viewer goes; no job is queued", { timeout: 120_000 }, async () => {
    await stateOf(builder.api, "hostdev.yaml", (s) => s.status === "online", BOUND.onlineMs + MARGIN_MS);
    const jobsBefore = (await builder.api.call<FirmwareJob[]>("firmware/get_jobs")).length;
    const logs = builder.api.stream("devices/logs", { configuration: "hostdev.yaml" });
    const started = await logs.until((f) => f.event === "started", 10_000);
    expect(started.data).toEqual({ address: links[0]?.deviceAddress });
    await logs.until((f) => f.event === "line" && /Successfully connected|\[[DIWC]\]/.test((f.data as { line: string }).line), 60_000);
    const text = logs.frames.filter((f) => f.event === "line").map((f) => (f.data as { line: string }).line).join("");
    expect(text).toContain(links[0]?.deviceAddress ?? "?");
    const viewers = (): number => liveProcesses((p) => p.cmdline.includes(" logs ") && p.cmdline.includes("hostdev.yaml")).length;
    expect(viewers()).toBeGreaterThan(0);
    const gone = async (): Promise<void> => {
      const deadline = Date.now() + 15_000;
      while (viewers() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(viewers()).toBe(0);
    };
    // Ending the stream (the panel's dialog closing: unsubscribe) stops the process.
    expect(await builder.api.call("unsubscribe", { message_id: logs.id })).toEqual({ ended: 1 });
    await gone();
    // So does devices/logs_stop.
    const third = builder.api.stream("devices/logs", { configuration: "hostdev.yaml" });
    await third.until((f) => f.event === "line", 60_000);
    expect(viewers()).toBeGreaterThan(0);
    expect(await builder.api.call("devices/logs_stop", { configuration: "hostdev.yaml" })).toEqual({ stopped: true });
    await gone();
    // So does closing the connection.
    const { ApiClient } = await import("../helpers/api-client.ts");
    const other = await ApiClient.connect(builder.port);
    const again = other.stream("devices/logs", { configuration: "hostdev.yaml" });
    await again.until((f) => f.event === "line", 60_000);
    expect(viewers()).toBeGreaterThan(0);
    other.close();
    await gone();
    expect((await builder.api.call<FirmwareJob[]>("firmware/get_jobs")).length).toBe(jobsBefore);
  });

  it("a changed YAML makes an update available; an outdated-only bulk install installs that device alone", { timeout: COMPILE_MS + 120_000 }, async () => {
    await stateOf(builder.api, "twin.yaml", (s) => s.status === "online", BOUND.onlineMs + MARGIN_MS);
    await writeHostDevice(dir, "hostdev.yaml", { label: "v2" });
    const due = await stateOf(builder.api, "hostdev.yaml", (s) => s.update_reasons.length > 0, BOUND.onlineMs + MARGIN_MS);
    expect(due.update_reasons).toEqual(["configuration_changed"]);
    expect((await builder.api.call<DeviceState[]>("devices/states")).find((s) => s.configuration === "twin.yaml")?.update_reasons).toEqual([]);

    const jobs = await builder.api.call<FirmwareJob[]>("firmware/install_bulk", { configurations: "all", filter: "outdated" });
    expect(jobs.map((j) => j.configuration)).toEqual(["hostdev.yaml"]);
    expect(jobs[0]?.port).toBe(links[0]?.deviceAddress);
    const follow = builder.api.stream("firmware/follow_job", { job_id: jobs[0]?.job_id });
    const result = await follow.until((f) => f.event === "result", COMPILE_MS);
    expect(result.data).toMatchObject({ status: "completed" });
    const after = await stateOf(builder.api, "hostdev.yaml", (s) => s.firmware?.compilation_time === buildInfo().build_time_str, 60_000);
    expect(after.update_reasons).toEqual([]);
    // The twin still runs the first build.
    const twin = await running[1]?.firmware();
    expect(twin?.compilationTime).not.toBe(buildInfo().build_time_str);
  });

  it("an install for a device that is off waits for it, and runs when the device starts", { timeout: COMPILE_MS + 120_000 }, async () => {
    await writeHostDevice(dir, "hostdev.yaml", { label: "v3" });
    const device = running[0] as RealDevice;
    await device.stop();
    await stateOf(builder.api, "hostdev.yaml", (s) => s.status === "offline", BOUND.offlineMs + MARGIN_MS);
    const job = await builder.api.call<FirmwareJob>("firmware/install", { configuration: "hostdev.yaml" });
    const deadline = Date.now() + COMPILE_MS;
    let held: FirmwareJob;
    for (;;) {
      held = await builder.api.call<FirmwareJob>("firmware/get_job", { job_id: job.job_id });
      if (held.waiting?.reason === "device" || held.status !== "running" && held.status !== "queued") break;
      if (Date.now() > deadline) throw new Error("the install never waited");
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(held).toMatchObject({ status: "running", phase: "upload", waiting: { reason: "device" } });
    // The device comes back with the build it had.
    running[0] = (await RealDevice.start({ program, link: links[0] as DeviceLink })).device;
    const follow = builder.api.stream("firmware/follow_job", { job_id: job.job_id });
    const result = await follow.until((f) => f.event === "result", 120_000);
    expect(result.data).toMatchObject({ status: "completed" });
    const now = await running[0].firmware(30_000, (info) => info.compilationTime === buildInfo().build_time_str);
    expect(now.compilationTime).toBe(buildInfo().build_time_str);
  });

  it("a builder with a newer ESPHome than the devices' says they run an older one", { timeout: 120_000 }, async () => {
    const wrapper = path.join(dir, "esphome-newer");
    await writeFile(wrapper, `#!/bin/sh\nif [ "$1" = version ]; then echo "Version: 2026.11.0"; exit 0; fi\nexec ${JSON.stringify(REAL_ESPHOME)} "$@"\n`);
    await chmod(wrapper, 0o755);
    const other = await startRealBuilder(dir, { label: "newer", extraArgs: ["--device-poll-interval", String(POLL_S), "--esphome", wrapper, "--data-dir", path.join(dir, ".other")] });
    try {
      await other.api.call("devices/set_address", { configuration: "twin.yaml", address: links[1]?.deviceAddress });
      const stale = await stateOf(other.api, "twin.yaml", (s) => s.update_reasons.includes("esphome_version"), BOUND.onlineMs + MARGIN_MS + 20_000);
      expect(stale.update_detail).toContain(`runs ESPHome ${PINNED_ESPHOME_VERSION}, this builder has 2026.11.0`);
    } finally {
      await other.stop();
    }
  });
});
