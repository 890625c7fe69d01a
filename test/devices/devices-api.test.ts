/**
 * Device state through the builder's API, end to end in one process: host-platform
 * YAMLs whose native API is a real responder on the loopback
 * (test/fixtures/native-api-device.ts), the stand-in ESPHome CLI for installs.
 * Probe timings are shortened through the builder's device seam.
 */
import { utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterEach, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import type { DeviceState, FirmwareJob, InitialState } from "../../src/api/wire.ts";
import { Builder } from "../../src/builder.ts";
import type { BuilderConfig } from "../../src/config.ts";
import { ApiClient, type Frame } from "../helpers/api-client.ts";
import { testConfig } from "../helpers/config.ts";
import { tempDir } from "../helpers/tmp.ts";
import { hostDeviceYaml } from "../real-device/devices.ts";
import { NativeApiDevice, type NativeDeviceInfo } from "../fixtures/native-api-device.ts";

const TIMINGS = { intervalMs: 400, retryMs: 100, maxBackoffMs: 400, timeoutMs: 500, offlineAfterMisses: 3, startSpacingMs: 10 };
/** The bound the timings above give (prober.ts detectionBoundMs), with room for a loaded machine. */
const BOUND_MS = 400 + 2 * 100 + 3 * 500 + 3_000;
/** The stand-in's version is this builder's ESPHome. */
const BUILDER_VERSION = "2026.11.0";
const COMPILED = "2026-12-01 10:00:00 +0000";
const BEFORE_COMPILE = new Date("2026-12-01T09:00:00Z");
/** An `api: encryption: key` and another one (32 random bytes, base64). */
const KEY = "px7tsbK3C7bpXHr2OevEV2ZMg/FrNBw2+O2pNPbedtA=";
const OTHER_KEY = "wHUTkrVFk8Dko45Lmoe+ENtv0Rhla2FHf360l08vkxE=";

beforeAll(() => {
  process.env.ESPHOME_STANDIN_COMPILE_SECONDS = "0";
  process.env.ESPHOME_STANDIN_UPLOAD_SECONDS = "0";
});

const devices: NativeApiDevice[] = [];
afterEach(async () => {
  for (const d of devices.splice(0)) await d.stop().catch(() => undefined);
});

async function responder(name: string, info: Partial<NativeDeviceInfo> = {}, port = 0, encryptionKey?: string): Promise<NativeApiDevice> {
  const d = new NativeApiDevice({ port, info: { name, esphomeVersion: BUILDER_VERSION, compilationTime: COMPILED, ...info }, ...(encryptionKey === undefined ? {} : { encryptionKey }) });
  await d.start();
  devices.push(d);
  return d;
}

/** `key`: the YAML's `api: encryption: key:` value as written (a literal or `!secret name`). */
async function yaml(dir: string, name: string, apiPort: number, extra = "", key?: string): Promise<string> {
  const file = path.join(dir, `${name}.yaml`);
  let text = hostDeviceYaml({ name, api_port: apiPort });
  if (key !== undefined) {
    const withKey = text.replace(/^(api:\n {2}port: .*)$/m, `$1\n  encryption:\n    key: ${key}`);
    if (withKey === text) throw new Error("host-device.yaml's api block moved: the test cannot add the key");
    text = withKey;
  }
  await writeFile(file, text + extra);
  await utimes(file, BEFORE_COMPILE, BEFORE_COMPILE);
  return file;
}

async function start(dir: string, overrides: Partial<BuilderConfig> = {}): Promise<{ builder: Builder; api: ApiClient; port: number }> {
  const builder = new Builder(testConfig(dir, overrides), { devices: { timings: TIMINGS } });
  const { port } = await builder.start();
  const api = await ApiClient.connect(port);
  onTestFinished(async () => {
    api.close();
    await builder.stop();
  });
  return { builder, api, port };
}

async function until(api: ApiClient, configuration: string, pred: (s: DeviceState) => boolean, ms = BOUND_MS): Promise<DeviceState> {
  const deadline = Date.now() + ms;
  for (;;) {
    const state = (await api.call<DeviceState[]>("devices/states")).find((s) => s.configuration === configuration);
    if (state !== undefined && pred(state)) return state;
    if (Date.now() > deadline) throw new Error(`${configuration} did not reach the state in ${ms} ms: ${JSON.stringify(state)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe("device state through the API", () => {
  it("a host-platform device is at 127.0.0.1, online with what it runs; offline and online again within the bound; events carry it", async () => {
    const dir = await tempDir("devices-");
    const dev = await responder("alpha", { projectName: "acme.alpha", projectVersion: "1.0" });
    await yaml(dir, "alpha", dev.port);
    const { api } = await start(dir);
    const events = api.stream("subscribe_events", { job_output: false });
    const initial = (await events.until((f) => f.event === "initial_state")).data as InitialState;
    expect(initial.device_states.map((s) => s.configuration)).toEqual(["alpha.yaml"]);

    const online = await until(api, "alpha.yaml", (s) => s.status === "online");
    expect(online).toMatchObject({
      address: "127.0.0.1",
      address_source: "host_default",
      firmware: { esphome_version: BUILDER_VERSION, compilation_time: COMPILED, project_name: "acme.alpha", project_version: "1.0", source: "api" },
      update_reasons: [],
      probe_error: null,
      deep_sleep: false,
    });
    await events.until((f) => f.event === "device_state_changed" && (f.data as { state: DeviceState }).state.status === "online");

    const t0 = Date.now();
    await dev.stop();
    const offline = await until(api, "alpha.yaml", (s) => s.status === "offline");
    expect(Date.now() - t0).toBeLessThan(BOUND_MS);
    expect(offline.probe_error).toMatch(/refused/);
    expect(Date.parse(offline.last_seen ?? "")).toBeGreaterThanOrEqual(Date.parse(online.last_seen ?? ""));

    const t1 = Date.now();
    await responder("alpha", {}, dev.port);
    await until(api, "alpha.yaml", (s) => s.status === "online");
    expect(Date.now() - t1).toBeLessThan(BOUND_MS);
    await events.until((f) => f.event === "device_state_changed" && (f.data as { state: DeviceState }).state.status === "offline");
  });

  it("update available: an older ESPHome, and a YAML changed after the firmware was compiled (both reasons, each named); the legacy API reports the device's version", async () => {
    const dir = await tempDir("devices-");
    const old = await responder("old", { esphomeVersion: "2026.9.2" });
    const current = await responder("current");
    await yaml(dir, "old", old.port);
    const currentYaml = await yaml(dir, "current", current.port);
    const { api, port } = await start(dir);
    // Wait for the builder's own version (an `esphome version` run of the stand-in).
    for (let i = 0; i < 200 && (await api.call<{ esphome_version: string | null }>("config/info")).esphome_version === null; i++) await new Promise((r) => setTimeout(r, 25));
    const stale = await until(api, "old.yaml", (s) => s.update_reasons.length > 0);
    expect(stale.update_reasons).toEqual(["esphome_version"]);
    expect(stale.update_detail).toBe(`runs ESPHome 2026.9.2, this builder has ${BUILDER_VERSION}`);
    expect((await until(api, "current.yaml", (s) => s.status === "online")).update_reasons).toEqual([]);

    // Edited after the compile: the next probe says so.
    const later = new Date("2026-12-01T11:00:00Z");
    await utimes(currentYaml, later, later);
    const changed = await until(api, "current.yaml", (s) => s.update_reasons.length > 0);
    expect(changed.update_reasons).toEqual(["configuration_changed"]);
    expect(changed.update_detail).toContain("2026-12-01T11:00:00.000Z");

    const legacy = (await (await fetch(`http://127.0.0.1:${port}/devices`)).json()) as { configured: { configuration: string; deployed_version: string; current_version: string; address: string }[] };
    expect(legacy.configured.find((d) => d.configuration === "old.yaml")).toMatchObject({ deployed_version: "2026.9.2", current_version: BUILDER_VERSION, address: "127.0.0.1" });
    expect(legacy.configured.find((d) => d.configuration === "current.yaml")).toMatchObject({ deployed_version: BUILDER_VERSION });
    // /ping says who is online (true), offline (false) or not known yet (null).
    await old.stop();
    await until(api, "old.yaml", (s) => s.status === "offline");
    await writeFile(path.join(dir, "fresh.yaml"), "esphome:\n  name: fresh\nesp32:\n  board: esp32dev\nwifi:\n  ssid: x\n");
    await until(api, "fresh.yaml", () => true, 5_000);
    expect(await (await fetch(`http://127.0.0.1:${port}/ping`)).json()).toEqual({ "current.yaml": true, "fresh.yaml": null, "old.yaml": false });
  });

  it("devices with API encryption: the YAML's key (a literal or a !secret) opens the session and the state has what they run; another key is online, refusing the session, and says so", async () => {
    const dir = await tempDir("devices-");
    const literal = await responder("literal", { projectName: "acme.literal", projectVersion: "1.1" }, 0, KEY);
    const secret = await responder("secret", {}, 0, KEY);
    const wrong = await responder("wrong", {}, 0, KEY);
    await writeFile(path.join(dir, "secrets.yaml"), `api_key: "${KEY}"\nother_key: "${OTHER_KEY}"\n`);
    await yaml(dir, "literal", literal.port, "", `"${KEY}"`);
    await yaml(dir, "secret", secret.port, "", "!secret api_key");
    await yaml(dir, "wrong", wrong.port, "", "!secret other_key");
    const { api } = await start(dir);

    for (const [name, project] of [["literal", { project_name: "acme.literal", project_version: "1.1" }], ["secret", { project_name: null, project_version: null }]] as const) {
      const state = await until(api, `${name}.yaml`, (s) => s.status === "online");
      expect(state, name).toMatchObject({
        firmware: { esphome_version: BUILDER_VERSION, compilation_time: COMPILED, ...project, source: "api" },
        probe_error: null,
      });
    }
    expect(literal.encryptedSessions).toBeGreaterThanOrEqual(1);
    expect(secret.encryptedSessions).toBeGreaterThanOrEqual(1);

    const refused = await until(api, "wrong.yaml", (s) => s.probe_error !== null);
    expect(refused).toMatchObject({
      status: "online",
      firmware: null,
      probe_error: "the device refused the YAML's API encryption key (Noise handshake failure: Handshake MAC failure.)",
    });
    expect(wrong.encryptedSessions).toBe(0);
  });

  it("the owner's address is validated, persisted, used by probes and clearable", async () => {
    const dir = await tempDir("devices-");
    const dev = await responder("beta");
    await yaml(dir, "beta", dev.port);
    const { builder, api } = await start(dir);
    await until(api, "beta.yaml", (s) => s.status === "online");
    for (const address of ["", "/dev/ttyUSB0", "OTA", "bad host!", "a".repeat(300)]) {
      const refused = await api.request("devices/set_address", { configuration: "beta.yaml", address });
      expect(refused.error_code, address).toBe("invalid_args");
    }
    expect((await api.request("devices/set_address", { configuration: "nope.yaml", address: "10.0.0.1" })).error_code).toBe("not_found");
    expect((await api.request("devices/set_address", { configuration: "../etc/passwd", address: "10.0.0.1" })).error_code).toBe("invalid_args");

    // An address nothing answers on this machine: the device goes offline there.
    const moved = await api.call<DeviceState>("devices/set_address", { configuration: "beta.yaml", address: "127.0.0.2" });
    expect(moved).toMatchObject({ address: "127.0.0.2", address_source: "owner", status: "unknown" });
    const file = JSON.parse(await import("node:fs/promises").then((fs) => fs.readFile(builder.paths.devicesFile, "utf8"))) as { addresses: Record<string, string> };
    expect(file.addresses).toEqual({ "beta.yaml": "127.0.0.2" });
    const back = await api.call<DeviceState>("devices/set_address", { configuration: "beta.yaml", address: null });
    expect(back).toMatchObject({ address: "127.0.0.1", address_source: "host_default" });
    await until(api, "beta.yaml", (s) => s.status === "online");
  });

  it("bulk installs: outdated only, online only, failed only; nothing for an empty selection", async () => {
    const dir = await tempDir("devices-");
    const a = await responder("a1", { esphomeVersion: "2026.9.0" });
    const b = await responder("b1");
    await yaml(dir, "a1", a.port);
    await yaml(dir, "b1", b.port);
    await writeFile(path.join(dir, "c1.yaml"), hostDeviceYaml({ name: "c1", api_port: 1 }));
    const { api } = await start(dir);
    for (let i = 0; i < 200 && (await api.call<{ esphome_version: string | null }>("config/info")).esphome_version === null; i++) await new Promise((r) => setTimeout(r, 25));
    await until(api, "a1.yaml", (s) => s.update_reasons.includes("esphome_version"));
    await until(api, "b1.yaml", (s) => s.status === "online");
    await until(api, "c1.yaml", (s) => s.status === "offline");

    const outdated = await api.call<FirmwareJob[]>("firmware/install_bulk", { configurations: "all", filter: "outdated" });
    expect(outdated.map((j) => j.configuration)).toEqual(["a1.yaml"]);
    expect(outdated[0]?.port, "a host device at its default address is installed there").toBe("127.0.0.1");
    const online = await api.call<FirmwareJob[]>("firmware/install_bulk", { configurations: ["b1.yaml", "c1.yaml"], filter: "online" });
    expect(online.map((j) => j.configuration)).toEqual(["b1.yaml"]);
    expect(await api.call<FirmwareJob[]>("firmware/install_bulk", { configurations: ["c1.yaml"], filter: "online" })).toEqual([]);
    const refused = await api.request("firmware/install_bulk", { configurations: "all", filter: "broken" });
    expect(refused.error_code).toBe("invalid_args");

    // Retry failed: only the configurations whose last install failed.
    for (const job of [...outdated, ...online]) {
      await api.stream("firmware/follow_job", { job_id: job.job_id }).until((f: Frame) => f.event === "result", 20_000);
    }
    process.env.ESPHOME_STANDIN_FAIL = "upload";
    try {
      const failing = await api.call<FirmwareJob>("firmware/install", { configuration: "b1.yaml" });
      const events = api.stream("firmware/follow_job", { job_id: failing.job_id });
      await events.until((f: Frame) => f.event === "result", 20_000);
    } finally {
      delete process.env.ESPHOME_STANDIN_FAIL;
    }
    const retry = await api.call<FirmwareJob[]>("firmware/install_bulk", { configurations: "all", filter: "failed" });
    expect(retry.map((j) => j.configuration)).toEqual(["b1.yaml"]);
  });

  it("an install for an offline device compiles, waits for the device (cancelable), and uploads when it comes online", async () => {
    const dir = await tempDir("devices-");
    const dev = await responder("sleepy");
    const port = dev.port;
    await yaml(dir, "sleepy", port, "deep_sleep:\n  run_duration: 10s\n  sleep_duration: 1min\n");
    const { api } = await start(dir);
    const asleep = await until(api, "sleepy.yaml", (s) => s.status === "online");
    expect(asleep.deep_sleep).toBe(true);
    await dev.stop();
    await until(api, "sleepy.yaml", (s) => s.status === "offline");

    const events = api.stream("subscribe_events", { job_output: false });
    await events.until((f) => f.event === "initial_state");
    const job = await api.call<FirmwareJob>("firmware/install", { configuration: "sleepy.yaml" });
    const waiting = await events.until((f) => f.event === "job_updated" && (f.data as { job: FirmwareJob }).job.waiting?.reason === "device", 30_000);
    const held = (waiting.data as { job: FirmwareJob }).job;
    expect(held).toMatchObject({ job_id: job.job_id, status: "running", phase: "upload", waiting: { reason: "device" } });
    expect(held.waiting?.since).toBeDefined();
    expect((await api.call<FirmwareJob>("firmware/get_job", { job_id: job.job_id })).output.join("")).toContain("waiting for sleepy.yaml's device to come online");

    await responder("sleepy", {}, port);
    const follow = api.stream("firmware/follow_job", { job_id: job.job_id });
    const result = await follow.until((f) => f.event === "result", BOUND_MS + 20_000);
    expect(result.data).toMatchObject({ status: "completed" });
    const done = await api.call<FirmwareJob>("firmware/get_job", { job_id: job.job_id });
    expect(done).toMatchObject({ port: "127.0.0.1" });
    expect(done.waiting).toBeUndefined();
    expect(done.output.join("")).toContain("OTA successful");

    // An upload sent to another address than the device's is not held by this device's state.
    const dev3 = devices.at(-1);
    await dev3?.stop();
    await until(api, "sleepy.yaml", (s) => s.status === "offline");
    const elsewhere = await api.call<FirmwareJob>("firmware/upload", { configuration: "sleepy.yaml", port: "127.0.0.9" });
    const elsewhereResult = await api.stream("firmware/follow_job", { job_id: elsewhere.job_id }).until((f) => f.event === "result", 20_000);
    expect(elsewhereResult.data).toMatchObject({ status: "completed" });
    expect((await api.call<FirmwareJob>("firmware/get_job", { job_id: elsewhere.job_id })).waiting).toBeUndefined();

    // A second wait, cancelled by the owner.
    const second = await api.call<FirmwareJob>("firmware/install", { configuration: "sleepy.yaml" });
    await events.until((f) => f.event === "job_updated" && (f.data as { job: FirmwareJob }).job.job_id === second.job_id, 30_000);
    const cancelled = await api.call<FirmwareJob>("firmware/cancel", { job_id: second.job_id });
    expect(cancelled).toMatchObject({ status: "cancelled" });
    expect(cancelled.waiting).toBeUndefined();
  });

  it("a wait that outlasts --device-wait fails the install with a message that says why and what to do", async () => {
    const dir = await tempDir("devices-");
    await writeFile(path.join(dir, "gone.yaml"), hostDeviceYaml({ name: "gone", api_port: 1 }));
    const { api } = await start(dir, { deviceWaitMinutes: 0.02 });
    await until(api, "gone.yaml", (s) => s.status === "offline");
    const job = await api.call<FirmwareJob>("firmware/install", { configuration: "gone.yaml" });
    const follow = api.stream("firmware/follow_job", { job_id: job.job_id });
    const result = await follow.until((f) => f.event === "result", 30_000);
    expect(result.data).toMatchObject({ status: "failed" });
    const error = (result.data as { error: string }).error;
    expect(error).toMatch(/^device_wait_expired: gone\.yaml was not online \(at 127\.0\.0\.1\) within 1 s/);
    expect(error).toContain("--device-wait");
  });

  it("after a restart the state is learnt again, and the last-seen time and the owner's address are kept", async () => {
    const dir = await tempDir("devices-");
    const dev = await responder("keep");
    await yaml(dir, "keep", dev.port);
    const first = new Builder(testConfig(dir), { devices: { timings: TIMINGS } });
    const { port } = await first.start();
    const api = await ApiClient.connect(port);
    const seen = await until(api, "keep.yaml", (s) => s.status === "online");
    await api.call("devices/set_address", { configuration: "keep.yaml", address: "localhost" });
    await until(api, "keep.yaml", (s) => s.status === "online" && s.address === "localhost");
    api.close();
    await first.stop();
    await dev.stop();

    const { api: again } = await start(dir);
    const state = (await again.call<DeviceState[]>("devices/states"))[0];
    expect(state).toMatchObject({ configuration: "keep.yaml", status: "unknown", firmware: null, address: "localhost", address_source: "owner" });
    expect(Date.parse(state?.last_seen ?? "")).toBeGreaterThanOrEqual(Date.parse(seen.last_seen ?? ""));
    await until(again, "keep.yaml", (s) => s.status === "offline");
  });

  it("under --no-mdns a .local address is not looked up, and the state says why", async () => {
    const dir = await tempDir("devices-");
    await writeFile(path.join(dir, "kitchen.yaml"), "esphome:\n  name: kitchen\nesp32:\n  board: esp32dev\nwifi:\n  ssid: x\napi:\n");
    const { api } = await start(dir);
    const state = await until(api, "kitchen.yaml", (s) => s.probe_error !== null, 5_000);
    expect(state).toMatchObject({ status: "unknown", address: "kitchen.local", address_source: "yaml" });
    expect(state.probe_error).toContain("--no-mdns");
    expect((await api.request("devices/probe", { configuration: "none.yaml" })).error_code).toBe("not_found");
  });
});
