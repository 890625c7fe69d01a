/**
 * The path most Home Assistant users take, end to end with real parts: Home Assistant Core
 * (the Debian root of test/setup-ha.sh), its ESPHome integration with a config entry for a
 * real host-platform device, the dashboard pointed at this builder the way Supervisor
 * discovery stores it, and the integration's firmware update entity driving this builder's
 * legacy API: a real compile with the real ESPHome and a real OTA to the device.
 *
 * Everything runs in one network namespace (the device, Home Assistant, the builder and the
 * build server), on its loopback like an add-on beside Home Assistant; the test reaches them
 * over the namespace's veth link. The device's first firmware is built with an older ESPHome
 * (X, from the shared test cache of ESPHome versions) directly; the builder runs the pinned one (Y > X).
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ENTITY_IDS, JOB_EVENT_TYPES } from "../../src/ha/publisher.ts";
import { waitFor } from "../helpers/tmp.ts";
import { pairBuilders, startRealBuilder, type RealBuilder } from "../real-device/builder.ts";
import { RealDevice } from "../real-device/device.ts";
import { writeHostDevice } from "../real-device/devices.ts";
import { PINNED_ESPHOME_VERSION, describeNeeding, realDeviceUnavailableReason } from "../real-device/esphome.ts";
import type { DeviceLink } from "../real-device/network.ts";
import { addEsphomeDevice, enableEntity, entitiesOf, installUpdate, storeDashboardInfo, UPDATE_FEATURE_INSTALL, type UpdateState } from "./esphome-integration.ts";
import { HaCore, HaSocket, hassAvailable, installedHa, type HaEventMessage } from "./ha-core.ts";
import { createHaLink } from "./ha-root.ts";
import { olderEsphome } from "./older-esphome.ts";

/** A clean compile takes ~15 s on an idle 2-core machine; a shared one can take minutes. */
const COMPILE_MS = 600_000;
const BUILDER_PORT = 6052;
/** The build server's panel port (the device has 6053 and 8082). */
const SERVER_PORT = 6062;
const SLUG = "5c53de3b_esphome_builder";

function unavailable(): string | null {
  return realDeviceUnavailableReason()
    ?? (hassAvailable ? null : "the Home Assistant root is missing: run `npm run test:setup` (test/setup-ha.sh)")
    ?? olderEsphome().reason;
}

/** `esphome compile` with the older ESPHome in `dir`; resolves with the program it made. */
function compileWithOlder(dir: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(olderEsphome().path, ["compile", "hostdev.yaml"], { cwd: dir, timeout: COMPILE_MS, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`${err.message}\n${(stdout + stderr).slice(-3000)}`));
      else resolve(path.join(dir, ".esphome", "build", "hostdev", ".pioenvs", "hostdev", "program"));
    });
  });
}

/** `waitFor` for conditions that ask Home Assistant: every 100 ms, not every few. */
function waitForHa(predicate: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  return waitFor(async () => {
    await new Promise((r) => setTimeout(r, 100));
    return predicate();
  }, timeoutMs, what);
}

describeNeeding(unavailable, "Home Assistant's ESPHome update entity installs through this builder", () => {
  const X = olderEsphome().version ?? "?";
  const Y = PINNED_ESPHOME_VERSION;
  let link: DeviceLink;
  let builderDir = "";
  let firstDir = "";
  let haDir = "";
  let firstProgram = "";
  let device: RealDevice | undefined;
  let core: HaCore;
  let token = "";
  let socket: HaSocket;
  let builder: RealBuilder;
  let server: RealBuilder | undefined;
  let serverDir = "";
  let entryId = "";
  let updateId = "";
  const events: HaEventMessage[] = [];
  /** What afterAll undoes, last first (beforeAll may stop part-way). */
  const cleanups: (() => unknown)[] = [];

  const state = async (): Promise<UpdateState> => {
    const s = await core.getState(token, updateId);
    if (s === null) throw new Error(`${updateId} has no state`);
    return s;
  };
  /** [type, status] of the builder's job events Home Assistant received since `from`. */
  const jobEvents = (from = 0): string[][] => events.slice(from).map((e) => [String(e.data.type), e.event_type.replace("esphome_builder_job_", "")]);
  /** Starts the device on the first (older) firmware and waits until Home Assistant is connected to it again. */
  const startOnOlderFirmware = async (): Promise<void> => {
    const started = await RealDevice.start({ program: firstProgram, link });
    device = started.device;
    expect(started.firmware.esphomeVersion).toBe(X);
    if (updateId !== "") await waitForHa(async () => (await state()).attributes.installed_version === X, 120_000, `Home Assistant to see ${X} on the device`);
  };

  beforeAll(async () => {
    link = createHaLink();
    cleanups.push(() => { link.destroy(); });
    builderDir = await mkdtemp(path.join(os.tmpdir(), "esb-ha-builder-"));
    firstDir = await mkdtemp(path.join(os.tmpdir(), "esb-ha-first-"));
    haDir = await mkdtemp(path.join(os.tmpdir(), "esb-ha-core-"));
    cleanups.push(async () => {
      for (const dir of [builderDir, firstDir, haDir, serverDir]) if (dir !== "") await rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
    });
    await writeHostDevice(builderDir, "hostdev.yaml", { label: "v1" });
    await writeHostDevice(firstDir, "hostdev.yaml", { label: "v1" });
    // The dashboard as Supervisor discovery leaves it (the add-on announces 127.0.0.1 and its port).
    await storeDashboardInfo(haDir, { addon_slug: SLUG, host: "127.0.0.1", port: BUILDER_PORT });
    core = await HaCore.create(haDir, "", { link });
    cleanups.push(() => core.dispose());
    await core.start(180_000);
    token = await core.onboard();
    socket = await HaSocket.connect(core.url, token);
    cleanups.push(() => { socket.close(); });
    for (const type of Object.values(JOB_EVENT_TYPES)) await socket.subscribe(type, (e) => events.push(e));
    builder = await startRealBuilder(builderDir, {
      label: "HA builder",
      netns: { ns: link.ns, reachAt: link.deviceAddress, port: BUILDER_PORT },
      extraArgs: ["--ha-url", core.insideUrl, "--ha-token", token],
    });
    cleanups.push(() => builder.stop());
    cleanups.push(() => server?.stop());
    cleanups.push(() => device?.stop());
  }, 300_000);

  afterAll(async () => {
    for (const undo of cleanups.reverse()) await undo();
  }, 120_000);

  it("a: a device added through the config flow gets the firmware update entity, disabled by default; enabled, it reads this builder's versions", { timeout: COMPILE_MS + 240_000 }, async () => {
    firstProgram = await compileWithOlder(firstDir);
    await startOnOlderFirmware();

    const entry = await addEsphomeDevice(core, token, "127.0.0.1", 6053);
    entryId = entry.entry_id;
    expect(entry).toMatchObject({ title: "Host device", state: "loaded" });
    // The device's own entities are there, and the update entity from the dashboard's /devices.
    await waitForHa(async () => (await entitiesOf(socket, entryId)).some((e) => e.entity_id.startsWith("update.")), 60_000, "the update entity in the registry");
    const registered = await entitiesOf(socket, entryId);
    expect(registered.map((e) => e.entity_id)).toEqual(expect.arrayContaining(["switch.host_device_relay", "sensor.host_device_uptime", "sensor.host_device_firmware_label", "sensor.host_device_esphome_version"]));
    const update = registered.find((e) => e.entity_id.startsWith("update."));
    expect(update).toMatchObject({ entity_id: "update.host_device_firmware", platform: "esphome", disabled_by: "integration" });
    updateId = update!.entity_id;
    expect(await core.getState(token, updateId)).toBeNull();

    expect(await enableEntity(socket, updateId)).toMatchObject({ reload_delay: 30 });
    // After the reload the entity may show as unavailable until Home Assistant has reconnected to the device.
    await waitForHa(async () => ![null, "unavailable"].includes((await core.getState(token, updateId))?.state ?? null), 150_000, `${updateId} to appear (after Home Assistant reloads the entry and reconnects)`);
    const s = await state();
    expect(s.state).toBe("on");
    expect(s.attributes).toMatchObject({ installed_version: X, latest_version: Y, title: "ESPHome", in_progress: false });
    expect((s.attributes.supported_features ?? 0) & UPDATE_FEATURE_INSTALL).toBe(UPDATE_FEATURE_INSTALL);
  });

  it("b: an install that fails (wrong OTA password) is a failed update in Home Assistant, with the builder's error in its job event and entity", { timeout: COMPILE_MS + 120_000 }, async () => {
    expect(updateId).not.toBe("");
    await writeHostDevice(builderDir, "hostdev.yaml", { label: "v2", ota_password: "not-the-password" });
    const from = events.length;
    const error = await installUpdate(socket, updateId);
    expect(error).toMatchObject({ code: "home_assistant_error", translation_key: "error_uploading", message: "Error during OTA (Over-The-Air) update of hostdev.yaml. Try again in ESPHome dashboard for more information" });
    await waitFor(() => jobEvents(from).some(([t, s]) => t === "upload" && s === "failed"), 20_000, "the upload's failed event");
    expect(jobEvents(from)).toEqual([["compile", "queued"], ["compile", "started"], ["compile", "completed"], ["upload", "queued"], ["upload", "started"], ["upload", "failed"]]);
    const failed = events.slice(from).find((e) => e.event_type === JOB_EVENT_TYPES.job_failed)!;
    const builderError = "esphome upload failed (exit code 1): receiving auth result: Authentication invalid. Is the password correct?";
    expect(failed.data).toMatchObject({ configuration: "hostdev.yaml", type: "upload", error: builderError });
    await waitForHa(async () => (await core.getState(token, ENTITY_IDS.lastJob))?.state === "failed", 20_000, "the builder's last-job entity to say failed");
    expect((await core.getState(token, ENTITY_IDS.lastJob))?.attributes).toMatchObject({ configuration: "hostdev.yaml", type: "upload", error: builderError });
    // Nothing changed on the device, and Home Assistant still offers the update.
    expect((await device!.firmware()).esphomeVersion).toBe(X);
    expect(await state()).toMatchObject({ state: "on", attributes: { installed_version: X, latest_version: Y, in_progress: false } });
  });

  it("c: update.install makes this builder compile (real ESPHome) and flash over the air; the device runs the new version and Home Assistant shows it up to date", { timeout: COMPILE_MS + 120_000 }, async () => {
    expect(updateId).not.toBe("");
    await writeHostDevice(builderDir, "hostdev.yaml", { label: "v2" });
    const before = await device!.firmware();
    const from = events.length;
    expect(await installUpdate(socket, updateId)).toBeNull();

    const after = await device!.firmware(60_000, (info) => info.compilationTime !== before.compilationTime);
    expect(after.esphomeVersion).toBe(Y);
    await waitForHa(async () => (await state()).state === "off", 60_000, "Home Assistant to show the device up to date");
    expect((await state()).attributes).toMatchObject({ installed_version: Y, latest_version: Y, in_progress: false });
    // The builder's job events reached Home Assistant along the way.
    await waitFor(() => jobEvents(from).length >= 6, 20_000, "the job events");
    expect(jobEvents(from)).toEqual([["compile", "queued"], ["compile", "started"], ["compile", "completed"], ["upload", "queued"], ["upload", "started"], ["upload", "completed"]]);
    expect(events.slice(from).every((e) => e.data.configuration === "hostdev.yaml" && e.data.source === "local")).toBe(true);
    const jobs = await builder.api.call<{ job_type: string; status: string; port: string | null }[]>("firmware/get_jobs", {});
    expect(jobs.find((j) => j.job_type === "upload" && j.status === "completed")?.port, "OTA named the host device's address").toBe("127.0.0.1");
  });

  it("d: update.install while the device is off (it said goodbye, as before a restart) waits for it and completes when it is back", { timeout: COMPILE_MS + 240_000 }, async () => {
    expect(updateId).not.toBe("");
    await device!.stop();
    await startOnOlderFirmware();
    await writeHostDevice(builderDir, "hostdev.yaml", { label: "v3" });
    // A device that stops cleanly tells Home Assistant, which keeps the entity available
    // (as for a device in deep sleep): the install may start while it is away.
    await device!.stop();
    device = undefined;
    await new Promise((r) => setTimeout(r, 1_000));
    expect(await state()).toMatchObject({ state: "on", attributes: { installed_version: X } });
    const from = events.length;
    const install = installUpdate(socket, updateId);
    await waitFor(() => jobEvents(from).some(([t, s]) => t === "compile" && s === "completed"), COMPILE_MS, "the compile to end");
    // Home Assistant waits for the device before it asks for the upload.
    await new Promise((r) => setTimeout(r, 3_000));
    expect(jobEvents(from).some(([t]) => t === "upload")).toBe(false);
    const started = await RealDevice.start({ program: firstProgram, link });
    device = started.device;
    expect(await install).toBeNull();
    const after = await device.firmware(60_000, (info) => info.esphomeVersion === Y);
    expect(after.esphomeVersion).toBe(Y);
    expect(jobEvents(from).filter(([t]) => t === "upload")).toEqual([["upload", "queued"], ["upload", "started"], ["upload", "completed"]]);
    await waitForHa(async () => (await state()).state === "off", 60_000, "Home Assistant to show the device up to date");
  });

  it("d: a device lost without a word is unavailable in Home Assistant, whose update.install then skips it: nothing reaches the builder", { timeout: 180_000 }, async () => {
    expect(updateId).not.toBe("");
    await device!.stop();
    await startOnOlderFirmware();
    await device!.kill();
    device = undefined;
    await waitForHa(async () => (await state()).state === "unavailable", 60_000, "the update entity to be unavailable");
    const from = events.length;
    expect(await installUpdate(socket, updateId)).toBeNull();
    await new Promise((r) => setTimeout(r, 3_000));
    expect(jobEvents(from)).toEqual([]);
  });

  it("e: with a paired build server the compile runs there (real ESPHome), the flash from this builder", { timeout: COMPILE_MS + 240_000 }, async () => {
    expect(updateId).not.toBe("");
    serverDir = await mkdtemp(path.join(os.tmpdir(), "esb-ha-server-"));
    server = await startRealBuilder(serverDir, { label: "Build server", netns: { ns: link.ns, reachAt: link.deviceAddress, port: SERVER_PORT } });
    const pin = await pairBuilders(builder, server);
    await device?.stop();
    await startOnOlderFirmware();
    await writeHostDevice(builderDir, "hostdev.yaml", { label: "v4" });
    const before = await device!.firmware();
    const from = events.length;
    expect(await installUpdate(socket, updateId)).toBeNull();

    const after = await device!.firmware(60_000, (info) => info.compilationTime !== before.compilationTime);
    expect(after.esphomeVersion).toBe(Y);
    await waitFor(() => jobEvents(from).length >= 6, 20_000, "the job events");
    const compiled = events.slice(from).find((e) => e.event_type === JOB_EVENT_TYPES.job_completed && e.data.type === "compile")!;
    expect(compiled.data).toMatchObject({ source: "remote", source_label: "Build server" });
    const uploaded = events.slice(from).find((e) => e.event_type === JOB_EVENT_TYPES.job_completed && e.data.type === "upload")!;
    expect(uploaded.data).toMatchObject({ source: "local" });
    const jobs = await builder.api.call<{ job_type: string; status: string; source: string; source_pin_sha256: string | null; job_id: string }[]>("firmware/get_jobs", {});
    expect(jobs.find((j) => j.job_type === "compile" && j.job_id === compiled.data.job_id)).toMatchObject({ source: "remote", source_pin_sha256: pin });
    const onServer = await server.api.call<{ remote_peer_label: string; job_type: string; status: string }[]>("firmware/get_jobs", {});
    expect(onServer.map((j) => [j.remote_peer_label, j.job_type, j.status])).toEqual([["HA builder", "compile", "completed"]]);
    await waitForHa(async () => (await state()).state === "off", 60_000, "Home Assistant to show the device up to date");
    expect((await state()).attributes).toMatchObject({ installed_version: Y, latest_version: Y });
  });

  it("runs the pinned Home Assistant", async () => {
    const config = (await (await fetch(`${core.url}/api/config`, { headers: { Authorization: `Bearer ${token}` } })).json()) as { version: string };
    expect(config.version).toBe(installedHa().version);
  });
});
