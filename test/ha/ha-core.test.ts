/**
 * End to end with a real Home Assistant Core (the pinned release test/setup-ha.sh installs
 * into a Debian root; it runs in a network namespace of its own): a builder in direct mode
 * (`--ha-url`, `--ha-token`) publishes its entities and events, runs the
 * installs an automation asks for, raises a pairing notification, and
 * survives Home Assistant stopping mid-build and coming back.
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from "vitest";
import { Builder } from "../../src/builder.ts";
import type { BuilderConfig } from "../../src/config.ts";
import type { FirmwareJob } from "../../src/firmware/job.ts";
import { ENTITY_IDS } from "../../src/ha/publisher.ts";
import { ApiClient } from "../helpers/api-client.ts";
import { configDir, testConfig } from "../helpers/builder.ts";
import { waitFor } from "../helpers/tmp.ts";
import { HA_ROOT, HaCore, HaSocket, hassAvailable, type HaEventMessage } from "./ha-core.ts";
import { missingTool } from "../helpers/tools.ts";

const AUTOMATIONS = `automation:
  - id: install_kitchen
    alias: Install kitchen
    trigger:
      - platform: event
        event_type: test_install_kitchen
    action:
      - event: esphome_builder_command
        event_data:
          command: install
          configuration: kitchen.yaml
`;

const JOB_EVENTS = ["queued", "started", "completed", "failed", "cancelled"].map((s) => `esphome_builder_job_${s}`);

let core: HaCore;
let haDir: string;
let haVersion = "?";
let token: string;
const timings: string[] = [];

/** Everything our builders send, as Home Assistant's WebSocket delivers it. */
class Recorder {
  readonly events: HaEventMessage[] = [];
  readonly states: { entity_id: string; state: string; attributes: Record<string, unknown> }[] = [];
  socket!: HaSocket;

  static async open(): Promise<Recorder> {
    const r = new Recorder();
    r.socket = await HaSocket.connect(core.url, token);
    for (const type of [...JOB_EVENTS, "esphome_builder_pair_request"]) {
      await r.socket.subscribe(type, (e) => r.events.push(e));
    }
    await r.socket.subscribe("state_changed", (e) => {
      const next = e.data.new_state as { entity_id: string; state: string; attributes: Record<string, unknown> } | null;
      if (next !== null && next.entity_id.includes("esphome_builder")) r.states.push(next);
    });
    onTestFinished(() => { r.socket.close(); });
    return r;
  }

  jobEvents(jobId: string): string[] {
    return this.events.filter((e) => e.data.job_id === jobId).map((e) => e.event_type.replace("esphome_builder_job_", ""));
  }

  statesOf(entityId: string): string[] {
    const seen = this.states.filter((s) => s.entity_id === entityId).map((s) => s.state);
    return seen.filter((s, i) => i === 0 || s !== seen[i - 1]);
  }
}

async function startBuilderFor(overrides: Partial<BuilderConfig> = {}, dir?: string): Promise<{ builder: Builder; port: number; dir: string }> {
  const folder = dir ?? (await configDir({ kitchen: "", office: "" }));
  const builder = new Builder(testConfig(folder, { haUrl: core.url, haToken: token, ...overrides }), {
    haTimings: { retryMinMs: 200, retryMaxMs: 1_000, debounceMs: 100, publishRetryMinMs: 200 },
  });
  const { port } = await builder.start();
  onTestFinished(async () => { await builder.stop(); });
  return { builder, port, dir: folder };
}

/** Resolves once Home Assistant has a listener for esphome_builder_command: the builder's subscription is live. */
async function builderListening(): Promise<void> {
  await waitFor(async () => {
    const res = await fetch(`${core.url}/api/events`, { headers: { Authorization: `Bearer ${token}` } });
    const events = (await res.json()) as { event: string; listener_count: number }[];
    return events.some((e) => e.event === "esphome_builder_command" && e.listener_count > 0);
  }, 15_000, "the builder's esphome_builder_command subscription");
}

async function entityState(entityId: string) {
  return core.getState(token, entityId);
}

describe.skipIf(missingTool(hassAvailable, "a real Home Assistant Core (test/setup-ha.sh)"))(`a real Home Assistant (${HA_ROOT})`, () => {
  beforeAll(async () => {
    haDir = await mkdtemp(path.join(os.tmpdir(), "ha-core-"));
    core = await HaCore.create(haDir, AUTOMATIONS);
    const first = await core.start();
    const onboardStart = Date.now();
    token = await core.onboard();
    haVersion = ((await (await fetch(`${core.url}/api/config`, { headers: { Authorization: `Bearer ${token}` } })).json()) as { version: string }).version;
    timings.push(`first start ${first.toFixed(1)} s, onboarding ${((Date.now() - onboardStart) / 1000).toFixed(1)} s`);
  }, 120_000);

  afterAll(async () => {
    const stop = await core.stop();
    await core.dispose();
    console.log(`Home Assistant ${haVersion}: ${timings.join("; ")}; final stop ${stop.toFixed(1)} s`);
    await rm(haDir, { recursive: true, force: true });
  }, 60_000);

  it("shows the entities and follows an install through queued, running and completed; the events arrive", { timeout: 60_000 }, async () => {
    vi.stubEnv("ESPHOME_STANDIN_COMPILE_SECONDS", "1.5");
    vi.stubEnv("ESPHOME_STANDIN_UPLOAD_SECONDS", "0.3");
    vi.stubEnv("ESPHOME_STANDIN_FAIL", "");
    onTestFinished(() => { vi.unstubAllEnvs(); });
    const recorder = await Recorder.open();
    const { port } = await startBuilderFor();
    await waitFor(async () => (await entityState(ENTITY_IDS.pairingRequests))?.state === "0", 15_000, "the entities to appear");
    expect((await entityState(ENTITY_IDS.queue))?.state).toBe("0");
    expect((await entityState(ENTITY_IDS.building))?.state).toBe("off");

    const api = await ApiClient.connect(port);
    onTestFinished(() => { api.close(); });
    const job = await api.call<FirmwareJob>("firmware/install", { configuration: "kitchen.yaml" });
    await waitFor(() => recorder.jobEvents(job.job_id).includes("completed"), 30_000, "the completed event in Home Assistant");
    expect(recorder.jobEvents(job.job_id)).toEqual(["queued", "started", "completed"]);
    const completed = recorder.events.find((e) => e.event_type === "esphome_builder_job_completed")!;
    expect(completed.data).toMatchObject({ job_id: job.job_id, configuration: "kitchen.yaml", type: "install", source: "local", source_label: "", error: null });
    expect(completed.data.duration).toBeGreaterThan(1);

    await waitFor(async () => (await entityState(ENTITY_IDS.lastJob))?.state === "completed", 10_000, "last job = completed");
    expect((await entityState(ENTITY_IDS.lastJob))?.attributes).toMatchObject({ job_id: job.job_id, configuration: "kitchen.yaml", type: "install" });
    await waitFor(async () => (await entityState(ENTITY_IDS.building))?.state === "off", 10_000, "building = off");
    expect(recorder.statesOf(ENTITY_IDS.building)).toEqual(["off", "on", "off"]);
    const queueStates = recorder.statesOf(ENTITY_IDS.queue);
    expect(queueStates[0]).toBe("0");
    expect(queueStates).toContain("1");
    expect(queueStates.at(-1)).toBe("0");
    const running = recorder.states.find((s) => s.entity_id === ENTITY_IDS.queue && s.attributes.current_job !== null);
    expect(running?.attributes.current_job).toMatchObject({ job_id: job.job_id, configuration: "kitchen.yaml", type: "install", status: "running" });
  });

  it("publishes REST states: Home Assistant shows their names and units, but they have no registry entry (no unique_id)", { timeout: 60_000 }, async () => {
    const recorder = await Recorder.open();
    await startBuilderFor();
    await waitFor(async () => (await entityState(ENTITY_IDS.pairingRequests))?.state === "0", 15_000, "the entities to appear");
    for (const id of Object.values(ENTITY_IDS)) {
      const state = await entityState(id);
      expect(state?.attributes.friendly_name, id).toMatch(/^ESPHome Builder /);
      // What the UI says as "This entity does not have a unique ID": nothing to rename, hide or put in an area.
      await expect(recorder.socket.call({ type: "config/entity_registry/get", entity_id: id }), id).rejects.toThrow(/not_found/);
    }
    expect((await entityState(ENTITY_IDS.queue))?.attributes).toMatchObject({ unit_of_measurement: "jobs" });
    const registry = await recorder.socket.call<{ entity_id: string }[]>({ type: "config/entity_registry/list" });
    expect(registry.filter((e) => e.entity_id.includes("esphome_builder"))).toEqual([]);
  });

  it("runs the install an automation asks for with esphome_builder_command, and nothing for a malformed one", { timeout: 60_000 }, async () => {
    vi.stubEnv("ESPHOME_STANDIN_COMPILE_SECONDS", "0.3");
    vi.stubEnv("ESPHOME_STANDIN_UPLOAD_SECONDS", "0.1");
    vi.stubEnv("ESPHOME_STANDIN_FAIL", "");
    onTestFinished(() => { vi.unstubAllEnvs(); });
    const recorder = await Recorder.open();
    const { builder } = await startBuilderFor();
    await builderListening();
    // The automation in configuration.yaml turns this event into an esphome_builder_command.
    await core.post(token, "events/test_install_kitchen", {});
    await waitFor(() => builder.queue.list().some((j) => j.status === "completed"), 20_000, "the install to finish");
    const [job] = builder.queue.list();
    expect(job).toMatchObject({ configuration: "kitchen.yaml", job_type: "install", status: "completed" });
    await waitFor(() => recorder.jobEvents(job!.job_id).includes("completed"), 10_000, "the completed event");

    for (const data of [{ command: "explode" }, { command: "install", configuration: "../../etc/passwd" }, { command: "install", configuration: "ghost.yaml" }, { configuration: "kitchen.yaml" }, { command: "install", configuration: "kitchen.yaml", bogus: 1 }]) {
      await core.post(token, "events/esphome_builder_command", data);
    }
    await core.post(token, "events/esphome_builder_command", { command: "compile", configuration: "office.yaml" });
    await waitFor(() => builder.queue.list().length === 2, 10_000, "the valid compile");
    await new Promise((r) => setTimeout(r, 300));
    expect(builder.queue.list().map((j) => [j.job_type, j.configuration])).toEqual([["compile", "office.yaml"], ["install", "kitchen.yaml"]]);
  });

  it("announces a pairing request with an event, a sensor and a persistent notification", { timeout: 60_000 }, async () => {
    const recorder = await Recorder.open();
    const server = await startBuilderFor({ label: "Build server" });
    const offloader = new Builder(testConfig(await configDir(), { label: "Laptop" }));
    const { port: offloaderPort } = await offloader.start();
    onTestFinished(async () => { await offloader.stop(); });
    const apiServer = await ApiClient.connect(server.port);
    const apiOffloader = await ApiClient.connect(offloaderPort);
    onTestFinished(() => { apiServer.close(); apiOffloader.close(); });
    const serverPort = server.builder.remote.receiver.port!;
    await apiServer.call("remote_build/set_pairing_window", { open: true });
    const preview = await apiOffloader.call<{ pin_sha256: string }>("remote_build/preview_pair", { hostname: "127.0.0.1", port: serverPort });
    await apiOffloader.call("remote_build/request_pair", { hostname: "127.0.0.1", port: serverPort, pin_sha256: preview.pin_sha256, label: "Server" });

    await waitFor(() => recorder.events.some((e) => e.event_type === "esphome_builder_pair_request"), 15_000, "the pair request event");
    const event = recorder.events.find((e) => e.event_type === "esphome_builder_pair_request")!;
    expect(event.data).toMatchObject({ label: "Laptop", peer_ip: "127.0.0.1" });
    expect(event.data.fingerprint_emoji).toHaveLength(7);
    await waitFor(async () => (await entityState(ENTITY_IDS.pairingRequests))?.state === "1", 10_000, "pairing requests = 1");
    const notifications = await recorder.socket.call<{ notification_id: string; title: string; message: string }[]>({ type: "persistent_notification/get" });
    const note = notifications.find((n) => n.notification_id.startsWith("esphome_builder_pair_"));
    expect(note?.message).toContain("Laptop");
    expect(note?.message).toContain(`http://127.0.0.1:${server.port}/`);

    // Approving in the panel clears the sensor and the notification.
    await apiServer.call("remote_build/approve_peer", { dashboard_id: event.data.dashboard_id });
    await waitFor(async () => (await entityState(ENTITY_IDS.pairingRequests))?.state === "0", 10_000, "pairing requests = 0");
    await waitFor(async () => !(await recorder.socket.call<{ notification_id: string }[]>({ type: "persistent_notification/get" })).some((n) => n.notification_id === note?.notification_id), 10_000, "the notification to go");
  });

  it("keeps building while Home Assistant is down and republishes the entities when it is back", { timeout: 120_000 }, async () => {
    vi.stubEnv("ESPHOME_STANDIN_COMPILE_SECONDS", "5");
    vi.stubEnv("ESPHOME_STANDIN_UPLOAD_SECONDS", "0.2");
    vi.stubEnv("ESPHOME_STANDIN_FAIL", "");
    onTestFinished(() => { vi.unstubAllEnvs(); });
    let recorder = await Recorder.open();
    const { builder, port } = await startBuilderFor();
    const api = await ApiClient.connect(port);
    onTestFinished(() => { api.close(); });
    const job = await api.call<FirmwareJob>("firmware/install", { configuration: "office.yaml" });
    await waitFor(() => recorder.jobEvents(job.job_id).includes("started"), 15_000, "the started event");

    expect(builder.queue.get(job.job_id)?.status).toBe("running");
    const stopped = await core.stop();
    await waitFor(() => builder.queue.get(job.job_id)?.status === "completed", 20_000, "the build to finish without Home Assistant");
    // The panel API kept working all along.
    expect((await api.call<{ pong: boolean }>("ping")).pong).toBe(true);

    const restarted = await core.start();
    timings.push(`stop ${stopped.toFixed(1)} s, restart ${restarted.toFixed(1)} s`);
    recorder = await Recorder.open();
    // Home Assistant lost every REST-set state; the builder puts them back (one POST each, the
    // pairing-requests sensor last), with the build that finished meanwhile.
    await waitFor(
      async () => (await entityState(ENTITY_IDS.lastJob))?.state === "completed" && (await entityState(ENTITY_IDS.pairingRequests)) !== null,
      30_000,
      "the entities to be republished",
    );
    expect((await entityState(ENTITY_IDS.lastJob))?.attributes).toMatchObject({ job_id: job.job_id, configuration: "office.yaml" });
    expect((await entityState(ENTITY_IDS.building))?.state).toBe("off");
    expect((await entityState(ENTITY_IDS.queue))?.state).toBe("0");
    expect((await entityState(ENTITY_IDS.pairingRequests))?.state).toBe("0");
    // And commands from Home Assistant work again on the new connection.
    await builderListening();
    await core.post(token, "events/esphome_builder_command", { command: "clean", configuration: "office.yaml" });
    await waitFor(() => builder.queue.list().some((j) => j.job_type === "clean" && j.status === "completed"), 15_000, "the clean");
    await waitFor(() => recorder.events.some((e) => e.event_type === "esphome_builder_job_completed" && e.data.type === "clean"), 10_000, "the clean's event");
  });
});
