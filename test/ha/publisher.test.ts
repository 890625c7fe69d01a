/**
 * The entity and event publisher against a scripted transport: what the four
 * entities say, coalescing, ordering, and holding events while Home Assistant
 * is unreachable.
 */
import { describe, expect, it, onTestFinished } from "vitest";
import { EventBus } from "../../src/events.ts";
import { createJob, type FirmwareJob, type StoredJob } from "../../src/firmware/job.ts";
import { computeEntities, ENTITY_IDS, HaPublisher, jobEventData, OUTBOX_LIMIT, type HaTransport, type PendingPairRequest } from "../../src/ha/publisher.ts";
import { waitFor } from "../helpers/tmp.ts";

function job(over: Partial<StoredJob> = {}): FirmwareJob {
  return { ...createJob({ configuration: "kitchen.yaml", job_type: "install" }, new Date("2026-01-01T00:00:00Z")), ...over, output: [] };
}

class ScriptedTransport implements HaTransport {
  readonly calls: { kind: string; name: string; body: Record<string, unknown> }[] = [];
  down = false;

  #maybeFail(): Promise<void> {
    return this.down ? Promise.reject(new Error("connect ECONNREFUSED")) : Promise.resolve();
  }

  async setState(entityId: string, state: string, attributes: Record<string, unknown>): Promise<void> {
    await this.#maybeFail();
    this.calls.push({ kind: "state", name: entityId, body: { state, attributes } });
  }

  async fireEvent(eventType: string, data: Record<string, unknown>): Promise<void> {
    await this.#maybeFail();
    this.calls.push({ kind: "event", name: eventType, body: data });
  }

  async callService(domain: string, service: string, data: Record<string, unknown>): Promise<void> {
    await this.#maybeFail();
    this.calls.push({ kind: "service", name: `${domain}.${service}`, body: data });
  }

  states(entityId: string): string[] {
    return this.calls.filter((c) => c.kind === "state" && c.name === entityId).map((c) => c.body.state as string);
  }
}

function setup(jobs: FirmwareJob[] = [], pending: PendingPairRequest[] = []) {
  const bus = new EventBus();
  const transport = new ScriptedTransport();
  const publisher = new HaPublisher({ bus, transport, jobs: () => jobs, pendingPairRequests: () => pending, panelUrl: () => "/hassio/ingress/abc_esphome_builder", debounceMs: 20, retryMinMs: 20, retryMaxMs: 40 });
  onTestFinished(() => publisher.stop(50));
  return { bus, transport, publisher, jobs, pending };
}

describe("entities", () => {
  it("describe an idle builder", () => {
    const states = Object.fromEntries(computeEntities([], []).map((e) => [e.entityId, e]));
    expect(states[ENTITY_IDS.queue]).toMatchObject({ state: "0", attributes: { running: 0, queued: 0, current_job: null, jobs: [] } });
    expect(states[ENTITY_IDS.building]).toMatchObject({ state: "off", attributes: { device_class: "running", configurations: [] } });
    expect(states[ENTITY_IDS.lastJob]?.state).toBe("none");
    expect(states[ENTITY_IDS.pairingRequests]).toMatchObject({ state: "0", attributes: { requests: [] } });
  });

  it("count active jobs, name the running one, and show the newest finished job", () => {
    const running = job({ job_id: "aaaaaaaaaaaa", status: "running", started_at: "2026-01-01T00:00:01Z", phase: "compile", progress: 40 });
    const queued = job({ job_id: "bbbbbbbbbbbb", configuration: "office.yaml", created_at: "2026-01-01T00:00:05Z" });
    const older = job({ job_id: "cccccccccccc", status: "completed", started_at: "2026-01-01T00:00:00Z", completed_at: "2026-01-01T00:00:30Z" });
    const newer = job({ job_id: "dddddddddddd", status: "failed", error: "boom", exit_code: 1, started_at: "2026-01-01T00:01:00Z", completed_at: "2026-01-01T00:01:12.5Z", source: "remote", source_label: "Desktop" });
    const states = Object.fromEntries(computeEntities([newer, queued, older, running], [{ dashboard_id: "d1", pin_sha256: "ab".repeat(32), label: "Laptop", peer_ip: "10.0.0.2" }]).map((e) => [e.entityId, e]));
    expect(states[ENTITY_IDS.queue]).toMatchObject({ state: "2", attributes: { running: 1, queued: 1, current_job: { job_id: "aaaaaaaaaaaa", progress: 40, phase: "compile" } } });
    expect(states[ENTITY_IDS.building]).toMatchObject({ state: "on", attributes: { configurations: ["kitchen.yaml"] } });
    expect(states[ENTITY_IDS.lastJob]).toMatchObject({ state: "failed", attributes: { job_id: "dddddddddddd", error: "boom", duration: 12.5, source: "remote", source_label: "Desktop" } });
    expect(states[ENTITY_IDS.pairingRequests]).toMatchObject({ state: "1", attributes: { requests: [{ dashboard_id: "d1", label: "Laptop", peer_ip: "10.0.0.2" }] } });
  });

  it("event data carries job id, configuration, type, source, label, error and duration", () => {
    expect(jobEventData(job({ job_id: "aaaaaaaaaaaa", status: "cancelled", error: "superseded", started_at: "2026-01-01T00:00:00Z", completed_at: "2026-01-01T00:00:02Z" }))).toEqual({
      job_id: "aaaaaaaaaaaa",
      configuration: "kitchen.yaml",
      type: "install",
      status: "cancelled",
      source: "local",
      source_label: "",
      error: "superseded",
      exit_code: null,
      duration: 2,
    });
    expect(jobEventData(job()).duration).toBeNull();
  });
});

describe("publisher", () => {
  it("publishes all four entities at start, then only what changed, coalesced", async () => {
    const { bus, transport, publisher, jobs } = setup();
    publisher.start();
    await publisher.idle();
    expect(transport.calls.filter((c) => c.kind === "state")).toHaveLength(4);
    const j = job({ status: "running", started_at: new Date().toISOString() });
    jobs.push(j);
    for (let p = 0; p < 50; p++) bus.emit("job_progress", { job_id: j.job_id, progress: p });
    await publisher.idle();
    // 50 progress events in one window: one queue update, one building update, nothing else.
    expect(transport.states(ENTITY_IDS.queue)).toEqual(["0", "1"]);
    expect(transport.states(ENTITY_IDS.building)).toEqual(["off", "on"]);
    expect(transport.states(ENTITY_IDS.lastJob)).toEqual(["none"]);
  });

  it("fires the job events in order, before the states they lead to", async () => {
    const { bus, transport, publisher, jobs } = setup();
    publisher.start();
    await publisher.idle();
    transport.calls.length = 0;
    const j = job();
    jobs.push(j);
    bus.emit("job_queued", { job: j });
    bus.emit("job_started", { job: { ...j, status: "running" } });
    j.status = "completed";
    j.completed_at = new Date().toISOString();
    bus.emit("job_completed", { job: j });
    await publisher.idle();
    expect(transport.calls.filter((c) => c.kind === "event").map((c) => c.name)).toEqual(["esphome_builder_job_queued", "esphome_builder_job_started", "esphome_builder_job_completed"]);
    expect(transport.states(ENTITY_IDS.lastJob)).toEqual(["completed"]);
  });

  it("holds events while Home Assistant is down, sends them in order when it is back, and republishes everything", async () => {
    const { bus, transport, publisher } = setup();
    publisher.start();
    await publisher.idle();
    transport.down = true;
    const j = job();
    bus.emit("job_queued", { job: j });
    bus.emit("job_failed", { job: { ...j, status: "failed", error: "x" } });
    await new Promise((r) => setTimeout(r, 100));
    expect(transport.calls.filter((c) => c.kind === "event")).toEqual([]);
    transport.down = false;
    publisher.republish();
    await waitFor(() => transport.calls.filter((c) => c.kind === "event").length === 2, 2_000, "the held events");
    await publisher.idle();
    expect(transport.calls.filter((c) => c.kind === "event").map((c) => c.name)).toEqual(["esphome_builder_job_queued", "esphome_builder_job_failed"]);
    // A republish sends all four entities even though nothing changed.
    expect(transport.states(ENTITY_IDS.pairingRequests)).toEqual(["0", "0"]);
  });

  it("retries by itself with backoff while Home Assistant is down", async () => {
    const { bus, transport, publisher } = setup();
    transport.down = true;
    publisher.start();
    bus.emit("job_queued", { job: job() });
    await new Promise((r) => setTimeout(r, 60));
    transport.down = false;
    await waitFor(() => transport.calls.some((c) => c.kind === "event"), 2_000, "the retry");
  });

  it("keeps at most OUTBOX_LIMIT events while Home Assistant is away", async () => {
    const { bus, transport, publisher } = setup();
    transport.down = true;
    publisher.start();
    for (let i = 0; i < OUTBOX_LIMIT + 50; i++) bus.emit("job_queued", { job: job({ job_id: i.toString(16).padStart(12, "0") }) });
    transport.down = false;
    publisher.republish();
    await waitFor(() => transport.calls.filter((c) => c.kind === "event").length === OUTBOX_LIMIT, 5_000, "the kept events");
    expect(transport.calls.find((c) => c.kind === "event")?.body.job_id).toBe((50).toString(16).padStart(12, "0"));
  });

  it("announces a pairing request with an event and a notification linking to the panel, and dismisses it", async () => {
    const pending: PendingPairRequest[] = [];
    const { bus, transport, publisher } = setup([], pending);
    publisher.start();
    const request = { dashboard_id: "abc-DEF_1", pin_sha256: "0f".repeat(32), label: "Laptop", peer_ip: "192.0.2.7" };
    pending.push(request);
    bus.emit("remote_build_pair_request_received", request);
    await publisher.idle();
    const event = transport.calls.find((c) => c.name === "esphome_builder_pair_request");
    expect(event?.body).toMatchObject({ ...request, fingerprint_emoji: expect.any(Array) as unknown });
    const note = transport.calls.find((c) => c.name === "persistent_notification.create");
    expect(note?.body).toMatchObject({ notification_id: "esphome_builder_pair_abc_DEF_1", title: expect.stringContaining("pairing") as unknown });
    expect(note?.body.message).toContain("[Open ESPHome Builder](/hassio/ingress/abc_esphome_builder)");
    expect(note?.body.message).toContain("Laptop");
    expect(transport.states(ENTITY_IDS.pairingRequests).at(-1)).toBe("1");
    pending.length = 0;
    bus.emit("remote_build_pair_status_changed", { dashboard_id: "abc-DEF_1", status: "approved" });
    await publisher.idle();
    expect(transport.calls.find((c) => c.name === "persistent_notification.dismiss")?.body).toEqual({ notification_id: "esphome_builder_pair_abc_DEF_1" });
    expect(transport.states(ENTITY_IDS.pairingRequests).at(-1)).toBe("0");
  });
});
